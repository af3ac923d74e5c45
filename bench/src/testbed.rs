//! Rows (u)-(u'''): beyond one machine, on the testbed (`.ci/hosts-up`:
//! hosts as network namespaces on a bridge). The controller is this
//! machine's namespace (198.18.0.1); the far ends are testbed hosts.
//!
//! - (u) round trip and bulk bytes to a worker on rx2 over ssh and to a
//!   `socket=` listener on rx3, beside the plain-TCP floor across the
//!   same bridge (a peer on rx2), in the same run;
//! - (u') 16 ssh workers on each of three hosts ready, against 16 on one;
//! - (u'') `slurm//ntasks=6//nodes=3` on the testbed's cluster ready (a
//!   child process: the Slurm commands read `SLURM_CONF`);
//! - (u''') the time to notice a host that dies without a word, under
//!   the default liveness bound;
//! - (v) a first contact with a host over a 10 MB/s link (a relay on the
//!   controller's address): a user new to the host, so the worker is
//!   uploaded, to its first reply, from `makegateway` and from
//!   `remex exec`, beside the same over an unlimited link.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use remex::makegateway;
use remex_tests::testbed;

use super::{floor_rate, floor_rtt, median, remex_rate, remex_rtt, Counts};

pub(crate) struct TestbedRows {
    /// Round trip in us: ssh, socket=, plain TCP.
    rtt: (f64, f64, f64),
    /// Bulk MB/s: ssh, socket=, plain TCP.
    bulk: (f64, f64, f64),
    bulk_mb: usize,
    /// ms: 16 on one host, 48 on three.
    fanout: (f64, f64),
    /// The machine's busy CPU ms while they started: one host, three.
    fanout_cpu: (f64, f64),
    /// ms, or why not.
    slurm6: Result<f64, String>,
    /// s: noticed, the bound.
    dead: (f64, f64),
    /// (v), or why not.
    first: Result<FirstContact, String>,
}

/// Row (v): a first contact over a thin link.
pub(crate) struct FirstContact {
    /// s: ssh= gateway to its first reply, at 10 MB/s and unlimited.
    gateway: (f64, f64),
    /// s: `remex exec` of one command, at 10 MB/s.
    cli: f64,
    /// Bytes: the program that serves as the worker (this one) as built,
    /// as uploaded (stripped), and as sent (compressed), with the form.
    sizes: (u64, u64, u64),
    form: &'static str,
    /// s: preparing the upload once per binary (strip, compress).
    prepare: f64,
}

/// The link's rate for (v), bytes/s.
const THIN: u64 = 10_000_000;

/// One first contact: a new user on rx2 through a relay at `rate`, to
/// the first reply of an ssh= gateway (or of `remex exec` with `cli`).
async fn contact(rate: Option<u64>, cli: Option<&std::path::Path>) -> Result<f64, String> {
    let user = testbed::FreshUser::on(&["rx2"]);
    let relay = testbed::Relay::start(
        &format!("{}:22", testbed::addr("rx2")),
        Duration::ZERO,
        rate,
    );
    let cfg = testbed::ssh_through(&relay, "rx2");
    let spec = format!("ssh={}@slow-rx2//ssh_config={}", user.name, cfg.display());
    let t0 = Instant::now();
    let out = match cli {
        Some(cli) => {
            let out = Command::new(cli)
                .args(["exec", "--tx", &spec, "--", "true"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(t0.elapsed().as_secs_f64())
            } else {
                Err(format!(
                    "remex exec: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }
        None => match makegateway(&spec).await {
            Ok(gw) => {
                let r = match gw.remote_call("echo", &1i64) {
                    Ok(ch) => ch.receive::<i64>().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let took = t0.elapsed().as_secs_f64();
                let uploaded = gw.uploaded_worker();
                let _ = gw.exit().await;
                match r {
                    Ok(_) if uploaded => Ok(took),
                    Ok(_) => Err("the new user's first contact did not upload".into()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e.to_string()),
        },
    };
    let _ = std::fs::remove_file(cfg);
    out
}

/// Row (v).
pub(crate) async fn first_contact() -> Result<FirstContact, String> {
    if std::env::var_os("REMEX_TESTBED_SKIP").is_some()
        || !std::path::Path::new(testbed::SSH_CONFIG).exists()
    {
        return Err("no testbed here (sudo .ci/hosts-up makes it)".into());
    }
    let dir = std::path::Path::new(&exe())
        .parent()
        .expect("a directory")
        .to_path_buf();
    let cli = dir.join("remex");
    if !cli.exists() {
        return Err(format!(
            "{} is missing (cargo build --release -p remex-cli)",
            cli.display()
        ));
    }
    // The bench serves as its own worker (as a program of a user's that
    // calls serve_if_worker does): it uploads itself; remex uploads
    // itself.
    let built = std::fs::metadata(exe()).map_err(|e| e.to_string())?.len();
    // The controller prepares an upload once per binary: from an empty
    // cache, the first contact includes it.
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let cache = std::env::temp_dir().join(format!("remex-upload-{uid}"));
    let _ = std::fs::remove_dir_all(&cache);
    let with_prepare = contact(Some(THIN), None).await?;
    let (mut thin, mut open, mut by_cli) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        thin.push(contact(Some(THIN), None).await?);
        open.push(contact(None, None).await?);
        by_cli.push(contact(Some(THIN), Some(&cli)).await?);
    }
    // What was prepared for this program: the oldest entry of the cache
    // (then remex's).
    let meta = std::fs::read_dir(&cache)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| {
            let m = e.path().join("meta");
            let when = std::fs::metadata(&m).ok()?.modified().ok()?;
            Some((when, std::fs::read_to_string(m).ok()?))
        })
        .min_by_key(|(when, _)| *when)
        .map(|(_, text)| text)
        .ok_or("no prepared upload in the cache")?;
    let f: Vec<u64> = meta
        .split_whitespace()
        .skip(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        return Err(format!("the cache's meta reads {meta:?}"));
    }
    let has = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let (form, sent) = if has("zstd") {
        ("zstd", f[1])
    } else if has("gzip") {
        ("gzip", f[2])
    } else {
        ("raw", f[0])
    };
    let thin = median(thin);
    Ok(FirstContact {
        gateway: (thin, median(open)),
        cli: median(by_cli),
        sizes: (built, f[0], sent),
        form,
        prepare: (with_prepare - thin).max(0.0),
    })
}

fn exe() -> String {
    std::env::current_exe()
        .expect("own path")
        .display()
        .to_string()
}

fn on_host() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/on-host").to_string()
}

/// A plain-TCP peer of this program on `host`, connected to us across
/// the bridge.
fn tcp_peer_on(host: &str, args: &[&str]) -> (std::process::Child, std::net::TcpStream) {
    let l = std::net::TcpListener::bind((testbed::CONTROLLER, 0)).expect("the bridge address");
    let addr = l.local_addr().unwrap().to_string();
    let exe = exe();
    let mut a = vec![host, exe.as_str(), "--tcp-peer", args[0], &addr];
    a.extend_from_slice(&args[1..]);
    let child = Command::new(on_host())
        .args(&a)
        .spawn()
        .expect("the peer starts");
    let (s, _) = l.accept().expect("the peer connects");
    let _ = s.set_nodelay(true);
    (child, s)
}

/// A listening worker (this program) on `host`, with a secret file.
struct Listener {
    child: std::process::Child,
    spec: String,
    secret: std::path::PathBuf,
}

impl Listener {
    fn start(host: &str) -> Listener {
        let secret = std::env::temp_dir().join(format!("remex-bench-tb-{}", std::process::id()));
        let mut key = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .expect("random bytes");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&secret, hex).expect("secret file");
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("secret mode");
        let mut child = Command::new(on_host())
            .args([
                host,
                &exe(),
                "--listen",
                &format!("{}:0", testbed::addr(host)),
            ])
            .arg("--secret-file")
            .arg(&secret)
            .env(remex::core::transport::popen::WORKER_ENV, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the listener starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .expect("the listener says where");
        let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
        Listener {
            child,
            spec: format!("socket={addr}//secret_file={}", secret.display()),
            secret,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.secret);
    }
}

/// The machine's busy CPU time so far (all cores, from /proc/stat), ms.
fn busy_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system (idle) iowait irq softirq steal, in 10 ms ticks.
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    busy * 10.0
}

/// ms for a group of these specs to start and answer an exec on each.
async fn ready_ms(specs: &[String]) -> Result<f64, String> {
    ready_ms_cpu(specs).await.map(|(ms, _)| ms)
}

/// [`ready_ms`], and the machine's busy CPU time meanwhile (ms).
async fn ready_ms_cpu(specs: &[String]) -> Result<(f64, f64), String> {
    let cpu0 = busy_ms();
    let t0 = Instant::now();
    let g = remex::Group::new(specs).await.map_err(|e| e.to_string())?;
    let n = g.len();
    let got: Vec<i64> = g
        .remote_exec("channel.send(1)")
        .map_err(|e| e.to_string())?
        .receive_each()
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(got.len(), n);
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let cpu = busy_ms() - cpu0;
    g.terminate(Duration::from_secs(5)).await;
    Ok((ms, cpu))
}

/// `--testbed-slurm-ready`: (u'') in a process of its own, `SLURM_CONF`
/// set by the parent. Prints the median of 3 in ms.
pub(crate) async fn slurm_ready_child() {
    let spec = format!(
        "slurm//ntasks=6//nodes=3//job_name=remex-bench//worker={}",
        exe()
    );
    let mut v = Vec::new();
    for _ in 0..3 {
        match ready_ms(std::slice::from_ref(&spec)).await {
            Ok(ms) => v.push(ms),
            Err(e) => {
                println!("ERROR {e}");
                return;
            }
        }
    }
    println!("{:.1}", median(v));
}

pub(crate) async fn testbed_rows(c: &Counts) -> Result<TestbedRows, String> {
    if std::env::var_os("REMEX_TESTBED_SKIP").is_some()
        || !std::path::Path::new(testbed::SSH_CONFIG).exists()
    {
        return Err("no testbed here (sudo .ci/hosts-up makes it)".into());
    }
    let exe = exe();
    let ssh = |h: &str| testbed::ssh_spec(h, &format!("//worker={exe}"));
    let total = (c.bulk_mb / 2).max(16) << 20;
    // (u): ssh to rx2, socket= to rx3 and the plain-TCP floor (a peer on
    // rx2), round by round.
    let err = |e: remex::Error| e.to_string();
    let listener = Listener::start("rx3");
    let ssh_gw = makegateway(&ssh("rx2")).await.map_err(err)?;
    let sock_gw = makegateway(&listener.spec).await.map_err(err)?;
    let ssh_ch = ssh_gw.remote_call("echo_loop", &()).map_err(err)?;
    let sock_ch = sock_gw.remote_call("echo_loop", &()).map_err(err)?;
    let (mut echo_child, mut echo) = tcp_peer_on("rx2", &["echo"]);
    let mut echo_r = echo.try_clone().expect("the socket");
    floor_rtt(&mut echo, &mut echo_r, 200);
    remex_rtt(&ssh_ch, 200).await.map_err(err)?;
    remex_rtt(&sock_ch, 200).await.map_err(err)?;
    let pings = c.pings.min(2_000);
    let rounds = c.rounds.clamp(3, 7);
    let (mut r_tcp, mut r_ssh, mut r_sock) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        r_tcp.push(floor_rtt(&mut echo, &mut echo_r, pings));
        r_ssh.push(remex_rtt(&ssh_ch, pings).await.map_err(err)?);
        r_sock.push(remex_rtt(&sock_ch, pings).await.map_err(err)?);
    }
    drop((echo, echo_r));
    let _ = echo_child.wait();
    ssh_ch.close(None);
    sock_ch.close(None);
    let (mut b_tcp, mut b_ssh, mut b_sock) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut child, mut s) =
            tcp_peer_on("rx2", &["source", &total.to_string(), &c.chunk.to_string()]);
        b_tcp.push(floor_rate(&mut s, c.chunk));
        let _ = child.wait();
        b_ssh.push(remex_rate(&ssh_gw, total, c.chunk).await.map_err(err)?);
        b_sock.push(remex_rate(&sock_gw, total, c.chunk).await.map_err(err)?);
    }
    ssh_gw.exit().await.map_err(err)?;
    sock_gw.exit().await.map_err(err)?;
    drop(listener);
    // (u'): 16 on one host, 16 on each of three, alternately.
    let (mut one, mut three, mut cpu1, mut cpu3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let (ms, cpu) = ready_ms_cpu(&[format!("16*{}", ssh("rx1"))]).await?;
        one.push(ms);
        cpu1.push(cpu);
        let (ms, cpu) =
            ready_ms_cpu(&["rx1", "rx2", "rx3"].map(|h| format!("16*{}", ssh(h)))).await?;
        three.push(ms);
        cpu3.push(cpu);
    }
    // (u''): a child with the testbed's SLURM_CONF.
    let out = Command::new(&exe)
        .arg("--testbed-slurm-ready")
        .env("SLURM_CONF", testbed::SLURM_CONF)
        .output()
        .map_err(|e| format!("the Slurm child: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let slurm6 = said
        .parse::<f64>()
        .map_err(|_| format!("the Slurm child said {said:?}"));
    // (u'''): a host dies under a gateway with the default bound.
    let gw = makegateway(&ssh("rx3")).await.map_err(|e| e.to_string())?;
    let bound = gw.spec().liveness_bound().expect("on by default over ssh");
    let ch = gw
        .remote_exec("channel.receive()")
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let dead = testbed::kill_host("rx3");
    let noticed = tokio::time::timeout(bound * 3, ch.receive::<remex::Value>()).await;
    let took = t0.elapsed().as_secs_f64();
    dead.revive();
    match noticed {
        Ok(Err(_)) => {}
        Ok(Ok(v)) => return Err(format!("a dead host answered {v:?}")),
        Err(_) => {
            return Err(format!(
                "a dead host was not noticed within {:?}",
                bound * 3
            ))
        }
    }
    let first = first_contact().await;
    Ok(TestbedRows {
        first,
        rtt: (median(r_ssh), median(r_sock), median(r_tcp)),
        bulk: (median(b_ssh), median(b_sock), median(b_tcp)),
        bulk_mb: total >> 20,
        fanout: (median(one), median(three)),
        fanout_cpu: (median(cpu1), median(cpu3)),
        slurm6,
        dead: (took, bound.as_secs_f64()),
    })
}

pub(crate) fn print_testbed_rows(r: &Result<TestbedRows, String>) {
    let r = match r {
        Ok(r) => r,
        Err(why) => {
            println!("| (u) testbed rows | not measured: {why} | | | | | |");
            return;
        }
    };
    println!(
        "| (u) round trip, testbed host: ssh (rx2) / socket= (rx3) | {:.0} us / {:.0} us | {:.0} us (plain TCP across the bridge) | | {:.1}x / {:.1}x the floor | | |",
        r.rtt.0,
        r.rtt.1,
        r.rtt.2,
        r.rtt.0 / r.rtt.2,
        r.rtt.1 / r.rtt.2
    );
    println!(
        "| (u) bulk bytes ({} MiB), testbed host: ssh (rx2) / socket= (rx3) | {:.0} MB/s / {:.0} MB/s | {:.0} MB/s (plain TCP across the bridge) | | {:.0}% / {:.0}% of the floor | | |",
        r.bulk_mb,
        r.bulk.0,
        r.bulk.1,
        r.bulk.2,
        r.bulk.0 / r.bulk.2 * 100.0,
        r.bulk.1 / r.bulk.2 * 100.0
    );
    println!(
        "| (u') 16 ssh workers on each of 3 hosts ready (exec on all) / 16 on one | {:.0} ms / {:.0} ms | | | {:.2}x one host (the testbed's hosts share this machine's cores: they used {:.0} / {:.0} ms of CPU, {:.1}x) | | <= 1.5x |",
        r.fanout.1,
        r.fanout.0,
        r.fanout.1 / r.fanout.0,
        r.fanout_cpu.1,
        r.fanout_cpu.0,
        r.fanout_cpu.1 / r.fanout_cpu.0
    );
    match &r.slurm6 {
        Ok(ms) => println!(
            "| (u'') slurm//ntasks=6//nodes=3 (testbed cluster, 3 nodes): create + first reply from all 6 | {ms:.0} ms | | | | | < 1 s |"
        ),
        Err(why) => println!("| (u'') slurm//ntasks=6//nodes=3 | not measured: {why} | | | | | < 1 s |"),
    }
    println!(
        "| (u''') a host dies without a word (ssh, default liveness bound {:.0} s): noticed after | {:.2} s | | | {:.0}% of the bound | | <= the bound + 10% |",
        r.dead.1,
        r.dead.0,
        r.dead.0 / r.dead.1 * 100.0
    );
    print_first_contact_row(&r.first);
}

/// Prints row (v).
pub(crate) fn print_first_contact_row(r: &Result<FirstContact, String>) {
    match r {
        Ok(f) => {
            let mb = |b: u64| b as f64 / 1e6;
            println!(
                "| (v) first contact, new user on rx2 over a 10 MB/s link (worker uploaded): ssh= gateway to first reply / remex exec | {:.2} s / {:.2} s | {:.2} s (the same over an unlimited link) | | the program {:.1} MB as built, {:.1} MB stripped, {:.1} MB sent ({}): the whole binary alone held such a link {:.1} s | | < 1.5 s |",
                f.gateway.0,
                f.cli,
                f.gateway.1,
                mb(f.sizes.0),
                mb(f.sizes.1),
                mb(f.sizes.2),
                f.form,
                f.sizes.0 as f64 / THIN as f64,
            );
            println!(
                "| (v) preparing the upload (strip + compress, once per worker binary, cached) | {:.2} s | | | | | |",
                f.prepare
            );
        }
        Err(why) => println!(
            "| (v) first contact over a 10 MB/s link | not measured: {why} | | | | | < 1.5 s |"
        ),
    }
}
