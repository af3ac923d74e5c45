//! A connection's protocol state, without I/O: its channels by id, whether
//! it is lost, the status requests in flight, and where each decoded
//! message goes.
//!
//! In the style of quinn-proto, as [`crate::channel`] is for one channel:
//! [`ConnMachine`] is a plain value that takes events (a message from the
//! peer, a channel opened here, a status request asked, the loss) and
//! returns what the caller must do ([`Route`], [`Opened`], [`Loss`]).
//! remex-core keeps it under one mutex (the one its channel table had)
//! and does the I/O, the wake-ups and the calls outside it. `T` is a
//! channel's state (remex-core's `ChanState`, which holds a
//! [`crate::channel::ChanMachine`] under its own lock), `E` the error a
//! loss ends channels with, `W` a status request's waiter.
//!
//! The rules:
//! - **Ids.** Each side allocates its channel ids by two from its first id
//!   (odd on the controller, even on the worker); a reference to a
//!   channel (inside a value or an `Exec`) names a live one, an ended one
//!   a handle still holds, an ended one of ours, or a new one of the
//!   peer's ([`ChanTable`]).
//! - **Routing.** A message for a channel that is not live (ended both
//!   ways, or never known) is dropped: nothing reaches a channel after
//!   the caller removed it. Channel references inside a `Data` item or an
//!   `Exec`'s arguments are registered before the message is routed, so
//!   items sent to them early are kept.
//! - **Loss.** The first loss takes every live channel out, once, with
//!   every status waiter ([`ConnMachine::lose`]); later losses do nothing.
//!   A channel opened after the loss is never registered: it comes back
//!   with the loss ([`Opened::lost`]) for the caller to end at once. So
//!   every channel ends exactly once on loss, whichever comes first.
//! - **Status.** A reply answers only a request asked and not forgotten,
//!   at most once; no request is taken after the loss.

use std::collections::HashMap;
use std::sync::Arc;

mod table;
pub use table::{ChanTable, Lookup};

use crate::value::Value;
use crate::wire::{ExecRequest, LogRecord, Message, RemoteStatus};

/// How a channel the machine asks for starts (see [`ConnMachine::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// A live channel: one opened here, or a new one of the peer's.
    Live,
    /// One of ours that ended and that nobody holds any more: a handle to
    /// it reports the end at once. It is not registered.
    Ended,
}

/// A channel made for the caller.
#[derive(Debug)]
pub struct Opened<T, E> {
    /// The channel.
    pub chan: Arc<T>,
    /// The connection was lost before: the channel was not registered,
    /// and the caller ends it with this error.
    pub lost: Option<E>,
}

/// How the peer ended a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It closed the channel both ways (`Close`).
    Closed,
    /// It will send nothing more but still receives (`LastMessage`).
    LastMessage,
    /// It closed the channel with an error (`CloseError`).
    Failed(String),
}

/// What to do with a message from the peer (new messages add routes).
#[derive(Debug)]
#[non_exhaustive]
pub enum Route<T, E, W> {
    /// An item for a live channel.
    Deliver {
        /// The channel.
        chan: Arc<T>,
        /// The item.
        value: Value,
        /// Its size on the wire (counted against the channel's credit).
        size: usize,
    },
    /// The peer ended a live channel.
    Ended {
        /// The channel.
        chan: Arc<T>,
        /// How.
        how: End,
    },
    /// The peer returned credit on a live channel.
    Credit {
        /// The channel.
        chan: Arc<T>,
        /// Bytes returned.
        bytes: u32,
    },
    /// The peer asks to run `request` on a new channel.
    Exec {
        /// The channel (the peer's new one, or what its id names).
        opened: Opened<T, E>,
        /// What to run.
        request: ExecRequest,
    },
    /// The peer asks this side to end.
    Terminate,
    /// The peer (the controller) will be silent until `Resume`: its
    /// silence does not count, and this side's commands are suspended.
    Pause,
    /// The peer (the controller) is back.
    Resume,
    /// The peer asks for this side's status: reply with `id` and these
    /// channels (the caller adds what it runs).
    StatusRequest {
        /// The request's id, echoed in the reply.
        id: u32,
        /// Live channels.
        numchannels: u64,
    },
    /// The peer answered a status request asked here.
    StatusAnswered {
        /// The request's waiter.
        waiter: W,
        /// The answer.
        status: RemoteStatus,
    },
    /// A worker's log event, with its call's channel if that is live.
    Log {
        /// The call's channel.
        chan: Option<Arc<T>>,
        /// The event.
        record: LogRecord,
    },
    /// Nothing to do: a message for a channel that is not live, or a
    /// status reply nobody waits for.
    Dropped {
        /// The message's channel (0 for a status reply).
        channel: u32,
    },
}

/// What the first loss takes out, for the caller to end.
#[derive(Debug)]
pub struct Loss<T, W> {
    /// Every channel that was live: each ends with the loss, once.
    pub chans: Vec<Arc<T>>,
    /// Every status request still waiting.
    pub waiters: Vec<W>,
}

/// A connection's protocol state (see the module docs).
///
/// ```
/// use std::sync::Arc;
/// use remex_proto::connection::{ConnMachine, Fresh, Route};
/// use remex_proto::wire::Message;
///
/// // The controller's side (ids 1, 3...); a channel is a name here.
/// let mut m = ConnMachine::<String, &str, ()>::new(1);
/// let make = &mut |id: u32, _: Fresh| Arc::new(format!("channel {id}"));
/// let opened = m.open(make);
/// assert_eq!(*opened.chan, "channel 1");
/// let msg = Message::Data { channel: 1, value: 7.into(), size: 2 };
/// assert!(matches!(m.route(msg, make), Route::Deliver { value, .. } if value == 7.into()));
/// // Lost: the channel is taken out once, and a new one is born ended.
/// assert_eq!(m.lose("the worker exited").unwrap().chans.len(), 1);
/// assert!(m.lose("again").is_none());
/// assert_eq!(m.open(make).lost, Some("the worker exited"));
/// ```
#[derive(Debug)]
pub struct ConnMachine<T, E, W> {
    table: ChanTable<T>,
    lost: Option<E>,
    status: HashMap<u32, W>,
}

impl<T, E: Clone, W> ConnMachine<T, E, W> {
    /// A connection whose own channel ids start at `first_id` (odd on the
    /// controller, even on the worker).
    pub fn new(first_id: u32) -> Self {
        ConnMachine {
            table: ChanTable::new(first_id),
            lost: None,
            status: HashMap::new(),
        }
    }

    /// A fresh id of ours, for a channel that is never registered (a
    /// local channel: nothing comes from the peer for it).
    pub fn allocate(&mut self) -> u32 {
        self.table.allocate()
    }

    /// Opens a channel of ours: `make` makes it with its id; registered
    /// unless the connection is lost.
    pub fn open(&mut self, make: &mut dyn FnMut(u32, Fresh) -> Arc<T>) -> Opened<T, E> {
        let id = self.table.allocate();
        let chan = make(id, Fresh::Live);
        if self.lost.is_none() {
            self.table.insert(id, chan.clone());
        }
        Opened {
            chan,
            lost: self.lost.clone(),
        }
    }

    /// The channel a reference to `id` names (see [`Lookup`]); `make`
    /// makes a new one. A new channel of the peer's is registered unless
    /// the connection is lost.
    pub fn for_ref(&mut self, id: u32, make: &mut dyn FnMut(u32, Fresh) -> Arc<T>) -> Opened<T, E> {
        let chan = match self.table.lookup(id) {
            Lookup::Known(chan) => return Opened { chan, lost: None },
            Lookup::EndedOurs => {
                return Opened {
                    chan: make(id, Fresh::Ended),
                    lost: None,
                }
            }
            Lookup::Peers => make(id, Fresh::Live),
        };
        if self.lost.is_none() {
            self.table.insert(id, chan.clone());
        }
        Opened {
            chan,
            lost: self.lost.clone(),
        }
    }

    /// The live channel `id`.
    pub fn get(&self, id: u32) -> Option<Arc<T>> {
        self.table.get(id)
    }

    /// Channel `id` ended both ways: no message reaches it any more (a
    /// handle may still hold it, and a reference to it still names it).
    pub fn remove(&mut self, id: u32) {
        self.table.remove(id);
    }

    /// Live channels.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no channel is live.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Why the connection was lost, if it was.
    pub fn lost(&self) -> Option<&E> {
        self.lost.as_ref()
    }

    /// The connection is lost with `why`: the first time, every live
    /// channel and status waiter, for the caller to end; then `None`.
    pub fn lose(&mut self, why: E) -> Option<Loss<T, W>> {
        if self.lost.is_some() {
            return None;
        }
        self.lost = Some(why);
        Some(Loss {
            chans: self.table.drain(),
            waiters: self.status.drain().map(|(_, w)| w).collect(),
        })
    }

    /// A status request `id` is asked: `waiter` gets the answer (see
    /// [`Route::StatusAnswered`]); the loss if the connection is lost.
    pub fn ask_status(&mut self, id: u32, waiter: W) -> Result<(), E> {
        if let Some(e) = &self.lost {
            return Err(e.clone());
        }
        self.status.insert(id, waiter);
        Ok(())
    }

    /// Status request `id` is given up: its answer, if one comes, is
    /// dropped.
    pub fn forget_status(&mut self, id: u32) -> Option<W> {
        self.status.remove(&id)
    }

    /// Status requests waiting for an answer.
    pub fn status_pending(&self) -> usize {
        self.status.len()
    }

    /// Where the peer's `msg` goes; `make` makes the channels its
    /// references introduce.
    pub fn route(
        &mut self,
        msg: Message,
        make: &mut dyn FnMut(u32, Fresh) -> Arc<T>,
    ) -> Route<T, E, W> {
        if self.lost.is_some() {
            // Nothing from the peer is acted on after the loss (a message
            // decoded before it, dispatched after): its channels ended.
            let channel = match &msg {
                Message::Exec { channel, .. }
                | Message::Data { channel, .. }
                | Message::Close { channel }
                | Message::CloseError { channel, .. }
                | Message::LastMessage { channel }
                | Message::Credit { channel, .. }
                | Message::Log { channel, .. } => *channel,
                Message::Terminate
                | Message::Pause
                | Message::Resume
                | Message::StatusRequest { .. }
                | Message::StatusReply { .. } => 0,
            };
            return Route::Dropped { channel };
        }
        let live = |m: &Self, channel: u32| m.table.get(channel).ok_or(Route::Dropped { channel });
        let routed = match msg {
            Message::Data {
                channel,
                value,
                size,
            } => {
                value.for_each_channel(&mut |r| {
                    self.for_ref(r.0, make);
                });
                live(self, channel).map(|chan| Route::Deliver { chan, value, size })
            }
            Message::Exec { channel, request } => {
                // Channels passed in the arguments exist from now on, so
                // that items sent to them before the task attaches are
                // kept.
                if let ExecRequest::Call { args, .. } = &request {
                    args.for_each_channel(&mut |r| {
                        self.for_ref(r.0, make);
                    });
                }
                let opened = self.for_ref(channel, make);
                Ok(Route::Exec { opened, request })
            }
            Message::Close { channel } => live(self, channel).map(|chan| Route::Ended {
                chan,
                how: End::Closed,
            }),
            Message::CloseError { channel, error } => {
                live(self, channel).map(|chan| Route::Ended {
                    chan,
                    how: End::Failed(error),
                })
            }
            Message::LastMessage { channel } => live(self, channel).map(|chan| Route::Ended {
                chan,
                how: End::LastMessage,
            }),
            Message::Credit { channel, bytes } => {
                live(self, channel).map(|chan| Route::Credit { chan, bytes })
            }
            Message::Terminate => Ok(Route::Terminate),
            Message::Pause => Ok(Route::Pause),
            Message::Resume => Ok(Route::Resume),
            Message::StatusRequest { id } => Ok(Route::StatusRequest {
                id,
                numchannels: self.table.len() as u64,
            }),
            Message::StatusReply { id, status } => self
                .status
                .remove(&id)
                .map(|waiter| Route::StatusAnswered { waiter, status })
                .ok_or(Route::Dropped { channel: 0 }),
            Message::Log { channel, record } => Ok(Route::Log {
                chan: self.table.get(channel),
                record,
            }),
        };
        routed.unwrap_or_else(|dropped| dropped)
    }
}

#[cfg(test)]
mod tests;
