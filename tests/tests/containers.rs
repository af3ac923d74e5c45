//! Workers in podman containers, reached with `cmd=podman run -i --rm ...`
//! and `cmd=podman exec -i ...` (docs/clusters.md): they serve, and every
//! way a gateway ends leaves no container behind (checked with `podman
//! ps`): remex sends the podman process SIGTERM and gives it
//! `WRAPPER_GRACE` to stop and remove its container.
//!
//! `cargo xtask test` installs podman (`.ci/podman-up`); where it cannot,
//! the suite is skipped, saying why. The image is built here from the test
//! worker and the libraries it links (no registry is reachable), in a
//! storage of this test run's own (vfs, under the target directory's tmp).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use remex::makegateway;
use remex_tests::ran;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

fn skipped() -> bool {
    match std::env::var("REMEX_PODMAN_SKIP") {
        Ok(why) => {
            eprintln!("the podman suite is skipped: {why}");
            true
        }
        Err(_) => false,
    }
}

/// podman with this run's own storage. The limits are set because podman
/// asks for more open files and processes than a process without
/// CAP_SYS_RESOURCE (as in a nested container) may raise its limits to.
struct Podman {
    dir: PathBuf,
    image: String,
}

impl Podman {
    fn global(&self) -> String {
        format!(
            "--root {0}/root --runroot {0}/run --storage-driver vfs",
            self.dir.display()
        )
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.args(self.global().split(' '));
        c
    }

    /// An image holding the test worker as /remex-worker and the shared
    /// libraries it needs (from ldd).
    fn start(test: &str) -> Podman {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("podman-{}-{test}", std::process::id()));
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let ldd = Command::new("ldd").arg(WORKER).output().unwrap();
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let to = rootfs.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
        std::fs::copy(WORKER, rootfs.join("remex-worker")).unwrap();
        let p = Podman {
            dir,
            image: format!("remex-test-worker:{}", std::process::id()),
        };
        ran(Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -c . | podman {} import -q - {}",
            rootfs.display(),
            p.global(),
            p.image
        )))
        .ok();
        p
    }

    fn run_spec(&self, name: &str) -> String {
        format!(
            "cmd=podman {} run -i --rm --name {name} --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 {} /remex-worker",
            self.global(),
            self.image
        )
    }

    /// The containers named `name` podman still has (running or not).
    fn containers(&self, name: &str) -> Vec<String> {
        ran(self
            .cmd()
            .args(["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]))
        .ok()
        .lines()
        .into_iter()
        .map(str::to_string)
        .collect()
    }

    /// Waits (bounded) until podman has no container `name`; podman has
    /// no event for it here: polled.
    fn gone_within(&self, name: &str, bound: Duration) -> bool {
        let t0 = Instant::now();
        while !self.containers(name).is_empty() {
            if t0.elapsed() > bound {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-a", "-f", "-t", "0"]).output();
        let _ = self.cmd().args(["rmi", "-a", "-f"]).output();
        // vfs layers belong to root and may hold read-only directories.
        let _ = Command::new("rm").arg("-rf").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_podman_run_serves_and_every_end_removes_its_container() {
    if skipped() {
        return;
    }
    let podman = Podman::start("run");
    for end in ["kill", "exit", "kill_nowait", "drop"] {
        let name = format!("remex-{}-{end}", std::process::id());
        let gw = makegateway(&podman.run_spec(&name)).await.unwrap();
        let r: i64 = gw
            .remote_call("square", &12)
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(r, 144);
        assert_eq!(
            gw.rinfo().pid,
            1,
            "the worker is the container's first process"
        );
        assert_eq!(podman.containers(&name).len(), 1);
        match end {
            "kill" => gw.kill().await.unwrap(),
            "exit" => gw.exit().await.unwrap(),
            "kill_nowait" => gw.kill_nowait(),
            _ => drop(gw),
        }
        let gone =
            tokio::task::block_in_place(|| podman.gone_within(&name, Duration::from_secs(5)));
        assert!(gone, "{end}: the container {name} is left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_through_podman_exec_serves_and_ends_with_its_session() {
    if skipped() {
        return;
    }
    let podman = Podman::start("exec");
    let name = format!("remex-{}-box", std::process::id());
    // A long-running container (the worker as a listener keeps it up).
    let mut start = podman.cmd();
    start
        .args(["run", "-d", "--name", &name])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args([
            "-e",
            "REMEX_SECRET=unused, but as long as the rule asks",
            &podman.image,
        ])
        .args(["/remex-worker", "--listen", "127.0.0.1:0"]);
    ran(&mut start).ok();
    let spec = format!(
        "cmd=podman {} exec -i {name} /remex-worker",
        podman.global()
    );
    let top = |podman: &Podman| {
        let out = podman
            .cmd()
            .args(["top", &name, "pid", "args"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for end in ["kill", "exit"] {
        let gw = makegateway(&spec).await.unwrap();
        let r: i64 = gw
            .remote_call("square", &5)
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(r, 25);
        let worker = gw.rinfo().pid;
        assert!(top(&podman)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&worker.to_string())));
        match end {
            "kill" => gw.kill().await.unwrap(),
            _ => gw.exit().await.unwrap(),
        }
        // The exec'd worker is gone from the container; the container runs on.
        let t0 = Instant::now();
        loop {
            let procs = top(&podman);
            let left = procs
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&worker.to_string()));
            if !left {
                assert!(procs.contains("--listen"), "{procs}");
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{end}: worker {worker} left: {procs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
