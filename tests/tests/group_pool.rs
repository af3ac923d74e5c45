//! submit, gather, map: dask's model on remex, with workers that fail and
//! die.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use remex::{gather, Error, Errors, Value};

const T: Duration = Duration::from_secs(20);

fn int(v: &Value) -> i64 {
    remex::from_value(v.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_keeps_the_shape_of_nested_containers() {
    let g = common::group(2).await;
    let sq = |x: i64| g.submit("square", &x).unwrap();
    // dask: c.gather([x, [x], x]) -> [3, [3], 3]; Rust containers are typed.
    let got = gather(vec![vec![sq(1)], vec![sq(2), sq(3)], vec![]], Errors::Raise)
        .await
        .unwrap();
    assert_eq!(
        got.value,
        vec![
            vec![Value::Int(1)],
            vec![Value::Int(4), Value::Int(9)],
            vec![]
        ]
    );
    assert!(got.skipped.is_empty());

    let map: HashMap<&str, _> = [("a", sq(4)), ("b", sq(5))].into_iter().collect();
    let got = gather(map, Errors::Raise).await.unwrap().value;
    assert_eq!((int(&got["a"]), int(&got["b"])), (16, 25));

    let tree: BTreeMap<u8, Option<_>> = [(1, Some(sq(6))), (2, None)].into_iter().collect();
    let got = gather(tree, Errors::Raise).await.unwrap().value;
    assert_eq!(got[&1], Some(Value::Int(36)));
    assert_eq!(got[&2], None);

    let (a, [b, c]) = gather((sq(7), [sq(8), sq(9)]), Errors::Raise)
        .await
        .unwrap()
        .value;
    assert_eq!((int(&a), int(&b), int(&c)), (49, 64, 81));
    assert_eq!(
        int(&gather(sq(10), Errors::Raise).await.unwrap().value),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_returns_the_first_failure_and_cancels_the_rest() {
    let g = common::group(2).await;
    let slow = g.submit::<()>("sleep", &30).unwrap();
    let bad = g.submit("fail", "bad input").unwrap();
    let t0 = Instant::now();
    let err = gather(vec![slow, bad], Errors::Raise).await.unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "gather waited for the slow task"
    );
    assert!(
        matches!(&err, Error::Remote(r) if r.message.contains("failed on purpose: bad input")),
        "{err}"
    );
    // The sleeping task was cancelled on its worker: nothing keeps running.
    let deadline = Instant::now() + T;
    loop {
        let mut executing = 0;
        for gw in g.gateways() {
            executing += gw.remote_status().await.unwrap().numexecuting;
        }
        if executing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{executing} tasks still run after gather raised"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_leaves_failures_out_at_every_depth_and_reports_them() {
    let g = common::group(2).await;
    let ok = |x: i64| g.submit("square", &x).unwrap();
    let bad = || g.submit("fail", "x").unwrap();
    let got = gather(
        vec![vec![ok(1), bad()], vec![bad()], vec![ok(2)]],
        Errors::Skip,
    )
    .await
    .unwrap();
    assert_eq!(
        got.value,
        vec![vec![Value::Int(1)], vec![], vec![Value::Int(4)]]
    );
    let mut paths: Vec<_> = got.skipped.iter().map(|s| s.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, vec!["[0][1]", "[1][0]"]);
    assert!(got
        .skipped
        .iter()
        .all(|s| s.error.to_string().contains("failed on purpose")));

    // A tuple is a fixed shape: it fails whole, and its list leaves it out.
    let got = gather(vec![(ok(3), bad()), (ok(4), ok(5))], Errors::Skip)
        .await
        .unwrap();
    assert_eq!(got.value.len(), 1);
    assert_eq!((int(&got.value[0].0), int(&got.value[0].1)), (16, 25));
    assert_eq!(got.skipped.len(), 1);
    assert_eq!(got.skipped[0].path, "[0]");

    let map: BTreeMap<&str, _> = [("a", ok(6)), ("b", bad())].into_iter().collect();
    let got = gather(map, Errors::Skip).await.unwrap();
    assert_eq!(got.value.keys().collect::<Vec<_>>(), vec![&"a"]);
    assert_eq!(got.skipped[0].path, "[\"b\"]");
    assert_eq!(gather(Some(bad()), Errors::Skip).await.unwrap().value, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_future_cancels_its_task() {
    let g = common::group(1).await;
    let gw = g.get(0).unwrap();
    let fut = g.submit::<()>("sleep", &30).unwrap();
    let deadline = Instant::now() + T;
    while gw.remote_status().await.unwrap().numexecuting == 0 {
        assert!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(fut);
    while gw.remote_status().await.unwrap().numexecuting != 0 {
        assert!(Instant::now() < deadline, "the dropped task still runs");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_kills_every_worker_fails_after_the_limit() {
    let g = common::group(4).await;
    let err = g.submit::<()>("suicide", &()).unwrap().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("died on each of 3 attempts"), "{text}");
    assert!(
        matches!(&err, remex::Error::TaskLost { task, attempts: 3, gateway, .. } if task == "suicide" && gateway.starts_with("gw")),
        "{err:?}"
    );
    assert_eq!(g.len(), 1, "three workers died, one is left");
    assert_eq!(int(&g.submit("square", &3).unwrap().await.unwrap()), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_streams_results_in_order_or_as_completed() {
    let g = common::group(2).await;
    let ordered: Vec<i64> = g
        .map("square", 0..500i64, true)
        .map(|r| int(&r.unwrap()))
        .collect()
        .await;
    assert_eq!(ordered, (0..500i64).map(|x| x * x).collect::<Vec<_>>());
    let mut any: Vec<i64> = g
        .map(
            "slow_echo",
            (0..40u64).map(|i| ((40 - i) % 7, Value::Int(i as i64))),
            false,
        )
        .map(|r| int(&r.unwrap()))
        .collect()
        .await;
    any.sort();
    assert_eq!(any, (0..40).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_survive_random_sigkills_exactly_once() {
    let g = common::group(4).await;
    g.set_tasks_per_worker(8);
    let n = 10_000i64;
    let results = g.map(
        "slow_echo",
        (0..n).map(|i| (if i % 50 == 0 { 1u64 } else { 0 }, Value::Int(i))),
        false,
    );
    let killer_group = g.clone();
    let killer = tokio::spawn(async move {
        // Five times: kill a random worker with SIGKILL, then add a new one.
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let live = killer_group.gateways();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let victim = &live[(seed % live.len() as u64) as usize];
            // SAFETY: signalling a worker this test started.
            unsafe {
                libc::kill(victim.rinfo().pid as i32, libc::SIGKILL);
            }
            killer_group.makegateway(&common::spec("")).await.unwrap();
        }
    });
    let t0 = Instant::now();
    let got: Vec<i64> = tokio::time::timeout(
        Duration::from_secs(120),
        results.map(|r| int(&r.unwrap())).collect(),
    )
    .await
    .expect("10,000 tasks within 120 s");
    killer.await.unwrap();
    let mut seen = vec![0u8; n as usize];
    for x in &got {
        seen[*x as usize] += 1;
    }
    assert_eq!(got.len(), n as usize);
    assert!(seen.iter().all(|c| *c == 1), "every result exactly once");
    eprintln!("10,000 tasks with 5 SIGKILLs in {:?}", t0.elapsed());
    g.terminate(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_futures_gathers_as_a_stream_in_order() {
    let g = common::group(2).await;
    let futures = futures::stream::iter((0..200i64).map(|i| g.submit("square", &i).unwrap()));
    let got: Vec<i64> = remex::gather_stream(futures, 16)
        .map(|r| int(&r.unwrap()))
        .collect()
        .await;
    assert_eq!(got, (0..200i64).map(|x| x * x).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_runs_a_burst_of_tasks_side_by_side() {
    // A lane's executors wake one another while requests wait, not one per
    // request: a burst must still run side by side, and quick tasks must
    // not wait behind a slow one.
    let g = common::group(1).await;
    g.set_tasks_per_worker(4);
    let t0 = Instant::now();
    let sleeps = (0..4)
        .map(|_| g.submit::<()>("sleep", &0.5))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    gather(sleeps, Errors::Raise).await.unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "4 sleeps of 0.5 s on 4 executors took {took:?}: they did not run side by side"
    );
    let slow = g.submit::<()>("sleep", &3).unwrap();
    let t0 = Instant::now();
    let quick = (0..200i64)
        .map(|i| g.submit::<i64>("echo", &i))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    let got = gather(quick, Errors::Raise).await.unwrap().value;
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "200 echoes waited {took:?} behind a 3 s sleep"
    );
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_joins_takes_tasks_already_queued() {
    // Every lane full, tasks queued: a worker added to the group gets them
    // at once, without waiting for a place to free on the first.
    let g = common::group(1).await;
    g.set_tasks_per_worker(1);
    let first = g.submit::<()>("sleep", &30).unwrap();
    // Waits on the worker for the one executor (a lane holds twice as many
    // tasks as it runs).
    let prefetched = g.submit::<i64>("echo", &-1).unwrap();
    let queued = (0..3i64)
        .map(|i| g.submit::<i64>("echo", &i).map(|f| f.with_details()))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    let added = g.makegateways(&common::spec("")).await.unwrap();
    let t0 = Instant::now();
    let mut ran_on = Vec::new();
    for f in queued {
        let r = tokio::time::timeout(T, f)
            .await
            .expect("a queued task ran")
            .unwrap();
        ran_on.push(r.gateway);
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        ran_on.iter().all(|gw| gw == added[0].id()),
        "queued tasks ran on {ran_on:?}, the new worker is {}",
        added[0].id()
    );
    drop((first, prefetched));
    g.terminate(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_vector_and_one_of_finished_futures_gather_at_once() {
    // A vector of futures is gathered with one countdown: none left must
    // be ready at once, and futures already resolved count as done.
    let g = common::group(1).await;
    let none: Vec<remex::TaskFuture<i64>> = Vec::new();
    let got = tokio::time::timeout(T, gather(none, Errors::Raise))
        .await
        .expect("an empty gather returns")
        .unwrap();
    assert!(got.value.is_empty() && got.skipped.is_empty());
    let futs = (0..3i64)
        .map(|i| g.submit::<i64>("echo", &i))
        .collect::<remex::Result<Vec<_>>>()
        .unwrap();
    // Queued after them: by its answer the others have (almost surely)
    // answered too, so their slots are filled before the countdown joins.
    let probe = g.submit::<i64>("echo", &9).unwrap();
    assert_eq!(probe.await.unwrap(), 9);
    let got = tokio::time::timeout(T, gather(futs, Errors::Skip))
        .await
        .expect("gathering finished futures returns")
        .unwrap();
    assert_eq!(got.value, vec![0, 1, 2]);
    g.terminate(Duration::from_secs(5)).await;
}

/// A task queued on a worker behind a long one runs on an idle worker
/// instead (work stealing), exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_tasks_queued_behind_a_long_one() {
    let g = common::group(2).await;
    // One executor each: a second task on a lane waits behind the first.
    g.set_tasks_per_worker(1);
    let t0 = Instant::now();
    let long = g
        .submit::<String>("slow_echo", &(1500u64, "long"))
        .unwrap()
        .with_details();
    let short: Vec<_> = ["b", "c", "d"]
        .iter()
        .map(|s| {
            g.submit::<String>("slow_echo", &(30u64, *s))
                .unwrap()
                .with_details()
        })
        .collect();
    let mut done = Vec::new();
    for f in short {
        let r = f.await.unwrap();
        done.push((r.value, r.gateway, t0.elapsed()));
    }
    let long = long.await.unwrap();
    for (v, gw, at) in &done {
        assert!(
            *at < Duration::from_millis(1000),
            "{v} waited {at:?} (on {gw}) behind the long task on {}",
            long.gateway
        );
        assert_ne!(*gw, long.gateway, "{v} ran behind the long task");
    }
    assert_eq!(
        done.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["b", "c", "d"]
    );
    assert_eq!(long.value, "long");
    g.terminate(T).await;
}

/// A task goes to a worker with an idle executor before a place behind a
/// busy one, and tasks spread over the workers before any has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_executor_is_taken_before_a_place_behind_a_busy_one() {
    let g = common::group(2).await;
    g.set_tasks_per_worker(1);
    let t0 = Instant::now();
    let long = g
        .submit::<String>("slow_echo", &(1500u64, "a"))
        .unwrap()
        .with_details();
    let b = g
        .submit::<String>("slow_echo", &(30u64, "b"))
        .unwrap()
        .with_details()
        .await
        .unwrap();
    // Both lanes still offer a place behind their executor (each may hold
    // two); b's worker also has its executor free again.
    let c = g
        .submit::<String>("slow_echo", &(30u64, "c"))
        .unwrap()
        .with_details()
        .await
        .unwrap();
    let at = t0.elapsed();
    let long = long.await.unwrap();
    assert_ne!(b.gateway, long.gateway, "the first two spread");
    assert_eq!(c.gateway, b.gateway, "c went behind the long task");
    assert!(at < Duration::from_millis(1000), "c took {at:?}");
    g.terminate(T).await;
}

/// A task bound to its scattered data is never stolen to a worker
/// without it: it goes back to a holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_scattered_data_is_stolen_only_where_its_data_is() {
    let g = common::group(2).await;
    g.set_tasks_per_worker(1);
    let r = g
        .scatter(vec!["x".to_string()], false)
        .await
        .unwrap()
        .remove(0);
    let holder = r.holders()[0].clone();
    let a = g
        .submit::<String>("slow_echo", &(800u64, &r))
        .unwrap()
        .with_details();
    let b = g
        .submit::<String>("slow_echo", &(10u64, &r))
        .unwrap()
        .with_details();
    // A quick task on the other worker: its end makes that lane idle,
    // and it asks for queued work.
    let c = g.submit::<i64>("echo", &1).unwrap().with_details();
    let c = c.await.unwrap();
    assert_ne!(c.gateway, holder);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.value.as_str(), b.value.as_str()), ("x", "x"));
    assert_eq!(a.gateway, holder);
    assert_eq!(b.gateway, holder, "stolen away from its data");
    assert_eq!(b.attempts, 1, "a task given back did not run: no attempt");
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_worker_finishes_its_running_task_and_gives_back_the_waiting_one() {
    // dask's retire_workers: the worker takes no new task, what waits on
    // it runs elsewhere, what runs there finishes; then it exits.
    let g = common::group(2).await;
    g.set_tasks_per_worker(1);
    let pid0 = g.by_id("gw0").unwrap().rinfo().pid;
    // One running and one waiting on each worker (a lane holds twice its
    // executors).
    let tasks: Vec<_> = (0..4)
        .map(|_| g.submit::<()>("sleep", &0.5).unwrap().with_details())
        .collect();
    let t0 = Instant::now();
    g.retire("gw0", T).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "retire returned after {:?}, before gw0's running task could finish",
        t0.elapsed()
    );
    assert_eq!(g.ids(), ["gw1"]);
    assert!(
        remex_tests::wait_gone(pid0, Duration::from_secs(5)),
        "gw0's worker exited"
    );
    let mut on = BTreeMap::new();
    for t in tasks {
        let r = tokio::time::timeout(T, t).await.unwrap().unwrap();
        assert_eq!(r.attempts, 1, "none ran twice");
        *on.entry(r.gateway).or_insert(0) += 1;
    }
    assert_eq!(
        on,
        BTreeMap::from([("gw0".to_string(), 1), ("gw1".to_string(), 3)])
    );
    // New tasks go to the rest.
    let r = g
        .submit::<i64>("square", &7)
        .unwrap()
        .with_details()
        .await
        .unwrap();
    assert_eq!((r.value, r.gateway.as_str()), (49, "gw1"));
    let e = g.retire("gw0", T).await.unwrap_err();
    assert!(e.to_string().contains("no gateway \"gw0\""), "{e}");
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_still_running_when_retire_times_out_runs_again_elsewhere() {
    let g = common::group(2).await;
    g.set_tasks_per_worker(1);
    let long = g.submit::<()>("sleep", &2).unwrap().with_details();
    let t0 = Instant::now();
    g.retire("gw0", Duration::from_millis(200)).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(g.ids(), ["gw1"]);
    // It was lost with its worker and ran again on gw1.
    let r = tokio::time::timeout(T, long).await.unwrap().unwrap();
    assert_eq!((r.gateway.as_str(), r.attempts), ("gw1", 2));
    g.terminate(T).await;
}
