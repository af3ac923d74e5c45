//! Channel semantics from execnet, one test per behaviour users rely on.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use remex::{Error, Value};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_after_remote_close_reports_end_every_time() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.send(42)").unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    for _ in 0..3 {
        let err = ch.receive::<i64>().await.unwrap_err();
        assert!(err.is_end_of_channel(), "{err}");
    }
    ch.waitclose(Some(T)).await.unwrap();
    assert!(ch.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_script_gives_remote_error_with_position_after_its_items() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("channel.send(42);\nlet x = no_such_function(1);")
        .unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    let err = ch.receive::<i64>().await.unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("expected a remote error, got {err}")
    };
    assert!(remote.message.contains("no_such_function"), "{remote}");
    assert!(remote.message.contains("line 2"), "{remote}");
    assert_eq!(remote.pid, gw.rinfo().pid);
    // Sticky: every later receive and waitclose report the same error.
    assert_eq!(ch.receive::<i64>().await.unwrap_err(), err);
    assert_eq!(ch.waitclose(Some(T)).await.unwrap_err(), err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_error_is_a_remote_error_with_position() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.send(1 +;").unwrap();
    let err = ch.waitclose(Some(T)).await.unwrap_err();
    let Error::Remote(remote) = err else {
        panic!("expected a remote error")
    };
    assert!(
        remote.message.contains("syntax error"),
        "{}",
        remote.message
    );
    assert!(remote.message.contains("line 1"), "{}", remote.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_leave_the_channel_usable() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("let x = channel.receive(); channel.send(x + 1);")
        .unwrap();
    let err = ch
        .receive_timeout::<i64>(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let err = ch
        .waitclose(Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let err = ch
        .receive_blocking::<i64>(Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    ch.send(&1).await.unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 2);
    ch.waitclose(Some(T)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterating_yields_exactly_the_items_sent() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }").unwrap();
    let items: Vec<i64> = ch.stream::<i64>().map(|r| r.unwrap()).collect().await;
    assert_eq!(items, vec![0, 1, 2]);
    let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }").unwrap();
    let items =
        tokio::task::spawn_blocking(move || ch.iter::<i64>().collect::<Result<Vec<_>, _>>())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(items, vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_the_remote_error_then_ends() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.send(0); throw \"stop\";").unwrap();
    let items: Vec<_> = ch.stream::<i64>().collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok(0));
    assert!(matches!(&items[1], Err(Error::Remote(r)) if r.message.contains("stop")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_loop_over_their_channel_until_it_closes() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("let n = 0; for x in channel { n += x; } channel.send(n);")
        .unwrap();
    let reply = ch.newchannel();
    for i in 1..=4 {
        ch.send(&i).await.unwrap();
    }
    // close_write ends the script's loop but keeps the way back open.
    ch.close_write();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 10);
    drop(reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_inside_values_work_both_ways_and_ids_are_released() {
    let gw = common::gateway().await;
    // Controller -> worker: the script answers on the channel it was given.
    let ch = gw
        .remote_exec("let c = channel.receive(); c.send(c.receive() * 2); c.close();")
        .unwrap();
    let side = gw.newchannel();
    ch.send(&side).await.unwrap();
    side.send(&21).await.unwrap();
    assert_eq!(side.receive::<i64>().await.unwrap(), 42);
    side.waitclose(Some(T)).await.unwrap();
    ch.waitclose(Some(T)).await.unwrap();

    // Worker -> controller: the script makes a channel and sends it.
    let ch = gw
        .remote_exec("let c = channel.newchannel(); channel.send([c, 5]); c.send(c.receive() + 1); c.close();")
        .unwrap();
    let (r, five): (remex::ChannelRef, i64) = ch.receive().await.unwrap();
    assert_eq!(five, 5);
    let theirs = gw.channel(r);
    theirs.send(&99).await.unwrap();
    assert_eq!(theirs.receive::<i64>().await.unwrap(), 100);
    theirs.waitclose(Some(T)).await.unwrap();
    ch.waitclose(Some(T)).await.unwrap();

    assert_eq!(gw.numchannels(), 0, "controller side keeps no channel ids");
    let status = gw.remote_status().await.unwrap();
    assert_eq!(status.numchannels, 0, "worker side keeps no channel ids");
}

type Collected = Arc<Mutex<Vec<Value>>>;

/// A callback that records items, and a receiver told when "end" arrived.
fn collector() -> (
    impl Fn(Value) + Send + Sync + 'static,
    Collected,
    mpsc::Receiver<()>,
) {
    let items = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let sink = items.clone();
    let cb = move |v: Value| {
        let end = v == Value::from("end");
        sink.lock().unwrap().push(v);
        if end {
            let _ = tx.lock().unwrap().send(());
        }
    };
    (cb, items, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_gets_queued_items_first_then_new_ones_then_the_endmarker() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("let side = channel.receive(); channel.send(1); channel.send(2); side.send(0); channel.receive(); channel.send(3);")
        .unwrap();
    let sync = gw.newchannel();
    ch.send(&sync).await.unwrap();
    // Items 1 and 2 precede the sync item on the stream, so they are queued now.
    sync.receive_timeout::<i64>(T).await.unwrap();
    let (cb, items, done) = collector();
    ch.set_callback(cb, Some(Value::from("end"))).unwrap();
    assert!(matches!(
        ch.receive::<i64>().await,
        Err(Error::CallbackSet { .. })
    ));
    ch.send(&0).await.unwrap();
    done.recv_timeout(T).unwrap();
    assert_eq!(
        *items.lock().unwrap(),
        vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::from("end")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_endmarker_comes_after_a_remote_failure() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("channel.send(1); channel.receive(); throw \"boom\";")
        .unwrap();
    let (cb, items, done) = collector();
    ch.set_callback(cb, Some(Value::from("end"))).unwrap();
    ch.send(&0).await.unwrap();
    done.recv_timeout(T).unwrap();
    assert_eq!(
        *items.lock().unwrap(),
        vec![Value::Int(1), Value::from("end")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_endmarker_comes_when_the_worker_is_killed() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("channel.send(1); channel.receive();")
        .unwrap();
    let (cb, items, done) = collector();
    ch.set_callback(cb, Some(Value::from("end"))).unwrap();
    // The worker blocks in receive; wait for its item, then kill it.
    let status_ch = gw.remote_exec("channel.send(0)").unwrap();
    status_ch.receive::<i64>().await.unwrap();
    gw.kill().await.unwrap();
    done.recv_timeout(T).unwrap();
    let got = items.lock().unwrap().clone();
    assert_eq!(got.last(), Some(&Value::from("end")));
    assert_eq!(got.iter().filter(|v| **v == Value::from("end")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execnet_callback_example() {
    // gw.remote_exec("channel.receive() ; channel.send(42)"); setcallback(l.append); send(1); waitclose
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("channel.receive() ; channel.send(42)")
        .unwrap();
    let l = Arc::new(Mutex::new(Vec::new()));
    let sink = l.clone();
    ch.set_callback(move |v| sink.lock().unwrap().push(v), None)
        .unwrap();
    ch.send(&1).await.unwrap();
    ch.waitclose(Some(T)).await.unwrap();
    assert_eq!(*l.lock().unwrap(), vec![Value::Int(42)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_on_a_channel_the_remote_closed_is_an_error() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.close();").unwrap();
    ch.waitclose(Some(T)).await.unwrap();
    let err = ch.send(&1).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChannelClosed {
                by_remote: true,
                ..
            }
        ),
        "{err}"
    );
    // Closing locally, then sending, is an error too.
    let ch = gw.remote_exec("channel.receive();").unwrap();
    ch.close(None);
    assert!(matches!(
        ch.send(&1).await.unwrap_err(),
        Error::ChannelClosed {
            by_remote: false,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_closing_its_channel_with_an_error_is_reported() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("channel.send(1); channel.close(\"bad input\"); 5")
        .unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 1);
    let err = ch.receive::<i64>().await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.message == "bad input"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_sending_after_closing_its_channel_does_not_disturb_others() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.close(); channel.send(1);").unwrap();
    ch.waitclose(Some(T)).await.unwrap();
    let ok = gw.remote_exec("channel.send(7)").unwrap();
    assert_eq!(ok.receive::<i64>().await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_sent_to_a_channel_passed_in_call_arguments_are_kept() {
    // The task waits before it looks at the channel it was given; what was
    // sent to that channel meanwhile must wait for it, not be dropped.
    let gw = common::gateway().await;
    let side = gw.newchannel();
    let ch = gw
        .remote_call("late_receive", &(200u64, side.handle()))
        .unwrap();
    side.send(&7).await.unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_holding_its_channels_last_handle_does_not_deadlock_the_gateway() {
    // Regression: the reader dropped such a callback while holding the
    // channel's lock, and the handle's drop took the same lock. A deadlocked
    // runtime thread cannot be joined at shutdown, so a regression would
    // hang this binary: the watchdog turns that into a quick failure.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !watched.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("deadlock: a gateway's reader hung after a callback released its channel");
            std::process::exit(101);
        }
    });
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec("let side = channel.receive(); side.receive();")
        .unwrap();
    let side = gw.newchannel();
    ch.send(&side).await.unwrap();
    let keep = ch.clone();
    ch.set_callback(move |_| assert!(keep.id() > 0), None)
        .unwrap();
    drop(ch);
    side.send(&0).await.unwrap();
    // The script ends, its channel closes, the callback is released: the
    // gateway's reader must still serve.
    let ok = gw.remote_exec("channel.send(5)").unwrap();
    let got = ok.receive_timeout::<i64>(T).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(got.unwrap(), 5);
}

/// Regression: a channel that arrived inside a value, then was filled and
/// closed by the remote before this side attached it, lost its items (the
/// closed channel was unregistered, and attaching made an empty one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_items_on_a_passed_channel_closed_before_attach_are_kept() {
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec(
            "let c = channel.newchannel(); channel.send(c);
             for i in 0..100 { c.send(i) } c.close();",
        )
        .unwrap();
    let r: remex::ChannelRef = ch.receive().await.unwrap();
    // The script has run to its end (and closed c) before c is attached.
    ch.waitclose(Some(T)).await.unwrap();
    let c = ch.attach(r);
    let items: Vec<i64> = tokio::time::timeout(T, c.stream::<i64>().map(|r| r.unwrap()).collect())
        .await
        .expect("the attached channel ends");
    assert_eq!(items, (0..100).collect::<Vec<_>>());
    drop(c);
    // Once attached and dropped, the channel is released.
    let status = gw.remote_status().await.unwrap();
    assert!(status.numchannels <= 1, "{status:?}");
}

#[tokio::test]
async fn a_script_that_fails_after_close_write_still_reports_its_error() {
    // Found 2026-12-02: the worker took the controller's half-close for a
    // full close and only logged the script's error; waitclose said Ok.
    let gw = common::gateway().await;
    let ch = gw
        .remote_exec(r#"for x in channel { } throw "failed after the input ended""#)
        .unwrap();
    ch.send(&1).await.unwrap();
    ch.close_write();
    let e = ch.waitclose(None).await.unwrap_err();
    assert!(
        e.to_string().contains("failed after the input ended"),
        "{e}"
    );
    gw.exit().await.unwrap();
}
