//! The live dashboard ([`Group::dashboard`]): a page served from the
//! controller process, kept current by server-sent events, with the
//! group's Prometheus metrics beside it. Read-only (GET only), on axum
//! (hyper). The page is one self-contained file (no CDN, no build step):
//! workers, progress per task name, the task stream (one bar per task
//! per worker, the last minutes), throughput, and the lost workers and
//! re-runs with their reasons.
//!
//! Cost: nothing runs for the dashboard while nobody looks but the
//! group's recording ([`crate::record`]); each connected page gets one
//! update at most every [`TICK`], built only when something changed.
//! Memory: the record's bounds, and per page the events it has not seen
//! (at most [`FIRST_EVENTS`] in one message).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use remex_core::{Error, Result};
use serde::Serialize;
use tokio::sync::watch;

use crate::group::{Group, GroupRef};
use crate::record::{state_of, Progress, Snapshot, TaskEvent, WorkerCounts};

/// How often a page is updated at most.
pub(crate) const TICK: Duration = Duration::from_millis(250);
/// The task events a page gets in its first message (the newest).
pub(crate) const FIRST_EVENTS: usize = 2_000;

const PAGE: &str = include_str!("dashboard.html");

/// A running dashboard. It serves until dropped (or until its group is
/// gone).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let board = group.dashboard("127.0.0.1:0").await?;
/// println!("open {}", board.url());
/// assert!(board.addr().ip().is_loopback());
/// drop(board); // stops serving
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[must_use = "the dashboard stops when this is dropped"]
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Dashboard {
    /// The address it listens on.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let board = group.dashboard("0").await?; // a free port on loopback
    /// assert_ne!(board.addr().port(), 0);
    /// # group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address, to open in a browser.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let board = group.dashboard("127.0.0.1:0").await?;
    /// assert!(board.url().starts_with("http://127.0.0.1:"));
    /// # group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `HOST:PORT`, or a port alone (`8787`, `:8787`) on loopback.
fn address(addr: &str) -> Result<SocketAddr> {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if let Ok(p) = port.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p));
    }
    addr.parse().map_err(|_| Error::Os {
        what: format!("serving the dashboard on {addr:?}"),
        detail: "not an address: give HOST:PORT (an IP address) or a port alone (loopback)".into(),
    })
}

impl Group {
    /// Serves a live dashboard of this group on `addr` (`HOST:PORT`, or a
    /// port alone for loopback; port 0 picks a free one): `/` the page,
    /// `/metrics` the Prometheus metrics ([`Group::metrics`]), `/state`
    /// the page's data as JSON, `/events` its live feed (server-sent
    /// events). It binds exactly the address given: loopback unless you
    /// name another interface. Serves until the returned [`Dashboard`]
    /// is dropped.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let board = group.dashboard("127.0.0.1:0").await?;
    /// let _: i64 = group.submit("echo", &1)?.await?;
    /// // Scrape it as Prometheus would.
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut s = tokio::net::TcpStream::connect(board.addr()).await.unwrap();
    /// s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    /// let mut text = String::new();
    /// s.read_to_string(&mut text).await.unwrap();
    /// assert!(text.contains("remex_tasks_submitted_total{task=\"echo\"} 1"));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn dashboard(&self, addr: &str) -> Result<Dashboard> {
        let want = address(addr)?;
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|e| Error::Os {
                what: format!("serving the dashboard on {want}"),
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Os {
            what: "the dashboard's address".into(),
            detail: e.to_string(),
        })?;
        let (stop, stopped) = watch::channel(false);
        let app = Router::new()
            .route("/", get(page))
            .route("/metrics", get(metrics))
            .route("/state", get(state))
            .route("/events", get(events))
            .with_state(Board {
                group: self.downgrade(),
                stopped: stopped.clone(),
            });
        let mut until = stopped;
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = until.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                tracing::warn!("the dashboard on {addr} stopped: {e}");
            }
        });
        Ok(Dashboard { addr, stop })
    }
}

#[derive(Clone)]
struct Board {
    group: GroupRef,
    stopped: watch::Receiver<bool>,
}

impl Board {
    fn group(&self) -> Option<Group> {
        self.group.upgrade()
    }
}

fn gone() -> Response {
    (StatusCode::GONE, "the group is gone\n").into_response()
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn metrics(State(b): State<Board>) -> Response {
    match b.group() {
        Some(g) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            g.metrics(),
        )
            .into_response(),
        None => gone(),
    }
}

async fn state(State(b): State<Board>) -> Response {
    match b.group() {
        Some(g) => (
            [(header::CONTENT_TYPE, "application/json")],
            view(&g, 0).json(),
        )
            .into_response(),
        None => gone(),
    }
}

async fn events(State(b): State<Board>) -> Response {
    let feed = futures::stream::unfold(
        (b, 0u64, None::<String>),
        |(mut b, mut seen, mut last)| async move {
            loop {
                if last.is_some() {
                    // Paced: at most one update a tick.
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        _ = b.stopped.wait_for(|s| *s) => return None,
                    }
                }
                let g = b.group()?;
                let mut v = view(&g, seen);
                drop(g);
                if seen == 0 && v.events.len() > FIRST_EVENTS {
                    v.events.drain(..v.events.len() - FIRST_EVENTS);
                }
                // Unchanged but for the clock: nothing to send.
                let key = v.key();
                if last.as_deref() != Some(key.as_str()) {
                    seen = v.seq;
                    last = Some(key);
                    let ev = Event::default().data(v.json());
                    return Some((Ok::<_, std::convert::Infallible>(ev), (b, seen, last)));
                }
            }
        },
    );
    Sse::new(feed)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One worker's row.
#[derive(Serialize)]
struct WorkerRow {
    id: String,
    spec: String,
    host: String,
    pid: u32,
    /// Slurm's job, step and node, where the worker runs in one.
    job: Option<String>,
    node: Option<String>,
    state: String,
    running: u64,
    done: u64,
    failed: u64,
    /// Bytes from the worker and to it.
    bytes_in: u64,
    bytes_out: u64,
    /// The last lines of its stderr.
    stderr: Vec<String>,
}

/// What a page shows.
#[derive(Serialize)]
struct View {
    t: f64,
    seq: u64,
    workers: Vec<WorkerRow>,
    progress: Vec<ProgressRow>,
    events: Vec<TaskEvent>,
    throughput: Vec<(u64, u64, u64)>,
    incidents: Vec<crate::record::Incident>,
}

#[derive(Serialize)]
struct ProgressRow {
    task: String,
    #[serde(flatten)]
    counts: Progress,
}

impl View {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// What changes when anything shown changes (all but the clock).
    fn key(&self) -> String {
        serde_json::to_string(&(
            self.seq,
            &self.workers,
            &self.progress,
            &self.incidents.len(),
        ))
        .unwrap_or_default()
    }
}

fn view(g: &Group, after: u64) -> View {
    let live = g.gateways();
    let snap: Snapshot = g.pool().metrics.record.snapshot(after);
    let counts: std::collections::HashMap<&str, &WorkerCounts> =
        snap.counts.iter().map(|(k, v)| (&**k, v)).collect();
    let row = |id: &str, spec: String, host: String, pid: u32, state: String, bytes: (u64, u64)| {
        let c = counts.get(id).copied().cloned().unwrap_or_default();
        WorkerRow {
            id: id.to_string(),
            spec,
            host,
            pid,
            job: None,
            node: None,
            state,
            running: c.running,
            done: c.done,
            failed: c.failed,
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            stderr: Vec::new(),
        }
    };
    let mut workers: Vec<WorkerRow> = live
        .iter()
        .map(|gw| {
            let info = gw.rinfo();
            let t = gw.connection().traffic();
            let mut r = row(
                gw.id(),
                gw.spec().to_string(),
                info.host.clone(),
                info.pid,
                state_of(gw.state()),
                (t.bytes_in, t.bytes_out),
            );
            if let Some(c) = &info.cluster {
                r.job = Some(format!("{}.{}", c.job_id, c.step_id));
                r.node = Some(c.node.clone());
            }
            r.stderr = gw.stderr_tail();
            r
        })
        .collect();
    for s in &snap.starting {
        if !workers.iter().any(|w| w.id == s.id) {
            let started = (snap.t - s.t) / 1e3;
            workers.push(row(
                &s.id,
                s.spec.clone(),
                String::new(),
                0,
                format!("starting ({started:.1} s)"),
                (0, 0),
            ));
        }
    }
    for d in snap.departed.iter().rev() {
        if !workers.iter().any(|w| w.id == d.id) {
            let mut r = row(
                &d.id,
                d.spec.clone(),
                d.host.clone(),
                d.pid,
                d.state.clone(),
                d.bytes,
            );
            r.stderr = d.stderr.clone();
            workers.push(r);
        }
    }
    View {
        t: snap.t,
        seq: snap.seq,
        workers,
        progress: snap
            .progress
            .into_iter()
            .map(|(task, counts)| ProgressRow {
                task: task.to_string(),
                counts,
            })
            .collect(),
        events: snap.events,
        throughput: snap.throughput,
        incidents: snap.incidents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_means_loopback_and_a_bad_address_is_named() {
        assert_eq!(address("8787").unwrap(), "127.0.0.1:8787".parse().unwrap());
        assert_eq!(address(":0").unwrap(), "127.0.0.1:0".parse().unwrap());
        assert_eq!(address("0.0.0.0:9").unwrap(), "0.0.0.0:9".parse().unwrap());
        let e = address("localhost:x").unwrap_err().to_string();
        assert!(
            e.contains("\"localhost:x\"") && e.contains("HOST:PORT"),
            "{e}"
        );
    }
}
