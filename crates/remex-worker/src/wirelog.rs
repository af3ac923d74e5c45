//! A worker's `tracing` events to its controller as structured records
//! (wire kind 12: level, target, message, fields), each with the call it
//! happened in: the controller re-emits them under the span that made the
//! call (`remex_core::transport::emit_worker_record`). Plain stderr (a
//! task's child processes, a script's `print`) keeps flowing as lines.
//!
//! Only a worker that serves one controller sends records (stdio and
//! dial-back workers); a listener's sessions share one process, so its
//! events stay lines in its log. The level is the controller's (sent in
//! its setup): `RUST_LOG=info` there brings the workers' info events.
//! Bounds: at most [`RATE`] records a second (the rest are dropped and
//! counted, and the count is sent), a message or field value of at most
//! [`MAX_TEXT`] bytes, at most [`MAX_FIELDS`] fields.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::Mutex;
use remex_core::conn::Connection;
use remex_core::wire::LogRecord;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The most records a worker sends in one second.
pub(crate) const RATE: u32 = 1_000;
/// The longest message or field value sent, in bytes (cut beyond).
pub(crate) const MAX_TEXT: usize = 4 * 1024;
/// The most fields one record carries.
pub(crate) const MAX_FIELDS: usize = 32;

/// The most detailed level the controller wants (1 ERROR .. 5 TRACE; 0:
/// no records: no session, or the controller logs nothing).
static LEVEL: AtomicU8 = AtomicU8::new(0);
/// The session's connection, while one is attached.
static CONN: Mutex<Option<Connection>> = Mutex::new(None);
/// The current second's count and the records dropped in it.
static WINDOW: Mutex<Option<Window>> = Mutex::new(None);

struct Window {
    start: Instant,
    sent: u32,
    dropped: u64,
}

thread_local! {
    /// The call this thread runs: its channel and, in a task lane, the
    /// request.
    static CALL: Cell<(u32, Option<i64>)> = const { Cell::new((0, None)) };
    /// This thread is sending a record (an event raised while sending is
    /// not sent again).
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

fn number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Records go to `conn`, at most as detailed as `level`.
pub(crate) fn attach(conn: Connection, level: Option<u8>) {
    *CONN.lock() = Some(conn);
    LEVEL.store(level.unwrap_or(0), Relaxed);
}

/// No more records (the session ended).
pub(crate) fn detach() {
    LEVEL.store(0, Relaxed);
    *CONN.lock() = None;
}

/// Whether an event becomes a record: at a level the controller wants,
/// and not the engine's own (remex-core's events stay in the worker's
/// stderr log: sending them would make more of them).
pub(crate) fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    number(meta.level()) <= LEVEL.load(Relaxed) && !meta.target().starts_with("remex_core")
}

/// While the guard lives, this thread's events belong to the call on
/// `channel` (request `request` of a task lane).
pub(crate) fn enter_call(channel: u32, request: Option<i64>) -> CallGuard {
    CallGuard(CALL.with(|c| c.replace((channel, request))))
}

/// Restores the call before it on drop.
pub(crate) struct CallGuard((u32, Option<i64>));

impl Drop for CallGuard {
    fn drop(&mut self) {
        CALL.with(|c| c.set(self.0));
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" [cut]");
    }
    s
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = cut(value.to_string());
        } else if self.fields.len() < MAX_FIELDS {
            self.fields
                .push((field.name().to_string(), cut(value.to_string())));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = cut(s);
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.push((field.name().to_string(), cut(s)));
        }
    }
}

/// Whether one more record fits in this second; the records dropped in
/// the second before, once, when a new one starts.
fn admit() -> (bool, u64) {
    let mut w = WINDOW.lock();
    let now = Instant::now();
    let win = w.get_or_insert_with(|| Window {
        start: now,
        sent: 0,
        dropped: 0,
    });
    let mut dropped_before = 0;
    if now.duration_since(win.start).as_secs() >= 1 {
        dropped_before = win.dropped;
        *win = Window {
            start: now,
            sent: 0,
            dropped: 0,
        };
    }
    if win.sent < RATE {
        win.sent += 1;
        (true, dropped_before)
    } else {
        win.dropped += 1;
        (false, dropped_before)
    }
}

fn send(channel: u32, record: LogRecord) {
    let conn = CONN.lock().clone();
    if let Some(conn) = conn {
        SENDING.with(|s| s.set(true));
        let _ = conn.send_log(channel, record);
        SENDING.with(|s| s.set(false));
    }
}

/// The layer that turns events into records.
pub(crate) struct WireLayer;

impl<S: Subscriber> Layer<S> for WireLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if SENDING.with(Cell::get) {
            return;
        }
        let (ok, dropped) = admit();
        if dropped > 0 {
            send(
                0,
                LogRecord {
                    level: 2,
                    target: "remex_worker".into(),
                    message: format!("{dropped} log records dropped (over {RATE} a second)"),
                    ..Default::default()
                },
            );
        }
        if !ok {
            return;
        }
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let (channel, request) = CALL.with(Cell::get);
        send(
            channel,
            LogRecord {
                level: number(meta.level()),
                target: meta.target().to_string(),
                message: f.message,
                fields: f.fields,
                request,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let s = cut("é".repeat(MAX_TEXT));
        assert!(s.ends_with(" [cut]"));
        assert!(s.len() <= MAX_TEXT + 6);
        assert_eq!(cut("short".into()), "short");
    }

    #[test]
    fn a_call_guard_restores_the_call_before_it() {
        let _outer = enter_call(5, None);
        {
            let _inner = enter_call(5, Some(9));
            assert_eq!(CALL.with(Cell::get), (5, Some(9)));
        }
        assert_eq!(CALL.with(Cell::get), (5, None));
    }
}
