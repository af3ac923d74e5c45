//! Waiting on a condition signalled through an `event_listener::Event`,
//! from async code and from threads, with an optional timeout.

use std::time::{Duration, Instant};

use event_listener::{EventListener, Listener};

/// Waits until `check` gives a value, re-checking whenever `listen`'s event
/// fires. `None` when `timeout` passed first.
pub(crate) async fn until<T>(
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
pub(crate) fn until_blocking<T>(
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
