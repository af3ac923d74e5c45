//! Rows (e)-(g'), (f-dash), (f''), (q): groups, the task pool, many
//! gateways, a stderr flood.

use super::*;

/// Row (f) and (f-dash): `rounds` rounds of `tasks` trivial tasks over 2
/// workers, alternately without a dashboard and with one served and a
/// page reading its live feed; tasks/s of each.
pub(crate) async fn f_rates(
    spec: &str,
    tasks: usize,
    rounds: usize,
) -> remex::Result<(Vec<f64>, Vec<f64>)> {
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
pub(crate) async fn watch_feed(addr: std::net::SocketAddr) {
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

pub(crate) struct GroupRows {
    /// (e) ms: Group of 8 created, remote_exec on all, gathered, terminated.
    pub(crate) group8_ms: f64,
    /// (e)'s floor: 8 of this binary spawned at once until a byte each, ms.
    pub(crate) group8_floor_ms: f64,
    /// (f) trivial tasks per second through submit/gather over 2 workers.
    pub(crate) tasks_per_s: f64,
    /// (f) with a dashboard served and a page reading its live feed.
    pub(crate) tasks_per_s_watched: f64,
    /// (g) ms to create and to terminate 64 gateways, and KiB of controller
    /// memory per gateway.
    pub(crate) group64: (f64, f64, f64, f64),
    /// (g') 512 gateways: create ms, terminate ms, KiB and fds each, exec
    /// on all ms.
    pub(crate) group512: (f64, f64, f64, f64, f64),
    /// (f'') per worker count: 10 execs on all ms, 20,000 tasks ms, the
    /// controller's CPU ms during the tasks (or why not).
    pub(crate) pool_scale: Vec<(usize, PoolScale)>,
}

/// One line of (f''): exec ms, tasks ms, CPU ms, or why not.
pub(crate) type PoolScale = Result<(f64, f64, f64), String>;

/// This process's CPU time so far (user + system), in ms.
pub(crate) fn own_cpu_ms() -> f64 {
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
pub(crate) fn peak_kib() -> f64 {
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
pub(crate) fn own_child(args: &[&str]) -> Result<Vec<f64>, String> {
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
pub(crate) fn group_child(n: usize) -> (f64, f64, f64, f64, f64) {
    match own_child(&["--group-only", &n.to_string()]).as_deref() {
        Ok([a, b, c, d, e]) => (*a, *b, *c, *d, *e),
        other => panic!("the group child ({n}) printed {other:?}"),
    }
}

/// Runs `--flood-only MIB` in a fresh process: (controller peak growth in
/// KiB, seconds).
pub(crate) fn flood_child(mib: usize) -> Result<(f64, f64), String> {
    match own_child(&["--flood-only", &mib.to_string()])?.as_slice() {
        [a, b] => Ok((*a, *b)),
        other => Err(format!("the flood child printed {other:?}")),
    }
}

pub(crate) fn rss_kib() -> f64 {
    remex_tests::rss_bytes(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

pub(crate) async fn group_rows(c: &Counts) -> remex::Result<GroupRows> {
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
