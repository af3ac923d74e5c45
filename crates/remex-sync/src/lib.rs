//! Primitives shared by OS threads and async tasks, and the service
//! lifecycle.
//!
//! remex is called from plain threads (the blocking API, scripts on a
//! worker, callbacks) and from tokio tasks. Every primitive here works the
//! same from both: each waiting operation comes as an `async fn` for tokio
//! code and as a `*_blocking` method with a timeout for threads. Timeouts
//! are errors distinct from "closed" or "gone", and nothing pending on a
//! thread or runtime that dies waits forever: it fails with
//! [`Error::Gone`].
//!
//! | type | what for | built on |
//! |---|---|---|
//! | [`Event`] | a flag to wait for | `event-listener` |
//! | [`Queue`] | bounded or unbounded FIFO | `flume` |
//! | [`AsyncResult`] | a value or an error, set once, awaited by many | `event-listener`, `parking_lot` |
//! | [`Launcher`] | run a closure on a given runtime | `tokio` |
//! | [`Thread`] | a thread with its own runtime, stop and result | `tokio`, `tokio-util` |
//! | [`ThreadResource`] | one value per OS thread | `parking_lot`, `std::thread_local!` |
//! | [`Trigger`] | coalescing "run this on that runtime" | `tokio` |
//! | [`Lock`], [`RLock`] | locks with timeouts from both sides | `event-listener` |
//! | [`Lifecycle`], [`Service`] | Init/On/Off/Fault and listener→consumer | all of the above |
//!
//! ```
//! use std::time::Duration;
//! use remex::sync::{Event, Thread};
//!
//! let ready = Event::new();
//! let t = Thread::new("worker");
//! t.start(true, Some(Duration::from_secs(5))).unwrap();
//! let r = ready.clone();
//! // Runs on the thread's own runtime; the caller waits without a runtime.
//! let n = t.apply(move || { r.set(); 6 * 7 }).unwrap();
//! assert_eq!(n, 42);
//! assert!(ready.wait_blocking(Some(Duration::ZERO)));
//! t.stop(true, Some(Duration::from_secs(5))).unwrap();
//! ```

#![forbid(unsafe_code)]

mod error;
mod event;
mod launcher;
mod lifecycle;
mod lock;
mod queue;
mod resource;
mod result;
mod service;
mod thread;
mod trigger;
pub mod wait;

pub use error::{Error, Result};
pub use event::Event;
pub use launcher::Launcher;
pub use lifecycle::{Lifecycle, LifecycleState};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use queue::Queue;
pub use resource::ThreadResource;
pub use result::{AsyncResult, Promise};
pub use service::{Consumer, Failure, Feed, RunMode, Service, ServiceBuilder};
pub use thread::{StopToken, Thread};
pub use trigger::Trigger;
