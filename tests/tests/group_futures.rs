//! Typed, shared and detailed task futures, and `as_completed` (dask's
//! futures API on a Group).

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use remex::{as_completed, gather, Error, Errors, Group};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_map_give_the_type_asked_for() {
    let g = common::group(2).await;
    let x: i64 = g.submit("square", &4).unwrap().await.unwrap();
    assert_eq!(x, 16);
    let squares: Vec<i64> = g
        .map::<i64>("square", 0..20i64, true)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(squares, (0..20i64).map(|i| i * i).collect::<Vec<_>>());
    // A result of another shape names the task and where it ran.
    let err = g.submit::<String>("square", &4).unwrap().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ResultType { .. }), "{text}");
    assert!(text.contains("task 'square' on gw"), "{text}");
    assert!(text.contains("expected String, received int 16"), "{text}");
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_future_gathers_in_several_places_and_runs_once() {
    let g = common::group(1).await;
    let x = g.submit::<u64>("count_calls", &()).unwrap().shared();
    // dask: gather([x, [x], x])
    let got = gather((x.clone(), vec![x.clone()], x), Errors::Raise)
        .await
        .unwrap();
    let (a, b, c) = got.value;
    assert_eq!((a, b.clone(), c), (1, vec![1], 1));
    // The task ran once: the next call on the same worker is the second.
    let next: u64 = g.submit("count_calls", &()).unwrap().await.unwrap();
    assert_eq!(next, 2);
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_clone_of_a_shared_future_cancels_its_task() {
    let g = common::group(1).await;
    g.set_tasks_per_worker(1);
    let long = g.submit::<()>("sleep", &3600).unwrap().shared();
    let other = long.clone();
    // Running: the only executor is busy with it.
    drop(long);
    let t0 = Instant::now();
    drop(other);
    let v: i64 = tokio::time::timeout(T, g.submit("square", &3).unwrap())
        .await
        .expect("the cancelled task freed its executor")
        .unwrap();
    assert_eq!(v, 9);
    assert!(t0.elapsed() < T);
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_completed_yields_in_completion_order_with_indices() {
    let g = common::group(2).await;
    let slow = g.submit::<i64>("slow_echo", &(1500u64, 1)).unwrap();
    let fast = g.submit::<i64>("slow_echo", &(0u64, 2)).unwrap();
    let got: Vec<(usize, i64)> = as_completed([slow, fast])
        .map(|(i, r)| (i, r.unwrap()))
        .collect()
        .await;
    assert_eq!(got, vec![(1, 2), (0, 1)]);
    g.terminate(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_says_where_it_ran_and_after_how_many_attempts() {
    let g = Group::new([common::spec("//id=a"), common::spec("//id=b")])
        .await
        .unwrap();
    let r = g
        .submit::<i64>("square", &5)
        .unwrap()
        .with_details()
        .await
        .unwrap();
    assert_eq!(r.value, 25);
    assert!(r.gateway == "a" || r.gateway == "b", "{r:?}");
    assert_eq!(r.attempts, 1);
    // The first attempt kills its worker; the second runs on the other.
    let marker = std::env::temp_dir().join(format!("remex-die-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let r = g
        .submit::<String>("die_once", &marker.to_string_lossy())
        .unwrap()
        .with_details()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(r.value, "survived");
    assert_eq!(r.attempts, 2, "{r:?}");
    assert_eq!(g.ids(), vec![r.gateway.clone()], "the survivor ran it");
    g.terminate(T).await;
}
