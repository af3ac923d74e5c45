//! A task's writes to stdout and stderr never corrupt the protocol; the
//! worker's stderr reaches the controller tagged with the gateway id.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A forwarded line as a subscriber sees it.
#[derive(Debug, Clone)]
struct Line {
    gateway: String,
    message: String,
    level: tracing::Level,
    worker_target: String,
    /// The record's fields, as `k=v` text.
    fields: String,
    /// The names of the spans it was emitted in, innermost first.
    scope: Vec<String>,
}

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<Line>>,
    added: Condvar,
}

struct Capture(Arc<Lines>);

#[derive(Default)]
struct Fields {
    gateway: String,
    message: String,
    worker_target: String,
    fields: String,
}

/// A `%value` field reaches `record_debug` as its Display: shown as is.
struct DebugAsDisplay<'a>(&'a dyn std::fmt::Debug);

impl std::fmt::Display for DebugAsDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "gateway" => self.gateway = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            "worker_target" => self.worker_target = format!("{value:?}"),
            "fields" => self.fields = format!("{value}", value = DebugAsDisplay(value)),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "gateway" => self.gateway = value.to_string(),
            "message" => self.message = value.to_string(),
            "worker_target" => self.worker_target = value.to_string(),
            "fields" => self.fields = value.to_string(),
            _ => {}
        }
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "remex::worker" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.0.lines.lock().unwrap().push(Line {
            gateway: f.gateway,
            message: f.message,
            level: *event.metadata().level(),
            worker_target: f.worker_target,
            fields: f.fields,
            scope: ctx
                .event_scope(event)
                .map(|s| s.map(|span| span.name().to_string()).collect())
                .unwrap_or_default(),
        });
        self.0.added.notify_all();
    }
}

impl Lines {
    /// Waits (bounded) for a line from `gateway` containing `text`.
    fn wait_for(&self, gateway: &str, text: &str) -> bool {
        self.wait_line(gateway, text).is_some()
    }

    /// Waits (bounded) for a line from `gateway` containing `text`.
    fn wait_line(&self, gateway: &str, text: &str) -> Option<Line> {
        let guard = self.lines.lock().unwrap();
        let found = |lines: &Vec<Line>| {
            lines
                .iter()
                .find(|l| l.gateway == gateway && l.message.contains(text))
                .cloned()
        };
        let (g, _) = self
            .added
            .wait_timeout_while(guard, Duration::from_secs(10), |lines| {
                found(lines).is_none()
            })
            .unwrap();
        found(&g)
    }
}

/// The one global subscriber of this test binary, capturing forwarded
/// lines.
fn capture() -> Arc<Lines> {
    static LINES: std::sync::OnceLock<Arc<Lines>> = std::sync::OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Lines::default());
            let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            lines
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_is_forwarded_and_never_corrupts_the_protocol() {
    let lines = capture();

    let gw = common::gateway().await;
    let ch = gw.remote_call("stdout_noise", &()).unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "after noise");
    ch.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    // The stream is still in sync: more traffic works.
    let ch = gw
        .remote_exec("print(\"from a script\"); channel.send(1 + 1)")
        .unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 2);
    let id = gw.id().to_string();
    let l = lines.clone();
    let found = tokio::task::spawn_blocking(move || {
        [
            l.wait_for(&id, "noise on stderr"),
            l.wait_for(&id, "noise on stdout"),
            l.wait_for(&id, "from a script"),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        found,
        [true, true, true],
        "forwarded lines: {:?}",
        lines.lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_log_lines_arrive_with_their_level_and_target_and_no_colour_codes() {
    let lines = capture();
    let gw = common::gateway().await;
    let ch = gw
        .remote_call("log_warning", "the disk is nearly full")
        .unwrap();
    ch.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    let id = gw.id().to_string();
    let l = lines.clone();
    let line = tokio::task::spawn_blocking(move || l.wait_line(&id, "the disk is nearly full"))
        .await
        .unwrap()
        .expect("the worker's warning is forwarded");
    assert_eq!(line.level, tracing::Level::WARN, "{line:?}");
    assert_eq!(line.worker_target, "remex_test_worker::logs", "{line:?}");
    assert_eq!(line.message, "the disk is nearly full", "{line:?}");
    assert!(!line.message.contains('\x1b'), "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_line_without_end_is_cut_and_the_controller_stays_small() {
    let lines = capture();
    let gw = common::gateway().await;
    // The process's peak resident memory (VmHWM), in bytes.
    let peak = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb << 10
    };
    let before = peak();
    // 600 MiB without a newline took the controller to 1.23 GB before.
    let flood: u64 = 600 << 20;
    let ch = gw.remote_call("stderr_flood", &flood).unwrap();
    ch.waitclose(Some(Duration::from_secs(120))).await.unwrap();
    let id = gw.id().to_string();
    let l = lines.clone();
    let (cut, over) = tokio::task::spawn_blocking(move || {
        (
            l.wait_line(&id, "line cut at"),
            l.wait_for(&id, "flood over"),
        )
    })
    .await
    .unwrap();
    let cut = cut.expect("the long line is forwarded, cut");
    let dropped = flood - remex::core::transport::MAX_STDERR_LINE as u64;
    assert!(
        cut.message.ends_with(&format!(
            "[line cut at {} bytes: {dropped} more dropped]",
            remex::core::transport::MAX_STDERR_LINE
        )),
        "{}",
        &cut.message[cut.message.len().saturating_sub(100)..]
    );
    assert!(over, "the next line arrives whole");
    let after = peak();
    assert!(
        after < before + (64 << 20),
        "the controller's peak grew from {} to {} MiB",
        before >> 20,
        after >> 20
    );
    gw.exit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_events_arrive_as_records_under_the_span_that_made_the_call() {
    let lines = capture();
    let g = common::group(1).await;
    // Through the pool: under the span the task was submitted in.
    let submitted = {
        let span = tracing::info_span!("simulation", run = 7);
        let _in = span.enter();
        g.submit::<String>("log_inside", &"step five").unwrap()
    };
    assert_eq!(submitted.await.unwrap(), "step five");
    // A direct call: under the span it was made in.
    let gw = g.gateways()[0].clone();
    let ch = {
        let span = tracing::info_span!("direct call");
        let _in = span.enter();
        gw.remote_call("log_inside", &"called directly").unwrap()
    };
    assert_eq!(ch.receive::<String>().await.unwrap(), "called directly");
    let id = gw.id().to_string();
    let l = lines.clone();
    let (pooled, direct) = tokio::task::spawn_blocking(move || {
        (
            l.wait_line(&id, "step five"),
            l.wait_line(&id, "called directly"),
        )
    })
    .await
    .unwrap();
    let pooled = pooled.expect("the task's event arrives");
    assert_eq!(pooled.level, tracing::Level::INFO, "{pooled:?}");
    assert_eq!(
        pooled.worker_target, "remex_test_worker::logs",
        "{pooled:?}"
    );
    assert_eq!(pooled.fields, "step=5", "{pooled:?}");
    assert_eq!(pooled.scope, vec!["simulation"], "{pooled:?}");
    let direct = direct.expect("the call's event arrives");
    assert_eq!(direct.scope, vec!["direct call"], "{direct:?}");
    g.terminate(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_events_is_bounded_and_the_drop_is_said() {
    let lines = capture();
    let gw = common::gateway().await;
    let ch = gw.remote_call("log_flood", &5_000u64).unwrap();
    ch.waitclose(Some(Duration::from_secs(20))).await.unwrap();
    let id = gw.id().to_string();
    let l = lines.clone();
    let (after, dropped) = tokio::task::spawn_blocking(move || {
        (
            l.wait_for(&id, "after the flood"),
            l.wait_line(&id, "log records dropped"),
        )
    })
    .await
    .unwrap();
    assert!(after, "the event after the flood arrives");
    let dropped = dropped.expect("the drop is said");
    assert_eq!(dropped.level, tracing::Level::WARN);
    let id = gw.id().to_string();
    let got = lines
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.gateway == id && l.message == "flood")
        .count();
    assert!(
        got <= 1_000,
        "{got} of 5,000 arrived (at most 1,000 a second)"
    );
    assert!(got >= 100, "{got} arrived");
    let n: u64 = dropped.message.split(' ').next().unwrap().parse().unwrap();
    // Every flood event arrived or was counted (other events of that
    // second may be among the dropped).
    assert!(
        n + got as u64 >= 5_000,
        "{got} arrived; {}",
        dropped.message
    );
    gw.exit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listeners_session_gets_the_records_of_its_own_calls() {
    let lines = capture();
    let l = remex_tests::Listener::start(env!("CARGO_BIN_EXE_remex-test-worker"), "records");
    let gw = remex::makegateway(&l.spec("secret")).await.unwrap();
    let ch = {
        let span = tracing::info_span!("over the network");
        let _in = span.enter();
        gw.remote_call("log_inside", &"from a listener").unwrap()
    };
    assert_eq!(ch.receive::<String>().await.unwrap(), "from a listener");
    let id = gw.id().to_string();
    let l2 = lines.clone();
    let line = tokio::task::spawn_blocking(move || l2.wait_line(&id, "from a listener"))
        .await
        .unwrap()
        .expect("the listener's session sends its call's event");
    assert_eq!(line.scope, vec!["over the network"], "{line:?}");
    assert_eq!(line.fields, "step=5", "{line:?}");
    gw.exit().await.unwrap();
}
