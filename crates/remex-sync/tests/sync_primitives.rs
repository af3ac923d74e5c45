//! Each primitive from an OS thread and from an async task: waiting,
//! timeouts, errors, and the death of the thread or runtime that owed a
//! result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remex_sync::{
    AsyncResult, Error, Event, Launcher, Lock, Queue, RLock, Thread, ThreadResource, Trigger,
};

const BOUND: Option<Duration> = Some(Duration::from_secs(10));
const SHORT: Duration = Duration::from_millis(30);

#[test]
fn event_set_from_a_task_wakes_a_thread_and_the_reverse() {
    let t = Thread::new("ev");
    t.start(true, BOUND).unwrap();
    let ev = Event::new();
    // A task waits; this thread sets.
    let e = ev.clone();
    let waiter = t.spawn(async move { e.wait(BOUND).await });
    ev.set();
    assert!(waiter.get_blocking(BOUND).unwrap());
    // A thread waits; a task sets.
    ev.clear();
    let e = ev.clone();
    let setter = t.spawn(async move { e.set() });
    assert!(ev.wait_blocking(BOUND));
    setter.get_blocking(BOUND).unwrap();
}

#[tokio::test]
async fn event_wait_times_out_without_being_set() {
    let ev = Event::new();
    let t0 = Instant::now();
    assert!(!ev.wait(Some(SHORT)).await);
    assert!(t0.elapsed() >= SHORT);
    assert!(!ev.wait_blocking(Some(SHORT)));
    ev.set();
    assert!(ev.wait(Some(SHORT)).await);
}

#[test]
fn queue_keeps_order_across_threads_and_tasks() {
    let q = Queue::bounded(4);
    let t = Thread::new("q");
    t.start(true, BOUND).unwrap();
    let p = q.clone();
    let producer = t.spawn(async move {
        for i in 0..1000 {
            p.put(i).await.unwrap();
        }
        p.close();
    });
    let mut got = Vec::new();
    loop {
        match q.get_blocking(BOUND) {
            Ok(v) => got.push(v),
            Err(Error::Closed { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    producer.get_blocking(BOUND).unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn queue_timeout_is_distinct_from_closed_and_loses_nothing() {
    let q: Queue<u32> = Queue::bounded(1);
    assert!(q.get(Some(SHORT)).await.unwrap_err().is_timeout());
    q.put(1).await.unwrap();
    // Full: a thread's put times out, and the queued item is still there.
    let p = q.clone();
    let full = std::thread::spawn(move || p.put_blocking(2, Some(SHORT)));
    assert!(full.join().unwrap().unwrap_err().is_timeout());
    assert_eq!(q.try_put(3), Err(3));
    q.close();
    assert!(matches!(q.put(4).await, Err(Error::Closed { .. })));
    assert_eq!(q.get(Some(SHORT)).await.unwrap(), 1);
    assert!(matches!(
        q.get(Some(SHORT)).await,
        Err(Error::Closed { .. })
    ));
    assert!(matches!(q.get_blocking(None), Err(Error::Closed { .. })));
}

#[test]
fn async_result_returns_the_value_or_the_stored_error_to_every_getter() {
    let r: AsyncResult<String> = AsyncResult::new();
    assert!(r.get_blocking(Some(SHORT)).unwrap_err().is_timeout());
    assert!(r.wait_blocking(Some(SHORT)).is_none());
    let getters: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            std::thread::spawn(move || r.get_blocking(BOUND))
        })
        .collect();
    assert!(r.set(Ok("v".into())));
    assert!(!r.set(Ok("second".into())), "only the first set counts");
    for g in getters {
        assert_eq!(g.join().unwrap().unwrap(), "v");
    }
    let failed: AsyncResult<u8> = AsyncResult::new();
    failed.set(Err(Error::failed("boom")));
    assert!(failed.ready() && !failed.successful());
    assert_eq!(failed.get_blocking(None).unwrap_err().to_string(), "boom");
}

#[tokio::test]
async fn async_result_from_a_task() {
    let r: AsyncResult<u32> = AsyncResult::new();
    assert!(r.wait(Some(SHORT)).await.is_none());
    let w = r.clone();
    std::thread::spawn(move || w.set(Ok(5)));
    assert_eq!(r.get(BOUND).await.unwrap(), 5);
    assert!(matches!(r.wait(None).await, Some(Ok(5))));
}

#[test]
fn thread_apply_runs_on_the_thread_and_reports_panics() {
    let t = Thread::new("applier");
    t.start(true, BOUND).unwrap();
    let name = t
        .apply(|| std::thread::current().name().map(String::from))
        .unwrap();
    assert_eq!(name.as_deref(), Some("applier"));
    let err = t
        .apply(|| -> u8 { panic!("the closure broke") })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked(m) if m == "the closure broke"),
        "{err}"
    );
    // The thread survives a panicking closure.
    assert_eq!(t.apply_async(|| 7).get_blocking(BOUND).unwrap(), 7);
    t.stop(true, BOUND).unwrap();
    assert!(t.ended());
}

#[test]
fn work_sent_to_a_thread_that_ended_fails_instead_of_hanging() {
    let t = Thread::new("short-lived");
    t.start(true, BOUND).unwrap();
    // Queued behind a task that never finishes, then the thread stops.
    let never = t.spawn(std::future::pending::<()>());
    t.stop(true, BOUND).unwrap();
    assert!(matches!(never.get_blocking(BOUND), Err(Error::Gone { .. })));
    // After the end, new work fails at once.
    assert!(matches!(t.apply(|| 1), Err(Error::Gone { .. })));
    assert!(matches!(
        t.apply_async(|| 1).get_blocking(BOUND),
        Err(Error::Gone { .. })
    ));
}

#[test]
fn a_thread_whose_main_panics_gives_the_panic_to_get() {
    let t = Thread::with_main("doomed", |_stop| async { panic!("main failed") });
    t.start(true, BOUND).unwrap();
    let e = t.get_blocking(BOUND).unwrap_err();
    assert!(
        matches!(&e, Error::Panicked(m) if m == "main failed"),
        "{e}"
    );
    let pending = t.apply_async(|| 1);
    assert!(matches!(
        pending.get_blocking(BOUND),
        Err(Error::Gone { .. })
    ));
}

#[test]
fn thread_get_returns_main_value_and_join_times_out_while_running() {
    let t = Thread::with_main("main", |stop| async move {
        stop.cancelled().await;
        "stopped cleanly"
    });
    assert!(matches!(t.join_blocking(Some(SHORT)), Err(Error::Usage(_))));
    t.start(true, BOUND).unwrap();
    assert!(t.join_blocking(Some(SHORT)).unwrap_err().is_timeout());
    t.stop(false, None).unwrap();
    assert_eq!(t.get_blocking(BOUND).unwrap(), "stopped cleanly");
}

#[tokio::test]
async fn thread_from_async_code() {
    let t = Thread::with_main("async", |stop| async move {
        stop.cancelled().await;
        3
    });
    t.start(true, BOUND).unwrap();
    let l = t.launcher().unwrap();
    let id = l.call(|| std::thread::current().id()).await.unwrap();
    assert_ne!(id, std::thread::current().id());
    assert_eq!(t.spawn(async { 4 }).get(BOUND).await.unwrap(), 4);
    assert!(t.join(Some(SHORT)).await.unwrap_err().is_timeout());
    t.stop(false, None).unwrap();
    assert_eq!(t.get(BOUND).await.unwrap(), 3);
}

#[test]
fn launcher_on_a_runtime_that_shut_down_reports_gone() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = Launcher::new(rt.handle().clone(), "a dropped runtime");
    drop(rt);
    let e = l.apply(|| 1).unwrap_err();
    assert!(
        matches!(&e, Error::Gone { what, .. } if what == "a dropped runtime"),
        "{e}"
    );
    assert!(matches!(
        l.apply_async(|| 1).get_blocking(BOUND),
        Err(Error::Gone { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn launcher_apply_on_its_own_thread_runs_in_place() {
    let l = Launcher::current().unwrap();
    assert!(l.is_owner());
    // Would deadlock if it queued behind this very task.
    assert_eq!(l.apply(|| 9).unwrap(), 9);
}

#[test]
fn launcher_current_outside_a_runtime_says_what_to_do() {
    let e = Launcher::current().unwrap_err();
    assert!(e.to_string().contains("needs a tokio runtime"), "{e}");
}

#[test]
fn thread_resource_is_per_thread_and_dies_with_it() {
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let res = ThreadResource::new(move || m.fetch_add(1, Ordering::SeqCst));
    let mine = *res.get();
    assert_eq!(*res.get(), mine);
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let r = res.clone();
    let other = std::thread::spawn(move || {
        tx.send(*r.get()).unwrap();
        done_rx.recv().unwrap();
    });
    let theirs = rx.recv().unwrap();
    assert_ne!(theirs, mine);
    let mut all: Vec<usize> = res.all().iter().map(|v| **v).collect();
    all.sort();
    assert_eq!(all, {
        let mut v = vec![mine, theirs];
        v.sort();
        v
    });
    done_tx.send(()).unwrap();
    other.join().unwrap();
    assert_eq!(res.len(), 1, "the ended thread's resource is gone");
    assert_eq!(res.pop().map(|v| *v), Some(mine));
    assert!(res.is_empty());
    // Made afresh after pop.
    assert_ne!(*res.get(), mine);
}

#[test]
fn trigger_coalesces_sends_and_send_wait_sees_a_later_run() {
    let t = Thread::new("hub");
    t.start(true, BOUND).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let trigger = Trigger::new(t.launcher().unwrap(), move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    // Hold the hub busy so that many sends queue behind one run.
    let gate = Event::new();
    let g = gate.clone();
    let busy = t.apply_async(move || g.wait_blocking(BOUND));
    for _ in 0..100 {
        trigger.send();
    }
    gate.set();
    busy.get_blocking(BOUND).unwrap();
    trigger.send_wait_blocking(BOUND).unwrap();
    let n = runs.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "100 sends coalesced into {n} runs");
    assert_eq!(trigger.runs(), n as u64);
}

#[test]
fn trigger_on_a_stopped_thread_fails_send_wait() {
    let t = Thread::new("hub");
    t.start(true, BOUND).unwrap();
    let trigger = Trigger::new(t.launcher().unwrap(), || {});
    t.stop(true, BOUND).unwrap();
    assert!(matches!(
        trigger.send_wait_blocking(BOUND),
        Err(Error::Gone { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn trigger_send_wait_blocking_on_its_own_thread_is_refused() {
    let trigger = Trigger::new(Launcher::current().unwrap(), || {});
    assert!(matches!(
        trigger.send_wait_blocking(BOUND),
        Err(Error::Usage(_))
    ));
    trigger.send_wait(BOUND).await.unwrap();
}

#[test]
fn lock_excludes_across_threads_and_tasks() {
    let lock = Lock::new();
    let counter = Arc::new(AtomicUsize::new(0));
    let t = Thread::new("locker");
    t.start(true, BOUND).unwrap();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (l, c) = (lock.clone(), counter.clone());
        handles.push(std::thread::spawn(move || {
            for _ in 0..200 {
                let _g = l.acquire_blocking(BOUND).unwrap();
                let v = c.load(Ordering::SeqCst);
                std::thread::yield_now();
                c.store(v + 1, Ordering::SeqCst);
            }
        }));
    }
    let (l, c) = (lock.clone(), counter.clone());
    let task = t.spawn(async move {
        for _ in 0..200 {
            let _g = l.acquire(BOUND).await.unwrap();
            let v = c.load(Ordering::SeqCst);
            tokio::task::yield_now().await;
            c.store(v + 1, Ordering::SeqCst);
        }
    });
    for h in handles {
        h.join().unwrap();
    }
    task.get_blocking(BOUND).unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 1000, "no update was lost");
    assert!(!lock.is_locked());
}

#[tokio::test]
async fn lock_acquire_times_out_while_held() {
    let lock = Lock::new();
    let g = lock.acquire(None).await.unwrap();
    assert!(lock.acquire(Some(SHORT)).await.unwrap_err().is_timeout());
    drop(g);
    assert!(lock.acquire(Some(SHORT)).await.is_ok());
}

#[test]
fn rlock_is_reentrant_for_its_holder_only() {
    let lock = RLock::new();
    let a = lock.acquire_blocking(None).unwrap();
    let b = lock.acquire_blocking(Some(SHORT)).unwrap();
    assert_eq!(lock.depth(), 2);
    let l = lock.clone();
    let other = std::thread::spawn(move || l.acquire_blocking(Some(SHORT)).map(drop));
    assert!(other.join().unwrap().unwrap_err().is_timeout());
    drop(b);
    drop(a);
    let l = lock.clone();
    let other = std::thread::spawn(move || l.acquire_blocking(BOUND).map(drop));
    other.join().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlock_belongs_to_the_task_across_awaits() {
    let lock = RLock::new();
    let l = lock.clone();
    tokio::spawn(async move {
        let _a = l.acquire(BOUND).await.unwrap();
        tokio::task::yield_now().await; // may resume on the other thread
        let _b = l.acquire(Some(SHORT)).await.unwrap();
        assert_eq!(l.depth(), 2);
    })
    .await
    .unwrap();
    let _outer = lock.acquire(None).await.unwrap();
    let l = lock.clone();
    let other = tokio::spawn(async move { l.acquire(Some(SHORT)).await.map(drop) });
    assert!(other.await.unwrap().unwrap_err().is_timeout());
}
