//! Where a task's result lands: a slot the pool fills once and the task's
//! future empties. Filling it wakes the future's own waker, or, when the
//! future is gathered with others ([`Batch`]), counts down the gathering,
//! which wakes once for all of them: a result costs no wake-up of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::task::AtomicWaker;
use parking_lot::Mutex;
use remex_core::{Error, Result, Value};

/// What a job's result is.
pub(crate) type Outcome = Result<TaskResult<Value>>;

#[derive(Default)]
struct Inner {
    result: Option<Outcome>,
    /// The result was set (it may have been taken since).
    filled: bool,
    waker: Option<Waker>,
    /// The gathering this slot counts in, and its place there.
    batch: Option<(Arc<Batch>, usize)>,
}

/// A task's result on its way to its future.
#[derive(Default)]
pub(crate) struct Slot(Mutex<Inner>);

/// The pool's end of a slot: fills it once. Dropped unfilled (the job was
/// dropped with its group), it fills the slot with that error.
pub(crate) struct Filler(Option<Arc<Slot>>);

/// A new slot and its filler.
pub(crate) fn slot() -> (Filler, Arc<Slot>) {
    let s = Arc::new(Slot::default());
    (Filler(Some(s.clone())), s)
}

impl Filler {
    pub(crate) fn fill(mut self, r: Outcome) {
        if let Some(s) = self.0.take() {
            s.fill(r);
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.fill(Err(gone("the task was dropped: its group went away")));
        }
    }
}

impl Slot {
    fn fill(&self, r: Outcome) {
        let ok = r.is_ok();
        let (waker, batch) = {
            let mut i = self.0.lock();
            i.result = Some(r);
            i.filled = true;
            (i.waker.take(), i.batch.clone())
        };
        match batch {
            Some((b, index)) => b.member_done(index, ok),
            None => {
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }

    /// The result once it is there (taken: a second call after `Ready`
    /// has nothing left to give and says so).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut i = self.0.lock();
        if let Some(r) = i.result.take() {
            return Poll::Ready(r);
        }
        if i.filled {
            return Poll::Ready(Err(gone("the task's result was already taken")));
        }
        if !i.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            i.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Takes the result of a member of a batch that reported ready.
    pub(crate) fn take(&self) -> Outcome {
        self.0
            .lock()
            .result
            .take()
            .unwrap_or_else(|| Err(gone("the task's result was already taken")))
    }

    /// Counts this slot as member `index` of `batch` (at once if filled).
    pub(crate) fn join(&self, batch: &Arc<Batch>, index: usize) {
        let mut i = self.0.lock();
        if i.filled {
            let ok = i.result.as_ref().is_some_and(|r| r.is_ok());
            drop(i);
            batch.member_done(index, ok);
        } else {
            i.batch = Some((batch.clone(), index));
        }
    }
}

/// A gathering of many slots that wakes once: when the last is filled,
/// or (`raise`) when one fails.
pub(crate) struct Batch {
    left: AtomicUsize,
    /// The first failed member's index plus one (0: none), under `raise`.
    failed: AtomicUsize,
    raise: bool,
    waker: AtomicWaker,
}

impl Batch {
    pub(crate) fn new(members: usize, raise: bool) -> Arc<Batch> {
        Arc::new(Batch {
            left: AtomicUsize::new(members),
            failed: AtomicUsize::new(0),
            raise,
            waker: AtomicWaker::new(),
        })
    }

    fn member_done(&self, index: usize, ok: bool) {
        if !ok
            && self.raise
            && self
                .failed
                .compare_exchange(0, index + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.waker.wake();
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
    }

    /// The first failed member (under `raise`).
    pub(crate) fn failed(&self) -> Option<usize> {
        self.failed.load(Ordering::Acquire).checked_sub(1)
    }

    /// Ready when every member is filled, or one failed under `raise`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = || self.left.load(Ordering::Acquire) == 0 || self.failed().is_some();
        if ready() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The error of a task that has no worker to run on.
pub(crate) fn gone(reason: &str) -> Error {
    Error::NoWorker {
        reason: reason.into(),
    }
}

/// A finished task with where it ran ([`TaskFuture::with_details`](crate::TaskFuture::with_details)).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["popen//id=w1"]).await?;
/// let r: remex::TaskResult<String> = group.submit("echo", "x")?.with_details().await?;
/// assert_eq!((r.value.as_str(), r.gateway.as_str(), r.attempts), ("x", "w1", 1));
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult<R> {
    /// What the task returned.
    pub value: R,
    /// The id of the gateway whose worker ran it to the end.
    pub gateway: String,
    /// Attempts it took: 1, or more when workers died under it.
    pub attempts: u32,
}
