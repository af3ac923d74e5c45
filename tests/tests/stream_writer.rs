//! The stream_writer example (the seed's writer service): every scan is
//! written whole and in order; a scan on a full disk goes to Fault with its
//! reason while the others finish; a graceful stop loses no point; no
//! worker is left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn example() -> PathBuf {
    remex_tests::example("stream_writer")
}

struct Run {
    ok: bool,
    stdout: String,
    session: String,
    scans: BTreeMap<String, String>,
    refused: Vec<String>,
    pids: Vec<u32>,
}

fn run(out: &Path, extra: &[&str]) -> Run {
    let _ = std::fs::remove_dir_all(out);
    let o = remex_tests::output_of(Command::new(example()).arg("--out").arg(out).args(extra));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let mut scans = BTreeMap::new();
    let mut pids = Vec::new();
    let mut refused = Vec::new();
    let mut session = String::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("scan ") {
            let (name, state) = rest.split_once(": ").unwrap();
            scans.insert(name.to_string(), state.to_string());
        } else if let Some(rest) = line.strip_prefix("session: ") {
            session = rest.to_string();
        } else if let Some(name) = line.strip_prefix("refused ") {
            refused.push(name.to_string());
        } else if line.starts_with("worker ") {
            pids.push(line.rsplit(' ').next().unwrap().parse().unwrap());
        }
    }
    Run {
        ok: o.status.success(),
        stdout: format!("{stdout}{}", String::from_utf8_lossy(&o.stderr)),
        session,
        scans,
        refused,
        pids,
    }
}

/// Checks that a scan file holds exactly the points 0..n, in order, with
/// the values the worker computed.
fn assert_scan_file(path: &Path, n: u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("# scan "));
    let mut count = 0;
    for (k, line) in lines.enumerate() {
        let (i, v) = line.split_once(' ').unwrap();
        assert_eq!(i.parse::<u64>().unwrap(), k as u64, "{}", path.display());
        let want = (k as f64 * 0.001).sin();
        assert_eq!(v.parse::<f64>().unwrap(), want, "{}", path.display());
        count += 1;
    }
    assert_eq!(count, n, "{}", path.display());
}

fn assert_no_worker_left(r: &Run) {
    assert!(!r.pids.is_empty());
    for pid in &r.pids {
        assert!(
            remex_tests::wait_gone(*pid, Duration::from_secs(5)),
            "worker {pid} left behind"
        );
    }
}

#[test]
fn a_scan_on_a_full_disk_faults_while_the_others_finish() {
    let out = std::env::temp_dir().join(format!("remex-sw-full-{}", std::process::id()));
    let r = run(
        &out,
        &["--points", "20000", "--scans", "3", "--full-disk", "gw0-s1"],
    );
    assert!(r.ok, "{}", r.stdout);
    assert!(r.session.starts_with("OFF"), "{}", r.stdout);
    assert_eq!(r.scans.len(), 6, "{}", r.stdout);
    for (name, state) in &r.scans {
        if name == "gw0-s1" {
            assert!(
                state.starts_with("FAULT (writing /dev/full: No space left on device"),
                "{state}"
            );
        } else {
            assert!(state.starts_with("OFF, 20000 points"), "{name}: {state}");
            assert_scan_file(&out.join(format!("{name}.dat")), 20000);
        }
    }
    assert!(!out.join("gw0-s1.dat").exists());
    assert_no_worker_left(&r);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_graceful_stop_writes_every_started_scan_to_its_end() {
    let out = std::env::temp_dir().join(format!("remex-sw-stop-{}", std::process::id()));
    let r = run(
        &out,
        &["--points", "50000", "--scans", "4", "--stop-after", "2"],
    );
    assert!(r.ok, "{}", r.stdout);
    assert!(r.session.starts_with("OFF"), "{}", r.stdout);
    // The session took exactly the scans up to the stop, whatever the
    // machine's load; those it took are whole, the later ones refused and
    // never written.
    assert_eq!(r.scans.len(), 2, "{}", r.stdout);
    for name in &r.refused {
        assert!(!r.scans.contains_key(name), "{}", r.stdout);
        assert!(
            !out.join(format!("{name}.dat")).exists(),
            "{name} was written"
        );
    }
    for (name, state) in &r.scans {
        assert!(state.starts_with("OFF, 50000 points"), "{name}: {state}");
        assert_scan_file(&out.join(format!("{name}.dat")), 50000);
    }
    let files = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(files, r.scans.len());
    assert_no_worker_left(&r);
    let _ = std::fs::remove_dir_all(&out);
}
