//! Groups, multi-channels and receive queues: execnet's examples as
//! written, and termination whatever the workers do.

mod common;

use std::time::{Duration, Instant};

use remex::{Group, MultiChannel, Value};
use remex_tests::{process_gone, wait_gone};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multichannel_receive_each_sums_to_three() {
    let ch1 = common::gateway()
        .await
        .remote_exec("channel.send(1)")
        .unwrap();
    let ch2 = common::gateway()
        .await
        .remote_exec("channel.send(2)")
        .unwrap();
    let mch = MultiChannel::new(vec![ch1.clone(), ch2.clone()]);
    assert_eq!(mch.len(), 2);
    assert!(mch[0] == ch1 && mch[1] == ch2);
    assert!(mch.contains(&ch1) && mch.contains(&ch2));
    assert_eq!(
        mch.receive_each::<i64>().await.unwrap().iter().sum::<i64>(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_queue_gets_sum_to_three() {
    let ch1 = common::gateway()
        .await
        .remote_exec("channel.send(1)")
        .unwrap();
    let ch2 = common::gateway()
        .await
        .remote_exec("channel.send(2)")
        .unwrap();
    let mch = MultiChannel::new(vec![ch1, ch2]);
    let queue = mch.make_receive_queue(None).unwrap();
    let (_chan1, res1) = queue.get_timeout(T).await.unwrap();
    let (_chan2, res2) = queue.get_timeout(Duration::from_secs(3)).await.unwrap();
    let sum: i64 =
        remex::from_value::<i64>(res1).unwrap() + remex::from_value::<i64>(res2).unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_receive_queue_twice_returns_the_same_queue() {
    let g = common::group(2).await;
    let mch = g.remote_exec("channel.send(5)").unwrap();
    let q1 = mch.make_receive_queue(Some(Value::from("end"))).unwrap();
    let q2 = mch.make_receive_queue(Some(Value::from("other"))).unwrap();
    let mut items = Vec::new();
    for _ in 0..4 {
        items.push(q2.get_timeout(T).await.unwrap().1);
    }
    assert!(q1.is_empty(), "both handles drain one queue");
    assert_eq!(items.iter().filter(|v| **v == Value::Int(5)).count(), 2);
    assert_eq!(
        items.iter().filter(|v| **v == Value::from("end")).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endmarker_arrives_once_per_channel_after_terminate() {
    // execnet: Group(['popen'] * 3); remote_exec("channel.send(channel.receive()+1)");
    // make_receive_queue(endmarker=42); mch[0].send(1) -> 2; terminate(1) -> 42 three times.
    let g = common::group(3).await;
    let pids: Vec<u32> = g.gateways().iter().map(|gw| gw.rinfo().pid).collect();
    let mch = g.remote_exec("channel.send(channel.receive()+1)").unwrap();
    let queue = mch.make_receive_queue(Some(Value::Int(42))).unwrap();
    mch[0].send(&1).await.unwrap();
    let (chan1, res1) = queue.get_timeout(T).await.unwrap();
    assert_eq!(res1, Value::Int(2));
    assert_eq!(chan1, mch[0]);
    let t0 = Instant::now();
    g.terminate(Duration::from_secs(1)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(1) + remex::TERMINATE_BOUND,
        "terminate took {:?}",
        t0.elapsed()
    );
    let mut ended = Vec::new();
    for _ in 0..3 {
        let (ch, res) = queue.get_timeout(T).await.unwrap();
        assert_eq!(res, Value::Int(42));
        ended.push(ch.gateway_id().to_string());
    }
    ended.sort();
    ended.dedup();
    assert_eq!(ended.len(), 3, "one endmarker per channel");
    assert!(
        queue.get_timeout(Duration::from_millis(100)).await.is_err(),
        "no second endmarker"
    );
    assert!(pids.iter().all(|p| process_gone(*p)));
    assert_eq!(g.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_ids_index_and_membership() {
    let g = Group::new([
        format!("2*{}", common::spec("")),
        common::spec("//id=special"),
    ])
    .await
    .unwrap();
    assert_eq!(g.ids(), vec!["gw0", "gw1", "special"]);
    assert_eq!(g.get(1).unwrap().id(), "gw1");
    assert!(g.contains("special") && !g.contains("gw2"));
    let extra = g.makegateway(&common::spec("")).await.unwrap();
    assert_eq!(extra.id(), "gw2");
    assert_eq!(g.len(), 4);
    // A gateway that exits leaves the group.
    g.by_id("gw1").unwrap().exit().await.unwrap();
    assert_eq!(g.ids(), vec!["gw0", "special", "gw2"]);
    let err = g
        .makegateway(&common::spec("//id=special"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already has a gateway with id \"special\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_start_in_parallel() {
    let t0 = Instant::now();
    let g = common::group(8).await;
    let parallel = t0.elapsed();
    assert_eq!(g.len(), 8);
    g.terminate(T).await;
    let t1 = Instant::now();
    for _ in 0..8 {
        common::gateway().await.exit().await.unwrap();
    }
    eprintln!(
        "8 gateways: {parallel:?} together, {:?} one by one",
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_is_bounded_whatever_the_workers_do() {
    let g = common::group(5).await;
    let gws = g.gateways();
    let pids: Vec<u32> = gws.iter().map(|gw| gw.rinfo().pid).collect();
    // gw0 blocks in receive, gw1 sleeps, gw2 has a child that ignores
    // SIGTERM, gw3 is stopped with SIGSTOP, gw4 has a plain child.
    let _r = gws[0].remote_exec("channel.receive()").unwrap();
    let _s = gws[1].remote_call("sleep", &3600).unwrap();
    let stubborn: u32 = gws[2]
        .remote_call("stubborn_child", &())
        .unwrap()
        .receive()
        .await
        .unwrap();
    let child = common::spawn_sleeper(&gws[4]).await;
    // SAFETY: signalling a worker process this test started.
    unsafe {
        libc::kill(pids[3] as i32, libc::SIGSTOP);
    }
    let timeout = Duration::from_millis(500);
    let t0 = Instant::now();
    g.terminate(timeout).await;
    let took = t0.elapsed();
    assert!(
        took < timeout + Duration::from_millis(500),
        "terminate took {took:?}"
    );
    for pid in pids.iter().chain([&stubborn, &child]) {
        assert!(
            wait_gone(*pid, Duration::from_secs(1)),
            "process {pid} survived terminate"
        );
    }
    eprintln!("terminate({timeout:?}) returned after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_group_kills_its_workers() {
    let g = common::group(3).await;
    let pids: Vec<u32> = g.gateways().iter().map(|gw| gw.rinfo().pid).collect();
    drop(g);
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(2)),
            "worker {pid} outlived its group"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multichannel_waitclose_returns_the_first_remote_error() {
    let g = common::group(3).await;
    let gws = g.gateways();
    let mch = MultiChannel::new(vec![
        gws[0].remote_exec("1").unwrap(),
        gws[1].remote_exec("throw \"second failed\"").unwrap(),
        gws[2].remote_exec("throw \"third failed\"").unwrap(),
    ]);
    let err = mch.waitclose(Some(T)).await.unwrap_err();
    assert!(err.to_string().contains("second failed"), "{err}");
    assert_eq!(
        g.remote_exec("channel.send(1)")
            .unwrap()
            .receive_each::<i64>()
            .await
            .unwrap(),
        vec![1, 1, 1]
    );
}

/// A worker killed just before a call on the group does not fail the call,
/// whenever its loss is noticed: before the call (it has left the group),
/// during it (it gets no channel), or after (its channel ends, and the
/// receive queue says so). The other workers answer every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_before_a_group_call_does_not_fail_the_call() {
    let g = common::group(3).await;
    let victim = g.get(1).unwrap().rinfo().pid;
    // SAFETY: signalling a worker this test started.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    let t0 = Instant::now();
    let mut calls = 0;
    // Calls until gw1 is known lost (bounded in count and time).
    while g.contains("gw1") && calls < 10_000 && t0.elapsed() < T {
        let mch = g.remote_call("echo", &calls).unwrap();
        assert!(mch.len() >= 2, "{} channels", mch.len());
        let queue = mch.make_receive_queue(Some(Value::from("end"))).unwrap();
        let (mut answered, mut ended) = (Vec::new(), 0);
        // Each channel answers (not gw1's) and ends (each of them).
        while ended < mch.len() {
            let (ch, item) = queue.get_timeout(T).await.unwrap();
            if item == Value::from("end") {
                ended += 1;
            } else {
                assert_eq!(item, Value::from(calls));
                answered.push(ch.gateway_id().to_string());
            }
        }
        answered.sort();
        assert_eq!(answered, ["gw0", "gw2"], "call {calls}");
        calls += 1;
    }
    assert!(
        !g.contains("gw1"),
        "gw1 still in the group after {calls} calls"
    );
    eprintln!("{calls} calls before gw1 was known lost");
    assert!(wait_gone(victim, T));
    g.terminate(T).await;
}
