//! A worker's `tracing` events to its controller as structured records
//! (wire kind 12: level, target, message, fields), each with the call it
//! happened in: the controller re-emits them under the span that made the
//! call (`remex_core::transport::emit_worker_record`). Plain stderr (a
//! task's child processes, a script's `print`) keeps flowing as lines.
//!
//! An event inside a call (a script, a task, a lane's request) goes to
//! the session that made the call, on any worker, a listener's sessions
//! included; an event outside any call goes to the controller of a worker
//! that serves one (stdio and dial-back workers), and stays a line of a
//! listener's own log. The level is each controller's (sent in its
//! setup): `RUST_LOG=info` there brings the workers' info events.
//! Bounds: at most [`RATE`] records a second (the rest are dropped and
//! counted, and the count is sent), a message or field value of at most
//! [`MAX_TEXT`] bytes, at most [`MAX_FIELDS`] fields.

use std::cell::{Cell, RefCell};
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

/// The most detailed level any session wants (1 ERROR .. 5 TRACE; 0: no
/// records): the filter's quick look; each record is then checked
/// against its own session's level.
static LEVEL: AtomicU8 = AtomicU8::new(0);
/// The process's one session (stdio, dial-back), for events outside any
/// call, with its level.
static CONN: Mutex<Option<(Connection, u8)>> = Mutex::new(None);
/// The current second's count and the records dropped in it.
static WINDOW: Mutex<Option<Window>> = Mutex::new(None);

struct Window {
    start: Instant,
    sent: u32,
    dropped: u64,
}

/// A call this thread runs: its session, the level that session wants,
/// its channel and, in a task lane, the request.
#[derive(Clone)]
pub(crate) struct Call {
    conn: Connection,
    level: u8,
    channel: u32,
    request: Option<i64>,
}

thread_local! {
    /// The call this thread runs.
    static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
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

/// Events outside any call go to `conn` (the process's one session), at
/// most as detailed as `level`.
pub(crate) fn attach(conn: Connection, level: Option<u8>) {
    let level = level.unwrap_or(0);
    *CONN.lock() = Some((conn, level));
    LEVEL.fetch_max(level, Relaxed);
}

/// No more records outside calls (the session ended).
pub(crate) fn detach() {
    *CONN.lock() = None;
}

/// A session wants records of its calls' events up to `level`.
pub(crate) fn note_level(level: Option<u8>) {
    LEVEL.fetch_max(level.unwrap_or(0), Relaxed);
}

/// Where an event at `level` on this thread goes, if anywhere, seen
/// through `f`: the current call's session (its connection, the call's
/// channel and request), else the process's one session (channel 0).
fn route<T>(level: u8, f: impl FnOnce(&Connection, u32, Option<i64>) -> T) -> Option<T> {
    CALL.with(|c| match c.borrow().as_ref() {
        Some(call) => (level <= call.level).then(|| f(&call.conn, call.channel, call.request)),
        None => CONN
            .lock()
            .as_ref()
            .filter(|(_, l)| level <= *l)
            .map(|(conn, _)| f(conn, 0, None)),
    })
}

/// Whether an event may become a record (the filter's quick look): at
/// a level some session wants, and not the engine's own (remex-core's
/// events stay in the worker's stderr log: sending them would make more
/// of them).
pub(crate) fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    number(meta.level()) <= LEVEL.load(Relaxed) && !meta.target().starts_with("remex_core")
}

/// Whether an event becomes a record here and now (then it does not go
/// to stderr as well).
pub(crate) fn sent(meta: &tracing::Metadata<'_>) -> bool {
    wanted(meta) && route(number(meta.level()), |_, _, _| ()).is_some()
}

/// While the guard lives, this thread's events belong to the call on
/// `channel` of session `conn`, which wants them up to `level`.
pub(crate) fn enter_call(conn: &Connection, level: Option<u8>, channel: u32) -> CallGuard {
    let call = Call {
        conn: conn.clone(),
        level: level.unwrap_or(0),
        channel,
        request: None,
    };
    CallGuard(CALL.with(|c| c.replace(Some(call))))
}

/// The call this thread runs, for threads it starts ([`resume`]).
pub(crate) fn current() -> Option<Call> {
    CALL.with(|c| c.borrow().clone())
}

/// While the guard lives, this thread's events belong to `call` (what
/// [`current`] gave on the thread that started this one).
pub(crate) fn resume(call: Option<Call>) -> CallGuard {
    CallGuard(CALL.with(|c| c.replace(call)))
}

/// While the guard lives, this thread's events belong to request
/// `request` of the current call (a task lane's).
pub(crate) fn enter_request(request: i64) -> CallGuard {
    CallGuard(CALL.with(|c| {
        let mut c = c.borrow_mut();
        let inner = c.clone().map(|call| Call {
            request: Some(request),
            ..call
        });
        std::mem::replace(&mut *c, inner)
    }))
}

/// Restores the call before it on drop.
pub(crate) struct CallGuard(Option<Call>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let before = self.0.take();
        CALL.with(|c| *c.borrow_mut() = before);
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

fn send(conn: &Connection, channel: u32, record: LogRecord) {
    SENDING.with(|s| s.set(true));
    let _ = conn.send_log(channel, record);
    SENDING.with(|s| s.set(false));
}

/// The layer that turns events into records.
pub(crate) struct WireLayer;

impl<S: Subscriber> Layer<S> for WireLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if SENDING.with(Cell::get) {
            return;
        }
        let meta = event.metadata();
        let to = |conn: &Connection, channel, request| (conn.clone(), channel, request);
        let Some((conn, channel, request)) = route(number(meta.level()), to) else {
            return;
        };
        let (ok, dropped) = admit();
        if dropped > 0 {
            send(
                &conn,
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
        let mut f = Fields::default();
        event.record(&mut f);
        send(
            &conn,
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
    fn a_request_guard_restores_the_call_before_it() {
        assert!(CALL.with(|c| c.borrow().is_none()));
        {
            // No call: a request has nothing to belong to.
            let _r = enter_request(9);
            assert!(CALL.with(|c| c.borrow().is_none()));
        }
    }
}
