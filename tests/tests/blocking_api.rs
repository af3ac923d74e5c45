//! The blocking API, with execnet's seed examples written as in the
//! Python, from plain threads without a runtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use remex::blocking::{makegateway, Group, MultiChannel};
use remex::sync::RunMode;
use remex::{Error, Errors, Value};

const T: Option<Duration> = Some(Duration::from_secs(10));

fn spec() -> String {
    format!("popen//worker={}", env!("CARGO_BIN_EXE_remex-test-worker"))
}

#[test]
fn multichannel_seed_example() {
    // >>> ch1 = execnet.makegateway().remote_exec("channel.send(1)")
    let ch1 = makegateway(&spec())
        .unwrap()
        .remote_exec("channel.send(1)")
        .unwrap();
    let ch2 = makegateway(&spec())
        .unwrap()
        .remote_exec("channel.send(2)")
        .unwrap();
    let mch = MultiChannel::new(vec![ch1.clone(), ch2.clone()]);
    assert_eq!(mch.len(), 2);
    assert!(mch[0] == ch1 && mch[1] == ch2);
    assert!(mch.contains(&ch1) && mch.contains(&ch2));
    assert_eq!(mch.receive_each::<i64>(T).unwrap().iter().sum::<i64>(), 3);
}

#[test]
fn receive_queue_seed_example() {
    let ch1 = makegateway(&spec())
        .unwrap()
        .remote_exec("channel.send(1)")
        .unwrap();
    let ch2 = makegateway(&spec())
        .unwrap()
        .remote_exec("channel.send(2)")
        .unwrap();
    let mch = MultiChannel::new(vec![ch1, ch2]);
    let queue = mch.make_receive_queue(None).unwrap();
    let (_chan1, res1) = queue.get(T).unwrap();
    let (_chan2, res2) = queue.get(Some(Duration::from_secs(3))).unwrap();
    let sum: i64 =
        remex::from_value::<i64>(res1).unwrap() + remex::from_value::<i64>(res2).unwrap();
    assert_eq!(sum, 3);
}

#[test]
fn callback_seed_example() {
    // >>> ch = gw.remote_exec("channel.receive() ; channel.send(42)")
    // >>> ch.setcallback(l.append); ch.send(1); ch.waitclose(); assert l == [42]
    let gw = makegateway(&spec()).unwrap();
    let ch = gw
        .remote_exec("channel.receive(); channel.send(42)")
        .unwrap();
    let l = Arc::new(Mutex::new(Vec::new()));
    let l2 = l.clone();
    ch.set_callback(move |v| l2.lock().unwrap().push(v), None)
        .unwrap();
    ch.send_blocking(&1).unwrap();
    ch.waitclose_blocking(T).unwrap();
    assert_eq!(*l.lock().unwrap(), vec![Value::Int(42)]);
}

#[test]
fn endmarker_seed_example_and_no_process_left() {
    // >>> group = execnet.Group(['popen'] * 3)
    let group = Group::new([format!("3*{}", spec())]).unwrap();
    let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    let mch = group
        .remote_exec("channel.send(channel.receive()+1)")
        .unwrap();
    let queue = mch.make_receive_queue(Some(Value::Int(42))).unwrap();
    mch[0].send_blocking(&1).unwrap();
    let (_chan1, res1) = queue.get(T).unwrap();
    assert_eq!(res1, Value::Int(2));
    group.terminate(Duration::from_secs(1));
    for _ in 0..3 {
        let (_chan, res) = queue.get(T).unwrap();
        assert_eq!(res, Value::Int(42));
    }
    for pid in pids {
        assert!(
            remex_tests::wait_gone(pid, Duration::from_secs(5)),
            "worker {pid} left behind"
        );
    }
}

#[test]
fn gateway_calls_and_timeouts() {
    let gw = makegateway(&spec()).unwrap();
    assert!(gw.rinfo().pid > 0);
    let ch = gw
        .remote_exec("let x = channel.receive(); channel.send(x * 2);")
        .unwrap();
    let e = ch
        .receive_blocking::<i64>(Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    ch.send_blocking(&21).unwrap();
    assert_eq!(ch.receive_blocking::<i64>(T).unwrap(), 42);
    ch.waitclose_blocking(T).unwrap();
    let status = gw.remote_status().unwrap();
    assert_eq!(status.numexecuting, 0);
    let echo = gw.remote_call("echo", &"hi").unwrap();
    assert_eq!(echo.receive_blocking::<String>(T).unwrap(), "hi");
    let pid = gw.rinfo().pid;
    gw.exit().unwrap();
    assert!(remex_tests::wait_gone(pid, Duration::from_secs(5)));
    assert_eq!(
        gw.lifecycle().join_blocking(T).unwrap(),
        remex::sync::LifecycleState::Off
    );
}

#[test]
fn iteration_and_remote_errors() {
    let gw = makegateway(&spec()).unwrap();
    let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }").unwrap();
    let items: Vec<i64> = ch.iter().collect::<remex::Result<_>>().unwrap();
    assert_eq!(items, vec![0, 1, 2]);
    let bad = gw.remote_exec("throw \"nope\"").unwrap();
    let e = bad.waitclose_blocking(T).unwrap_err();
    assert!(
        matches!(&e, Error::Remote(r) if r.message.contains("nope")),
        "{e}"
    );
    gw.kill().unwrap();
}

#[test]
fn group_pool_call_and_gather_without_a_runtime() {
    let group = Group::new([format!("2*{}", spec())]).unwrap();
    assert_eq!(group.len(), 2);
    let id = group.get(0).unwrap().id().to_string();
    assert!(group.contains(&id) && group.by_id(&id).is_some());
    let v: Value = group.call("echo", &5, T).unwrap();
    assert_eq!(v, Value::Int(5));
    let results = (0..10)
        .map(|i| group.call::<i64>("echo", &i, T))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    assert_eq!(results, (0..10).collect::<Vec<_>>());
    let futures = (0..10)
        .map(|i| group.submit::<i64>("echo", &i))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    let gathered = remex::blocking::gather(futures, Errors::Raise).unwrap();
    assert_eq!(gathered.value, (0..10).collect::<Vec<_>>());
    group.terminate(Duration::from_secs(1));
}

#[test]
fn a_blocking_call_from_a_sequential_callback_is_refused_not_deadlocked() {
    let gw = makegateway(&spec()).unwrap();
    // The item is sent only after the callback is set: items queued before
    // are handed to it on the thread that sets it (as in execnet), which is
    // not the remex-io thread.
    let ch = gw
        .remote_exec("channel.receive(); channel.send(1)")
        .unwrap();
    let got = Arc::new(Mutex::new(None));
    let done = remex::sync::Event::new();
    let (g, d, gw2) = (got.clone(), done.clone(), gw.clone());
    ch.set_callback(
        move |_| {
            *g.lock().unwrap() = Some(gw2.remote_status().map(|_| ()));
            d.set();
        },
        None,
    )
    .unwrap();
    ch.send_blocking(&"go").unwrap();
    assert!(done.wait_blocking(T));
    let r = got.lock().unwrap().take().unwrap();
    assert!(r.unwrap_err().to_string().contains("would wait for itself"));
    // In parallel mode the same call works.
    let ch = gw.remote_exec("channel.send(1)").unwrap();
    let (g, d, gw2) = (got.clone(), done.clone(), gw.clone());
    done.clear();
    ch.set_callback_in(
        RunMode::Parallel,
        move |_| {
            *g.lock().unwrap() = Some(gw2.remote_status().map(|_| ()));
            d.set();
        },
        None,
    )
    .unwrap();
    assert!(done.wait_blocking(T));
    got.lock().unwrap().take().unwrap().unwrap();
}
