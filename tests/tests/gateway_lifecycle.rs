//! A gateway reports its state through the service lifecycle: On while
//! connected, Off after a graceful exit, Fault with the reason when killed
//! or lost; threads and tasks can both wait for it.

mod common;

use std::time::Duration;

use remex::sync::LifecycleState;

const T: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_ends_the_lifecycle_off() {
    let gw = common::gateway().await;
    let lc = gw.lifecycle().clone();
    assert_eq!(lc.state(), LifecycleState::On);
    assert!(!lc.done());
    let mut changes = lc.subscribe();
    gw.exit().await.unwrap();
    assert_eq!(lc.join(T).await.unwrap(), LifecycleState::Off);
    changes.changed().await.unwrap();
    assert_eq!(*changes.borrow(), LifecycleState::Off);
    assert!(lc.duration() > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_the_lifecycle_in_fault_with_the_reason() {
    let gw = common::gateway().await;
    gw.kill().await.unwrap();
    let lc = gw.lifecycle().clone();
    // A plain thread waits as well as a task.
    let end = std::thread::spawn(move || lc.join_blocking(T))
        .join()
        .unwrap()
        .unwrap();
    let LifecycleState::Fault(reason) = end else {
        panic!("expected Fault, got {end}")
    };
    assert!(
        reason.contains("signal: 9") || reason.contains("SIGKILL"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_by_itself_is_a_fault() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid as i32;
    // SAFETY: kill(2) on a pid we own; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let end = gw.lifecycle().join(T).await.unwrap();
    assert!(
        matches!(&end, LifecycleState::Fault(r) if r.contains("signal: 15")),
        "{end}"
    );
}
