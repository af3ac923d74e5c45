//! `MultiChannel`: one handle on several channels.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use remex_core::{with_timeout, Channel, Result, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::queue::ReceiveQueue;

/// Several channels, usually one per gateway of a group. Clones share the
/// channels and the receive queue.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let ch1 = remex::makegateway("popen").await?.remote_exec("channel.send(1)")?;
/// let ch2 = remex::makegateway("popen").await?.remote_exec("channel.send(2)")?;
/// let mch = remex::MultiChannel::new(vec![ch1.clone(), ch2.clone()]);
/// assert_eq!(mch.len(), 2);
/// assert!(mch[0] == ch1 && mch[1] == ch2);
/// assert!(mch.contains(&ch1) && mch.contains(&ch2));
/// assert_eq!(mch.receive_each::<i64>().await?.iter().sum::<i64>(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MultiChannel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channels: Vec<Channel>,
    queue: OnceLock<Result<ReceiveQueue>>,
}

impl MultiChannel {
    /// A multi-channel over `channels`, in that order.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let chans: Vec<remex::Channel> = group.gateways().iter().map(|g| g.newchannel()).collect();
    /// let mch = remex::MultiChannel::new(chans);
    /// assert_eq!(mch.len(), 2);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn new(channels: Vec<Channel>) -> Self {
        MultiChannel {
            inner: Arc::new(Inner {
                channels,
                queue: OnceLock::new(),
            }),
        }
    }

    /// How many channels.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// assert_eq!(mch.len(), 2);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.channels.len()
    }

    /// Whether there is no channel.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// assert!(!mch.is_empty());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.channels.is_empty()
    }

    /// The channel at `index`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// assert_eq!(mch.get(0).unwrap().gateway_id(), "gw0");
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn get(&self, index: usize) -> Option<&Channel> {
        self.inner.channels.get(index)
    }

    /// Whether `ch` is one of the channels.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// let first = mch.get(0).unwrap().clone();
    /// assert!(mch.contains(&first));
    /// assert!(!mch.contains(&group.get(0).unwrap().newchannel()));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, ch: &Channel) -> bool {
        self.inner.channels.contains(ch)
    }

    /// The channels, in order.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// let ids: Vec<&str> = mch.iter().map(|c| c.gateway_id()).collect();
    /// assert_eq!(ids, vec!["gw0", "gw1"]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Channel> {
        self.inner.channels.iter()
    }

    /// Sends `value` on every channel.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// mch.send_each(&21).await?;
    /// assert_eq!(mch.receive_each::<i64>().await?, vec![42, 42]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn send_each<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        for ch in &self.inner.channels {
            ch.send(value).await?;
        }
        Ok(())
    }

    /// Receives one item from every channel, in channel order.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// mch.send_each(&1).await?;
    /// let each: Vec<i64> = mch.receive_each().await?;
    /// assert_eq!(each, vec![2, 2]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn receive_each<T: DeserializeOwned + 'static>(&self) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.len());
        for ch in &self.inner.channels {
            out.push(ch.receive().await?);
        }
        Ok(out)
    }

    /// One queue that receives the items of all channels, each paired with
    /// its channel; with an `endmarker`, each channel puts it once when it
    /// ends (closes, fails, or its worker dies). Calling this again returns
    /// the same queue (the first call's endmarker holds). After this, the
    /// channels' `receive` is an error.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 2)")?;
    /// let queue = mch.make_receive_queue(Some("end".into()))?;
    /// mch.send_each(&5).await?;
    /// let mut got = Vec::new();
    /// for _ in 0..4 {
    ///     got.push(queue.get().await.1);
    /// }
    /// got.sort_by_key(|v| v.describe());
    /// assert_eq!(got, vec![10.into(), 10.into(), "end".into(), "end".into()]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn make_receive_queue(&self, endmarker: Option<Value>) -> Result<ReceiveQueue> {
        self.inner
            .queue
            .get_or_init(|| {
                let q = ReceiveQueue::default();
                for ch in &self.inner.channels {
                    q.attach(ch, endmarker.clone())?;
                }
                Ok(q)
            })
            .clone()
    }

    /// Waits until every channel has closed; returns the first remote
    /// error (in channel order) if any failed. A timeout bounds the whole
    /// wait.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(1)")?;
    /// mch.waitclose(Some(std::time::Duration::from_secs(10))).await?;
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn waitclose(&self, timeout: Option<Duration>) -> Result<()> {
        let all =
            futures::future::join_all(self.inner.channels.iter().map(|ch| ch.waitclose(None)));
        let results =
            with_timeout("all channels to close", timeout, async { Ok(all.await) }).await?;
        results.into_iter().collect()
    }
}

impl std::ops::Index<usize> for MultiChannel {
    type Output = Channel;
    fn index(&self, index: usize) -> &Channel {
        &self.inner.channels[index]
    }
}

impl<'a> IntoIterator for &'a MultiChannel {
    type Item = &'a Channel;
    type IntoIter = std::slice::Iter<'a, Channel>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
