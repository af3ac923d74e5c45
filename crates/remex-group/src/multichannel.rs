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
    pub fn new(channels: Vec<Channel>) -> Self {
        MultiChannel {
            inner: Arc::new(Inner {
                channels,
                queue: OnceLock::new(),
            }),
        }
    }

    /// How many channels.
    pub fn len(&self) -> usize {
        self.inner.channels.len()
    }

    /// Whether there is no channel.
    pub fn is_empty(&self) -> bool {
        self.inner.channels.is_empty()
    }

    /// The channel at `index`.
    pub fn get(&self, index: usize) -> Option<&Channel> {
        self.inner.channels.get(index)
    }

    /// Whether `ch` is one of the channels.
    pub fn contains(&self, ch: &Channel) -> bool {
        self.inner.channels.contains(ch)
    }

    /// The channels, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Channel> {
        self.inner.channels.iter()
    }

    /// Sends `value` on every channel.
    pub async fn send_each<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        for ch in &self.inner.channels {
            ch.send(value).await?;
        }
        Ok(())
    }

    /// Receives one item from every channel, in channel order.
    pub async fn receive_each<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
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
