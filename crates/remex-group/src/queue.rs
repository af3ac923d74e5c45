//! `ReceiveQueue`: items from many channels, in arrival order, each with the
//! channel it came on, and an endmarker per channel when it ends.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};
use parking_lot::Mutex;
use remex_core::{with_timeout, Channel, Error, Result, Value};

/// A queue fed by channel callbacks. Clones share it.
///
/// With an endmarker, every channel puts it exactly once when it closes,
/// fails, or its worker is killed or terminated, so that a consumer can
/// count the ends and never wait for a channel that is gone.
#[derive(Clone, Default)]
pub struct ReceiveQueue {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    items: Mutex<VecDeque<(Channel, Value)>>,
    added: Event,
}

impl fmt::Debug for ReceiveQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ReceiveQueue len={}>", self.len())
    }
}

impl ReceiveQueue {
    pub(crate) fn attach(&self, ch: &Channel, endmarker: Option<Value>) -> Result<()> {
        let q = self.inner.clone();
        let from = ch.clone();
        ch.set_callback(
            move |v| {
                q.items.lock().push_back((from.clone(), v));
                q.added.notify_additional(1);
            },
            endmarker,
        )
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.inner.items.lock().len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn try_get(&self) -> Option<(Channel, Value)> {
        self.inner.items.lock().pop_front()
    }

    /// Waits for the next item. It waits as long as it takes: with an
    /// endmarker, each channel's end is an item, so a consumer that counts
    /// ends never waits for a channel that is gone. Use
    /// [`ReceiveQueue::get_timeout`] for a bound.
    pub async fn get(&self) -> (Channel, Value) {
        loop {
            if let Some(x) = self.try_get() {
                return x;
            }
            let l = self.inner.added.listen();
            if let Some(x) = self.try_get() {
                return x;
            }
            l.await;
        }
    }

    /// Waits at most `timeout` for the next item.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<(Channel, Value)> {
        with_timeout("an item on the receive queue", Some(timeout), async {
            Ok(self.get().await)
        })
        .await
    }

    /// [`ReceiveQueue::get`] for plain threads, with an optional timeout.
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<(Channel, Value)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(x) = self.try_get() {
                return Ok(x);
            }
            let l = self.inner.added.listen();
            if let Some(x) = self.try_get() {
                return Ok(x);
            }
            match deadline {
                None => l.wait(),
                Some(d) => {
                    if l.wait_deadline(d).is_none() && Instant::now() >= d {
                        return Err(Error::Timeout {
                            what: "an item on the receive queue",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
            }
        }
    }
}
