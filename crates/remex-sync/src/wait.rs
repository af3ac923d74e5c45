//! Waiting on a condition signalled through an `event_listener::Event`,
//! from async code and from threads, with an optional timeout: the one
//! "check, listen, check again, wait" loop of remex (its primitives and
//! the engine's connection use it).

use std::time::{Duration, Instant};

use event_listener::{EventListener, Listener};

/// Waits until `check` gives a value, re-checking whenever `listen`'s event
/// fires. `None` when `timeout` passed first. The listener is taken
/// between two checks, so a notification between them is never missed.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// let (flag, event) = (Arc::new(AtomicBool::new(false)), Arc::new(event_listener::Event::new()));
/// let (f, e) = (flag.clone(), event.clone());
/// tokio::spawn(async move {
///     f.store(true, Ordering::Release);
///     e.notify(usize::MAX);
/// });
/// let got = remex::sync::wait::until(
///     Some(Duration::from_secs(10)),
///     || flag.load(Ordering::Acquire).then_some("set"),
///     || event.listen(),
/// )
/// .await;
/// assert_eq!(got, Some("set"));
/// # }
/// ```
pub async fn until<T>(
    timeout: Option<Duration>,
    mut check: impl FnMut() -> Option<T>,
    listen: impl Fn() -> EventListener,
) -> Option<T> {
    let wait = async {
        loop {
            if let Some(v) = check() {
                return v;
            }
            let l = listen();
            if let Some(v) = check() {
                return v;
            }
            l.await;
        }
    };
    match timeout {
        None => Some(wait.await),
        Some(t) => tokio::time::timeout(t, wait).await.ok(),
    }
}

/// [`until`] for threads.
///
/// ```
/// let event = event_listener::Event::new();
/// let timeout = Some(std::time::Duration::from_millis(10));
/// let got: Option<()> = remex::sync::wait::until_blocking(timeout, || None, || event.listen());
/// assert_eq!(got, None, "nothing came within the timeout");
/// ```
pub fn until_blocking<T>(
    timeout: Option<Duration>,
    mut check: impl FnMut() -> Option<T>,
    listen: impl Fn() -> EventListener,
) -> Option<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        let l = listen();
        if let Some(v) = check() {
            return Some(v);
        }
        match deadline {
            None => l.wait(),
            Some(d) => {
                if l.wait_deadline(d).is_none() && Instant::now() >= d {
                    return check();
                }
            }
        }
    }
}
