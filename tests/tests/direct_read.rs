//! Direct reads (remex_core::conn::direct): a thread or task waiting on a
//! channel reads the connection itself. These tests pin down what users
//! rely on around it: traffic nobody waits for is still served, and a
//! thread waiting while it reads still sees closes, timeouts and losses.

mod common;

use std::time::{Duration, Instant};

use remex::{Error, Value};

const T: Duration = Duration::from_secs(10);

/// A task that waits for three items and so reads them itself (taking the
/// read role), answers each, and then works for 3 s without reading.
async fn busy_after_reading(gw: &remex::Gateway) -> remex::Channel {
    let busy = gw.remote_call("echo_then_sleep", &(3u32, 3000u64)).unwrap();
    for i in 0..3i64 {
        busy.send(&i).await.unwrap();
        assert_eq!(busy.receive::<i64>().await.unwrap(), i);
    }
    busy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_exec_is_served_while_a_task_works_after_reading() {
    let gw = common::gateway().await;
    // While the task works, the worker must still read.
    let busy = busy_after_reading(&gw).await;
    let t0 = Instant::now();
    let ch = gw.remote_exec("channel.send(7)").unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 7);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "the exec waited {took:?} for the busy task"
    );
    assert!(!busy.is_closed(), "the busy task is still working");
    busy.waitclose(Some(T)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_other_channels_are_served_while_a_task_works() {
    let gw = common::gateway().await;
    let busy = busy_after_reading(&gw).await;
    let echo = gw
        .remote_exec("for x in channel { channel.send(x + 1) }")
        .unwrap();
    let t0 = Instant::now();
    for i in 0..50i64 {
        echo.send(&i).await.unwrap();
        assert_eq!(echo.receive_timeout::<i64>(T).await.unwrap(), i + 1);
    }
    let status = gw.remote_status().await.unwrap();
    assert!(status.numexecuting >= 2, "{status:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    assert!(!busy.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_channel_ends_a_blocking_receive_on_another_thread() {
    let gw = common::gateway().await;
    // The remote never sends: the receiving thread polls the connection.
    let ch = gw.remote_exec("channel.receive()").unwrap();
    let waiting = ch.clone();
    let (tid_tx, tid) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        tid_tx.send(remex_tests::thread_id()).unwrap();
        let t0 = Instant::now();
        (waiting.receive_blocking::<remex::Value>(None), t0.elapsed())
    });
    let tid = tid.recv().unwrap();
    assert!(
        remex_tests::wait_blocked(tid, T),
        "the receiving thread never blocked"
    );
    ch.close(None);
    let (r, took) = tokio::task::spawn_blocking(move || receiver.join().unwrap())
        .await
        .unwrap();
    assert!(r.is_err(), "a closed channel gives no item: {r:?}");
    assert!(
        took < Duration::from_secs(5),
        "the close took {took:?} to be seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_receive_times_out_on_time_and_leaves_the_channel_usable() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("let x = channel.receive(); channel.send(x * 2)")
        .unwrap();
    let c = ch.clone();
    let (r, took) = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        (
            c.receive_blocking::<remex::Value>(Some(Duration::from_millis(300))),
            t0.elapsed(),
        )
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let c = ch.clone();
    let v = tokio::task::spawn_blocking(move || {
        c.send_value_blocking(Value::Int(21))?;
        c.receive_blocking::<remex::Value>(Some(T))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(v, Value::Int(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_worker_ends_a_blocking_receive_with_the_loss() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.receive()").unwrap();
    let (tid_tx, tid) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        tid_tx.send(remex_tests::thread_id()).unwrap();
        ch.receive_blocking::<remex::Value>(None)
    });
    assert!(
        remex_tests::wait_blocked(tid.recv().unwrap(), T),
        "the receiving thread never blocked"
    );
    let t0 = Instant::now();
    gw.kill().await.unwrap();
    let r = tokio::task::spawn_blocking(move || receiver.join().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(r, Err(Error::GatewayLost { .. })),
        "expected the loss, got {r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_and_tasks_sharing_a_connection_each_get_their_own_items() {
    let gw = common::gateway().await;
    let script = "for x in channel { channel.send(x) }";
    let mut threads = Vec::new();
    for t in 0..6i64 {
        let ch = gw.remote_exec(script).unwrap();
        threads.push(std::thread::spawn(move || {
            for i in 0..300i64 {
                let v = t * 1_000_000 + i;
                ch.send_value_blocking(Value::Int(v)).unwrap();
                let got = ch.receive_blocking::<remex::Value>(Some(T)).unwrap();
                assert_eq!(got, Value::Int(v), "thread {t} got another's item");
            }
        }));
    }
    let mut tasks = Vec::new();
    for t in 6..10i64 {
        let ch = gw.remote_exec(script).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..300i64 {
                let v = t * 1_000_000 + i;
                ch.send(&v).await.unwrap();
                assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), v);
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("the tasks finish")
            .unwrap();
    }
    tokio::task::spawn_blocking(move || {
        for t in threads {
            t.join().unwrap();
        }
    })
    .await
    .unwrap();
}

/// Voluntary context switches of every thread of `pid` so far.
fn voluntary_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the worker runs");
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|st| {
            st.lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_can_be_turned_off_on_a_worker() {
    let spec = common::spec(&format!("//env:{}=0", remex::core::conn::BUSY_POLL_ENV));
    let gw = remex::makegateway(&spec).await.unwrap();
    let ch = gw
        .remote_exec("for x in channel { channel.send(x) }")
        .unwrap();
    ch.send(&0).await.unwrap();
    ch.receive_timeout::<i64>(T).await.unwrap();
    let pid = gw.rinfo().pid;
    let n = 1000u64;
    let before = voluntary_switches(pid);
    for i in 0..n as i64 {
        // The controller thinks for 25 us between round trips: a worker
        // that busy-polls (for up to 50 us) sees the next item while
        // polling, one that does not sleeps until it comes. (Without the
        // pause, a quick enough controller answers before the worker
        // has even gone to sleep, and the count says nothing.)
        let think = std::time::Instant::now();
        while think.elapsed() < Duration::from_micros(25) {
            std::hint::spin_loop();
        }
        ch.send(&i).await.unwrap();
        assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), i);
    }
    let switches = voluntary_switches(pid) - before;
    // Without busy-polling the worker's script thread sleeps between
    // items: 1.1-1.5 switches per round trip here (polling, it made 0.2).
    assert!(
        switches >= n * 6 / 10,
        "{switches} switches in {n} round trips: the worker still busy-polls"
    );
    ch.close(None);
}

#[test]
fn a_worker_reading_directly_exits_when_its_controller_is_killed() {
    // The controller pings its worker in a loop: it is killed in the
    // middle of the exchange.
    let (mut controller, pids) = remex_tests::start_controller(
        env!("CARGO_BIN_EXE_remex-test-controller"),
        &["pinging", env!("CARGO_BIN_EXE_remex-test-worker")],
    );
    controller.kill().unwrap();
    controller.wait().unwrap();
    assert!(
        remex_tests::wait_gone(pids[0], Duration::from_secs(1)),
        "worker {} outlived its controller by 1 s",
        pids[0]
    );
}
