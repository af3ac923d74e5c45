//! The full run: every row, in one run, printed as docs/performance.md's
//! table.

use super::*;

/// Measures every row (fewer repetitions when `quick`) and prints the
/// table.
pub(crate) async fn run(quick: bool) {
    let c = if quick {
        Counts {
            reps: 5,
            tasks: 20_000,
            rounds: 5,
            pings: 2_000,
            msgs: 200_000,
            bulk_mb: 256,
            chunk: 256 << 10,
            profile_rounds: 0,
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
            profile_rounds: 0,
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
