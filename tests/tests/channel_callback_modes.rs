//! Channel callbacks in the three modes: a callback that blocks for a
//! second in parallel mode does not delay the gateway's other channels;
//! flow control still bounds what waits for a slow callback; order and the
//! endmarker hold in every mode.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remex::sync::Event;
use remex::sync::RunMode;
use remex::Value;

const T: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_parallel_callback_does_not_delay_other_channels() {
    let gw = common::gateway().await;
    let slow = gw.remote_exec("channel.send(channel.receive())").unwrap();
    let entered = Event::new();
    let e = entered.clone();
    slow.set_callback_in(
        RunMode::Parallel,
        move |_| {
            e.set();
            std::thread::sleep(Duration::from_secs(1));
        },
        None,
    )
    .unwrap();
    slow.send(&1).await.unwrap();
    assert!(entered.wait(T).await, "the callback ran");
    // The callback now sleeps; another channel of the same gateway answers.
    let t0 = Instant::now();
    let other = gw
        .remote_exec("channel.send(channel.receive() + 1)")
        .unwrap();
    other.send(&41).await.unwrap();
    assert_eq!(
        other
            .receive_timeout::<i64>(Duration::from_secs(10))
            .await
            .unwrap(),
        42
    );
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(700),
        "the other channel waited {took:?} behind the callback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_sequential_callback_holds_up_the_gateway() {
    // The contrast that makes the parallel mode worth having.
    let gw = common::gateway().await;
    let slow = gw.remote_exec("channel.send(channel.receive())").unwrap();
    let entered = Event::new();
    let e = entered.clone();
    slow.set_callback(
        move |_| {
            e.set();
            std::thread::sleep(Duration::from_millis(500));
        },
        None,
    )
    .unwrap();
    slow.send(&1).await.unwrap();
    assert!(entered.wait(T).await);
    let t0 = Instant::now();
    let other = gw.remote_exec("channel.send(1)").unwrap();
    other
        .receive_timeout::<i64>(Duration::from_secs(10))
        .await
        .unwrap();
    // Whatever the scheduling, the answer could not pass the reader before
    // the callback returned; allow for it having started a bit earlier.
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_bounds_what_waits_for_a_slow_callback() {
    const ITEM: usize = 64 * 1024;
    const N: i64 = 200;
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec(
            "let blob = channel.receive(); let progress = channel.receive();
             for i in 0..200 { channel.send(blob); progress.send(i); }",
        )
        .unwrap();
    let progress = gw.newchannel();
    let gate = Event::new();
    let got = Arc::new(Mutex::new(0usize));
    let done = Event::new();
    let (g, n, d) = (gate.clone(), got.clone(), done.clone());
    ch.set_callback_in(
        RunMode::Parallel,
        move |v| {
            if v == Value::Str("end".into()) {
                d.set();
                return;
            }
            g.wait_blocking(Some(Duration::from_secs(30)));
            assert!(matches!(&v, Value::Bytes(b) if b.len() == ITEM));
            *n.lock().unwrap() += 1;
        },
        Some(Value::Str("end".into())),
    )
    .unwrap();
    ch.send(&Value::Bytes(vec![7u8; ITEM].into()))
        .await
        .unwrap();
    ch.send(&progress).await.unwrap();
    // The remote sends until its credit runs out, then stalls.
    let mut last = -1i64;
    loop {
        match progress
            .receive_timeout::<i64>(Duration::from_millis(500))
            .await
        {
            Ok(i) => last = i,
            Err(e) if e.to_string().contains("timed out") => break,
            Err(e) => panic!("{e}"),
        }
    }
    // The window is 4 MiB: 64 items of 64 KiB, plus one in flight.
    assert!(
        last < 80,
        "the remote sent {} items past a stalled callback",
        last + 1
    );
    gate.set();
    assert!(done.wait(T).await, "every item and the endmarker arrived");
    assert_eq!(*got.lock().unwrap(), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_endmarker_hold_in_every_mode_also_when_the_worker_dies() {
    for mode in [RunMode::Sequential, RunMode::Concurrent, RunMode::Parallel] {
        let gw = common::gateway().await;
        let ch = gw
            .remote_exec("for i in 0..100 { channel.send(i) } channel.receive();")
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ended = Event::new();
        let (s, e) = (seen.clone(), ended.clone());
        let hundred = Event::new();
        let h = hundred.clone();
        ch.set_callback_in(
            mode,
            move |v| {
                let mut s = s.lock().unwrap();
                s.push(v.clone());
                if s.len() == 100 {
                    h.set();
                }
                if v == Value::Str("end".into()) {
                    e.set();
                }
            },
            Some(Value::Str("end".into())),
        )
        .unwrap();
        assert!(hundred.wait(T).await, "{mode:?}");
        gw.kill().await.unwrap();
        assert!(ended.wait(T).await, "{mode:?}: the endmarker after a kill");
        let seen = seen.lock().unwrap().clone();
        let mut want: Vec<Value> = (0..100).map(Value::Int).collect();
        want.push(Value::Str("end".into()));
        assert_eq!(seen, want, "{mode:?}");
    }
}
