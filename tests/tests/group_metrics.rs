//! `Group::metrics`: the pool's counters in the Prometheus text format,
//! as a scraper reads them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use remex::{gather, Errors, Value};

const T: Duration = Duration::from_secs(20);

/// The samples of a Prometheus text exposition: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_tasks_by_outcome_reruns_and_lost_workers() {
    let g = common::group(2).await;
    let futs: Vec<_> = (0..10)
        .map(|i| g.submit::<Value>("echo", &i).unwrap())
        .collect();
    gather(futs, Errors::Raise).await.unwrap();
    assert!(g.submit::<Value>("fail", &"x").unwrap().await.is_err());
    let m = samples(&g.metrics());
    let at = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {m:#?}"))
    };
    assert_eq!(at(r#"remex_tasks_submitted_total{task="echo"}"#), 10.0);
    assert_eq!(
        at(r#"remex_tasks_finished_total{task="echo",outcome="done"}"#),
        10.0
    );
    assert_eq!(
        at(r#"remex_tasks_finished_total{task="fail",outcome="failed"}"#),
        1.0
    );
    assert_eq!(
        at(r#"remex_task_duration_seconds_count{task="echo"}"#),
        10.0
    );
    assert!(at(r#"remex_task_duration_seconds_sum{task="echo"}"#) > 0.0);
    assert_eq!(at("remex_workers"), 2.0);
    assert_eq!(at("remex_workers_lost_total"), 0.0);
    // A worker killed under a running task: it is lost, the task re-runs.
    g.set_tasks_per_worker(1);
    let a = g.submit::<String>("slow_echo", &(1500u64, "a")).unwrap();
    let b = g.submit::<String>("slow_echo", &(1500u64, "b")).unwrap();
    // An idle pool spreads them, one per worker; kill one of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = g.gateways()[0].clone();
    victim.kill().await.unwrap();
    let (a, b) = tokio::time::timeout(T, async { (a.await, b.await) })
        .await
        .unwrap();
    assert_eq!((a.unwrap(), b.unwrap()), ("a".to_string(), "b".to_string()));
    let m = samples(&g.metrics());
    let at = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {m:#?}"))
    };
    assert_eq!(at("remex_workers_lost_total"), 1.0);
    assert_eq!(at(r#"remex_tasks_rerun_total{task="slow_echo"}"#), 1.0);
    assert_eq!(at("remex_workers"), 1.0);
    assert_eq!(at(r#"remex_workers_by_state{state="ready"}"#), 1.0);
    assert_eq!(at(r#"remex_workers_by_state{state="lost"}"#), 1.0);
    assert_eq!(at(r#"remex_tasks_running{task="slow_echo"}"#), 0.0);
    assert!(at("remex_channels_open") >= 1.0, "the task lane");
    assert!(at("remex_controller_resident_memory_bytes") > 1e6);
    // The live worker's traffic, both ways.
    for dir in ["in", "out"] {
        assert!(
            at(&format!(
                r#"remex_gateway_bytes_total{{gateway="gw1",direction="{dir}"}}"#
            )) > 100.0
        );
        assert!(
            at(&format!(
                r#"remex_gateway_messages_total{{gateway="gw1",direction="{dir}"}}"#
            )) >= 5.0
        );
    }
    // promtool agrees it is valid exposition (CI installs it; elsewhere
    // it runs where it is installed).
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    if let (Err(e), Some(_)) = (&promtool, std::env::var_os("CI")) {
        panic!("promtool does not run in CI: {e} (.ci/run installs Debian's prometheus)");
    }
    if let Ok(mut p) = promtool {
        use std::io::Write;
        p.stdin
            .take()
            .unwrap()
            .write_all(g.metrics().as_bytes())
            .unwrap();
        let out = remex_tests::finished(p);
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    g.terminate(T).await;
}
