//! The paths a real deployment takes, on the testbed's hosts (network
//! namespaces with their own names, addresses, homes and sshd; see
//! `.ci/hosts-up`): ssh gateways to several hosts, the upload and its
//! cache per host, the fan-out of many workers per host, `via=` to a host
//! only a gateway host reaches, `socket=` and `installvia=` to another
//! host's address. Every test ends with nothing left on its hosts.

use std::time::Duration;

use remex::{makegateway, Group};
use remex_tests::testbed::{self, FreshUser};

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
/// How soon a host must run nothing of ours: a shared connection's master
/// outlives its last session by 10 s (`ControlPersist`, see
/// docs/reliability.md), so its sshd session may too; 10 s more for a
/// loaded machine. (A bound of 10 s raced the master's exit in CI.)
const CLEAN: Duration = Duration::from_secs(20);
const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_gateways_to_three_hosts_name_them_and_upload_once_per_host() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1", "rx2", "rx3"]);
    let user = FreshUser::on(&["rx1", "rx2", "rx3"]);
    // No worker= : the local worker is uploaded to each host, whose home
    // (and so its cache) is its own.
    let spec = |h: &str| format!("ssh={}@{h}//ssh_config={}", user.name, testbed::SSH_CONFIG);
    let group = Group::new(["rx1", "rx2", "rx3"].map(spec)).await.unwrap();
    let names: Vec<String> = group
        .gateways()
        .iter()
        .map(|g| g.rinfo().host.clone())
        .collect();
    assert_eq!(names, ["rx1", "rx2", "rx3"]);
    for g in group.gateways() {
        assert!(g.uploaded_worker(), "{}: a first contact uploads", g.id());
        let ch = g
            .remote_exec("channel.send(channel.receive() + 1)")
            .unwrap();
        ch.send(&41).await.unwrap();
        assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 42);
    }
    group.terminate(T).await;
    // The second contact finds the worker in each host's cache.
    let again = Group::new(["rx1", "rx2", "rx3"].map(spec)).await.unwrap();
    for g in again.gateways() {
        assert!(!g.uploaded_worker(), "{}: cached on its host", g.id());
    }
    // Each host has its own copy.
    for h in ["rx1", "rx2", "rx3"] {
        let found = testbed::on_host_ok(
            h,
            &[
                "find",
                &format!("/home/{}/.cache/remex", user.name),
                "-name",
                "remex-worker",
            ],
        );
        assert_eq!(found.lines().count(), 1, "{h}: {found}");
    }
    again.terminate(T).await;
    drop(user);
    hosts.assert_clean(CLEAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_workers_on_each_of_three_hosts_share_one_connection_per_host() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1", "rx2", "rx3"]);
    let specs: Vec<String> = ["rx1", "rx2", "rx3"]
        .iter()
        .map(|h| format!("16*{}", testbed::ssh_spec(h, &format!("//worker={WORKER}"))))
        .collect();
    let t0 = std::time::Instant::now();
    let group = Group::new(&specs).await.unwrap();
    eprintln!("48 workers on 3 hosts ready in {:?}", t0.elapsed());
    assert_eq!(group.len(), 48);
    for (k, h) in ["rx1", "rx2", "rx3"].iter().enumerate() {
        let on: Vec<_> = group.gateways()[k * 16..(k + 1) * 16]
            .iter()
            .map(|g| g.rinfo().host.clone())
            .collect();
        assert!(on.iter().all(|n| n == h), "{on:?}");
        // One ssh session on each host: the listener has one child.
        let sessions = testbed::processes(h)
            .into_iter()
            .filter(|p| p.cmdline.starts_with("sshd:"))
            .count();
        assert!(
            sessions <= 2,
            "{h}: {sessions} sshd session processes (one connection: its monitor and its session)"
        );
    }
    let futures: Vec<_> = (0..480i64)
        .map(|i| group.submit::<i64>("square", &i).unwrap())
        .collect();
    let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
    assert_eq!(got.value, (0..480i64).map(|i| i * i).collect::<Vec<_>>());
    group.terminate(T).await;
    hosts.assert_clean(CLEAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_reaches_a_host_on_the_isolated_network_through_the_gateway_host() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1", "rx8"]);
    // The controller has no way to rx8 of its own.
    let direct = std::net::TcpStream::connect_timeout(
        &format!("{}:22", testbed::addr("rx8")).parse().unwrap(),
        Duration::from_secs(1),
    );
    assert!(direct.is_err(), "rx8 must be reachable only through rx1");
    // A user new to rx8: the worker is uploaded there through the relay.
    let user = FreshUser::on(&["rx8"]);
    let group = Group::new([
        testbed::ssh_spec("rx1", &format!("//worker={WORKER}//id=gate")),
        testbed::ssh_spec("rx8", &format!("//worker={WORKER}//via=gate//id=inner")),
        format!(
            "ssh={}@rx8//ssh_config={}//via=gate//id=fresh",
            user.name,
            testbed::SSH_CONFIG
        ),
    ])
    .await
    .unwrap();
    let inner = group.by_id("inner").unwrap();
    assert_eq!(inner.rinfo().host, "rx8");
    let fresh = group.by_id("fresh").unwrap();
    assert_eq!(fresh.rinfo().host, "rx8");
    assert!(
        fresh.uploaded_worker(),
        "the worker went to rx8 through rx1"
    );
    assert!(!inner.uploaded_worker(), "worker= names one on the host");
    assert_eq!(group.by_id("gate").unwrap().rinfo().host, "rx1");
    let r: i64 = group.submit("square", &12).unwrap().await.unwrap();
    assert_eq!(r, 144);
    let ch = inner.remote_call("square", &7).unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 49);
    let ch = fresh.remote_exec("channel.send(6 * 7)").unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 42);
    group.terminate(T).await;
    drop(user);
    hosts.assert_clean(CLEAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_and_installvia_reach_workers_at_another_hosts_address() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx2", "rx3"]);
    let listener = testbed::RemoteListener::start("rx2", WORKER);
    assert!(
        listener.addr.starts_with(&testbed::addr("rx2")),
        "{}",
        listener.addr
    );
    let gw = makegateway(&listener.spec()).await.unwrap();
    assert_eq!(gw.rinfo().host, "rx2");
    let ch = gw.remote_call("square", &9).unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 81);
    gw.exit().await.unwrap();
    drop(listener);

    // installvia: the listener started through an ssh gateway to rx3, on
    // rx3's address, with a secret handed over that gateway.
    let group = Group::new([
        testbed::ssh_spec("rx3", &format!("//worker={WORKER}//id=h")),
        format!("socket={}:0//installvia=h//id=s", testbed::addr("rx3")),
    ])
    .await
    .unwrap();
    let s = group.by_id("s").unwrap();
    assert_eq!(s.rinfo().host, "rx3");
    assert_ne!(s.rinfo().pid, group.by_id("h").unwrap().rinfo().pid);
    let ch = s
        .remote_exec("channel.send(channel.receive() * 3)")
        .unwrap();
    ch.send(&14).await.unwrap();
    assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), 42);
    group.terminate(T).await;
    hosts.assert_clean(CLEAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_one_connection_end_their_commands_before_terminate_returns() {
    // Two workers on one host share one ssh connection: a relay worker
    // carries their streams, and no process of theirs runs on the
    // controller. The end of a stream was all that told the controller a
    // worker had ended, and it came when the worker's input ended (just
    // after its Terminate), not when the worker did: `terminate` (and
    // `remex run -S 2/HOST` at Ctrl-C) returned in milliseconds, while
    // the commands on the host were still cleaning up, or before the
    // Terminate frames were through the relay at all.
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx3"]);
    let spec = format!(
        "2*{}",
        testbed::ssh_spec("rx3", &format!("//worker={WORKER}"))
    );
    let group = Group::new([spec]).await.unwrap();
    let dir = format!("/tmp/remex-shared-term-{}", std::process::id());
    testbed::on_host_ok("rx3", &["mkdir", "-p", &dir]);
    let mut calls = Vec::new();
    for (k, g) in group.gateways().iter().enumerate() {
        let mut req = remex::worker::CommandRequest::new(format!(
            "trap 'sleep 0.3; echo > {dir}/clean{k}; exit 0' TERM; echo > {dir}/started{k}; while :; do sleep 0.05; done"
        ));
        req.termseq = vec![("TERM".into(), 2000), ("KILL".into(), 25)];
        calls.push(g.remote_call("run", &req).unwrap());
    }
    let until = std::time::Instant::now() + T;
    let listed = || testbed::on_host_ok("rx3", &["ls", &dir]);
    while !(listed().contains("started0") && listed().contains("started1")) {
        assert!(
            std::time::Instant::now() < until,
            "the commands did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = std::time::Instant::now();
    group.terminate(T).await;
    let took = t0.elapsed();
    let there = listed();
    assert!(
        there.contains("clean0") && there.contains("clean1"),
        "terminate returned after {took:?} with {there:?} on the host: before the commands had cleaned up"
    );
    testbed::on_host_ok("rx3", &["rm", "-r", &dir]);
    drop(calls);
    hosts.assert_clean(CLEAN);
}
