//! Busy-polling: how long a waiting thread polls the input before it
//! sleeps, and each channel's record of its recent waits (used by the
//! direct reader, `conn::direct`).

// The portable build (conn::fallback) keeps the records but never polls.
#![cfg_attr(
    not(all(target_os = "linux", not(feature = "portable"))),
    allow(dead_code)
)]

use std::sync::atomic::Ordering;

/// How long a waiting thread polls the input without sleeping, when the
/// input it waited for last time came sooner than that: the peer of a
/// request-reply exchange then answers before this thread would have fallen
/// asleep, and no wake-up is paid on either side (as Linux's `SO_BUSY_POLL`
/// does for sockets). A thread whose input is slower does not spin.
///
/// ```
/// // How long a waiting thread polls before it sleeps.
/// assert!(remex::core::conn::SPIN <= std::time::Duration::from_millis(1));
/// ```
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// The environment variable that sets the busy-poll bound in microseconds
/// for connections started afterwards (0 turns busy-polling off; at most
/// 1000). A worker reads it at start, so `env:REMEX_BUSY_POLL_US=0` in a
/// spec turns it off on that worker.
///
/// ```
/// // REMEX_BUSY_POLL_US=0 turns polling off; a spec passes it to a worker:
/// let spec = format!("popen//env:{}=0", remex::core::conn::BUSY_POLL_ENV);
/// assert!(remex::Spec::parse(&spec).is_ok());
/// ```
pub const BUSY_POLL_ENV: &str = "REMEX_BUSY_POLL_US";

/// The busy-poll bound: [`BUSY_POLL_ENV`] if set to a number, else
/// [`SPIN`].
pub(crate) fn busy_poll_bound() -> std::time::Duration {
    let Some(v) = std::env::var_os(BUSY_POLL_ENV) else {
        return SPIN;
    };
    match v.to_str().and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(us) => std::time::Duration::from_micros(us.min(1000)),
        None => {
            tracing::warn!(
                "{BUSY_POLL_ENV}={v:?} is not a number of microseconds; using {} us",
                SPIN.as_micros()
            );
            SPIN
        }
    }
}

/// A channel's record of its recent waits for items: whether the next wait
/// polls the input first (see [`SPIN`]).
///
/// After a short wait, yes. After a slow one, one wait in [`PROBE_ODDS`],
/// at random: not polling can itself make a wait slow (the peer's answer
/// then costs a wake-up), so a slow spell is tried again now and then, and
/// an exchange that became slow by accident recovers once both sides poll
/// at the same time. (At random: with a fixed period, two sides out of
/// phase would never meet.)
#[derive(Default)]
pub(crate) struct Quick(std::sync::atomic::AtomicBool);

/// See [`Quick`].
const PROBE_ODDS: u32 = 4;

/// A cheap per-thread pseudo-random number (xorshift).
fn random() -> u32 {
    thread_local! {
        static STATE: std::cell::Cell<u32> = std::cell::Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.subsec_nanos());
            t | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        x
    })
}

impl Quick {
    /// Whether this wait polls first.
    pub(crate) fn spin_now(&self) -> bool {
        !self.0.load(Ordering::Relaxed) || random() % PROBE_ODDS == 0
    }

    /// Records whether the input came within the polling bound.
    pub(crate) fn record(&self, quick: bool) {
        self.0.store(!quick, Ordering::Relaxed);
    }
}
