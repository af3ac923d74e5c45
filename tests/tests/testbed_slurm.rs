//! A multi-node Slurm on the testbed (slurmctld on rx4, slurmd on rx5,
//! rx6 and rx7, each its own host): workers spread over nodes dial back to
//! this controller by default (its address on the route to the nodes, not
//! its name), with `listen=`, and over srun's stdio; a node that dies is
//! noticed within the bound, naming it; every end leaves no job, no
//! salloc or srun, no worker and nothing burning CPU, on any host.
//!
//! Its own harness (`harness = false`): the Slurm commands read the
//! cluster from `SLURM_CONF`, which must be set before any thread runs;
//! the tests share the cluster and run one after another.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use remex::Group;
use remex_tests::testbed;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
const T: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn job_name(test: &str) -> String {
    format!("remex-{}-{test}", std::process::id())
}

/// The jobs named `name` Slurm still has.
fn jobs(name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-n", name, "-o", "%i %T"])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// After a test: no job of its name (polled: Slurm has no event), no
/// salloc or srun on this machine, nothing but daemons on the nodes.
fn assert_all_clean(name: &str) {
    let t0 = Instant::now();
    while !jobs(name).is_empty() {
        assert!(t0.elapsed() < T, "jobs left: {:?}", jobs(name));
        std::thread::sleep(Duration::from_millis(100));
    }
    testbed::assert_no_controller_leftovers(&["salloc", "srun"], T);
    for n in testbed::SLURM_NODES {
        testbed::assert_host_clean(n, T);
    }
}

fn six_workers_on_three_nodes_dial_back_by_default() {
    let name = job_name("six");
    runtime().block_on(async {
        let t0 = Instant::now();
        let group = Group::new([format!(
            "slurm//ntasks=6//nodes=3//job_name={name}//worker={WORKER}"
        )])
        .await
        .unwrap();
        eprintln!("slurm//ntasks=6//nodes=3 ready in {:?}", t0.elapsed());
        let nodes: BTreeSet<String> = group
            .gateways()
            .iter()
            .map(|g| {
                let c = g.rinfo().cluster.clone().expect("a Slurm task");
                assert_eq!(g.rinfo().host, c.node, "the worker runs on its node");
                c.node
            })
            .collect();
        assert_eq!(
            nodes,
            testbed::SLURM_NODES
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
        let futures: Vec<_> = (0..120i64)
            .map(|i| group.submit::<i64>("square", &i).unwrap())
            .collect();
        let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
        assert_eq!(got.value, (0..120i64).map(|i| i * i).collect::<Vec<_>>());
        group.terminate(T).await;
    });
    assert_all_clean(&name);
}

fn listen_and_stdio_reach_workers_on_other_hosts() {
    let name = job_name("listen-stdio");
    runtime().block_on(async {
        for extra in [
            format!("//listen={}", testbed::CONTROLLER),
            format!("//listen={}:0", testbed::CONTROLLER),
            "//stdio".to_string(),
        ] {
            let group = Group::new([format!(
                "slurm//ntasks=3//nodes=3//job_name={name}//worker={WORKER}{extra}"
            )])
            .await
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
            let hosts: BTreeSet<String> = group
                .gateways()
                .iter()
                .map(|g| g.rinfo().host.clone())
                .collect();
            assert_eq!(hosts.len(), 3, "{extra}: {hosts:?}");
            let r: i64 = group.submit("square", &11).unwrap().await.unwrap();
            assert_eq!(r, 121);
            group.terminate(T).await;
        }
    });
    assert_all_clean(&name);
}

fn a_dead_node_is_noticed_within_the_bound_and_named() {
    let name = job_name("dead-node");
    let bound = Duration::from_secs(2);
    runtime().block_on(async {
        let group = Group::new([format!(
            "slurm//ntasks=3//nodes=3//job_name={name}//worker={WORKER}//liveness=2"
        )])
        .await
        .unwrap();
        let victim = group
            .gateways()
            .into_iter()
            .find(|g| g.rinfo().host == "rx7")
            .expect("a worker on rx7");
        let ch = victim.remote_call("sleep", &3600).unwrap();
        let t0 = Instant::now();
        let dead = testbed::kill_host("rx7");
        let err = tokio::time::timeout(T, ch.receive::<remex::Value>())
            .await
            .expect("the controller never hangs on a dead node")
            .unwrap_err()
            .to_string();
        let noticed = t0.elapsed();
        eprintln!("node rx7 dead: noticed after {noticed:?} (bound {bound:?}): {err}");
        assert!(noticed <= bound, "{noticed:?}");
        assert!(err.contains("rx7"), "the error names the node: {err}");
        // The others still serve; a task runs elsewhere.
        let r: i64 = group.submit("square", &5).unwrap().await.unwrap();
        assert_eq!(r, 25);
        group.terminate(T).await;
        // The node comes back (a fresh slurmd) and Slurm forgets the job.
        dead.revive();
    });
    assert_all_clean(&name);
}

fn main() {
    let tests: [(&str, fn()); 3] = [
        (
            "six_workers_on_three_nodes_dial_back_by_default",
            six_workers_on_three_nodes_dial_back_by_default,
        ),
        (
            "listen_and_stdio_reach_workers_on_other_hosts",
            listen_and_stdio_reach_workers_on_other_hosts,
        ),
        (
            "a_dead_node_is_noticed_within_the_bound_and_named",
            a_dead_node_is_noticed_within_the_bound_and_named,
        ),
    ];
    // libtest's arguments: a filter, and flags this harness ignores.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let listing = std::env::args().any(|a| a == "--list");
    if listing {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return;
    }
    if !testbed::available() {
        return;
    }
    // Before any thread: every Slurm command of this process talks to the
    // testbed's cluster.
    std::env::set_var("SLURM_CONF", testbed::SLURM_CONF);
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        eprintln!("test {name} ...");
        let t0 = Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => eprintln!("test {name} ... ok ({:?})", t0.elapsed()),
            Err(_) => {
                eprintln!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    eprintln!(
        "testbed_slurm: {} passed, {} failed",
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("failures: {failed:?}");
        std::process::exit(1);
    }
}
