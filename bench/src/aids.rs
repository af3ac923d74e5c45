//! The profiling aids: each measures one row (or one family) alone, for
//! a profiler or for `cargo xtask bench --baseline` (see the crate docs
//! for the list).

use super::*;

/// Runs the aid `args` ask for; false if they ask for none.
pub(crate) async fn run(args: &[String]) -> bool {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let at = |flag: &str| args.iter().position(|a| a == flag);
    if let Some(i) = at("--group-only") {
        group_only(args, i).await;
    } else if let Some(i) = at("--pool-scale-only") {
        pool_scale_only(args, i).await;
    } else if let Some(i) = at("--flood-only") {
        flood_only(args, i).await;
    } else if has("--pool-only") {
        pool_only().await;
    } else if has("--create-only") {
        create_only().await;
    } else if has("--tail-only") {
        tail_only().await;
    } else if has("--testbed-slurm-ready") {
        testbed_slurm_ready().await;
    } else if has("--first-contact-only") {
        first_contact_only().await;
    } else if has("--testbed-only") {
        testbed_only().await;
    } else if has("--slurm-only") {
        slurm_only().await;
    } else if has("--ssh-only") {
        ssh_only().await;
    } else if has("--socket-only") {
        socket_only(0).await;
    } else if has("--socket-bulk-only") {
        socket_only(60).await;
    } else if has("--bulk-only") {
        bulk_only().await;
    } else if has("--floor-only") {
        floor_only(args).await;
    } else if has("--pingpong-only") {
        pingpong_only(args).await;
    } else if has("--cli-only") {
        cli_only().await;
    } else if has("--scripts-only") {
        scripts_only().await;
    } else if has("--dash-only") {
        dash_only().await;
    } else if has("--tasks-only") {
        tasks_only(args).await;
    } else if has("--messages-only") {
        messages_only().await;
    } else {
        return false;
    }
    true
}

/// `--messages-only`: Profiling aid: only rows (c) and (c'), small
/// messages one way, worker to controller and back.
async fn messages_only() {
    let c = Counts {
        msgs: 1_000_000,
        ..Counts::one_row()
    };
    let gw = makegateway("popen//worker=self").await.expect("gateway");
    let flood = remex_flood_rates(&gw, c.msgs).await.expect("flood");
    gw.exit().await.expect("exit");
    let send = remex_send_rate(&c).await.expect("send");
    println!("(c) {:.0} msg/s (c') {send:.0} msg/s", median(flood));
}

/// `--group-only`: Rows (g) and (g'): N gateways created, an exec on each, ended,
/// in a fresh process (so that its memory figure is its own).
async fn group_only(args: &[String], i: usize) {
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
}

/// `--pool-scale-only`: Row (f''): N workers; 10 execs on all of them (the same work
/// without the pool), then 20,000 trivial tasks through the pool;
/// prints exec ms, tasks ms, and this process's CPU ms during the
/// tasks.
async fn pool_scale_only(args: &[String], i: usize) {
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
    let io0 = own_syscalls();
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
    let io = own_syscalls();
    // On stderr: the caller (row (f'')) reads stdout's three figures.
    eprintln!(
        "reads per task {:.2}, writes per task {:.2}",
        (io.0 - io0.0) as f64 / tasks as f64,
        (io.1 - io0.1) as f64 / tasks as f64
    );
    g.terminate(Duration::from_secs(5)).await;
    println!("{exec:.1} {took:.1} {cpu:.1}");
}

/// `--flood-only`: Row (q): the controller's peak memory while a worker writes MiB
/// megabytes to stderr without a newline.
async fn flood_only(args: &[String], i: usize) {
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
}

/// `--pool-only`: Profiling aid: only the task phase of row (f), 2 workers, 5
/// rounds of 20,000 trivial tasks (no other rows, so that a profile
/// of this process is the pool's).
async fn pool_only() {
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
}

/// `--create-only`: Profiling aid: rows (a) (21 creates, the median and
/// the range) and (e) (11 groups of 8), each against its floor measured
/// beside it.
async fn create_only() {
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
    let (mut times, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        floors.push(spawn_floor_ms(8));
        let t0 = Instant::now();
        let g = remex::Group::new(["8*popen//worker=self"])
            .await
            .expect("the group starts");
        let got: Vec<i64> = g
            .remote_exec("channel.send(1)")
            .expect("exec on all")
            .receive_each()
            .await
            .expect("every reply");
        assert_eq!(got.len(), 8);
        g.terminate(Duration::from_secs(1)).await;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (e, floor) = (median(times), median(floors));
    println!(
        "(e) group of 8 {e:.1} ms; the floor {floor:.2} ms; {:.2}x",
        e / floor
    );
}

/// `--tail-only`: Only row (t).
async fn tail_only() {
    tail::print_tail_row(&tail::tail_row(3).await);
}

/// `--testbed-slurm-ready`.
async fn testbed_slurm_ready() {
    testbed::slurm_ready_child().await;
}

/// `--first-contact-only`: Only row (v) (on the testbed).
async fn first_contact_only() {
    testbed::print_first_contact_row(&testbed::first_contact().await);
}

/// `--testbed-only`: Only the testbed rows (u)-(u''').
async fn testbed_only() {
    let c = Counts {
        rounds: 3,
        pings: 2_000,
        bulk_mb: 128,
        chunk: 256 << 10,
        ..Counts::one_row()
    };
    testbed::print_testbed_rows(&testbed::testbed_rows(&c).await);
}

/// `--slurm-only`: Only the Slurm rows (s), (s'), (s'').
async fn slurm_only() {
    let c = Counts {
        reps: 3,
        bulk_mb: 256,
        chunk: 256 << 10,
        ..Counts::one_row()
    };
    print_slurm_rows(&slurm_rows(&c).await);
}

/// `--ssh-only`: Profiling aid: only rows (h), (i) and (h').
async fn ssh_only() {
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
}

/// `--socket-only`: Profiling aid: only rows (j) and (k).
async fn socket_only(profile_rounds: usize) {
    let c = Counts {
        profile_rounds,
        rounds: 5,
        pings: 2_000,
        bulk_mb: 256,
        chunk: 256 << 10,
        ..Counts::one_row()
    };
    let s = socket_rows(&c).await.expect("socket benchmark");
    print_socket_rows(&s);
}

/// `--bulk-only`: Profiling aid: only row (d), remex and the floor alternating.
async fn bulk_only() {
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
}

/// `--floor-only`.
async fn floor_only(args: &[String]) {
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
}

/// `--pingpong-only`: Profiling aid: only row (b), remex and the floor alternating.
async fn pingpong_only(args: &[String]) {
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
                        ch.receive::<remex::Value>().await.expect("receive");
                    }
                }
            };
            match mode {
                "blocking" => tokio::task::spawn_blocking(move || {
                    for i in 0..n {
                        ch.send_value_blocking(Value::Int(i)).expect("send");
                        ch.receive_blocking::<remex::Value>(None).expect("receive");
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
}

/// This process's read and write system calls so far (/proc/self/io's
/// syscr and syscw; zeros where it cannot be read).
fn own_syscalls() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("syscr:"), get("syscw:"))
}

/// `--cli-only`: Profiling aid: only rows (n)-(p).
async fn cli_only() {
    let (jobs, files) = (1_000, 10_000);
    print_cli_rows(&cli_rows(jobs, files).await, jobs, files);
}

/// `--scripts-only`: Profiling aid: only rows (l) and (m), as many rounds as the
/// full run.
async fn scripts_only() {
    let c = Counts {
        tasks: 100_000,
        rounds: 9,
        msgs: 1_000_000,
        ..Counts::one_row()
    };
    let s = script_rows(&c).await.expect("script benchmark");
    print_script_rows(&s, c.msgs * 2);
}

/// `--dash-only`: Only rows (f) and (f-dash), alternating, 9 rounds each.
async fn dash_only() {
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
}

/// `--tasks-only`: Profiling aid: only row (f).
async fn tasks_only(args: &[String]) {
    let c = Counts {
        tasks: 20_000,
        ..Counts::one_row()
    };
    if args.iter().any(|a| a == "--raw-lane") {
        // `--executors K` (8), `--window W`: at most W requests out at a
        // time, a new one sent as each reply comes (paced as the pool
        // paces a lane); without it, all sent at once.
        let opt = |name: &str| -> Option<usize> {
            let i = args.iter().position(|a| a == name)?;
            args.get(i + 1)?.parse().ok()
        };
        let gw = makegateway("popen//worker=self").await.expect("gateway");
        let control = gw.newchannel();
        let lane = gw
            .remote_call(
                "__lane",
                &(opt("--executors").unwrap_or(8), control.handle()),
            )
            .expect("lane");
        let request = |i: usize| {
            Value::List(vec![
                Value::Int(i as i64),
                Value::from("echo"),
                Value::Int(1),
            ])
        };
        if let Some(window) = opt("--window") {
            let t0 = Instant::now();
            let mut sent = 0;
            while sent < window.min(c.tasks) {
                lane.send_value(request(sent)).await.expect("send");
                sent += 1;
            }
            for _ in 0..c.tasks {
                lane.receive::<remex::Value>().await.expect("reply");
                if sent < c.tasks {
                    lane.send_value(request(sent)).await.expect("send");
                    sent += 1;
                }
            }
            println!(
                "raw lane, {window} out at a time: {:.0} tasks/s",
                c.tasks as f64 / t0.elapsed().as_secs_f64()
            );
            return;
        }
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
            lane.receive::<remex::Value>().await.expect("reply");
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
}
