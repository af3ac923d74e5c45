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
    let out = remex_tests::output_of(
        Command::new(&ts)
            .args(["--tasks", "600", "--tx", "popen", "--tx"])
            .arg(sshd.spec(""))
            .arg("--tx")
            .arg(format!("cmd=exec {}", ts.display())),
    );
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

/// The processes running `exe` among the descendants of `root`.
fn workers_under(root: u32, exe: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            let is = std::fs::read_link(format!("/proc/{c}/exe"))
                .is_ok_and(|e| e == std::path::Path::new(exe));
            if is {
                found.push(c);
            }
            todo.push(c);
        }
    }
    found
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
    // One ssh session carries a relay worker, which starts the sixteen on
    // the host and carries their streams.
    assert_eq!(connections(&sshd), 1, "the 16 gateways use one connection");
    let relays = workers_under(sshd.pid(), WORKER).len() - 16;
    assert_eq!(relays, 1, "one relay worker");
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
    assert_eq!(masters.len(), 1, "{masters:?}");
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
    // The relay ended with its connection too.
    let t0 = std::time::Instant::now();
    while !workers_under(sshd.pid(), WORKER).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a worker or relay is left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_of_a_host_ends_with_its_last_gateway() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let sshd = Sshd::start("127.0.0.6");
    let group = remex::Group::new([format!("3*{}", sshd.spec(&format!("//worker={WORKER}")))])
        .await
        .unwrap();
    assert_eq!(
        workers_under(sshd.pid(), WORKER).len(),
        4,
        "3 workers and their relay"
    );
    let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    // Each gateway ends alone; the relay stays while one is left, and
    // exits after the last (the group still holds the gateways).
    for (i, g) in group.gateways().iter().enumerate() {
        g.exit().await.unwrap();
        assert!(wait_gone(pids[i], Duration::from_secs(5)));
        if i < 2 {
            assert_eq!(workers_under(sshd.pid(), WORKER).len(), 3 - i);
        }
    }
    let t0 = std::time::Instant::now();
    while !workers_under(sshd.pid(), WORKER).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the relay is left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(group);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_behind_one_relay_keep_their_own_directory_and_environment() {
    const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
    let sshd = Sshd::start("127.0.0.6");
    let dir = std::env::temp_dir().join(format!("remex-relay-{}", std::process::id()));
    let group = remex::Group::new([
        sshd.spec(&format!(
            "//worker={WORKER}//id=a//chdir={}//env:REMEX_T=a",
            dir.display()
        )),
        sshd.spec(&format!("//worker={WORKER}//id=b")),
    ])
    .await
    .unwrap();
    let (a, b) = (group.gateways()[0].clone(), group.gateways()[1].clone());
    assert_eq!(a.rinfo().cwd, dir.display().to_string());
    assert_ne!(b.rinfo().cwd, a.rinfo().cwd, "b did not inherit a's chdir");
    let env = |g: &remex::Gateway| {
        g.remote_exec(r#"channel.send(env("REMEX_T") ?? "")"#)
            .unwrap()
    };
    let (ea, eb) = (env(&a), env(&b));
    assert_eq!(ea.receive::<String>().await.unwrap(), "a");
    assert_eq!(eb.receive::<String>().await.unwrap(), "");
    group.terminate(Duration::from_secs(5)).await;
}
