//! One channel's protocol state, without I/O.
//!
//! In the style of quinn-proto: [`ChanMachine`] is a plain value that
//! takes events (an item or a credit from the peer, the peer's end, a
//! local receive, reservation or close, a callback being set) and returns
//! what the caller must do (wake a receiver, hand an item to a callback,
//! send credit back, send a close, drop a callback outside the lock).
//! It holds no lock, no event and no connection: remex-core's `conn::chan`
//! wraps it in a mutex and performs the actions, so every rule of a
//! channel is here and is tested here without a process. `V` is an item,
//! `C` a callback, `E` a failure ([`Failure`]: remex-core's error).
//!
//! The rules:
//! - **Credit.** A sender starts with `window` bytes of credit and sends
//!   while its credit is positive (so it may exceed the window by one
//!   item); the receiver counts bytes it was sent and has not credited
//!   back (`outstanding`) and refuses an item that arrives when that is
//!   already a full window. Consumed bytes go back as credit once a
//!   quarter window has accumulated.
//! - **Ends.** The peer ends a channel with an end of file, an error, or a
//!   last message (it will send nothing more but still receives). A
//!   remote error may replace an end of file (a half-closed channel may
//!   still fail). Items queued before the end are received before it;
//!   after the end every receive reports the end, and items arriving after
//!   it are dropped.
//! - **Callbacks.** A callback receives the queued items when it is set,
//!   then every item; the endmarker goes to it exactly once, when the
//!   channel ends, after which the callback is released (never dropped
//!   inside the channel's lock: it may hold the channel's last handle).

use std::collections::VecDeque;

/// A failure that ends a channel, as far as its rules tell failures apart.
pub trait Failure: Clone {
    /// The peer reported it (it may replace an end of file: a half-closed
    /// channel may still fail).
    fn is_remote(&self) -> bool;
    /// The connection was lost (a sender is told so).
    fn is_loss(&self) -> bool;
}

/// How the remote side ended a channel.
#[derive(Debug, Clone)]
pub enum Terminal<E> {
    /// Closed normally.
    Eof,
    /// Failed remotely, or the connection was lost.
    Failed(E),
}

/// The peer sent an item although it had no credit left: what it has
/// sent and we have not credited back, at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    /// Bytes sent and not credited back when the item came.
    pub outstanding: usize,
}

/// What to do with an item the peer sent.
#[derive(Debug)]
pub enum Delivery<V, C> {
    /// Queued: wake one receiver.
    Queued,
    /// Hand the item to this callback, outside the lock and in order.
    Callback(C, V),
    /// The channel has ended (this side closed it, or the peer's end came
    /// first: a peer sending after its end breaks the protocol): the item
    /// is dropped.
    Dropped,
}

/// What the peer's end of the channel asks for.
#[derive(Debug)]
pub struct RemoteEnd<V, C> {
    /// Both directions are over: the channel leaves the connection's table.
    pub finished: bool,
    /// Deliver this endmarker to this callback (then drop the callback).
    pub endmarker: Option<(C, V)>,
    /// A callback without an endmarker, released: drop it after the lock.
    pub released: Option<C>,
}

/// The result of a local receive.
#[derive(Debug)]
pub enum Receive<V, E> {
    /// The next item and its wire size (to be reported as consumed).
    Item(V, usize),
    /// The channel has ended and nothing is queued.
    End(Terminal<E>),
    /// A callback receives this channel's items.
    CallbackSet,
    /// Nothing yet: wait for the channel to become readable.
    Empty,
}

/// The result of asking for send credit.
#[derive(Debug, PartialEq)]
pub enum Reserve<E> {
    /// Send now.
    Granted,
    /// This side closed the channel (or sent its last message).
    ClosedHere,
    /// The peer will not receive any more; the connection's loss if that
    /// is why.
    PeerGone(Option<E>),
    /// No credit: wait for the channel to become writable.
    NoCredit,
}

/// The result of waiting for the remote end.
#[derive(Debug)]
pub enum WaitClose<E> {
    /// The peer closed it normally, or this side did.
    Closed,
    /// The peer failed it, or the connection was lost.
    Failed(E),
    /// Not yet.
    Pending,
}

/// A local close to perform.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalClose {
    /// Tell the peer (it is still there).
    pub send: bool,
    /// Both directions are over: the channel leaves the connection's table.
    pub finished: bool,
}

/// What setting a callback hands to it now.
#[derive(Debug)]
pub struct CallbackStart<V> {
    /// The items queued before it was set, in order, with their sizes.
    pub queued: Vec<(V, usize)>,
    /// The channel had already ended: the endmarker, delivered after them.
    pub endmarker: Option<V>,
}

/// A callback was already set on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackAlreadySet;

/// One channel's state (see the module's rules).
///
/// `V` is an item, `C` a callback (cloned to be called outside the lock),
/// `E` a failure.
///
/// ```
/// use remex_proto::channel::{ChanMachine, Delivery, Failure, Receive, Reserve, Terminal};
/// #[derive(Clone, Debug)]
/// struct Lost;
/// impl Failure for Lost {
///     fn is_remote(&self) -> bool { false }
///     fn is_loss(&self) -> bool { true }
/// }
/// let mut ch: ChanMachine<&str, (), Lost> = ChanMachine::new(100);
/// // An item arrives and is queued; a receive takes it.
/// assert!(matches!(ch.on_data("hi", 10), Ok(Delivery::Queued)));
/// assert!(matches!(ch.receive(), Receive::Item("hi", 10)));
/// // The connection is lost: receivers see the end, senders the loss.
/// ch.on_remote_end(Terminal::Failed(Lost), true);
/// assert!(matches!(ch.receive(), Receive::End(Terminal::Failed(Lost))));
/// assert!(matches!(ch.reserve(1), Reserve::PeerGone(Some(Lost))));
/// ```
#[derive(Debug)]
pub struct ChanMachine<V, C, E> {
    window: u32,
    queue: VecDeque<(V, usize)>,
    terminal: Option<Terminal<E>>,
    /// The peer will not receive any more (it closed, or the link is gone).
    peer_gone: bool,
    sent_close: bool,
    sent_last: bool,
    callback: Option<C>,
    /// A callback was set and has been released after the channel's end,
    /// its endmarker delivered (no item can follow; holding it could keep
    /// a cycle alive).
    callback_done: bool,
    endmarker: Option<V>,
    /// Send credit; may go below zero by the part of one item beyond it.
    credit: i64,
    /// Consumed bytes not yet credited back.
    consumed: usize,
    /// Bytes received and not yet credited back (queued, consumed but not
    /// yet credited, or with a callback). The peer sends only while this
    /// is under the window, so it bounds what a peer can make us hold.
    outstanding: usize,
}

impl<V, C: Clone, E: Failure> ChanMachine<V, C, E> {
    /// A channel with `window` bytes of credit each way.
    pub fn new(window: u32) -> Self {
        ChanMachine {
            window,
            queue: VecDeque::new(),
            terminal: None,
            peer_gone: false,
            sent_close: false,
            sent_last: false,
            callback: None,
            callback_done: false,
            endmarker: None,
            credit: window.into(),
            consumed: 0,
            outstanding: 0,
        }
    }

    /// A channel with no peer (a local channel: its sends go elsewhere).
    pub fn unpeered(window: u32) -> Self {
        ChanMachine {
            peer_gone: true,
            ..Self::new(window)
        }
    }

    /// A channel of ours that has ended and left the table: a handle made
    /// from a reference to it reports the end at once.
    pub fn ended(window: u32) -> Self {
        ChanMachine {
            terminal: Some(Terminal::Eof),
            peer_gone: true,
            sent_close: true,
            ..Self::new(window)
        }
    }

    fn finished(&self) -> bool {
        self.terminal.is_some() && (self.sent_close || self.sent_last || self.peer_gone)
    }

    /// An item of `size` wire bytes arrived from the peer.
    pub fn on_data(&mut self, value: V, size: usize) -> Result<Delivery<V, C>, Overrun> {
        if self.sent_close || self.terminal.is_some() {
            return Ok(Delivery::Dropped);
        }
        // The peer sends a message only while its unacknowledged bytes are
        // under the window, and what we have not credited back is never
        // more than that: more is a peer ignoring flow control.
        if self.outstanding >= self.window as usize {
            return Err(Overrun {
                outstanding: self.outstanding,
            });
        }
        self.outstanding += size;
        Ok(match &self.callback {
            Some(cb) => Delivery::Callback(cb.clone(), value),
            None => {
                self.queue.push_back((value, size));
                Delivery::Queued
            }
        })
    }

    /// `size` received bytes were consumed: the credit to send back now
    /// (0 for none yet; split it with [`credit_parts`]).
    pub fn on_consumed(&mut self, size: usize) -> usize {
        self.consumed += size;
        if self.consumed >= (self.window / 4) as usize && !self.peer_gone && !self.sent_close {
            let give = std::mem::take(&mut self.consumed);
            self.outstanding = self.outstanding.saturating_sub(give);
            give
        } else {
            0
        }
    }

    /// The peer returned `bytes` of credit: wake the senders.
    pub fn on_credit(&mut self, bytes: u32) {
        self.credit += i64::from(bytes);
    }

    /// The peer ended the channel (`peer_gone`: it receives no more
    /// either). Wake everyone, then act on the result.
    pub fn on_remote_end(&mut self, term: Terminal<E>, peer_gone: bool) -> RemoteEnd<V, C> {
        match (&self.terminal, &term) {
            (None, _) => self.terminal = Some(term),
            // A half-closed channel may still report the remote error.
            (Some(Terminal::Eof), Terminal::Failed(e)) if e.is_remote() => {
                self.terminal = Some(Terminal::Failed(e.clone()));
            }
            _ => {}
        }
        self.peer_gone |= peer_gone;
        let mut end = RemoteEnd {
            finished: false,
            endmarker: None,
            released: None,
        };
        if let Some(cb) = self.callback.take() {
            // A callback is kept only until the end: the end reaches it once.
            self.callback_done = true;
            match self.endmarker.take() {
                Some(m) => end.endmarker = Some((cb, m)),
                None => end.released = Some(cb),
            }
        }
        end.finished = self.finished();
        end
    }

    /// A local receive.
    pub fn receive(&mut self) -> Receive<V, E> {
        if self.callback.is_some() || self.callback_done {
            return Receive::CallbackSet;
        }
        if let Some((v, size)) = self.queue.pop_front() {
            return Receive::Item(v, size);
        }
        match &self.terminal {
            Some(t) => Receive::End(t.clone()),
            None => Receive::Empty,
        }
    }

    /// Whether the remote side has closed the channel.
    pub fn wait_close(&self) -> WaitClose<E> {
        match &self.terminal {
            Some(Terminal::Eof) => WaitClose::Closed,
            Some(Terminal::Failed(e)) => WaitClose::Failed(e.clone()),
            None if self.sent_close => WaitClose::Closed,
            None => WaitClose::Pending,
        }
    }

    /// Takes `size` bytes of send credit, or says why sending is impossible.
    pub fn reserve(&mut self, size: usize) -> Reserve<E> {
        if self.sent_close || self.sent_last {
            return Reserve::ClosedHere;
        }
        if self.peer_gone {
            return Reserve::PeerGone(match &self.terminal {
                Some(Terminal::Failed(e)) if e.is_loss() => Some(e.clone()),
                _ => None,
            });
        }
        if self.credit > 0 {
            self.credit -= size as i64;
            return Reserve::Granted;
        }
        Reserve::NoCredit
    }

    /// Closes the channel from this side (`last_only`: only our sending
    /// direction). `None` if it was already closed that way; otherwise
    /// wake everyone, then act on the result.
    pub fn close(&mut self, last_only: bool) -> Option<LocalClose> {
        if self.sent_close || (last_only && self.sent_last) {
            return None;
        }
        if last_only {
            self.sent_last = true;
        } else {
            self.sent_close = true;
            if self.terminal.is_none() {
                self.terminal = Some(Terminal::Eof);
            }
        }
        Some(LocalClose {
            send: !self.peer_gone,
            finished: self.finished(),
        })
    }

    /// Sets a callback (with an endmarker for the channel's end). Hand it
    /// what the result holds, in order; if the channel had ended, the
    /// callback is not kept.
    pub fn set_callback(
        &mut self,
        cb: &C,
        endmarker: Option<V>,
    ) -> Result<CallbackStart<V>, CallbackAlreadySet> {
        if self.callback.is_some() || self.callback_done {
            return Err(CallbackAlreadySet);
        }
        let queued = self.queue.drain(..).collect();
        let endmarker = if self.terminal.is_some() {
            // Already ended: deliver what is queued and the end, then keep
            // nothing.
            self.callback_done = true;
            endmarker
        } else {
            self.callback = Some(cb.clone());
            self.endmarker = endmarker;
            None
        };
        Ok(CallbackStart { queued, endmarker })
    }

    /// Whether items wait to be received.
    pub fn has_items(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Items queued and their bytes.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queue.iter().map(|(_, s)| s).sum())
    }

    /// The channel ended (either way).
    pub fn is_closed(&self) -> bool {
        self.terminal.is_some() || self.sent_close
    }

    /// The peer receives no more.
    pub fn peer_gone(&self) -> bool {
        self.peer_gone
    }

    /// This side closed the channel.
    pub fn closed_here(&self) -> bool {
        self.sent_close
    }

    /// A callback is set, or was and has been released.
    pub fn has_callback(&self) -> bool {
        self.callback.is_some() || self.callback_done
    }

    /// Bytes received and not credited back (bounded by the window plus
    /// one item).
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Send credit left (negative by at most one item's overshoot).
    pub fn credit(&self) -> i64 {
        self.credit
    }
}

/// Credit to return, as the `u32` amounts of `Credit` messages.
pub fn credit_parts(mut give: usize) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        (give > 0).then(|| {
            let part = give.min(u32::MAX as usize);
            give -= part;
            part as u32
        })
    })
}

#[cfg(test)]
mod tests;
