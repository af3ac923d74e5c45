//! `ThreadResource`: one value per OS thread, created on first use, dropped
//! when its thread ends, visible from every thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::thread::ThreadId;

use parking_lot::Mutex;

type Init<T> = Box<dyn Fn() -> T + Send + Sync>;

/// One resource per OS thread: [`ThreadResource::get`] returns the calling
/// thread's, creating it on first use; it is released when that thread
/// ends or calls [`ThreadResource::pop`]; [`ThreadResource::all`] lists the
/// live ones from any thread.
///
/// Per OS thread, not per async task: a task on a multi-threaded runtime may
/// see another thread's resource after an `.await`.
///
/// Built on a `parking_lot` map keyed by `ThreadId` and a
/// `std::thread_local!` guard that removes the entry when its thread ends.
/// (The `thread_local` crate keeps a dead thread's value until the whole
/// object is dropped and has no per-thread removal, which this type needs.)
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use remex::sync::ThreadResource;
///
/// static MADE: AtomicUsize = AtomicUsize::new(0);
/// let res = ThreadResource::new(|| MADE.fetch_add(1, Ordering::SeqCst));
/// let mine = res.get();
/// assert_eq!(*res.get(), *mine); // cached for this thread
/// let r = res.clone();
/// let theirs = std::thread::spawn(move || *r.get()).join().unwrap();
/// assert_ne!(theirs, *mine);
/// // The other thread ended, and its resource with it.
/// assert_eq!(res.all().len(), 1);
/// ```
pub struct ThreadResource<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for ThreadResource<T> {
    fn clone(&self) -> Self {
        ThreadResource {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    init: Init<T>,
    map: Mutex<HashMap<ThreadId, Arc<T>>>,
}

impl<T> fmt::Debug for ThreadResource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadResource({} live)", self.inner.map.lock().len())
    }
}

/// Something to forget a thread's entry in when the thread ends.
trait Forget {
    fn forget(&self, thread: ThreadId);
}

impl<T> Forget for Inner<T> {
    fn forget(&self, thread: ThreadId) {
        // Dropped outside the lock: the resource's drop may use this type.
        let gone = self.map.lock().remove(&thread);
        drop(gone);
    }
}

struct ExitHooks(RefCell<Vec<Weak<dyn Forget + Send + Sync>>>);

impl Drop for ExitHooks {
    fn drop(&mut self) {
        let id = std::thread::current().id();
        for hook in self.0.borrow_mut().drain(..) {
            if let Some(h) = hook.upgrade() {
                h.forget(id);
            }
        }
    }
}

thread_local! {
    static EXIT_HOOKS: ExitHooks = const { ExitHooks(RefCell::new(Vec::new())) };
}

impl<T: Send + Sync + 'static> ThreadResource<T> {
    /// A resource made by `init` for each thread that asks for it.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| std::thread::current().id());
    /// assert_eq!(*res.get(), std::thread::current().id());
    /// ```
    pub fn new(init: impl Fn() -> T + Send + Sync + 'static) -> ThreadResource<T> {
        ThreadResource {
            inner: Arc::new(Inner {
                init: Box::new(init),
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The calling thread's resource, made on first use.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| vec![0u8; 16]);
    /// let a = res.get();
    /// let b = res.get();
    /// assert!(std::sync::Arc::ptr_eq(&a, &b)); // one per thread
    /// ```
    pub fn get(&self) -> Arc<T> {
        let id = std::thread::current().id();
        if let Some(r) = self.inner.map.lock().get(&id) {
            return r.clone();
        }
        // Made outside the lock: `init` may take its time or use this type.
        let made = Arc::new((self.inner.init)());
        let r = self.inner.map.lock().entry(id).or_insert(made).clone();
        let hook: Weak<dyn Forget + Send + Sync> = Arc::downgrade(&self.inner) as _;
        // During the thread's own teardown the hook list may be gone; the
        // entry then stays until `pop` or the resource's drop.
        let _ = EXIT_HOOKS.try_with(|h| h.0.borrow_mut().push(hook));
        r
    }

    /// Removes and returns the calling thread's resource, if it has one.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| 1);
    /// assert!(res.pop().is_none());
    /// res.get();
    /// assert_eq!(res.pop().map(|v| *v), Some(1));
    /// assert!(res.is_empty());
    /// ```
    pub fn pop(&self) -> Option<Arc<T>> {
        self.inner.map.lock().remove(&std::thread::current().id())
    }

    /// The live resources of all threads.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| 7);
    /// res.get();
    /// assert_eq!(res.all().iter().map(|v| **v).collect::<Vec<_>>(), vec![7]);
    /// ```
    pub fn all(&self) -> Vec<Arc<T>> {
        self.inner.map.lock().values().cloned().collect()
    }

    /// How many threads hold a resource.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| ());
    /// res.get();
    /// let r = res.clone();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let t = std::thread::spawn(move || { r.get(); rx.recv().unwrap(); });
    /// while res.len() < 2 { std::thread::yield_now(); }
    /// tx.send(()).unwrap();
    /// t.join().unwrap();
    /// assert_eq!(res.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.map.lock().len()
    }

    /// Whether no thread holds a resource.
    ///
    /// ```
    /// let res = remex::sync::ThreadResource::new(|| 0);
    /// assert!(res.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.map.lock().is_empty()
    }
}
