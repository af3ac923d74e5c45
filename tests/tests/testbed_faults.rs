//! The network's faults, on the testbed's hosts: a partition during a
//! gather, a host that dies without a word (no FIN, no RST), a connection
//! left half-open on either side, and slow links. Each is noticed within
//! the liveness bound, loses no result, delivers none twice, and leaves
//! nothing behind once the host is back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use remex::sync::LifecycleState;
use remex::{makegateway, Group, Value};
use remex_tests::testbed::{self, Relay};

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
const T: Duration = Duration::from_secs(10);
/// The liveness bound the fault tests set (the default is 10 s: one test
/// checks it).
const BOUND: Duration = Duration::from_secs(2);

fn worker_processes(host: &str) -> Vec<testbed::Proc> {
    testbed::processes(host)
        .into_iter()
        .filter(|p| p.cmdline.contains("remex-test-worker") || p.cmdline.contains("remex-worker"))
        .collect()
}

/// Waits up to `within` for `host` to run no remex worker.
fn workers_gone(host: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !worker_processes(host).is_empty() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_during_a_gather_loses_no_result_and_heals_without_duplicates() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1", "rx2", "rx3"]);
    let extra = format!("//worker={WORKER}//liveness={}", BOUND.as_secs_f64());
    let group =
        Group::new(["rx1", "rx2", "rx3"].map(|h| format!("2*{}", testbed::ssh_spec(h, &extra))))
            .await
            .unwrap();
    let cut: Vec<remex::Gateway> = group.gateways()[4..].to_vec();
    assert!(cut.iter().all(|g| g.rinfo().host == "rx3"));
    // A script on every worker echoes what it gets, until its end: the
    // queue must see the lost ones end once, and nothing after.
    let mch = group
        .remote_exec("for x in channel { channel.send(x) }")
        .unwrap();
    let queue = mch
        .make_receive_queue(Some(Value::Str("END".into())))
        .unwrap();
    const N: i64 = 600;
    let futures: Vec<_> = (0..N)
        .map(|i| {
            group
                .submit::<i64>("slow_echo", &(40u64, i))
                .unwrap()
                .with_details()
        })
        .collect();
    let all = tokio::spawn(futures::future::join_all(futures));
    // Once a third of the work is done, rx3 is cut off.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cut_at = Instant::now();
    let partition = testbed::partition("rx3");
    for g in &cut {
        let end = g.lifecycle().join(Some(T)).await.unwrap();
        let LifecycleState::Fault(why) = end else {
            panic!("{} ended {end:?}", g.id())
        };
        assert!(why.contains("rx3"), "the reason names the host: {why}");
    }
    let noticed = cut_at.elapsed();
    eprintln!("rx3's workers declared lost {noticed:?} after the partition (bound {BOUND:?})");
    assert!(
        noticed <= BOUND,
        "noticed after {noticed:?}, bound {BOUND:?}"
    );
    let done = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the gather completes")
        .unwrap();
    let mut seen = BTreeMap::new();
    let mut rerun = 0;
    for r in done {
        let r = r.expect("every task succeeds, on the hosts still there");
        *seen.entry(r.value).or_insert(0) += 1;
        if r.attempts > 1 {
            rerun += 1;
            assert!(
                !r.gateway.is_empty() && cut.iter().all(|g| g.id() != r.gateway),
                "a re-run ran on a reachable host"
            );
        }
    }
    assert_eq!(seen.len() as i64, N, "every result");
    assert!(seen.values().all(|n| *n == 1), "each result once");
    assert!(rerun > 0, "the cut workers' tasks ran again elsewhere");
    eprintln!("{rerun} tasks ran again after the partition");
    // Each cut worker's channel ended once, with the endmarker.
    let mut ended = 0;
    while let Ok((ch, v)) = queue.get_timeout(Duration::from_millis(200)).await {
        assert_eq!(
            v,
            Value::Str("END".into()),
            "only endmarkers: {v:?} from {ch:?}"
        );
        ended += 1;
    }
    assert_eq!(ended, cut.len());
    // The partition heals: the workers behind it had already ended their
    // sessions (their controller fell silent), and nothing of them
    // reaches this side any more.
    assert!(
        workers_gone("rx3", BOUND + Duration::from_secs(2)),
        "rx3's workers outlived a silent controller: {:?}",
        worker_processes("rx3")
    );
    partition.heal();
    tokio::time::sleep(BOUND).await;
    assert!(queue.is_empty(), "no ghost item after the heal");
    for g in &cut {
        assert!(g.remote_exec("channel.send(1)").is_err());
    }
    let again: i64 = group.submit("square", &3).unwrap().await.unwrap();
    assert_eq!(again, 9);
    group.terminate(T).await;
    hosts.assert_clean(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_is_noticed_within_the_bound_under_ssh_and_socket() {
    if !testbed::available() {
        return;
    }
    let _hosts = testbed::take(&["rx2", "rx3"]);
    let listener = testbed::RemoteListener::start("rx2", WORKER);
    let bound = format!("//liveness={}", BOUND.as_secs_f64());
    let ssh = makegateway(&testbed::ssh_spec(
        "rx3",
        &format!("//worker={WORKER}{bound}"),
    ))
    .await
    .unwrap();
    let sock = makegateway(&format!("{}{bound}", listener.spec()))
        .await
        .unwrap();
    for (g, host) in [(&ssh, "rx3"), (&sock, "rx2")] {
        assert_eq!(g.rinfo().host, host);
        // A call that would wait a long time for its answer.
        let ch = g.remote_call("sleep", &3600).unwrap();
        let t0 = Instant::now();
        let dead = testbed::kill_host(host);
        let err = tokio::time::timeout(T, ch.receive::<remex::Value>())
            .await
            .expect("the controller never hangs on a dead host")
            .unwrap_err()
            .to_string();
        let noticed = t0.elapsed();
        eprintln!("{host} dead: noticed after {noticed:?} (bound {BOUND:?}): {err}");
        assert!(noticed <= BOUND, "{noticed:?}");
        assert!(err.contains(host), "the error names the host: {err}");
        assert!(err.contains("liveness"), "{err}");
        // The ssh clients to the dead host end too: the gateway's at once,
        // the shared connection's master by ssh's own keep-alives (5 s,
        // twice), while the host stays dead.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left: Vec<_> = testbed::controller_processes(&["ssh"])
                .into_iter()
                .filter(|p| p.cmdline.contains(host))
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ssh clients to the dead {host} outlived it: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{host}: every ssh client gone {:?} after its death",
            t0.elapsed()
        );
        dead.revive();
    }
    drop(listener);
    for h in ["rx2", "rx3"] {
        testbed::assert_host_clean(h, T);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_half_open_connection_ends_on_both_sides_within_ten_seconds() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1"]);
    let gw = makegateway(&testbed::ssh_spec("rx1", &format!("//worker={WORKER}")))
        .await
        .unwrap();
    let bound = remex::Spec::NETWORK_LIVENESS;
    assert_eq!(gw.spec().liveness_bound(), Some(bound));
    let ch = gw.remote_call("sleep", &3600).unwrap();
    // Both ends keep their TCP connection: neither hears of the other.
    let t0 = Instant::now();
    let partition = testbed::partition("rx1");
    let err = tokio::time::timeout(bound * 2, ch.receive::<remex::Value>())
        .await
        .expect("the controller side ends")
        .unwrap_err()
        .to_string();
    let controller_side = t0.elapsed();
    assert!(err.contains("rx1"), "{err}");
    // The worker's side: it heard nothing from its controller for the
    // bound, and ended.
    assert!(
        workers_gone(
            "rx1",
            (bound + Duration::from_secs(2)).saturating_sub(t0.elapsed())
        ),
        "the worker outlived its silent controller: {:?}",
        worker_processes("rx1")
    );
    let worker_side = t0.elapsed();
    eprintln!(
        "half-open: controller side ended after {controller_side:?}, worker side after {worker_side:?} (bound {bound:?})"
    );
    assert!(controller_side <= bound, "{controller_side:?}");
    partition.heal();
    // sshd learns of the dead client when its retransmissions get through.
    hosts.assert_clean(Duration::from_secs(60));
}

/// Round trips, a bulk transfer both ways and a gather through `gw`,
/// which must stay up all along.
async fn exercise(gw: &remex::Gateway, what: &str, round_trips: u32, bulk: usize) {
    let t0 = Instant::now();
    let ch = gw
        .remote_exec("for x in channel { channel.send(x) }")
        .unwrap();
    for i in 0..round_trips {
        ch.send(&i).await.unwrap();
        assert_eq!(ch.receive_timeout::<u32>(T * 3).await.unwrap(), i);
    }
    let rtt = t0.elapsed() / round_trips.max(1);
    // Bulk: 64 KiB chunks out and back, the sender and receiver at once.
    let chunks = bulk / (64 * 1024);
    let t1 = Instant::now();
    let sender = {
        let ch = ch.clone();
        tokio::spawn(async move {
            for k in 0..chunks {
                ch.send_value(Value::Bytes(
                    remex_tests::bulk_chunk(k as u64, 64 * 1024).into(),
                ))
                .await
                .unwrap();
            }
        })
    };
    for k in 0..chunks {
        match ch.receive_timeout::<Value>(T * 3).await.unwrap() {
            Value::Bytes(b) => {
                assert_eq!(&b[..], &remex_tests::bulk_chunk(k as u64, 64 * 1024)[..])
            }
            other => panic!("{other:?}"),
        }
    }
    sender.await.unwrap();
    let bulk_s = t1.elapsed();
    ch.close(None);
    let futures: Vec<_> = (0..20i64)
        .map(|i| {
            let ch = gw.remote_call("square", &i).unwrap();
            async move { ch.receive_timeout::<i64>(T * 3).await.unwrap() }
        })
        .collect();
    let got = futures::future::join_all(futures).await;
    assert_eq!(got, (0..20i64).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(
        gw.lifecycle().state(),
        LifecycleState::On,
        "{what}: no timeout fired"
    );
    eprintln!(
        "{what}: round trip {rtt:?}, {} MiB both ways in {bulk_s:?}",
        bulk >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_carry_round_trips_bulk_and_calls_without_false_timeouts() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx2"]);
    let listener = testbed::RemoteListener::start("rx2", WORKER);
    // A short liveness bound, to show that a slow link is not a dead one.
    let bound = "//liveness=1";
    // 50 ms each way.
    let far = Relay::start(&listener.addr, Duration::from_millis(50), None);
    let gw = makegateway(&format!("{}{bound}", listener.spec_at(&far.addr)))
        .await
        .unwrap();
    exercise(&gw, "socket= over 50 ms each way", 10, 4 << 20).await;
    gw.exit().await.unwrap();
    // 1 MB/s each way: a bulk transfer holds the link for seconds, and the
    // liveness probe waits behind it.
    let thin = Relay::start(&listener.addr, Duration::ZERO, Some(1_000_000));
    let gw = makegateway(&format!("{}{bound}", listener.spec_at(&thin.addr)))
        .await
        .unwrap();
    exercise(&gw, "socket= at 1 MB/s", 10, 3 << 20).await;
    gw.exit().await.unwrap();
    // ssh over the same kinds of link.
    let far = Relay::start(
        &format!("{}:22", testbed::addr("rx2")),
        Duration::from_millis(50),
        None,
    );
    let cfg = testbed::ssh_through(&far, "rx2");
    let gw = makegateway(&format!(
        "ssh=slow-rx2//ssh_config={}//worker={WORKER}{bound}",
        cfg.display()
    ))
    .await
    .unwrap();
    exercise(&gw, "ssh= over 50 ms each way", 10, 2 << 20).await;
    gw.exit().await.unwrap();
    let thin = Relay::start(
        &format!("{}:22", testbed::addr("rx2")),
        Duration::ZERO,
        Some(1_000_000),
    );
    let cfg2 = testbed::ssh_through(&thin, "rx2");
    let gw = makegateway(&format!(
        "ssh=slow-rx2//ssh_config={}//worker={WORKER}{bound}",
        cfg2.display()
    ))
    .await
    .unwrap();
    exercise(&gw, "ssh= at 1 MB/s", 5, 2 << 20).await;
    gw.exit().await.unwrap();
    for c in [cfg, cfg2] {
        let _ = std::fs::remove_file(c);
    }
    drop(listener);
    hosts.assert_clean(T);
}
