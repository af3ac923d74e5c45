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
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let mch = group.remote_exec("channel.send(1)")?;
/// let queue: remex::ReceiveQueue = mch.make_receive_queue(Some("end".into()))?;
/// let mut ends = 0;
/// while ends < 2 {
///     let (_ch, v) = queue.get().await;
///     if v == "end".into() {
///         ends += 1;
///     }
/// }
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
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
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let mch = group.remote_exec("channel.send(1)")?;
    /// let queue = mch.make_receive_queue(None)?;
    /// let (_ch, one) = queue.get().await;
    /// assert_eq!(one, 1.into());
    /// assert_eq!(queue.len(), 0, "nothing more waits");
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is waiting.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let mch = group.remote_exec("channel.receive()")?;
    /// let queue = mch.make_receive_queue(None)?;
    /// assert!(queue.is_empty());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Waits for the next item. It waits as long as it takes: with an
    /// endmarker, each channel's end is an item, so a consumer that counts
    /// ends never waits for a channel that is gone. Use
    /// [`ReceiveQueue::get_timeout`] for a bound.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(1)")?;
    /// let queue: remex::ReceiveQueue = mch.make_receive_queue(Some("end".into()))?;
    /// let (ch, v) = queue.get().await;
    /// assert!(v == 1.into() || v == "end".into(), "{v:?} from {}", ch.gateway_id());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> (Channel, Value) {
        match self.items.get(None).await {
            Ok(x) => x,
            // The queue is never closed (this handle can still put), so
            // a get without a bound only ends with an item.
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits at most `timeout` for the next item.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let mch = group.remote_exec("channel.receive()")?;
    /// let queue = mch.make_receive_queue(None)?;
    /// let e = queue.get_timeout(std::time::Duration::from_millis(20)).await.unwrap_err();
    /// assert!(e.is_timeout());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(1)")?;
    /// let queue: remex::ReceiveQueue = mch.make_receive_queue(Some("end".into()))?;
    /// let (_ch, v) = tokio::task::spawn_blocking(move || queue.get_blocking(Some(std::time::Duration::from_secs(10))))
    ///     .await
    ///     .unwrap()?;
    /// assert!(v == 1.into() || v == "end".into());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<(Channel, Value)> {
        self.items
            .get_blocking(timeout)
            .map_err(|_| Error::Timeout {
                what: WHAT,
                after: timeout.unwrap_or_default(),
            })
    }
}
