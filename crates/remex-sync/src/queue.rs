//! `Queue`: a FIFO shared by threads and async tasks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// A FIFO queue, bounded or unbounded, used the same from threads and async
/// tasks. Clones share the queue. `close` stops new puts; gets then drain
/// what is queued and report [`Error::Closed`]. A get that times out
/// reports [`Error::Timeout`] and leaves the queue as it was.
///
/// Built on `flume`, whose channels have both blocking and async ends; this
/// type adds explicit closing by any holder.
///
/// ```
/// use std::time::Duration;
/// let q = remex::sync::Queue::unbounded();
/// let p = q.clone();
/// std::thread::spawn(move || p.put_blocking(7, None).unwrap());
/// assert_eq!(q.get_blocking(Some(Duration::from_secs(5))).unwrap(), 7);
/// assert!(q.get_blocking(Some(Duration::from_millis(1))).unwrap_err().is_timeout());
/// q.close();
/// assert!(matches!(q.get_blocking(None), Err(remex::sync::Error::Closed { .. })));
/// ```
pub struct Queue<T> {
    tx: Arc<Mutex<Option<flume::Sender<T>>>>,
    rx: flume::Receiver<T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.rx.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

const CLOSED: Error = Error::Closed { what: "the queue" };

impl<T> Queue<T> {
    /// A queue without a bound: `put` never waits.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// for i in 0..10_000 { q.put_blocking(i, None).unwrap(); } // never waits
    /// assert_eq!(q.len(), 10_000);
    /// ```
    pub fn unbounded() -> Queue<T> {
        Queue::from_parts(flume::unbounded())
    }

    /// A queue holding at most `capacity` items: `put` waits for room.
    /// A capacity of 0 is a rendezvous: `put` waits for a `get`.
    ///
    /// ```
    /// let q = remex::sync::Queue::bounded(1);
    /// q.try_put(1).unwrap();
    /// assert_eq!(q.try_put(2), Err(2)); // full
    /// ```
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue::from_parts(flume::bounded(capacity))
    }

    fn from_parts((tx, rx): (flume::Sender<T>, flume::Receiver<T>)) -> Queue<T> {
        Queue {
            tx: Arc::new(Mutex::new(Some(tx))),
            rx,
        }
    }

    fn sender(&self) -> Result<flume::Sender<T>> {
        self.tx.lock().clone().ok_or(CLOSED)
    }

    /// Adds an item, waiting for room in a bounded queue.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let q = remex::sync::Queue::bounded(1);
    /// q.put("a").await.unwrap();
    /// assert_eq!(q.get(None).await.unwrap(), "a");
    /// # }
    /// ```
    pub async fn put(&self, item: T) -> Result<()> {
        self.sender()?.send_async(item).await.map_err(|_| CLOSED)
    }

    /// [`Queue::put`] for threads, waiting at most `timeout` for room.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = remex::sync::Queue::bounded(1);
    /// q.put_blocking("a", None).unwrap();
    /// assert!(q.put_blocking("b", Some(Duration::from_millis(1))).unwrap_err().is_timeout());
    /// ```
    pub fn put_blocking(&self, item: T, timeout: Option<Duration>) -> Result<()> {
        let tx = self.sender()?;
        match timeout {
            None => tx.send(item).map_err(|_| CLOSED),
            Some(t) => tx.send_timeout(item, t).map_err(|e| match e {
                flume::SendTimeoutError::Timeout(_) => Error::Timeout {
                    what: "room in the queue",
                    after: t,
                },
                flume::SendTimeoutError::Disconnected(_) => CLOSED,
            }),
        }
    }

    /// Adds an item if there is room now; gives it back if not.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// assert_eq!(q.try_put(5), Ok(()));
    /// q.close();
    /// assert_eq!(q.try_put(6), Err(6)); // closed: the item comes back
    /// ```
    pub fn try_put(&self, item: T) -> std::result::Result<(), T> {
        match self.tx.lock().as_ref() {
            Some(tx) => tx.try_send(item).map_err(|e| e.into_inner()),
            None => Err(item),
        }
    }

    /// Takes the oldest item, waiting at most `timeout` (`None`: forever)
    /// for one.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let q = remex::sync::Queue::unbounded();
    /// let p = q.clone();
    /// std::thread::spawn(move || p.put_blocking(1, None));
    /// assert_eq!(q.get(Some(std::time::Duration::from_secs(5))).await.unwrap(), 1);
    /// # }
    /// ```
    pub async fn get(&self, timeout: Option<Duration>) -> Result<T> {
        let recv = self.rx.recv_async();
        let got = match timeout {
            None => recv.await,
            Some(t) => tokio::time::timeout(t, recv)
                .await
                .map_err(|_| Error::Timeout {
                    what: "an item in the queue",
                    after: t,
                })?,
        };
        got.map_err(|_| CLOSED)
    }

    /// [`Queue::get`] for threads.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// q.put_blocking('x', None).unwrap();
    /// assert_eq!(q.get_blocking(None).unwrap(), 'x');
    /// ```
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<T> {
        match timeout {
            None => self.rx.recv().map_err(|_| CLOSED),
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                flume::RecvTimeoutError::Timeout => Error::Timeout {
                    what: "an item in the queue",
                    after: t,
                },
                flume::RecvTimeoutError::Disconnected => CLOSED,
            }),
        }
    }

    /// Takes the oldest item if there is one.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// assert_eq!(q.try_get(), None::<u8>);
    /// q.put_blocking(3, None).unwrap();
    /// assert_eq!(q.try_get(), Some(3));
    /// ```
    pub fn try_get(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Stops new puts. Queued items can still be taken; after them, gets
    /// report [`Error::Closed`]. A put already waiting for room completes
    /// when room comes.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// q.put_blocking(1, None).unwrap();
    /// q.close();
    /// assert_eq!(q.get_blocking(None).unwrap(), 1); // queued items still come
    /// assert!(q.get_blocking(None).is_err());
    /// ```
    pub fn close(&self) {
        self.tx.lock().take();
    }

    /// Whether `close` was called.
    ///
    /// ```
    /// let q: remex::sync::Queue<()> = remex::sync::Queue::unbounded();
    /// let other = q.clone();
    /// q.close();
    /// assert!(other.is_closed()); // for every holder
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.lock().is_none()
    }

    /// Items queued now.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// q.put_blocking(1, None).unwrap();
    /// q.put_blocking(2, None).unwrap();
    /// assert_eq!(q.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no item is queued now.
    ///
    /// ```
    /// let q = remex::sync::Queue::unbounded();
    /// assert!(q.is_empty());
    /// q.put_blocking(1, None).unwrap();
    /// assert!(!q.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}
