//! The service lifecycle: the transition table, the three modes, graceful
//! stop, kill, failures (fatal and not), start errors and restarts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use remex_sync::{
    Event, Failure, Feed, Launcher, Lifecycle, LifecycleState, Queue, RunMode, Service,
};

const BOUND: Option<Duration> = Some(Duration::from_secs(10));

#[test]
fn lifecycle_transition_table() {
    let lc = Lifecycle::new();
    assert_eq!(lc.state(), LifecycleState::Init);
    // From Init only a start counts.
    assert!(!lc.fault("x"));
    assert!(!lc.finish(Ok(())));
    assert!(!lc.ready(), "ready without begin");
    assert_eq!(lc.state(), LifecycleState::Init);
    assert!(!lc.done());
    // Init -> On.
    assert!(lc.begin());
    assert!(!lc.begin(), "a second start while starting is ignored");
    assert!(lc.ready());
    assert_eq!(lc.state(), LifecycleState::On);
    assert!(!lc.begin(), "start while On is ignored");
    // On -> Off.
    assert!(lc.finish(Ok(())));
    assert_eq!(lc.state(), LifecycleState::Off);
    assert!(lc.done());
    assert!(
        !lc.finish(Err("late".into())),
        "stop/kill once Off are ignored"
    );
    assert!(!lc.fault("late"));
    assert_eq!(lc.state(), LifecycleState::Off);
    // Off -> On (restart) -> Fault (non-fatal) -> ended, Fault holds with
    // its first reason.
    assert!(lc.begin() && lc.ready());
    assert!(lc.fault("first"));
    assert!(!lc.fault("second"));
    assert!(lc.finish(Ok(())));
    assert_eq!(lc.state(), LifecycleState::Fault("first".into()));
    // Fault -> On only by a restart.
    assert!(lc.begin());
    assert_eq!(
        lc.state(),
        LifecycleState::Fault("first".into()),
        "until ready"
    );
    assert!(lc.ready());
    assert_eq!(lc.state(), LifecycleState::On);
    // On -> Fault when the run fails.
    assert!(lc.finish(Err("fatal".into())));
    assert_eq!(lc.state(), LifecycleState::Fault("fatal".into()));
    assert_eq!(lc.reason().as_deref(), Some("fatal"));
    // A run that ends before it was ready.
    assert!(lc.begin());
    assert!(lc.finish(Err("could not connect".into())));
    assert_eq!(
        lc.state(),
        LifecycleState::Fault("could not connect".into())
    );
    assert!(lc.wait_ready_blocking(Some(Duration::ZERO)).is_err());
}

#[tokio::test]
async fn lifecycle_subscribers_see_each_change() {
    let lc = Lifecycle::new();
    let mut rx = lc.subscribe();
    lc.begin();
    lc.ready();
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow_and_update(), LifecycleState::On);
    lc.finish(Err("gone".into()));
    rx.changed().await.unwrap();
    assert_eq!(
        *rx.borrow_and_update(),
        LifecycleState::Fault("gone".into())
    );
    assert_eq!(
        lc.join(BOUND).await.unwrap(),
        LifecycleState::Fault("gone".into())
    );
}

/// A listener fed from a queue (standing in for a channel), stopping on
/// request once the queue is drained or closed.
fn queue_listener(
    source: Queue<u32>,
) -> impl Fn(Feed<(u32, ThreadId)>) -> ListenFut + Send + Sync + 'static {
    move |mut feed| {
        let source = source.clone();
        Box::pin(async move {
            feed.ready();
            loop {
                tokio::select! {
                    biased;
                    item = source.get(None) => match item {
                        Ok(v) => {
                            if feed.send((v, std::thread::current().id())).await.is_err() {
                                return Ok(());
                            }
                        }
                        Err(_) => return Ok(()),
                    },
                    _ = feed.stopped() => {
                        // Graceful: hand over what is already queued.
                        while let Some(v) = source.try_get() {
                            let _ = feed.send((v, std::thread::current().id())).await;
                        }
                        return Ok(());
                    }
                }
            }
        })
    }
}

type ListenFut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + Send>>;

type Log = Arc<Mutex<Vec<(u32, ThreadId, ThreadId)>>>;
type Recorder = Box<dyn FnMut((u32, ThreadId)) -> Result<(), Failure> + Send>;

fn recording_consumer(log: Log) -> impl Fn() -> Recorder + Send + Sync {
    move || {
        let log = log.clone();
        Box::new(move |(v, listener_thread)| {
            log.lock()
                .unwrap()
                .push((v, listener_thread, std::thread::current().id()));
            Ok(())
        })
    }
}

fn run_mode(mode: RunMode) -> Vec<(u32, ThreadId, ThreadId)> {
    let source = Queue::unbounded();
    let log: Log = Default::default();
    let svc = Service::builder(format!("{mode:?}"))
        .mode(mode)
        .capacity(8)
        .build(
            queue_listener(source.clone()),
            recording_consumer(log.clone()),
        );
    svc.start(true, BOUND).unwrap();
    assert_eq!(svc.state(), LifecycleState::On);
    for i in 0..100 {
        source.put_blocking(i, None).unwrap();
    }
    source.close();
    assert_eq!(svc.join_blocking(BOUND).unwrap(), LifecycleState::Off);
    assert!(svc.done());
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.iter().map(|e| e.0).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>(),
        "every event, in order, once"
    );
    log
}

#[test]
fn sequential_and_concurrent_consume_on_the_listeners_thread() {
    for mode in [RunMode::Sequential, RunMode::Concurrent] {
        for (_, listener, consumer) in run_mode(mode) {
            assert_eq!(listener, consumer, "{mode:?}");
        }
    }
}

#[test]
fn parallel_consumes_on_another_thread() {
    for (_, listener, consumer) in run_mode(RunMode::Parallel) {
        assert_ne!(listener, consumer);
    }
}

/// With a consumer that blocks for a while per event: how long the listener
/// took to hand over `n` events.
fn listener_time_with_slow_consumer(mode: RunMode, n: u32, pause: Duration) -> Duration {
    let fed = Arc::new(Mutex::new(None));
    let f = fed.clone();
    let svc = Service::builder("slow").mode(mode).build(
        move |mut feed: Feed<u32>| {
            let f = f.clone();
            async move {
                let t0 = Instant::now();
                for i in 0..n {
                    feed.send(i).await.map_err(Failure::fatal)?;
                }
                *f.lock().unwrap() = Some(t0.elapsed());
                Ok(())
            }
        },
        move || {
            move |_| {
                std::thread::sleep(pause);
                Ok(())
            }
        },
    );
    svc.start(true, BOUND).unwrap();
    assert_eq!(svc.join_blocking(BOUND).unwrap(), LifecycleState::Off);
    let result = fed.lock().unwrap().expect("the listener finished");
    result
}

#[test]
fn a_blocking_consumer_delays_the_listener_except_in_parallel_mode() {
    let pause = Duration::from_millis(20);
    let n = 10;
    let total = pause * n;
    let par = listener_time_with_slow_consumer(RunMode::Parallel, n, pause);
    assert!(par < total / 2, "parallel listener took {par:?}");
    let seq = listener_time_with_slow_consumer(RunMode::Sequential, n, pause);
    assert!(seq >= total, "sequential listener took {seq:?}");
}

#[test]
fn graceful_stop_consumes_everything_sent() {
    for mode in [RunMode::Sequential, RunMode::Concurrent, RunMode::Parallel] {
        let source = Queue::unbounded();
        let log: Log = Default::default();
        let svc = Service::builder("stopper").mode(mode).build(
            queue_listener(source.clone()),
            recording_consumer(log.clone()),
        );
        for i in 0..500 {
            source.put_blocking(i, None).unwrap();
        }
        svc.start(true, BOUND).unwrap();
        svc.stop(true, BOUND).unwrap();
        assert_eq!(svc.state(), LifecycleState::Off, "{mode:?}");
        let got: Vec<u32> = log.lock().unwrap().iter().map(|e| e.0).collect();
        // Whatever the listener took from the source, in order, none lost.
        assert_eq!(got, (0..got.len() as u32).collect::<Vec<_>>(), "{mode:?}");
        let left = source.len();
        assert_eq!(got.len() + left, 500, "{mode:?}");
    }
}

#[test]
fn kill_ends_in_fault_even_if_the_listener_ignores_stop() {
    for mode in [RunMode::Sequential, RunMode::Concurrent, RunMode::Parallel] {
        let svc = Service::builder("stubborn").mode(mode).build(
            |feed: Feed<u32>| async move {
                feed.ready();
                std::future::pending::<()>().await;
                Ok(())
            },
            || |_| Ok(()),
        );
        svc.start(true, BOUND).unwrap();
        // stop is asked, the listener ignores it: join times out.
        svc.stop(false, None).unwrap();
        assert!(svc
            .join_blocking(Some(Duration::from_millis(50)))
            .unwrap_err()
            .is_timeout());
        svc.kill(true, BOUND).unwrap();
        assert_eq!(
            svc.state(),
            LifecycleState::Fault("killed".into()),
            "{mode:?}"
        );
        assert!(svc.done());
        // kill and stop once ended are ignored.
        svc.kill(true, BOUND).unwrap();
        svc.stop(true, BOUND).unwrap();
        assert_eq!(svc.state(), LifecycleState::Fault("killed".into()));
    }
}

#[test]
fn non_fatal_failure_faults_and_keeps_going_fatal_ends() {
    for mode in [RunMode::Sequential, RunMode::Concurrent, RunMode::Parallel] {
        let handled = Arc::new(AtomicUsize::new(0));
        let h = handled.clone();
        let svc = Service::builder("picky").mode(mode).build(
            |mut feed: Feed<u32>| async move {
                for i in 0..10 {
                    if feed.send(i).await.is_err() {
                        break;
                    }
                }
                Ok(())
            },
            move || {
                let h = h.clone();
                move |i: u32| {
                    h.fetch_add(1, Ordering::SeqCst);
                    match i {
                        3 => Err(Failure::non_fatal("point 3 is odd")),
                        7 => Err(Failure::fatal("point 7 is broken")),
                        _ => Ok(()),
                    }
                }
            },
        );
        svc.start(true, BOUND).unwrap();
        let end = svc.join_blocking(BOUND).unwrap();
        // Fault holds its first reason; the fatal failure ended the run.
        assert_eq!(
            end,
            LifecycleState::Fault("point 3 is odd".into()),
            "{mode:?}"
        );
        assert_eq!(handled.load(Ordering::SeqCst), 8, "{mode:?}: 0..=7 handled");
    }
}

#[test]
fn fatal_failure_alone_ends_in_fault_with_its_reason() {
    let svc = Service::builder("fatal").mode(RunMode::Parallel).build(
        |mut feed: Feed<u32>| async move {
            let mut i = 0;
            // An endless source: only the consumer's failure ends it.
            while feed.send(i).await.is_ok() {
                i += 1;
            }
            Ok(())
        },
        || {
            |i: u32| {
                if i == 50 {
                    Err(Failure::fatal("disk full"))
                } else {
                    Ok(())
                }
            }
        },
    );
    svc.start(true, BOUND).unwrap();
    assert_eq!(
        svc.join_blocking(BOUND).unwrap(),
        LifecycleState::Fault("disk full".into())
    );
}

#[test]
fn start_reports_a_listener_that_dies_before_it_is_ready() {
    let svc = Service::builder("no-connect").build(
        |_feed: Feed<u32>| async { Err(Failure::fatal("connection refused")) },
        || |_| Ok(()),
    );
    let e = svc.start(true, BOUND).unwrap_err();
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert_eq!(
        svc.state(),
        LifecycleState::Fault("connection refused".into())
    );
    // start waits at most its timeout for a listener that never gets ready.
    let slow = Service::builder("slow-start").build(
        |feed: Feed<u32>| async move {
            feed.stopped().await;
            Ok(())
        },
        || |_| Ok(()),
    );
    let e = slow
        .start(true, Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    slow.stop(true, BOUND).unwrap();
}

#[test]
fn a_faulted_service_restarts() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = Service::builder("restartable").build(
        move |mut feed: Feed<u32>| {
            let run = r.fetch_add(1, Ordering::SeqCst);
            async move {
                feed.send(run as u32).await.map_err(Failure::fatal)?;
                if run == 0 {
                    Err(Failure::fatal("first run fails"))
                } else {
                    Ok(())
                }
            }
        },
        || |_| Ok(()),
    );
    svc.start(true, BOUND).unwrap();
    assert_eq!(
        svc.join_blocking(BOUND).unwrap(),
        LifecycleState::Fault("first run fails".into())
    );
    svc.start(true, BOUND).unwrap();
    assert_eq!(svc.join_blocking(BOUND).unwrap(), LifecycleState::Off);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(svc.duration() < Duration::from_secs(10));
}

#[tokio::test(flavor = "current_thread")]
async fn a_sequential_service_runs_on_the_callers_runtime() {
    let here = std::thread::current().id();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let started = Event::new();
    let st = started.clone();
    let svc = Service::builder("session")
        .runtime(Launcher::current().unwrap())
        .build(
            move |mut feed: Feed<u8>| {
                let st = st.clone();
                async move {
                    st.set();
                    feed.send(1).await.map_err(Failure::fatal)?;
                    Ok(())
                }
            },
            move || {
                let s = s.clone();
                move |_| {
                    s.lock().unwrap().push(std::thread::current().id());
                    Ok(())
                }
            },
        );
    svc.start(false, None).unwrap();
    svc.lifecycle().wait_ready(BOUND).await.unwrap();
    assert_eq!(svc.join(BOUND).await.unwrap(), LifecycleState::Off);
    assert!(started.is_set());
    assert_eq!(*seen.lock().unwrap(), vec![here]);
}
