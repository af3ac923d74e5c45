//! ssh gateways inside groups and under faults: the taskserver over popen,
//! ssh and cmd workers at once, and an sshd killed mid-stream.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use remex::{makegateway, Error, MultiChannel, Value};
use remex_tests::{children_of, wait_gone, Sshd};

fn taskserver() -> PathBuf {
    remex_tests::example("taskserver")
}

#[test]
fn the_taskserver_runs_over_popen_ssh_and_cmd_workers() {
    let sshd = Sshd::start_for_new_user("127.0.0.3");
    let ts = taskserver();
    let out = Command::new(&ts)
        .args(["--tasks", "600", "--tx", "popen", "--tx"])
        .arg(sshd.spec(""))
        .arg("--tx")
        .arg(format!("cmd=exec {}", ts.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert!(
        text.contains("results:  600 (0 missing, 0 wrong,"),
        "{text}"
    );
    // The ssh worker was this taskserver, uploaded into the fresh home.
    assert!(sshd.home().join(".cache/remex").is_dir(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_mid_stream_gives_endmarkers_and_a_clear_error() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let sshd = Sshd::start("127.0.0.2");
    let gw = makegateway(&sshd.spec(&format!("//worker={WORKER}")))
        .await
        .unwrap();
    let worker_pid = gw.rinfo().pid;
    let ch = gw
        .remote_exec("channel.send(1); channel.receive();")
        .unwrap();
    let mch = MultiChannel::new(vec![ch.clone()]);
    let queue = mch.make_receive_queue(Some(Value::from("end"))).unwrap();
    assert_eq!(
        queue.get_timeout(Duration::from_secs(10)).await.unwrap().1,
        Value::Int(1)
    );
    // Kill the sshd processes serving this connection (the listener's
    // children), as when a host's sshd dies.
    for pid in children_of(sshd.pid()) {
        // SAFETY: signalling processes of the sshd this test started.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    let (_, end) = queue.get_timeout(Duration::from_secs(10)).await.unwrap();
    assert_eq!(end, Value::from("end"));
    let err = ch
        .waitclose(Some(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::GatewayLost { .. }), "{err}");
    assert!(
        wait_gone(worker_pid, Duration::from_secs(2)),
        "the worker outlived its sshd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_can_wrap_ssh_itself() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let sshd = Sshd::start("127.0.0.3");
    let cfg = sshd.alias_config("wrapped");
    let gw = makegateway(&format!(
        "cmd=ssh -F {} wrapped {WORKER}//env:VIA_CMD=yes",
        cfg.display()
    ))
    .await
    .unwrap();
    let ch = gw.remote_call("shell", "echo $VIA_CMD").unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "yes");
    let pid = gw.rinfo().pid;
    gw.kill().await.unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(2)),
        "the worker behind cmd=ssh outlived its gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_an_ssh_gateway_reaches_workers_started_on_that_host() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let sshd = Sshd::start("127.0.0.2");
    let g = remex::Group::new([
        sshd.spec(&format!("//worker={WORKER}//id=hop")),
        format!("3*popen//via=hop//worker={WORKER}"),
    ])
    .await
    .unwrap();
    assert_eq!(g.len(), 4);
    let hop = g.by_id("hop").unwrap().rinfo().pid;
    let leaves: Vec<u32> = ["gw0", "gw1", "gw2"]
        .iter()
        .map(|id| g.by_id(id).unwrap().rinfo().pid)
        .collect();
    let got: Vec<i64> = g
        .remote_exec("channel.send(7)")
        .unwrap()
        .receive_each()
        .await
        .unwrap();
    assert_eq!(got, vec![7; 4]);
    g.terminate(Duration::from_secs(1)).await;
    for pid in leaves.into_iter().chain([hop]) {
        assert!(
            wait_gone(pid, Duration::from_secs(2)),
            "worker {pid} survived terminate"
        );
    }
}

/// The shared connections' masters for the sshd on `port`: their pids.
fn master_pids(port: u16) -> Vec<u32> {
    let out = Command::new("ps")
        .args(["-eo", "pid=,args="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(' ')?;
            let ours = args.starts_with("ssh ")
                && args.contains("ControlPersist")
                && args.contains(&format!("-p {port} "));
            ours.then(|| pid.parse().ok()).flatten()
        })
        .collect()
}

/// sshd's processes for one connection: a session process per connection
/// (children of the listener).
fn connections(sshd: &Sshd) -> usize {
    children_of(sshd.pid()).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_workers_on_one_host_share_one_ssh_connection() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let one = Sshd::start("127.0.0.6");
    let started = std::time::Instant::now();
    let gw = makegateway(&one.spec(&format!("//worker={WORKER}")))
        .await
        .unwrap();
    let t_one = started.elapsed();
    gw.exit().await.unwrap();

    let sshd = Sshd::start("127.0.0.6");
    let started = std::time::Instant::now();
    let group = remex::Group::new([format!("16*{}", sshd.spec(&format!("//worker={WORKER}")))])
        .await
        .unwrap();
    let t16 = started.elapsed();
    eprintln!("one ssh worker ready in {t_one:?}, sixteen on one host in {t16:?}");
    assert_eq!(group.len(), 16);
    // sshd carries 10 sessions per connection (MaxSessions): two.
    assert_eq!(connections(&sshd), 2, "the 16 gateways use two connections");
    let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();

    // Killing one gateway ends its worker only.
    let first = group.gateways()[0].clone();
    first.kill().await.unwrap();
    assert!(wait_gone(pids[0], Duration::from_secs(5)));
    let second = group.gateways()[1].clone();
    assert_eq!(
        second
            .remote_call("square", &5)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        25
    );

    // The connection's end ends every gateway over it, with endmarkers.
    let rest: Vec<_> = group
        .gateways()
        .into_iter()
        .filter(|g| g.id() != first.id())
        .collect();
    let mch = MultiChannel::new(
        rest.iter()
            .map(|g| g.remote_exec("channel.receive()").unwrap())
            .collect(),
    );
    let queue = mch.make_receive_queue(Some(Value::from("end"))).unwrap();
    let masters = master_pids(sshd.port);
    assert_eq!(masters.len(), 2, "{masters:?}");
    for m in masters {
        // SAFETY: signalling the ssh masters this test's gateways started.
        unsafe {
            libc::kill(m as i32, libc::SIGKILL);
        }
    }
    for _ in 0..rest.len() {
        let (_, v) = queue.get_timeout(Duration::from_secs(10)).await.unwrap();
        assert_eq!(v, Value::from("end"));
    }
    for pid in &pids[1..] {
        assert!(
            wait_gone(*pid, Duration::from_secs(10)),
            "worker {pid} outlived its connection"
        );
    }
    group.terminate(Duration::from_secs(5)).await;
}
