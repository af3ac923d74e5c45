//! A task's writes to stdout and stderr never corrupt the protocol; the
//! worker's stderr reaches the controller tagged with the gateway id.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<(String, String)>>,
    added: Condvar,
}

struct Capture(Arc<Lines>);

#[derive(Default)]
struct Fields {
    gateway: String,
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "gateway" => self.gateway = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "gateway" => self.gateway = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "remex::worker" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.0.lines.lock().unwrap().push((f.gateway, f.message));
        self.0.added.notify_all();
    }
}

impl Lines {
    /// Waits (bounded) for a line from `gateway` containing `text`.
    fn wait_for(&self, gateway: &str, text: &str) -> bool {
        let guard = self.lines.lock().unwrap();
        let (_g, res) = self
            .added
            .wait_timeout_while(guard, Duration::from_secs(10), |lines| {
                !lines.iter().any(|(g, m)| g == gateway && m.contains(text))
            })
            .unwrap();
        !res.timed_out()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_is_forwarded_and_never_corrupts_the_protocol() {
    let lines = Arc::new(Lines::default());
    let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
    tracing::subscriber::set_global_default(subscriber).unwrap();

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
