//! `via=`: gateways started and relayed by other gateways' workers.

mod common;

use std::time::Duration;

use remex::{makegateway, Group, MultiChannel, Value};
use remex_tests::wait_gone;

fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

async fn tree() -> Group {
    let w = common::spec("");
    let mut specs = vec![format!("{w}//id=root"), format!("4*{w}//via=root")];
    for i in 0..4 {
        specs.push(format!("4*{w}//via=gw{i}"));
    }
    Group::new(specs).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_one_four_and_sixteen_gateways_works() {
    let g = tree().await;
    assert_eq!(g.len(), 21);
    let mch = g
        .remote_exec("channel.send(channel.receive() + 1)")
        .unwrap();
    mch.send_each(&1).await.unwrap();
    let got: Vec<i64> = mch.receive_each().await.unwrap();
    assert_eq!(got, vec![2; 21]);
    // Each relayed worker is a child of its relay's worker.
    let pid = |id: &str| g.by_id(id).unwrap().rinfo().pid;
    assert_eq!(ppid(pid("gw0")), pid("root"));
    assert_eq!(ppid(pid("gw4")), pid("gw0"));
    assert_eq!(ppid(pid("gw19")), pid("gw3"));
    g.terminate(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_relay_ends_every_gateway_behind_it() {
    let g = tree().await;
    let behind: Vec<_> = ["gw4", "gw5", "gw6", "gw7"]
        .iter()
        .map(|id| g.by_id(id).unwrap())
        .collect();
    let pids: Vec<u32> = behind.iter().map(|gw| gw.rinfo().pid).collect();
    let mch = MultiChannel::new(
        behind
            .iter()
            .map(|gw| gw.remote_exec("channel.receive()").unwrap())
            .collect(),
    );
    let queue = mch.make_receive_queue(Some(Value::from("end"))).unwrap();
    g.by_id("gw0").unwrap().kill().await.unwrap();
    for _ in 0..4 {
        let (_, v) = queue.get_timeout(Duration::from_secs(10)).await.unwrap();
        assert_eq!(v, Value::from("end"));
    }
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(2)),
            "worker {pid} behind the killed relay survived"
        );
    }
    // The rest of the tree serves on.
    assert_eq!(
        g.by_id("gw8")
            .unwrap()
            .remote_call("square", &4)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        16
    );
    g.terminate(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_needs_a_known_relay() {
    let err = Group::new([common::spec("//via=nowhere")])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("via=nowhere: the group has no gateway with that id"),
        "{err}"
    );
    let err = makegateway(&common::spec("//via=gw0")).await.unwrap_err();
    assert!(err.to_string().contains("start it in a Group"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_keys_apply_through_a_relay() {
    let g = Group::new([
        common::spec("//id=hop"),
        common::spec("//via=hop//id=leaf//chdir=/tmp//env:HOPS=one"),
    ])
    .await
    .unwrap();
    let leaf = g.by_id("leaf").unwrap();
    assert_eq!(leaf.rinfo().cwd, "/tmp");
    let ch = leaf.remote_call("shell", "echo $HOPS").unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "one");
    g.terminate(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_worker_has_ended_its_commands_when_terminate_returns() {
    // A relayed worker has no process on the controller's side: the end
    // of its stream is all that tells the controller it ended. Its
    // connection closed its output as soon as its input ended (just after
    // the Terminate), while its commands were still going through their
    // kill sequences, so `terminate` returned within milliseconds and
    // `remex run -S 2/HOST` died at Ctrl-C before its jobs had cleaned up
    // (or before its Terminate frames were through, and the jobs got no
    // sequence at all). Now the stream ends with the worker.
    let g = Group::new([common::spec("//id=hop"), common::spec("//via=hop//id=leaf")])
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("remex-via-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (started, clean) = (dir.join("started"), dir.join("clean"));
    let mut req = remex::worker::CommandRequest::new(format!(
        "trap 'sleep 0.3; echo > {c}; exit 0' TERM; echo > {s}; while :; do sleep 0.05; done",
        c = clean.display(),
        s = started.display()
    ));
    req.termseq = vec![("TERM".into(), 2000), ("KILL".into(), 25)];
    let _call = g.by_id("leaf").unwrap().remote_call("run", &req).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the command did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = std::time::Instant::now();
    g.terminate(Duration::from_secs(10)).await;
    assert!(
        clean.exists(),
        "terminate returned after {:?}, before the relayed worker's command had cleaned up",
        t0.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
