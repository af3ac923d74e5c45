//! `ReceiveQueue`: items from many channels, in arrival order, each with the
//! channel it came on, and an endmarker per channel when it ends.

use std::fmt;
use std::time::Duration;

use remex_core::{Channel, Error, Result, Value};
use remex_sync::Queue;

/// What a wait on the queue says when it runs out of time.
const WHAT: &str = "an item on the receive queue";

/// A queue fed by channel callbacks. Clones share it.
///
/// With an endmarker, every channel puts it exactly once when it closes,
/// fails, or its worker is killed or terminated, so that a consumer can
/// count the ends and never wait for a channel that is gone.
#[derive(Clone)]
pub struct ReceiveQueue {
    /// Never closed: each handle keeps its sending side.
    items: Queue<(Channel, Value)>,
}

impl Default for ReceiveQueue {
    fn default() -> Self {
        ReceiveQueue {
            items: Queue::unbounded(),
        }
    }
}

impl fmt::Debug for ReceiveQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ReceiveQueue len={}>", self.len())
    }
}

impl ReceiveQueue {
    pub(crate) fn attach(&self, ch: &Channel, endmarker: Option<Value>) -> Result<()> {
        let q = self.items.clone();
        let from = ch.clone();
        ch.set_callback(
            move |v| {
                // Unbounded and never closed: the put always succeeds.
                let _ = q.try_put((from.clone(), v));
            },
            endmarker,
        )
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Waits for the next item. It waits as long as it takes: with an
    /// endmarker, each channel's end is an item, so a consumer that counts
    /// ends never waits for a channel that is gone. Use
    /// [`ReceiveQueue::get_timeout`] for a bound.
    pub async fn get(&self) -> (Channel, Value) {
        match self.items.get(None).await {
            Ok(x) => x,
            // The queue is never closed (this handle can still put), so
            // a get without a bound only ends with an item.
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits at most `timeout` for the next item.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<(Channel, Value)> {
        self.items
            .get(Some(timeout))
            .await
            .map_err(|_| Error::Timeout {
                what: WHAT,
                after: timeout,
            })
    }

    /// [`ReceiveQueue::get`] for plain threads, with an optional timeout.
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<(Channel, Value)> {
        self.items
            .get_blocking(timeout)
            .map_err(|_| Error::Timeout {
                what: WHAT,
                after: timeout.unwrap_or_default(),
            })
    }
}
