//! `cargo xtask bench`: remex measured beside the raw pipe floor and execnet,
//! in one run, so that ratios hold on a noisy shared machine.
//!
//! Rows: (a) popen gateway create + first reply, (b) small-message ping-pong
//! round trip, (c) one-way small messages per second, (d) bulk bytes. The
//! floor for (b) and (d) is a child process of this program speaking over
//! plain pipes with blocking reads and writes. Medians over repetitions.
//!
//! This program is also its own worker (self-exec) and its own pipe peer.
//!
//! Profiling aids, each measuring one row quickly: `--pingpong-only`
//! (`--spawned` from a tokio task, `--blocking` from a plain thread; also
//! prints thread switches per round trip), `--floor-only`, `--bulk-only`,
//! `--tasks-only` (`--raw-lane`), `--group-only N`, `--flood-only MIB`, `--ssh-only`, `--socket-only`,
//! `--scripts-only`, `--cli-only`, `--testbed-only` (rows (u)-(u''') on the
//! testbed of hosts, `.ci/hosts-up`; with (v)), `--first-contact-only` (row
//! (v) alone), `--pool-scale-only N TASKS` (one line of row (f'')).
//!
//! Rows (j) and (k) measure `socket=` (the Noise session) against a
//! plain-TCP floor: a child process of this program speaking unencrypted
//! over loopback TCP.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use remex::worker::{serve_if_worker, Task, TaskError, Worker};
use remex::{makegateway, Value};

mod tail;
mod testbed;

struct Counts {
    tasks: usize,
    reps: usize,
    rounds: usize,
    pings: usize,
    msgs: usize,
    bulk_mb: usize,
    chunk: usize,
}

impl Counts {
    /// One of everything: the base of the profiling aids, which each set
    /// the counts of their own rows.
    fn one_row() -> Counts {
        Counts {
            tasks: 1,
            reps: 1,
            rounds: 1,
            pings: 1,
            msgs: 1,
            bulk_mb: 1,
            chunk: 1,
        }
    }
}

fn worker() -> Worker {
    Worker::new()
        .task("echo_loop", |t: &Task| {
            let ch = t.channel();
            while let Ok(v) = ch.receive_value_blocking(None) {
                ch.send_value_blocking(v)?;
            }
            Ok::<_, TaskError>(())
        })
        .task("flood", |t: &Task| {
            let n: i64 = t.args()?;
            for i in 0..n {
                t.channel().send_value_blocking(Value::Int(i))?;
            }
            Ok::<_, TaskError>(())
        })
        .task("sink", |t: &Task| {
            let mut n = 0i64;
            while t.channel().receive_value_blocking(None).is_ok() {
                n += 1;
            }
            Ok::<_, TaskError>(n)
        })
        .task("stderr_flood", |t: &Task| {
            // Writes MiB megabytes to stderr without a newline.
            let mib: usize = t.args()?;
            let block = vec![b'x'; 1 << 20];
            let mut err = std::io::stderr().lock();
            for _ in 0..mib {
                err.write_all(&block)
                    .map_err(|e| TaskError::from(e.to_string()))?;
            }
            Ok::<_, TaskError>(())
        })
        .task("bulk", |t: &Task| {
            let (total, chunk): (usize, usize) = t.args()?;
            let data = bytes::Bytes::from(vec![b'x'; chunk]);
            for _ in 0..total / chunk {
                t.channel()
                    .send_value_blocking(Value::Bytes(data.clone()))?;
            }
            Ok::<_, TaskError>(())
        })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The pipe peer: `echo` answers every 8-byte message; `source N CHUNK`
/// writes N bytes.
fn pipe_peer(mode: &str, args: &[String]) -> ! {
    serve_peer(
        mode,
        args,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )
}

/// What a floor peer does on `r`/`w`: `echo` answers every 8-byte
/// message; `source N CHUNK` writes N bytes in CHUNK-byte writes.
fn serve_peer(mode: &str, args: &[String], mut r: impl Read, mut w: impl Write) -> ! {
    match mode {
        "echo" => {
            let mut b = [0u8; 8];
            while r.read_exact(&mut b).is_ok() {
                if w.write_all(&b).and_then(|_| w.flush()).is_err() {
                    break;
                }
            }
        }
        _ => {
            let total: usize = args[0].parse().unwrap_or(0);
            let chunk: usize = args[1].parse().unwrap_or(1);
            let data = vec![b'x'; chunk];
            for _ in 0..total / chunk {
                if w.write_all(&data).is_err() {
                    break;
                }
            }
        }
    }
    std::process::exit(0)
}

fn grow_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// The plain-TCP peer: connects to `addr`, then `echo` answers every
/// 8-byte message; `source N CHUNK` writes N bytes. Unencrypted, with
/// TCP_NODELAY as remex's sockets: the floor of `socket=`.
fn tcp_peer(mode: &str, args: &[String]) -> ! {
    let s = std::net::TcpStream::connect(&args[0]).expect("the bench listens");
    let _ = s.set_nodelay(true);
    let r = s.try_clone().expect("the socket");
    serve_peer(mode, &args[1..], r, s)
}

/// A plain-TCP peer process connected to us.
fn tcp_peer_start(args: &[&str]) -> (std::process::Child, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback");
    let addr = l.local_addr().unwrap().to_string();
    let mut a = vec!["--tcp-peer", args[0], &addr];
    a.extend_from_slice(&args[1..]);
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(&a)
        .spawn()
        .expect("tcp peer starts");
    let (s, _) = l.accept().expect("the peer connects");
    let _ = s.set_nodelay(true);
    (child, s)
}

/// Mean floor round trip in microseconds over `n` 8-byte pings to an
/// echo peer.
fn floor_rtt(w: &mut impl Write, r: &mut impl Read, n: usize) -> f64 {
    let mut b = [0u8; 8];
    let t0 = Instant::now();
    for i in 0..n as u64 {
        w.write_all(&i.to_le_bytes()).unwrap();
        r.read_exact(&mut b).unwrap();
    }
    t0.elapsed().as_secs_f64() / n as f64 * 1e6
}

/// Floor bandwidth in MB/s: reads `r` to its end in `chunk`-byte reads.
fn floor_rate(r: &mut impl Read, chunk: usize) -> f64 {
    let mut buf = vec![0u8; chunk];
    let t0 = Instant::now();
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    got as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Plain-TCP bandwidth in MB/s from a peer process writing `total` bytes.
fn tcp_bandwidth(total: usize, chunk: usize) -> f64 {
    let (mut child, mut s) = tcp_peer_start(&["source", &total.to_string(), &chunk.to_string()]);
    let bw = floor_rate(&mut s, chunk);
    child.wait().unwrap();
    bw
}

/// Mean remex round trip in microseconds over `n` pings on `ch` (an
/// `echo_loop` call).
async fn remex_rtt(ch: &remex::Channel, n: usize) -> remex::Result<f64> {
    let t0 = Instant::now();
    for i in 0..n as i64 {
        ch.send_value(Value::Int(i)).await?;
        ch.receive_value().await?;
    }
    Ok(t0.elapsed().as_secs_f64() / n as f64 * 1e6)
}

/// remex bandwidth in MB/s: `gw`'s worker streams `total` bytes in
/// `chunk`-byte items.
async fn remex_rate(gw: &remex::Gateway, total: usize, chunk: usize) -> remex::Result<f64> {
    let ch = gw.remote_call("bulk", &(total, chunk))?;
    let t0 = Instant::now();
    let mut got = 0;
    while got < total {
        if let Value::Bytes(b) = ch.receive_value().await? {
            got += b.len();
        }
    }
    let r = got as f64 / t0.elapsed().as_secs_f64() / 1e6;
    ch.waitclose(Some(Duration::from_secs(60))).await?;
    Ok(r)
}

struct SocketRows {
    rtt: Paired,
    bulk: Paired,
    /// AES-256-GCM sealing as the session does it, MB/s, one per round.
    seal: Vec<f64>,
}

/// The session's cipher alone, in MB/s: a real handshake over an
/// in-memory pipe, then `total` bytes sealed into records on this thread
/// (the work each side of a bulk transfer adds to its kernel copy).
async fn seal_rate(total: usize, chunk: usize) -> f64 {
    use remex::core::transport::secure;
    let psk = secure::psk(b"bench");
    let (a, b) = tokio::io::duplex(4096);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (client, _server) = tokio::join!(
        secure::initiate(&mut ar, &mut aw, &psk, secure::Use::Socket),
        secure::respond(&mut br, &mut bw, &psk, secure::Use::Socket)
    );
    let (_, writer) = secure::split(client.expect("handshake"), ar, aw, "bench");
    let (_, mut sealer) = writer.into_parts().expect("no output pending");
    let plain = vec![b'x'; chunk];
    let mut out = bytes::BytesMut::with_capacity(secure::Sealer::sealed_len(chunk));
    let t0 = Instant::now();
    for _ in 0..total / chunk {
        out.clear();
        sealer.seal(&plain, &mut out).expect("seal");
    }
    (total / chunk * chunk) as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// (j), (k): a `socket=` gateway to this program listening on loopback
/// (the encrypted session), beside the plain-TCP floor, round by round.
async fn socket_rows(c: &Counts) -> remex::Result<SocketRows> {
    let dir = std::env::temp_dir().join(format!("remex-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret = dir.join("secret");
    std::fs::write(
        &secret,
        format!("remex bench secret {:032x}", std::process::id()),
    )
    .expect("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("secret mode");
    let mut listener = Command::new(std::env::current_exe().expect("own path"))
        .env(remex::core::transport::popen::WORKER_ENV, "1")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--secret-file")
        .arg(&secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the listener starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(listener.stdout.take().unwrap()),
        &mut line,
    )
    .expect("the listener says where");
    let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    let spec = format!("socket={addr}//secret_file={}", secret.display());
    let result = async {
        let gw = makegateway(&spec).await?;
        let ch = gw.remote_call("echo_loop", &())?;
        let (mut echo_child, mut echo) = tcp_peer_start(&["echo"]);
        let mut echo_r = echo.try_clone().expect("the socket");
        remex_rtt(&ch, 200).await?;
        floor_rtt(&mut echo, &mut echo_r, 200);
        let mut rtt = Paired::default();
        for _ in 0..c.rounds {
            let r = remex_rtt(&ch, c.pings).await?;
            rtt.push(r, floor_rtt(&mut echo, &mut echo_r, c.pings));
        }
        drop((echo, echo_r));
        let _ = echo_child.wait();
        ch.close(None);
        let total = c.bulk_mb << 20;
        let mut bulk = Paired::default();
        let mut seal = Vec::new();
        for _ in 0..c.rounds {
            let r = remex_rate(&gw, total, c.chunk).await?;
            bulk.push(r, tcp_bandwidth(total, c.chunk));
            seal.push(seal_rate(total, c.chunk).await);
        }
        gw.exit().await?;
        Ok(SocketRows { rtt, bulk, seal })
    }
    .await;
    let _ = listener.kill();
    let _ = listener.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Rows (l) and (m): scripts. (l) a script calling the `echo` task `calls`
/// times in a loop, per call, beside the same calls from the controller
/// (`remote_call` + receive, one after another); (m) a tight arithmetic
/// loop under no limits, the default limits (memory) and every limit set,
/// alternating, medians.
struct ScriptRows {
    script_call_us: f64,
    remote_call_us: f64,
    loop_none_ms: f64,
    loop_default_ms: f64,
    loop_all_ms: f64,
}

async fn script_rows(c: &Counts) -> remex::Result<ScriptRows> {
    let calls = c.tasks;
    let gw = makegateway("popen//worker=self").await?;
    let mut script = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..c.rounds.min(5) {
        let t0 = Instant::now();
        let ch = gw.remote_exec_with(
            "let s = 0; for i in 0..n { s += call_task(\"echo\", i); } channel.send(s)",
            &std::collections::HashMap::from([("n", calls)]),
        )?;
        let sum: i64 = ch.receive().await?;
        assert_eq!(sum as usize, calls * (calls - 1) / 2);
        script.push(t0.elapsed().as_secs_f64() / calls as f64 * 1e6);
        let n = calls / 10;
        let t0 = Instant::now();
        for i in 0..n {
            let _: i64 = gw.remote_call("echo", &i)?.receive().await?;
        }
        direct.push(t0.elapsed().as_secs_f64() / n as f64 * 1e6);
    }
    gw.exit().await?;
    let specs = [
        "popen//worker=self//script_max_memory=0",
        "popen//worker=self",
        "popen//worker=self//script_max_operations=1000000000000//script_max_string=1000000//script_max_array=1000000//script_max_map=1000000",
    ];
    let mut gws = Vec::new();
    for s in specs {
        gws.push(makegateway(s).await?);
    }
    let iters = c.msgs * 2;
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..c.rounds {
        for (g, t) in gws.iter().zip(times.iter_mut()) {
            let t0 = Instant::now();
            let ch = g.remote_exec_with(
                "let s = 0; for i in 0..n { s += i % 7; } channel.send(s)",
                &std::collections::HashMap::from([("n", iters)]),
            )?;
            let _: i64 = ch.receive().await?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    for g in gws {
        g.exit().await?;
    }
    let [none, default, all] = times;
    Ok(ScriptRows {
        script_call_us: median(script),
        remote_call_us: median(direct),
        loop_none_ms: median(none),
        loop_default_ms: median(default),
        loop_all_ms: median(all),
    })
}

fn print_script_rows(s: &ScriptRows, iters: usize) {
    println!(
        "| (l) a script calling a task in a loop, per call | {:.2} us | | | | | < 2 us |",
        s.script_call_us
    );
    println!(
        "| (l') the same calls from the controller (remote_call + receive), per call | {:.1} us | | | | ({:.0}x the script's) | |",
        s.remote_call_us,
        s.remote_call_us / s.script_call_us
    );
    println!(
        "| (m) a tight script loop ({iters} iterations): no limits / default (memory) / every limit | {:.0} ms / {:.0} ms ({:+.1}%) / {:.0} ms ({:+.1}%) | | | | | limits < 10% |",
        s.loop_none_ms,
        s.loop_default_ms,
        (s.loop_default_ms / s.loop_none_ms - 1.0) * 100.0,
        s.loop_all_ms,
        (s.loop_all_ms / s.loop_none_ms - 1.0) * 100.0
    );
}

/// Rows (n)-(p): the `remex` command beside GNU parallel, and rsync beside
/// `rsync -a`, in the same run. `None` where the other tool is missing.
struct CliRows {
    /// The floor: `/bin/true` spawned from two threads of this program.
    spawn_floor: f64,
    local_remex: f64,
    local_parallel: Option<f64>,
    ssh: Result<SshCliRows, String>,
}

struct SshCliRows {
    jobs_remex: f64,
    jobs_parallel: Option<f64>,
    rsync_first: f64,
    rsync_again: f64,
    rsync_tool: Option<(f64, f64)>,
}

/// Jobs per second of `cmd`, run to its end (it must succeed).
fn jobs_per_s(mut cmd: Command, jobs: usize) -> Result<f64, String> {
    let t0 = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(jobs as f64 / t0.elapsed().as_secs_f64())
}

fn remex_cli() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("remex")))
        .unwrap_or_else(|| "remex".into())
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn cli_rows(jobs: usize, files: usize) -> Result<CliRows, String> {
    let remex = remex_cli();
    if !remex.exists() {
        return Err(format!(
            "{} is missing (cargo build --release -p remex-cli)",
            remex.display()
        ));
    }
    let inputs: Vec<String> = (1..=jobs).map(|i| i.to_string()).collect();
    let run = |tx: &[&str]| {
        let mut c = Command::new(&remex);
        c.arg("run").arg("--no-bar");
        for t in tx {
            c.args(["--tx", t]);
        }
        c.args(["--", "/bin/true", ":::"]).args(&inputs);
        c
    };
    let parallel = |extra: &[&str]| {
        let mut c = Command::new("parallel");
        c.args(extra).args(["/bin/true", ":::"]).args(&inputs);
        c
    };
    let has_parallel = have("parallel");
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for half in inputs.chunks(jobs.div_ceil(2)) {
            s.spawn(move || {
                for i in half {
                    let _ = Command::new("/bin/true").arg(i).status();
                }
            });
        }
    });
    let spawn_floor = jobs as f64 / t0.elapsed().as_secs_f64();
    let local_remex = jobs_per_s(run(&["2*popen"]), jobs)?;
    let local_parallel = if has_parallel {
        Some(jobs_per_s(parallel(&["-j2"]), jobs)?)
    } else {
        None
    };
    let ssh = async {
        if !std::path::Path::new("/usr/sbin/sshd").exists() {
            return Err("no sshd (apt-get install -y openssh-server)".into());
        }
        let sshd = remex_tests::Sshd::start("127.0.0.7");
        let cfg = sshd.alias_config("remexcli");
        let spec = format!("ssh=remexcli//ssh_config={}", cfg.display());
        // The first run uploads the remex binary; the measured one reuses it.
        jobs_per_s(run(&[&spec]), 1.max(jobs / 100))?;
        let jobs_remex = jobs_per_s(run(&[&format!("2*{spec}")]), jobs)?;
        let jobs_parallel = if has_parallel {
            // GNU parallel opens an ssh connection per job: fewer jobs.
            let n = (jobs / 10).max(1);
            let ssh = format!("ssh -F {}", cfg.display());
            let mut c = Command::new("parallel");
            c.args(["-S", "2/remexcli", "--ssh", &ssh, "/bin/true", ":::"])
                .args(&inputs[..n]);
            Some(jobs_per_s(c, n)?)
        } else {
            None
        };
        // rsync: a tree of small files to two gateways, then again.
        let root = std::env::temp_dir().join(format!("remex-bench-rsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let src = root.join("src");
        for i in 0..files {
            let dir = src.join(format!("d{:03}", i % 100));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("f{i}")), format!("{i}\n").repeat(100))
                .map_err(|e| e.to_string())?;
        }
        let (rsync_first, rsync_again) = async {
            let a = makegateway(&spec).await.map_err(|e| e.to_string())?;
            let b = makegateway(&spec).await.map_err(|e| e.to_string())?;
            let send = || {
                remex::RSync::new(&src)
                    .add_target(&a, root.join("a").display().to_string())
                    .add_target(&b, root.join("b").display().to_string())
            };
            let t0 = Instant::now();
            send().send().await.map_err(|e| e.to_string())?;
            let first = t0.elapsed().as_secs_f64() * 1e3;
            let t0 = Instant::now();
            let r = send().send().await.map_err(|e| e.to_string())?;
            let again = t0.elapsed().as_secs_f64() * 1e3;
            if r.iter().any(|r| r.files_sent > 0) {
                return Err("the second send sent files".to_string());
            }
            a.exit().await.map_err(|e| e.to_string())?;
            b.exit().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((first, again))
        }
        .await?;
        let rsync_tool = if have("rsync") {
            let both = || -> Result<f64, String> {
                let t0 = Instant::now();
                let kids: Vec<_> = ["ra", "rb"]
                    .iter()
                    .map(|d| {
                        Command::new("rsync")
                            .args(["-a", "-e", &format!("ssh -F {}", cfg.display())])
                            .arg(format!("{}/", src.display()))
                            .arg(format!("remexcli:{}/", root.join(d).display()))
                            .spawn()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                for mut k in kids {
                    let s = k.wait().map_err(|e| e.to_string())?;
                    if !s.success() {
                        return Err(format!("rsync -a failed: {s}"));
                    }
                }
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            };
            Some((both()?, both()?))
        } else {
            None
        };
        let _ = std::fs::remove_dir_all(&root);
        Ok::<_, String>(SshCliRows {
            jobs_remex,
            jobs_parallel,
            rsync_first,
            rsync_again,
            rsync_tool,
        })
    }
    .await;
    Ok(CliRows {
        spawn_floor,
        local_remex,
        local_parallel,
        ssh,
    })
}

fn print_cli_rows(r: &Result<CliRows, String>, jobs: usize, files: usize) {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            println!("| (n)-(p) the remex command | not measured: {e} | | | | | |");
            return;
        }
    };
    let vs = |mine: f64, theirs: Option<f64>| match theirs {
        Some(t) => (
            format!("{t:.0} jobs/s"),
            format!("{:.1}x GNU parallel", mine / t),
        ),
        None => ("n/a (apt-get install parallel)".into(), String::new()),
    };
    let (p, ratio) = vs(r.local_remex, r.local_parallel);
    println!(
        "| (n0) the floor: /bin/true spawned from 2 threads | {:.0} jobs/s | | | | remex at {:.0}% of it | |",
        r.spawn_floor,
        r.local_remex / r.spawn_floor * 100.0
    );
    println!(
        "| (n) {jobs} /bin/true jobs, 2 local workers (remex run --tx 2*popen / parallel -j2) | {:.0} jobs/s | | {p} | | {ratio} | >= 10x GNU parallel |",
        r.local_remex
    );
    match &r.ssh {
        Ok(s) => {
            let (p, ratio) = vs(s.jobs_remex, s.jobs_parallel);
            println!(
                "| (o) /bin/true jobs over 2 ssh connections, loopback (remex run --tx 2*ssh= / parallel -S 2/host) | {:.0} jobs/s | | {p} | | {ratio} | >= 10x GNU parallel |",
                s.jobs_remex
            );
            let tool = |i: usize| {
                s.rsync_tool
                    .map(|t| format!("{:.0} ms", if i == 0 { t.0 } else { t.1 }))
                    .unwrap_or_else(|| "n/a (apt-get install rsync)".into())
            };
            let x = |mine: f64, i: usize| {
                s.rsync_tool
                    .map(|t| format!("{:.1}x rsync -a", (if i == 0 { t.0 } else { t.1 }) / mine))
                    .unwrap_or_default()
            };
            println!(
                "| (p) rsync of {files} files to 2 ssh gateways: first send (rsync -a twice at once) | {:.0} ms | | {} | | {} | |",
                s.rsync_first, tool(0), x(s.rsync_first, 0)
            );
            println!(
                "| (p') the same, nothing changed | {:.0} ms | | {} | | {} | |",
                s.rsync_again,
                tool(1),
                x(s.rsync_again, 1)
            );
        }
        Err(e) => println!("| (o), (p) over ssh | not measured: {e} | | | | | |"),
    }
}

fn print_socket_rows(s: &SocketRows) {
    println!(
        "| (j) socket= ping-pong round trip (Noise session), loopback | {:.1} us | {:.1} us (plain TCP) | | {:.2}x the floor | | <= 1.5x the floor |",
        median(s.rtt.remex.clone()),
        median(s.rtt.floor.clone()),
        s.rtt.ratio()
    );
    println!(
        "| (k) socket= bulk bytes (Noise session), loopback | {:.0} MB/s | {:.0} MB/s (plain TCP) | | {:.0}% of the floor | | >= 60% of the floor |",
        median(s.bulk.remex.clone()),
        median(s.bulk.floor.clone()),
        s.bulk.ratio() * 100.0
    );
    // Each side of an encrypted transfer does its floor's kernel copy and
    // one AES-GCM pass over every byte, on one core per side: per byte,
    // 1/floor + 1/seal, so the best share of the floor is seal/(seal+floor).
    let ceiling = median(
        s.seal
            .iter()
            .zip(&s.bulk.floor)
            .map(|(a, f)| a / (a + f))
            .collect(),
    );
    println!(
        "| (k') AES-256-GCM sealing alone (the session's cipher, one core) | {:.0} MB/s | | | ceiling for (k) on one core per side: {:.0}% of the floor; (k) reaches {:.0}% of it | | |",
        median(s.seal.clone()),
        ceiling * 100.0,
        s.bulk.ratio() / ceiling * 100.0
    );
}

/// The raw pipe peer for round trips: a child process echoing 8-byte
/// messages over plain pipes with blocking I/O.
struct PipeEcho {
    child: std::process::Child,
    w: std::process::ChildStdin,
    r: std::process::ChildStdout,
}

impl PipeEcho {
    fn start() -> PipeEcho {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--pipe-peer", "echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("pipe peer starts");
        let w = child.stdin.take().unwrap();
        let r = child.stdout.take().unwrap();
        PipeEcho { child, w, r }
    }

    /// Mean round trip in microseconds over `n` pings.
    fn rtt(&mut self, n: usize) -> f64 {
        floor_rtt(&mut self.w, &mut self.r, n)
    }

    fn stop(self) {
        drop(self.w);
        let mut child = self.child;
        child.wait().unwrap();
    }
}

/// Raw pipe bandwidth in MB/s: a child writes `total` bytes in `chunk`
/// writes; with `big`, the pipe has 1 MiB of buffer like remex's pipes.
fn pipe_bandwidth(total: usize, chunk: usize, big: bool) -> f64 {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--pipe-peer",
            "source",
            &total.to_string(),
            &chunk.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = child.stdout.take().unwrap();
    if big {
        grow_pipe(std::os::fd::AsRawFd::as_raw_fd(&r));
    }
    let bw = floor_rate(&mut r, chunk);
    child.wait().unwrap();
    bw
}

/// One row measured against its floor, round by round.
#[derive(Default)]
struct Paired {
    remex: Vec<f64>,
    floor: Vec<f64>,
}

impl Paired {
    fn push(&mut self, remex: f64, floor: f64) {
        self.remex.push(remex);
        self.floor.push(floor);
    }
    /// Median of the per-round ratios remex / floor.
    fn ratio(&self) -> f64 {
        median(
            self.remex
                .iter()
                .zip(&self.floor)
                .map(|(r, f)| r / f)
                .collect(),
        )
    }
}

struct RemexRows {
    create_ms: f64,
    /// (a)'s floor: this binary spawned until its first byte, ms.
    create_floor_ms: f64,
    rtt: Paired,
    rtt_threads: Paired,
    msgs_per_s: f64,
    bulk: Paired,
    bulk_default_pipe: f64,
}

async fn remex_rows(c: &Counts) -> remex::Result<RemexRows> {
    let spec = "popen//worker=self";
    let mut creates = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..c.reps {
        floors.push(spawn_floor_ms(1));
        let t0 = Instant::now();
        let gw = makegateway(spec).await?;
        gw.remote_exec("channel.send(1)")?.receive::<i64>().await?;
        creates.push(t0.elapsed().as_secs_f64() * 1e3);
        gw.exit().await?;
    }
    let gw = makegateway(spec).await?;
    let ch = gw.remote_call("echo_loop", &())?;
    let mut echo = PipeEcho::start();
    remex_rtt(&ch, 200).await?;
    echo.rtt(200);
    // Rounds alternate remex and the floor, so both see the same noise.
    let mut rtt = Paired::default();
    for _ in 0..c.rounds {
        let r = remex_rtt(&ch, c.pings).await?;
        rtt.push(r, echo.rtt(c.pings));
    }
    // The same from a plain thread with blocking calls, as remex::blocking
    // and execnet users write it.
    let mut rtt_threads = Paired::default();
    for _ in 0..c.rounds {
        let (ch2, n) = (ch.clone(), c.pings);
        let r = tokio::task::spawn_blocking(move || -> remex::Result<f64> {
            let t0 = Instant::now();
            for i in 0..n as i64 {
                ch2.send_value_blocking(Value::Int(i))?;
                ch2.receive_value_blocking(None)?;
            }
            Ok(t0.elapsed().as_secs_f64() / n as f64 * 1e6)
        })
        .await
        .expect("the ping thread runs")?;
        rtt_threads.push(r, echo.rtt(c.pings));
    }
    echo.stop();
    ch.close(None);
    let mut rates = Vec::new();
    for _ in 0..3 {
        let ch = gw.remote_call("flood", &(c.msgs as i64))?;
        let t0 = Instant::now();
        for _ in 0..c.msgs {
            ch.receive_value().await?;
        }
        rates.push(c.msgs as f64 / t0.elapsed().as_secs_f64());
        ch.waitclose(Some(Duration::from_secs(60))).await?;
    }
    let total = c.bulk_mb << 20;
    let mut bulk = Paired::default();
    let mut default_pipe = Vec::new();
    for _ in 0..c.rounds {
        let r = remex_rate(&gw, total, c.chunk).await?;
        bulk.push(r, pipe_bandwidth(total, c.chunk, true));
        default_pipe.push(pipe_bandwidth(total, c.chunk, false));
    }
    gw.exit().await?;
    Ok(RemexRows {
        create_ms: median(creates),
        create_floor_ms: median(floors),
        rtt,
        rtt_threads,
        msgs_per_s: median(rates),
        bulk,
        bulk_default_pipe: median(default_pipe),
    })
}

/// Row (f) and (f-dash): `rounds` rounds of `tasks` trivial tasks over 2
/// workers, alternately without a dashboard and with one served and a
/// page reading its live feed; tasks/s of each.
async fn f_rates(spec: &str, tasks: usize, rounds: usize) -> remex::Result<(Vec<f64>, Vec<f64>)> {
    use remex::{gather, Errors, Group};
    let g = Group::new([format!("2*{spec}")]).await?;
    g.set_tasks_per_worker(16);
    let rate = || async {
        let t0 = Instant::now();
        let futs = (0..tasks)
            .map(|i| g.submit::<Value>("echo", &(i as i64)))
            .collect::<remex::Result<Vec<_>>>()?;
        let got = gather(futs, Errors::Raise).await?;
        assert_eq!(got.value.len(), tasks);
        Ok::<f64, remex::Error>(tasks as f64 / t0.elapsed().as_secs_f64())
    };
    let mut rates = Vec::new();
    let mut watched = Vec::new();
    for _ in 0..rounds {
        rates.push(rate().await?);
        let board = g.dashboard("127.0.0.1:0").await?;
        let page = tokio::spawn(watch_feed(board.addr()));
        watched.push(rate().await?);
        page.abort();
        drop(board);
    }
    g.terminate(Duration::from_secs(1)).await;
    Ok((rates, watched))
}

/// A page of the dashboard at `addr`, as a browser holds it: reads its
/// live feed until aborted.
async fn watch_feed(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    if s.write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 1 << 16];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

struct GroupRows {
    /// (e) ms: Group of 8 created, remote_exec on all, gathered, terminated.
    group8_ms: f64,
    /// (e)'s floor: 8 of this binary spawned at once until a byte each, ms.
    group8_floor_ms: f64,
    /// (f) trivial tasks per second through submit/gather over 2 workers.
    tasks_per_s: f64,
    /// (f) with a dashboard served and a page reading its live feed.
    tasks_per_s_watched: f64,
    /// (g) ms to create and to terminate 64 gateways, and KiB of controller
    /// memory per gateway.
    group64: (f64, f64, f64, f64),
    /// (g') 512 gateways: create ms, terminate ms, KiB and fds each, exec
    /// on all ms.
    group512: (f64, f64, f64, f64, f64),
    /// (f'') per worker count: 10 execs on all ms, 20,000 tasks ms, the
    /// controller's CPU ms during the tasks (or why not).
    pool_scale: Vec<(usize, PoolScale)>,
}

/// One line of (f''): exec ms, tasks ms, CPU ms, or why not.
type PoolScale = Result<(f64, f64, f64), String>;

/// The floor of a start: `n` copies of this program spawned at once, each
/// writing one byte and exiting at once (`--one-byte`, before anything
/// else), until every byte is in; ms.
fn spawn_floor_ms(n: usize) -> f64 {
    use std::io::Read;
    let exe = std::env::current_exe().expect("own path");
    let t0 = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(&exe)
                .arg("--one-byte")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut children: Vec<_> = children
        .into_iter()
        .map(|mut c| {
            let mut b = [0u8; 1];
            c.stdout
                .as_mut()
                .expect("piped")
                .read_exact(&mut b)
                .expect("a byte");
            c
        })
        .collect();
    let took = t0.elapsed().as_secs_f64() * 1e3;
    for c in &mut children {
        let _ = c.wait();
    }
    took
}

/// This process's CPU time so far (user + system), in ms.
fn own_cpu_ms() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// The process's peak resident memory so far (VmHWM), in KiB.
fn peak_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Runs this program with `args` in a fresh process (so that its memory
/// figures are its own) and reads the numbers it prints.
fn own_child(args: &[&str]) -> Result<Vec<f64>, String> {
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect())
}

/// Runs `--group-only N` in a fresh process: (create ms, terminate ms,
/// KiB per gateway, fds per gateway, exec-on-all ms).
fn group_child(n: usize) -> (f64, f64, f64, f64, f64) {
    match own_child(&["--group-only", &n.to_string()]).as_deref() {
        Ok([a, b, c, d, e]) => (*a, *b, *c, *d, *e),
        other => panic!("the group child ({n}) printed {other:?}"),
    }
}

/// Runs `--flood-only MIB` in a fresh process: (controller peak growth in
/// KiB, seconds).
fn flood_child(mib: usize) -> Result<(f64, f64), String> {
    match own_child(&["--flood-only", &mib.to_string()])?.as_slice() {
        [a, b] => Ok((*a, *b)),
        other => Err(format!("the flood child printed {other:?}")),
    }
}

/// The number `dask_ray_bench.py WHICH ARG ROUNDS` prints, or why none
/// (not installed, failed).
fn python_value(which: &str, arg: &str, rounds: usize) -> Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dask_ray_bench.py");
    let out = Command::new("python3")
        .args([script, which, arg, &rounds.to_string()])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").trim().to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| "no value printed".to_string())
}

/// Trivial tasks per second through dask.distributed or Ray (`which`):
/// `n` tasks per round.
fn python_rate(which: &str, n: usize, rounds: usize) -> Result<f64, String> {
    python_value(which, &n.to_string(), rounds)
}

fn rss_kib() -> f64 {
    remex_tests::rss_bytes(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

async fn group_rows(c: &Counts) -> remex::Result<GroupRows> {
    use remex::Group;
    let spec = "popen//worker=self";
    let mut times = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..c.reps.min(11) {
        floors.push(spawn_floor_ms(8));
        let t0 = Instant::now();
        let g = Group::new([format!("8*{spec}")]).await?;
        let mch = g.remote_exec("channel.send(1)")?;
        let got: Vec<i64> = mch.receive_each().await?;
        assert_eq!(got.len(), 8);
        g.terminate(Duration::from_secs(1)).await;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (rates, watched) = f_rates(spec, c.tasks, 3).await?;
    // (g) and (g') in fresh processes, so that their memory figures are
    // not blurred by what the earlier rows allocated and freed.
    let (create, term, per_gw, fds, _) = group_child(64);
    let g512 = group_child(512);
    // (f''): fresh processes too (each starts its workers).
    let pool_scale = [10, 1000, 2000]
        .into_iter()
        .map(|n| {
            let got = own_child(&["--pool-scale-only", &n.to_string(), "20000"]).and_then(|v| {
                match v.as_slice() {
                    [exec, tasks, cpu] => Ok((*exec, *tasks, *cpu)),
                    other => Err(format!("the child printed {other:?}")),
                }
            });
            (n, got)
        })
        .collect();
    Ok(GroupRows {
        pool_scale,
        group8_ms: median(times),
        group8_floor_ms: median(floors),
        tasks_per_s: median(rates),
        tasks_per_s_watched: median(watched),
        group64: (create, term, per_gw, fds),
        group512: g512,
    })
}

/// ssh rows: gateway create with a cached worker + first reply, and the
/// round trip, against a real sshd on 127.0.0.2 (started here, as root);
/// execnet's ssh gateway against the same sshd when it can reach it.
/// What the ssh rows measured.
struct SshRows {
    /// (h) ms: one gateway created (cached worker) and its first reply.
    create: f64,
    /// (i) us: a round trip.
    rtt: f64,
    /// execnet's (h) and (i), when it ran.
    execnet: Option<(f64, f64)>,
    /// (h') ms: a Group of 1 and of 16 gateways to the one host ready and
    /// answering an exec on each (medians).
    group: (f64, f64),
}

/// ms for a Group of `n` ssh gateways (`spec`) to start and answer an exec
/// on each, ended after.
async fn ssh_group_ms(spec: &str, n: usize) -> Result<f64, String> {
    let t0 = Instant::now();
    let g = remex::Group::new([format!("{n}*{spec}")])
        .await
        .map_err(|e| e.to_string())?;
    let mch = g
        .remote_exec("channel.send(1)")
        .map_err(|e| e.to_string())?;
    let got: Vec<i64> = mch.receive_each().await.map_err(|e| e.to_string())?;
    assert_eq!(got.len(), n);
    let took = t0.elapsed().as_secs_f64() * 1e3;
    g.terminate(Duration::from_secs(2)).await;
    Ok(took)
}

/// The Slurm rows: (s) 8 workers ready, dial-back and stdio; (s') bulk
/// bytes from one worker through dial-back and through srun's stdio;
/// (s'') trivial tasks through 2 dial-back workers.
struct SlurmRows {
    /// Create + first reply from all 8, ms (median): dial-back, stdio.
    ready8: (f64, f64),
    /// MB/s (median): dial-back, stdio.
    bulk: (f64, f64),
    tasks_per_s: f64,
    tasks: usize,
    bulk_mb: usize,
}

fn slurm_present() -> Result<(), String> {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("idle"));
    match ok {
        Some(true) => Ok(()),
        Some(false) => Err("no idle Slurm node (sinfo)".into()),
        None => Err("no Slurm here (bash .ci/slurm-up starts one)".into()),
    }
}

async fn slurm_rows(c: &Counts) -> Result<SlurmRows, String> {
    use remex::{gather, Errors, Group};
    slurm_present()?;
    let spec = |extra: &str| format!("slurm//job_name=remex-bench//worker=self{extra}");
    let dial = "//listen=127.0.0.1";
    let err = |e: remex::Error| e.to_string();
    let ready = |extra: String| async move {
        let t0 = Instant::now();
        let g = Group::new([spec(&extra)]).await.map_err(err)?;
        let got: Vec<i64> = g
            .remote_exec("channel.send(1)")
            .map_err(err)?
            .receive_each()
            .await
            .map_err(err)?;
        assert_eq!(got.len(), 8);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        g.terminate(Duration::from_secs(2)).await;
        Ok::<f64, String>(ms)
    };
    let (mut rd, mut rs) = (Vec::new(), Vec::new());
    for _ in 0..c.reps.clamp(1, 3) {
        rd.push(ready(format!("//ntasks=8{dial}")).await?);
        rs.push(ready("//ntasks=8//stdio".to_string()).await?);
    }
    let total = (c.bulk_mb / 4).max(16) << 20;
    let rate = |extra: &'static str| async move {
        let g = Group::new([spec(extra)]).await.map_err(err)?;
        let gw = g.gateways().remove(0);
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(remex_rate(&gw, total, c.chunk).await.map_err(err)?);
        }
        g.terminate(Duration::from_secs(2)).await;
        Ok::<f64, String>(median(v))
    };
    let bulk = (rate("//listen=127.0.0.1").await?, rate("//stdio").await?);
    let g = Group::new([spec(&format!("//ntasks=2{dial}"))])
        .await
        .map_err(err)?;
    g.set_tasks_per_worker(16);
    let tasks = 2_000;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let futs = (0..tasks)
            .map(|i| g.submit::<Value>("echo", &(i as i64)))
            .collect::<remex::Result<Vec<_>>>()
            .map_err(err)?;
        let got = gather(futs, Errors::Raise).await.map_err(err)?;
        assert_eq!(got.value.len(), tasks);
        rates.push(tasks as f64 / t0.elapsed().as_secs_f64());
    }
    g.terminate(Duration::from_secs(2)).await;
    Ok(SlurmRows {
        ready8: (median(rd), median(rs)),
        bulk,
        tasks_per_s: median(rates),
        tasks,
        bulk_mb: total >> 20,
    })
}

fn print_slurm_rows(r: &Result<SlurmRows, String>) {
    match r {
        Ok(r) => {
            println!(
                "| (s) slurm//ntasks=8 (one allocation): create + first reply from all 8, workers dialing back / over srun stdio | {:.0} ms / {:.0} ms | | | | | < 1 s |",
                r.ready8.0, r.ready8.1
            );
            println!(
                "| (s') bulk bytes from one Slurm worker ({} MiB): dial-back / srun stdio | {:.0} MB/s / {:.0} MB/s | | | {:.1}x stdio | | dial-back >= 10x stdio |",
                r.bulk_mb,
                r.bulk.0,
                r.bulk.1,
                r.bulk.0 / r.bulk.1
            );
            println!(
                "| (s'') {} trivial tasks through 2 Slurm workers (dial-back) | {:.0} tasks/s | | | | | |",
                r.tasks, r.tasks_per_s
            );
        }
        Err(why) => println!("| (s) Slurm rows | not measured: {why} | | | | | |"),
    }
}

async fn ssh_rows(c: &Counts) -> Result<SshRows, String> {
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        return Err("no sshd (apt-get install -y openssh-server)".into());
    }
    let sshd = remex_tests::Sshd::start("127.0.0.2");
    let cfg = sshd.alias_config("remexbench");
    let spec = format!("ssh=remexbench//ssh_config={}//worker=self", cfg.display());
    // The first connect uploads this program; the measured ones reuse it.
    let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
    gw.exit().await.map_err(|e| e.to_string())?;
    let mut creates = Vec::new();
    for _ in 0..c.reps.min(11) {
        let t0 = Instant::now();
        let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
        gw.remote_exec("channel.send(1)")
            .map_err(|e| e.to_string())?
            .receive::<i64>()
            .await
            .map_err(|e| e.to_string())?;
        creates.push(t0.elapsed().as_secs_f64() * 1e3);
        gw.exit().await.map_err(|e| e.to_string())?;
    }
    let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
    let ch = gw
        .remote_call("echo_loop", &())
        .map_err(|e| e.to_string())?;
    let n = c.pings.min(5_000);
    for i in 0..200i64 {
        ch.send_value(Value::Int(i))
            .await
            .map_err(|e| e.to_string())?;
        ch.receive_value().await.map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    for i in 0..n as i64 {
        ch.send_value(Value::Int(i))
            .await
            .map_err(|e| e.to_string())?;
        ch.receive_value().await.map_err(|e| e.to_string())?;
    }
    let rtt = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
    gw.exit().await.map_err(|e| e.to_string())?;
    // (h') one host, 1 and 16 workers, alternately.
    let (mut one, mut sixteen) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        one.push(ssh_group_ms(&spec, 1).await?);
        sixteen.push(ssh_group_ms(&spec, 16).await?);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/execnet_ssh_bench.py");
    let execnet = Command::new("python3")
        .arg(script)
        .arg(&cfg)
        .args([c.reps.min(11), n].map(|x| x.to_string()))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let t = String::from_utf8_lossy(&o.stdout).to_string();
            let v: Vec<f64> = t
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (v.len() == 2).then(|| (v[0], v[1]))
        });
    Ok(SshRows {
        create: median(creates),
        rtt,
        execnet,
        group: (median(one), median(sixteen)),
    })
}

/// Controller-to-worker one-way rate, as an extra row.
async fn remex_send_rate(c: &Counts) -> remex::Result<f64> {
    let gw = makegateway("popen//worker=self").await?;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let ch = gw.remote_call("sink", &())?;
        let t0 = Instant::now();
        for i in 0..c.msgs as i64 {
            ch.send_value(Value::Int(i)).await?;
        }
        ch.close_write();
        let n: i64 = ch.receive().await?;
        assert_eq!(n as usize, c.msgs);
        rates.push(c.msgs as f64 / t0.elapsed().as_secs_f64());
    }
    gw.exit().await?;
    Ok(median(rates))
}

fn execnet_rows(c: &Counts) -> Result<[f64; 5], String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/execnet_bench.py");
    let out = Command::new("python3")
        .arg(script)
        .args([c.reps, c.pings, c.msgs / 10, c.bulk_mb, c.chunk].map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> Result<f64, String> {
        let i = text
            .find(&format!("\"{k}\": "))
            .ok_or(format!("no {k} in {text}"))?;
        let rest = &text[i + k.len() + 4..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().map_err(|e| format!("{k}: {e}"))
    };
    Ok([
        field("create_ms")?,
        field("rtt_us")?,
        field("msgs_per_s")?,
        field("bulk_mb_s")?,
        field("group8_ms")?,
    ])
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--one-byte") {
        // The floor of (a) and (e): this program started, nothing done.
        use std::io::Write;
        let _ = std::io::stdout().write_all(b"1");
        std::process::exit(0);
    }
    serve_if_worker(worker);
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pipe-peer") {
        pipe_peer(&args[2], &args[3..]);
    }
    if args.get(1).map(String::as_str) == Some("--tcp-peer") {
        tcp_peer(&args[2], &args[3..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--group-only") {
        // Rows (g) and (g'): N gateways created, an exec on each, ended,
        // in a fresh process (so that its memory figure is its own).
        let n: usize = args.get(i + 1).and_then(|a| a.parse().ok()).unwrap_or(64);
        let open_fds = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let (before, fds_before) = (rss_kib(), open_fds());
        let t0 = Instant::now();
        let g = remex::Group::new([format!("{n}*popen//worker=self")])
            .await
            .expect("the gateways start");
        let create = t0.elapsed().as_secs_f64() * 1e3;
        let per_gw = (rss_kib() - before) / n as f64;
        let fds = (open_fds() - fds_before) as f64 / n as f64;
        let t1 = Instant::now();
        let mch = g.remote_exec("channel.send(1)").expect("exec on all");
        let got: Vec<i64> = mch.receive_each().await.expect("every reply");
        assert_eq!(got.len(), n);
        let exec = t1.elapsed().as_secs_f64() * 1e3;
        let t2 = Instant::now();
        g.terminate(Duration::from_secs(1)).await;
        println!(
            "{create:.1} {:.1} {per_gw:.1} {fds:.1} {exec:.1}",
            t2.elapsed().as_secs_f64() * 1e3
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--pool-scale-only") {
        // Row (f''): N workers; 10 execs on all of them (the same work
        // without the pool), then 20,000 trivial tasks through the pool;
        // prints exec ms, tasks ms, and this process's CPU ms during the
        // tasks.
        let n: usize = args.get(i + 1).and_then(|a| a.parse().ok()).unwrap_or(1000);
        let tasks: usize = args
            .get(i + 2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(20_000);
        let g = remex::Group::new([format!("{n}*popen//worker=self")])
            .await
            .expect("the gateways start");
        // Lanes open on the first task: a warm-up round.
        let warm: Vec<_> = (0..n * 2)
            .map(|i| g.submit::<Value>("echo", &(i as i64)).expect("submit"))
            .collect();
        remex::gather(warm, remex::Errors::Raise)
            .await
            .expect("warm-up");
        let t0 = Instant::now();
        for _ in 0..10 {
            let mch = g.remote_exec("channel.send(1)").expect("exec on all");
            let got: Vec<i64> = mch.receive_each().await.expect("every reply");
            assert_eq!(got.len(), n);
        }
        let exec = t0.elapsed().as_secs_f64() * 1e3;
        let cpu0 = own_cpu_ms();
        let t1 = Instant::now();
        let futs: Vec<_> = (0..tasks)
            .map(|i| g.submit::<Value>("echo", &(i as i64)).expect("submit"))
            .collect();
        let got = remex::gather(futs, remex::Errors::Raise)
            .await
            .expect("gather");
        assert_eq!(got.value.len(), tasks);
        let took = t1.elapsed().as_secs_f64() * 1e3;
        let cpu = own_cpu_ms() - cpu0;
        g.terminate(Duration::from_secs(5)).await;
        println!("{exec:.1} {took:.1} {cpu:.1}");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--flood-only") {
        // Row (q): the controller's peak memory while a worker writes MiB
        // megabytes to stderr without a newline.
        let mib: usize = args.get(i + 1).and_then(|a| a.parse().ok()).unwrap_or(256);
        let gw = makegateway("popen//worker=self").await.expect("gateway");
        let base = peak_kib();
        let t0 = Instant::now();
        gw.remote_call("stderr_flood", &mib)
            .expect("call")
            .waitclose(None)
            .await
            .expect("the flood ends");
        // The exit drains the worker's stderr: every byte was read by then.
        gw.exit().await.expect("exit");
        let took = t0.elapsed().as_secs_f64();
        println!("{:.0} {took:.2}", peak_kib() - base);
        return;
    }
    if args.iter().any(|a| a == "--pool-only") {
        // Profiling aid: only the task phase of row (f), 2 workers, 5
        // rounds of 20,000 trivial tasks (no other rows, so that a profile
        // of this process is the pool's).
        use remex::{gather, Errors, Group};
        let g = Group::new(["2*popen//worker=self"]).await.expect("group");
        g.set_tasks_per_worker(16);
        for _ in 0..5 {
            let t0 = Instant::now();
            let futs = (0..20_000i64)
                .map(|i| g.submit::<Value>("echo", &i))
                .collect::<remex::Result<Vec<_>>>()
                .expect("submit");
            let got = gather(futs, Errors::Raise).await.expect("gather");
            assert_eq!(got.value.len(), 20_000);
            println!("{:.0} tasks/s", 20_000.0 / t0.elapsed().as_secs_f64());
        }
        g.terminate(Duration::from_secs(1)).await;
        return;
    }
    if args.iter().any(|a| a == "--create-only") {
        // Profiling aid: only row (a), 21 creates, the median and the range.
        let mut v = Vec::new();
        let mut floors = Vec::new();
        for _ in 0..21 {
            floors.push(spawn_floor_ms(1));
            let t0 = Instant::now();
            let gw = makegateway("popen//worker=self").await.expect("gateway");
            let one: i64 = gw
                .remote_exec("channel.send(1)")
                .expect("exec")
                .receive()
                .await
                .expect("reply");
            assert_eq!(one, 1);
            v.push(t0.elapsed().as_secs_f64() * 1e3);
            gw.exit().await.expect("exit");
        }
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        println!(
            "create + first reply {:.2} ms (min {lo:.2}, max {hi:.2}); the floor {:.2} ms",
            median(v),
            median(floors)
        );
        return;
    }
    if args.iter().any(|a| a == "--tail-only") {
        // Only row (t).
        tail::print_tail_row(&tail::tail_row(3).await);
        return;
    }
    if args.iter().any(|a| a == "--testbed-slurm-ready") {
        testbed::slurm_ready_child().await;
        return;
    }
    if args.iter().any(|a| a == "--first-contact-only") {
        // Only row (v) (on the testbed).
        testbed::print_first_contact_row(&testbed::first_contact().await);
        return;
    }
    if args.iter().any(|a| a == "--testbed-only") {
        // Only the testbed rows (u)-(u''').
        let c = Counts {
            rounds: 3,
            pings: 2_000,
            bulk_mb: 128,
            chunk: 256 << 10,
            ..Counts::one_row()
        };
        testbed::print_testbed_rows(&testbed::testbed_rows(&c).await);
        return;
    }
    if args.iter().any(|a| a == "--slurm-only") {
        // Only the Slurm rows (s), (s'), (s'').
        let c = Counts {
            reps: 3,
            bulk_mb: 256,
            chunk: 256 << 10,
            ..Counts::one_row()
        };
        print_slurm_rows(&slurm_rows(&c).await);
        return;
    }
    if args.iter().any(|a| a == "--ssh-only") {
        // Profiling aid: only rows (h), (i) and (h').
        let c = Counts {
            reps: 3,
            pings: 2_000,
            ..Counts::one_row()
        };
        match ssh_rows(&c).await {
            Ok(r) => println!(
                "create {:.1} ms, rtt {:.1} us, 16 workers {:.0} ms, 1 worker {:.0} ms ({:.1}x)",
                r.create,
                r.rtt,
                r.group.1,
                r.group.0,
                r.group.1 / r.group.0
            ),
            Err(e) => println!("ssh rows: {e}"),
        }
        return;
    }
    if args.iter().any(|a| a == "--socket-only") {
        // Profiling aid: only rows (j) and (k).
        let c = Counts {
            rounds: 5,
            pings: 2_000,
            bulk_mb: 256,
            chunk: 256 << 10,
            ..Counts::one_row()
        };
        let s = socket_rows(&c).await.expect("socket benchmark");
        print_socket_rows(&s);
        return;
    }
    if args.iter().any(|a| a == "--bulk-only") {
        // Profiling aid: only row (d), remex and the floor alternating.
        let gw = makegateway("popen//worker=self").await.expect("gateway");
        let total = 256usize << 20;
        let chunk = 256usize << 10;
        let mut bulk = Paired::default();
        for _ in 0..7 {
            let r = remex_rate(&gw, total, chunk).await.expect("bulk");
            bulk.push(r, pipe_bandwidth(total, chunk, true));
        }
        println!(
            "bulk {:.0} MB/s, floor {:.0} MB/s, {:.0}% (per round: {:?} / {:?})",
            median(bulk.remex.clone()),
            median(bulk.floor.clone()),
            bulk.ratio() * 100.0,
            bulk.remex.iter().map(|x| x.round()).collect::<Vec<_>>(),
            bulk.floor.iter().map(|x| x.round()).collect::<Vec<_>>(),
        );
        return;
    }
    if args.iter().any(|a| a == "--floor-only") {
        let gw = if args.iter().any(|a| a == "--with-gateway") {
            Some(makegateway("popen//worker=self").await.expect("gateway"))
        } else {
            None
        };
        let mut echo = PipeEcho::start();
        let v: Vec<f64> = (0..7).map(|_| echo.rtt(2_000)).collect();
        drop(gw);
        println!("floor {v:.1?}");
        echo.stop();
        return;
    }
    if args.iter().any(|a| a == "--pingpong-only") {
        // Profiling aid: only row (b), remex and the floor alternating.
        let gw = makegateway("popen//worker=self").await.expect("gateway");
        let ch = gw.remote_call("echo_loop", &()).expect("echo loop");
        let mut echo = PipeEcho::start();
        let mut rtt = Paired::default();
        let wpid = gw.rinfo().pid;
        let ctx = |pid: u32| -> Vec<(String, u64)> {
            let mut v = Vec::new();
            for e in std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let st = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
                let name = st.lines().next().unwrap_or("").to_string();
                let n: u64 = st
                    .lines()
                    .filter(|l| l.contains("ctxt_switches"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum();
                v.push((format!("{}:{}", e.file_name().to_string_lossy(), name), n));
            }
            v
        };
        let me = std::process::id();
        let mode = if args.iter().any(|a| a == "--blocking") {
            "blocking"
        } else if args.iter().any(|a| a == "--spawned") {
            "spawned"
        } else {
            "main"
        };
        let round = |n: i64| {
            let ch = ch.clone();
            async move {
                let t0 = Instant::now();
                let run = {
                    let ch = ch.clone();
                    async move {
                        for i in 0..n {
                            ch.send_value(Value::Int(i)).await.expect("send");
                            ch.receive_value().await.expect("receive");
                        }
                    }
                };
                match mode {
                    "blocking" => tokio::task::spawn_blocking(move || {
                        for i in 0..n {
                            ch.send_value_blocking(Value::Int(i)).expect("send");
                            ch.receive_value_blocking(None).expect("receive");
                        }
                    })
                    .await
                    .unwrap(),
                    "spawned" => tokio::spawn(run).await.unwrap(),
                    _ => run.await,
                }
                t0.elapsed().as_secs_f64() / n as f64 * 1e6
            }
        };
        let (c0, w0) = (ctx(me), ctx(wpid));
        let r = round(10_000).await;
        let (c1, w1) = (ctx(me), ctx(wpid));
        println!("{mode}: {r:.1} us");
        for (a, b) in [(c0, c1), (w0, w1)] {
            for (name, n) in &b {
                let before = a.iter().find(|x| &x.0 == name).map_or(0, |x| x.1);
                if n - before > 100 {
                    println!(
                        "{name}: {:.2} switches per round trip",
                        (n - before) as f64 / 10_000.0
                    );
                }
            }
        }
        for _ in 0..7 {
            let r = round(2_000).await;
            rtt.push(r, echo.rtt(2_000));
        }
        echo.stop();
        println!(
            "remex {:.1} us, floor {:.1} us, ratio {:.2}x (per round: {:?} / {:?})",
            median(rtt.remex.clone()),
            median(rtt.floor.clone()),
            rtt.ratio(),
            rtt.remex.iter().map(|x| x.round()).collect::<Vec<_>>(),
            rtt.floor.iter().map(|x| x.round()).collect::<Vec<_>>(),
        );
        return;
    }
    if args.iter().any(|a| a == "--cli-only") {
        // Profiling aid: only rows (n)-(p).
        let (jobs, files) = (1_000, 10_000);
        print_cli_rows(&cli_rows(jobs, files).await, jobs, files);
        return;
    }
    if args.iter().any(|a| a == "--scripts-only") {
        // Profiling aid: only rows (l) and (m), as many rounds as the
        // full run.
        let c = Counts {
            tasks: 100_000,
            rounds: 9,
            msgs: 1_000_000,
            ..Counts::one_row()
        };
        let s = script_rows(&c).await.expect("script benchmark");
        print_script_rows(&s, c.msgs * 2);
        return;
    }
    if args.iter().any(|a| a == "--dash-only") {
        // Only rows (f) and (f-dash), alternating, 9 rounds each.
        let (off, on) = f_rates("popen//worker=self", 20_000, 9)
            .await
            .expect("row (f)");
        println!(
            "(f) {:.0} tasks/s [{}]; dashboard and a page open {:.0} tasks/s [{}]: {:.1}%",
            median(off.clone()),
            off.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            median(on.clone()),
            on.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            median(on.clone()) / median(off.clone()) * 100.0
        );
        return;
    }
    if args.iter().any(|a| a == "--tasks-only") {
        // Profiling aid: only row (f).
        let c = Counts {
            tasks: 20_000,
            ..Counts::one_row()
        };
        if args.iter().any(|a| a == "--raw-lane") {
            let gw = makegateway("popen//worker=self").await.expect("gateway");
            let control = gw.newchannel();
            let lane = gw
                .remote_call("__lane", &(8usize, control.handle()))
                .expect("lane");
            let t0 = Instant::now();
            let sender = lane.clone();
            let send = tokio::spawn(async move {
                for i in 0..c.tasks as i64 {
                    sender
                        .send_value(Value::List(vec![
                            Value::Int(i),
                            Value::from("echo"),
                            Value::Int(i),
                        ]))
                        .await
                        .expect("send");
                }
            });
            for _ in 0..c.tasks {
                lane.receive_value().await.expect("reply");
            }
            send.await.unwrap();
            println!(
                "raw lane: {:.0} tasks/s",
                c.tasks as f64 / t0.elapsed().as_secs_f64()
            );
            return;
        }
        let g = group_rows(&c).await.expect("group benchmark");
        // One figure: `cargo xtask bench --baseline` reads it.
        println!("{:.0} tasks/s", g.tasks_per_s);
        return;
    }
    let c = if quick {
        Counts {
            reps: 5,
            tasks: 20_000,
            rounds: 5,
            pings: 2_000,
            msgs: 200_000,
            bulk_mb: 256,
            chunk: 256 << 10,
        }
    } else {
        Counts {
            reps: 21,
            tasks: 100_000,
            rounds: 9,
            pings: 20_000,
            msgs: 2_000_000,
            bulk_mb: 1024,
            chunk: 256 << 10,
        }
    };
    eprintln!("measuring remex and the pipe floor, round by round ...");
    let r = remex_rows(&c).await.expect("remex benchmark");
    let send_rate = remex_send_rate(&c).await.expect("remex send benchmark");
    eprintln!("measuring socket= and the plain-TCP floor ...");
    let sock = socket_rows(&c).await.expect("socket benchmark");
    eprintln!("measuring ssh ...");
    let ssh = ssh_rows(&c).await;
    eprintln!("measuring Slurm (when present) ...");
    let slurm = slurm_rows(&c).await;
    eprintln!("measuring uneven tasks (and dask on them, when installed) ...");
    let tail = tail::tail_row(if quick { 1 } else { 3 }).await;
    eprintln!("measuring on the testbed (when up) ...");
    let tb = testbed::testbed_rows(&c).await;
    eprintln!("measuring groups ...");
    let gr = group_rows(&c).await.expect("group benchmark");
    eprintln!("measuring dask.distributed and Ray (when installed) ...");
    let (py_n, py_rounds) = if quick { (1_000, 2) } else { (5_000, 3) };
    let dask = python_rate("dask", py_n, py_rounds);
    let ray = python_rate("ray", py_n, py_rounds);
    eprintln!("measuring a stderr flood ...");
    let flood_mib = if quick { 64 } else { 256 };
    let flood = flood_child(flood_mib);
    eprintln!("measuring scripts ...");
    let sc = script_rows(&c).await.expect("script benchmark");
    eprintln!("measuring the remex command and GNU parallel ...");
    let (cli_jobs, cli_files) = if quick { (200, 1_000) } else { (1_000, 10_000) };
    let cli = cli_rows(cli_jobs, cli_files).await;
    eprintln!("measuring execnet ...");
    let e = execnet_rows(&c);

    let fmt_e = |i: usize, f: &dyn Fn(f64) -> String| match &e {
        Ok(v) => f(v[i]),
        Err(_) => "n/a".into(),
    };
    let rtt = median(r.rtt.remex.clone());
    let bulk = median(r.bulk.remex.clone());
    println!(
        "| measurement | remex | raw pipe | execnet | remex vs floor | remex vs execnet | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| (a) popen create + first reply | {:.2} ms | {:.2} ms (the same binary spawned until a byte it writes at once) | {} | {:.2}x the floor | {} | <= 5 ms; <= 1.5x the floor |",
        r.create_ms,
        r.create_floor_ms,
        fmt_e(0, &|x| format!("{x:.1} ms")),
        r.create_ms / r.create_floor_ms,
        fmt_e(0, &|x| format!("{:.1}x faster", x / r.create_ms))
    );
    println!(
        "| (b) ping-pong round trip | {:.1} us | {:.1} us | {} | {:.2}x the floor | {} | <= 2x the floor |",
        rtt,
        median(r.rtt.floor.clone()),
        fmt_e(1, &|x| format!("{x:.1} us")),
        r.rtt.ratio(),
        fmt_e(1, &|x| format!("{:.1}x faster", x / rtt))
    );
    let rtt_t = median(r.rtt_threads.remex.clone());
    println!(
        "| (b') ping-pong round trip, blocking calls from a plain thread | {:.1} us | {:.1} us | | {:.2}x the floor | {} | |",
        rtt_t,
        median(r.rtt_threads.floor.clone()),
        r.rtt_threads.ratio(),
        fmt_e(1, &|x| format!("{:.1}x faster", x / rtt_t))
    );
    println!(
        "| (c) one-way small messages, worker to controller | {:.0} msg/s | | {} | | {} | >= 1,000,000 msg/s |",
        r.msgs_per_s,
        fmt_e(2, &|x| format!("{x:.0} msg/s")),
        fmt_e(2, &|x| format!("{:.1}x", r.msgs_per_s / x))
    );
    println!(
        "| (c') one-way small messages, controller to worker | {send_rate:.0} msg/s | | | | | |"
    );
    println!(
        "| (d) bulk bytes ({} KiB items; 1 MiB pipes on both) | {:.0} MB/s | {:.0} MB/s | {} | {:.0}% of the floor | {} | >= 70% of the floor |",
        c.chunk >> 10,
        bulk,
        median(r.bulk.floor.clone()),
        fmt_e(3, &|x| format!("{x:.0} MB/s")),
        r.bulk.ratio() * 100.0,
        fmt_e(3, &|x| format!("{:.1}x", bulk / x))
    );
    println!(
        "| (d0) raw pipe, default 64 KiB pipe buffer | | {:.0} MB/s | | | | |",
        r.bulk_default_pipe
    );
    println!(
        "| (e) Group of 8 popen: create + remote_exec + gather + terminate | {:.1} ms | {:.2} ms (8 of the binary spawned at once until a byte each) | {} | {:.2}x the floor | {} | <= 40 ms; <= 1.5x the floor |",
        gr.group8_ms,
        gr.group8_floor_ms,
        fmt_e(4, &|x| format!("{x:.0} ms")),
        gr.group8_ms / gr.group8_floor_ms,
        fmt_e(4, &|x| format!("{:.1}x faster", x / gr.group8_ms))
    );
    println!(
        "| (f) trivial tasks through submit/gather, 2 workers | {:.0} tasks/s | | | | | >= 100,000 tasks/s |",
        gr.tasks_per_s
    );
    println!(
        "| (f-dash) (f) with the dashboard served and a page reading its live feed (rounds alternating with (f)) | {:.0} tasks/s | | | {:.0}% of (f) | | >= 95% of (f) |",
        gr.tasks_per_s_watched,
        gr.tasks_per_s_watched / gr.tasks_per_s * 100.0
    );
    let beside = |name: &str, r: &Result<f64, String>| match r {
        Ok(rate) => format!(
            "{name} {rate:.0} tasks/s: remex {:.0}x",
            gr.tasks_per_s / rate
        ),
        Err(why) => format!("{name}: n/a ({why})"),
    };
    println!(
        "| (f') the same tasks through dask.distributed (LocalCluster, 2 single-threaded workers) and Ray (num_cpus=2), {py_n} per round | {} | | | | | remex >= 100x each |",
        [beside("dask", &dask), beside("Ray", &ray)].join("; ")
    );
    println!(
        "| (g) 64 popen gateways: create / terminate / controller memory, fds each | {:.0} ms / {:.0} ms / {:.0} KiB, {:.1} fds | | | | | |",
        gr.group64.0, gr.group64.1, gr.group64.2, gr.group64.3
    );
    for (n, r) in &gr.pool_scale {
        match r {
            Ok((exec, tasks, cpu)) => println!(
                "| (f'') 20,000 trivial tasks over {n} popen workers / 10 execs on all of them | {tasks:.0} ms / {exec:.0} ms | | | {:.2}x the execs; controller CPU {:.1} us per task | | within 1.5x the execs; CPU per task flat |",
                tasks / exec,
                cpu * 1e3 / 20_000.0
            ),
            Err(why) => println!("| (f'') 20,000 tasks over {n} popen workers | n/a ({why}) | | | | | |"),
        }
    }
    let g = gr.group512;
    println!(
        "| (g') 512 popen gateways: ready / exec on all / terminate / controller memory, fds each | {:.0} ms / {:.0} ms / {:.0} ms / {:.0} KiB, {:.1} fds | | | | | ready < 1.5 s |",
        g.0, g.4, g.1, g.2, g.3
    );
    match &flood {
        Ok((kib, secs)) => println!(
            "| (q) a worker writes {flood_mib} MiB to stderr without a newline: controller peak growth | {:.1} MiB in {secs:.1} s | | | | | bounded (lines cut at 16 KiB) |",
            kib / 1024.0
        ),
        Err(why) => println!("| (q) stderr flood | n/a ({why}) | | | | | |"),
    }
    print_socket_rows(&sock);
    print_script_rows(&sc, c.msgs * 2);
    print_cli_rows(&cli, cli_jobs, cli_files);
    match &ssh {
        Ok(SshRows {
            create,
            rtt,
            execnet: ex,
            group: (one, sixteen),
        }) => {
            let ex_create = ex
                .map(|e| format!("{:.0} ms", e.0))
                .unwrap_or_else(|| "n/a".into());
            let ex_rtt = ex
                .map(|e| format!("{:.0} us", e.1))
                .unwrap_or_else(|| "n/a".into());
            let vs = |mine: f64, theirs: Option<f64>| {
                theirs
                    .map(|t| format!("{:.1}x faster", t / mine))
                    .unwrap_or_default()
            };
            println!(
                "| (h) ssh gateway create (cached worker) + first reply, loopback | {create:.1} ms | | {ex_create} | | {} | |",
                vs(*create, ex.map(|e| e.0))
            );
            println!(
                "| (i) ping-pong round trip over ssh, loopback | {rtt:.1} us | | {ex_rtt} | | {} | |",
                vs(*rtt, ex.map(|e| e.1))
            );
            println!(
                "| (h') 16 ssh workers on one host: Group ready + exec on each, against 1 | {sixteen:.0} ms / {one:.0} ms | | | {:.1}x one | | < 2x one |",
                sixteen / one
            );
        }
        Err(msg) => println!("| (h), (i) ssh rows | not measured: {msg} | | | | | |"),
    }
    print_slurm_rows(&slurm);
    tail::print_tail_row(&tail);
    testbed::print_testbed_rows(&tb);
    if let Err(msg) = &e {
        println!("\nexecnet not measured: {msg} (pip install execnet)");
    }
    println!(
        "\ncounts: {} creates, {} pings x {} rounds, {} messages x 3 (execnet: {}), {} MiB x {} rounds; ratios are medians of per-round ratios",
        c.reps,
        c.pings,
        c.rounds,
        c.msgs,
        c.msgs / 10,
        c.bulk_mb,
        c.rounds
    );
}
