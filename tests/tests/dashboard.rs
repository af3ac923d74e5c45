//! The dashboard as a user sees it: a real browser (headless Chromium,
//! Debian's `chromium`; `.ci/run` installs it) renders the page while
//! tasks run, and the rendered DOM shows the workers, a done count that
//! rises, and a killed worker as lost with its reason. Beside it, the
//! server's manners: `/metrics` for a scraper, idle connections and
//! garbage requests that hold nobody up, and nothing but GET.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use remex::{gather, Errors};

/// The browser: Debian names it `chromium`.
fn browser() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name;
        }
    }
    panic!("no chromium to test the dashboard in: apt-get install chromium (.ci/run does)")
}

/// A page open in headless Chromium, driven over the DevTools protocol.
/// Dropped: the browser and all its processes end (its own process
/// group), and its profile directory goes.
struct Page {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
    _browser: Browser,
}

/// A headless Chromium in its own process group; dropped (a failed
/// assertion included), the whole group is killed and reaped, and its
/// profile directory removed.
struct Browser {
    child: std::process::Child,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group at once; this process is their subreaper
        // (`Browser::start`), so the zygote's orphans come back here and
        // are reaped below instead of lingering as init's zombies.
        let pid = self.child.id() as i32;
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
        let t0 = Instant::now();
        loop {
            let mut status = 0;
            let r = unsafe { libc::waitpid(-pid, &mut status, libc::WNOHANG) };
            if r < 0 || t0.elapsed() > Duration::from_secs(10) {
                break; // ECHILD: none of the group is left
            }
            if r == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Page {
    fn open(url: &str) -> Page {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let profile = tempfile_dir();
        // Orphans of the browser's processes come to this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let child = Command::new(browser())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1280,960",
                "--hide-scrollbars",
                &format!("--user-data-dir={}", profile.display()),
                url,
            ])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let mut browser = Browser { child, profile };
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = browser.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(ws.to_string());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium says where its DevTools listen within 30 s");
        let port: u16 = browser_ws
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let devtools = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let list = http(
            devtools,
            format!("GET /json/list HTTP/1.1\r\nHost: {devtools}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let body = &list[list.find("\r\n\r\n").unwrap() + 4..];
        let targets: serde_json::Value = serde_json::from_str(body).unwrap();
        let ws_url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page among {targets}"))
            .to_string();
        let (ws, _) = tungstenite::connect(ws_url).expect("the page's DevTools socket");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        Page {
            ws,
            next: 0,
            _browser: browser,
        }
    }

    /// Evaluates `expr` in the page (a promise is awaited); its value.
    fn eval(&mut self, expr: &str) -> serde_json::Value {
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expr, "awaitPromise": true, "returnByValue": true},
        });
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().expect("an answer from the page within 30 s");
            let v: serde_json::Value = match m {
                tungstenite::Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                _ => continue,
            };
            if v["id"] == id {
                if let Some(e) = v["result"].get("exceptionDetails") {
                    panic!("{expr} threw: {e}");
                }
                return v["result"]["result"]["value"].clone();
            }
        }
    }

    /// Waits (in the page: on its DOM's changes, within `within`) until
    /// `cond` (a JS expression) holds; then `value` (a JS expression).
    fn when(&mut self, cond: &str, value: &str, within: Duration) -> serde_json::Value {
        let ms = within.as_millis();
        self.eval(&format!(
            "new Promise((resolve, reject) => {{
                const check = () => {{ try {{ if ({cond}) {{ obs.disconnect(); resolve({value}); }} }} catch (e) {{}} }};
                const obs = new MutationObserver(check);
                obs.observe(document.documentElement, {{subtree: true, childList: true, characterData: true, attributes: true}});
                setTimeout(() => {{ obs.disconnect(); reject(new Error('not within {ms} ms: ' + document.body.innerText)); }}, {ms});
                check();
            }})"
        ))
    }

    /// A PNG of the page as it is shown.
    fn screenshot(&mut self) -> Vec<u8> {
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({"id": id, "method": "Page.captureScreenshot", "params": {"format": "png"}});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            if let tungstenite::Message::Text(t) = self.ws.read().unwrap() {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == id {
                    let b64 = v["result"]["data"].as_str().expect("a screenshot");
                    return base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                        .expect("base64 from DevTools");
                }
            }
        }
    }

    /// The browser's process group.
    fn group(&self) -> u32 {
        self._browser.child.id()
    }

    /// The done count the page shows.
    fn done(&mut self) -> u64 {
        self.eval("Number(document.getElementById('done-total').dataset.done)")
            .as_u64()
            .unwrap()
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "remex-dashboard-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A raw HTTP/1.1 request; the whole answer.
fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The open page, shared with the blocking threads that drive it.
type Shared = std::sync::Arc<std::sync::Mutex<Page>>;

/// [`Page::when`] on a blocking thread, within 10 s.
async fn when(page: &Shared, cond: String, value: &'static str) -> serde_json::Value {
    let p = page.clone();
    tokio::task::spawn_blocking(move || {
        p.lock()
            .unwrap()
            .when(&cond, value, Duration::from_secs(10))
    })
    .await
    .unwrap()
}

/// [`Page::eval`] on a blocking thread.
async fn eval(page: &Shared, js: &'static str) -> serde_json::Value {
    let p = page.clone();
    tokio::task::spawn_blocking(move || p.lock().unwrap().eval(js))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_the_workers_the_rising_done_count_and_a_lost_worker() {
    let g = common::group(3).await;
    let board = g.dashboard("127.0.0.1:0").await.unwrap();
    assert!(board.addr().ip().is_loopback());
    let url = board.url();
    let page = tokio::task::spawn_blocking(move || {
        let mut page = Page::open(&url);
        // The live feed delivered: every worker has its row, ready.
        let ids = page.when(
            "document.querySelectorAll('#workers tr[data-worker]').length == 3",
            "[...document.querySelectorAll('#workers tr[data-worker]')].map(r => r.dataset.worker + ' ' + r.dataset.state)",
            Duration::from_secs(10),
        );
        assert_eq!(ids, serde_json::json!(["gw0 ready", "gw1 ready", "gw2 ready"]));
        page
    })
    .await
    .unwrap();
    let page: Shared = std::sync::Arc::new(std::sync::Mutex::new(page));
    // A worker the group is starting shows as starting, then ready.
    let late = {
        let g = g.clone();
        let slow = format!(
            "cmd=sh -c 'sleep 1.5; REMEX_WORKER=1 exec {}'//id=late",
            env!("CARGO_BIN_EXE_remex-test-worker")
        );
        tokio::spawn(async move { g.makegateway(&slow).await })
    };
    let starting = when(
        &page,
        "document.querySelector('#workers tr[data-worker=late]') != null".into(),
        "document.querySelector('#workers tr[data-worker=late]').dataset.state",
    )
    .await;
    assert_eq!(starting, "starting");
    late.await.unwrap().unwrap();
    when(
        &page,
        "document.querySelector('#workers tr[data-worker=late]').dataset.state == 'ready'".into(),
        "true",
    )
    .await;
    g.by_id("late").unwrap().exit().await.unwrap();
    // A worker's stderr: its last lines on its row.
    let gw0 = g.gateways()[0].clone();
    let noise = gw0.remote_call("stdout_noise", &()).unwrap();
    assert_eq!(noise.receive::<String>().await.unwrap(), "after noise");
    let tail = when(
        &page,
        "document.querySelector('#workers tr[data-worker=gw0] td.stderr').title.includes('noise on stderr')".into(),
        "document.querySelector('#workers tr[data-worker=gw0] td.stderr').title",
    )
    .await;
    assert!(tail.as_str().unwrap().contains("noise on stderr"), "{tail}");
    // A steady stream of 40 ms tasks, in waves; the open page's count
    // rises while they run, with no reload.
    let wave = |n: usize| {
        let futs: Vec<_> = (0..n)
            .map(|i| {
                g.submit::<String>("slow_echo", &(40u64, format!("t{i}")))
                    .unwrap()
            })
            .collect();
        gather(futs, Errors::Raise)
    };
    let before = page.lock().unwrap().done();
    wave(60).await.unwrap();
    let shown = when(
        &page,
        "Number(document.getElementById('done-total').dataset.done) >= 60".into(),
        "Number(document.getElementById('done-total').dataset.done)",
    )
    .await;
    assert_eq!(before, 0);
    assert_eq!(shown, 60, "the page counted the 60 tasks as they finished");
    // The task stream and the progress table have the task.
    let row = eval(
        &page,
        "document.querySelector('#progress tr[data-task=slow_echo]').innerText",
    )
    .await;
    assert!(
        row.as_str()
            .unwrap()
            .starts_with("slow_echo\t60\t0\t60\t0\t0"),
        "{row}"
    );
    // Each worker's traffic: bytes in and out of its connection.
    let traffic = eval(
        &page,
        "[...document.querySelector('#workers tr[data-worker=gw0]').children].slice(9, 11).map(c => c.textContent)",
    )
    .await;
    for cell in traffic.as_array().unwrap() {
        let cell = cell.as_str().unwrap();
        assert!(cell.ends_with('B') && cell != "0 B", "{traffic}");
    }
    // A worker killed from outside (as the OOM killer would) while the
    // page shows it running tasks: the page shows it lost, and why, and
    // its tasks re-run elsewhere.
    let victim = g.gateways()[1].clone();
    let slow: Vec<_> = (0..6)
        .map(|i| {
            g.submit::<String>("slow_echo", &(1500u64, format!("s{i}")))
                .unwrap()
        })
        .collect();
    let id = victim.id().to_string();
    when(
        &page,
        format!("Number(document.querySelector('#workers tr[data-worker={id}]').children[6].textContent) > 0"),
        "true",
    )
    .await;
    unsafe { libc::kill(victim.rinfo().pid as i32, libc::SIGKILL) };
    gather(slow, Errors::Raise).await.unwrap();
    let id = victim.id().to_string();
    let p = page.clone();
    let (state, incident) = tokio::task::spawn_blocking(move || {
        let mut p = p.lock().unwrap();
        let state = p.when(
            &format!(
                "document.querySelector('#workers tr[data-worker={id}]').dataset.state == 'lost'"
            ),
            &format!("document.querySelector('#workers tr[data-worker={id}]').innerText"),
            Duration::from_secs(10),
        );
        let incident = p.when(
            "document.querySelector('#incidents li[data-kind=lost]') != null",
            "document.querySelector('#incidents li[data-kind=lost]').innerText",
            Duration::from_secs(10),
        );
        let rerun = p.when(
            "document.querySelector('#incidents li[data-kind=rerun]') != null",
            "document.querySelector('#incidents li[data-kind=rerun]').innerText",
            Duration::from_secs(10),
        );
        assert!(
            rerun
                .as_str()
                .unwrap()
                .contains(&format!("re-run of slow_echo from {id}: ")),
            "{rerun}"
        );
        (state, incident)
    })
    .await
    .unwrap();
    let (state, incident) = (
        state.as_str().unwrap().to_string(),
        incident.as_str().unwrap().to_string(),
    );
    assert!(state.contains("lost: "), "the row says why: {state}");
    assert!(
        incident.contains(&format!("lost worker {}: ", victim.id())),
        "{incident}"
    );
    // `cargo xtask screenshot` keeps a picture of this page in docs/.
    if let Some(path) = std::env::var_os("REMEX_DASHBOARD_SCREENSHOT") {
        let png = page.lock().unwrap().screenshot();
        std::fs::write(&path, png).unwrap();
    }
    let browser = page.lock().unwrap().group();
    drop(page);
    // No process of the browser's group is left, zombies included.
    let left: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(2)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(browser)
        })
        .collect();
    assert!(left.is_empty(), "the browser left {left:?}");
    drop(board);
    g.terminate(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_garbage_hold_nobody_up_and_only_get_is_served() {
    let g = common::group(2).await;
    let _: String = g.submit("slow_echo", &(1u64, "x")).unwrap().await.unwrap();
    let probe = g.dashboard("0").await.unwrap();
    assert!(
        probe.addr().ip().is_loopback(),
        "a port alone binds loopback"
    );
    drop(probe);
    // An address of its own: the end checks that nothing accepts on its
    // port any more, which a freed port of 127.0.0.1 taken at once by
    // another test's listener would fail.
    let board = g.dashboard("127.0.0.63:0").await.unwrap();
    let addr = board.addr();
    // 200 idle connections, one that sends garbage, one slow header.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let garbage = http(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    // A slow reader of the live feed: its updates wait in its socket.
    let mut feed = TcpStream::connect(addr).unwrap();
    feed.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let m = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("text/plain; version=0.0.4"), "{m}");
    assert!(
        m.contains("remex_tasks_submitted_total{task=\"slow_echo\"} 1"),
        "{m}"
    );
    let s = http(
        addr,
        b"GET /state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(s.contains("\"workers\":[{\"id\":\"gw0\""), "{s}");
    // Read-only: no other method.
    let post = http(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    // While all of them hang on, and pages come and go, tasks run, and
    // the controller's memory stays within the record's bounds.
    let me = std::process::id();
    let rss0 = remex_tests::rss_bytes(me).unwrap();
    let churn = std::thread::spawn(move || {
        for _ in 0..50 {
            let mut page = TcpStream::connect(addr).unwrap();
            page.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 512];
            let _ = page.read(&mut first);
            // ... and the browser tab closes.
        }
    });
    for _ in 0..3 {
        let futs: Vec<_> = (0..2_000i64)
            .map(|i| g.submit::<i64>("echo", &i).unwrap())
            .collect();
        let got = gather(futs, Errors::Raise).await.unwrap();
        assert_eq!(got.value.len(), 2_000);
    }
    churn.join().unwrap();
    let grew = remex_tests::rss_bytes(me).unwrap().saturating_sub(rss0);
    assert!(grew < 32 << 20, "the controller grew by {} KiB", grew >> 10);
    let m = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        m.contains("remex_tasks_finished_total{task=\"echo\",outcome=\"done\"} 6000"),
        "{m}"
    );
    drop((idle, slow, feed));
    // Dropped: it stops serving.
    drop(board);
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(5), "still serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    g.terminate(Duration::from_secs(5)).await;
}
