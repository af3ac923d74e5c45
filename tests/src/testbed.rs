//! The testbed of hosts (`.ci/hosts-up`): network namespaces with their
//! own names, addresses, homes and sshd, an isolated network behind `rx1`,
//! and a multi-node Slurm (slurmctld on `rx4`, slurmd on `rx5`-`rx7`).
//! Helpers to reach the hosts, to fault them (partitions, deaths) and to
//! check that nothing is left on them.
//!
//! The controller is this machine's own namespace, `rx0` (198.18.0.1).

use std::process::Command;
use std::time::{Duration, Instant};

/// The ssh client configuration for the hosts (keys, known hosts; strict
/// host key checking).
pub const SSH_CONFIG: &str = "/run/remex-testbed/ssh/config";
/// The testbed's Slurm configuration (`SLURM_CONF`).
pub const SLURM_CONF: &str = "/run/remex-testbed/slurm/slurm.conf";
/// The controller's address on the testbed.
pub const CONTROLLER: &str = "198.18.0.1";
/// The Slurm nodes.
pub const SLURM_NODES: [&str; 3] = ["rx5", "rx6", "rx7"];

/// The repository's root (for the `.ci` scripts).
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// Whether the testbed tests run here: false (after saying why) where
/// `cargo xtask test` found that the testbed cannot be made
/// (`REMEX_TESTBED_SKIP`); panics if the testbed should be there and is
/// not.
pub fn available() -> bool {
    if let Ok(why) = std::env::var("REMEX_TESTBED_SKIP") {
        eprintln!("skipped: {why}");
        return false;
    }
    assert!(
        std::path::Path::new(SSH_CONFIG).exists() && std::path::Path::new("/run/netns/rx1").exists(),
        "the testbed is not up: run .ci/hosts-up as root (cargo xtask test does), or set REMEX_TESTBED_SKIP"
    );
    true
}

/// The address of testbed host `host`.
pub fn addr(host: &str) -> String {
    let n: u32 = host.trim_start_matches("rx").parse().expect("a host rxN");
    if host == "rx8" {
        "198.18.1.18".into()
    } else {
        format!("198.18.0.{}", 10 + n)
    }
}

/// A spec for a worker on `host` over ssh, as root, plus `extra`.
pub fn ssh_spec(host: &str, extra: &str) -> String {
    format!("ssh={host}//ssh_config={SSH_CONFIG}{extra}")
}

/// Hosts are shared by the tests of one binary, which run in parallel: a
/// test that uses or faults hosts holds them (taken in one order, so no
/// two tests wait on each other in a circle).
#[derive(Debug)]
pub struct Hosts {
    _guards: Vec<std::sync::MutexGuard<'static, ()>>,
    names: Vec<&'static str>,
}

static LOCKS: [std::sync::Mutex<()>; 9] = [const { std::sync::Mutex::new(()) }; 9];

/// Takes `hosts` for this test (see [`Hosts`]); on release, checks that
/// nothing is left on them.
pub fn take(hosts: &[&'static str]) -> Hosts {
    let mut names = hosts.to_vec();
    names.sort();
    names.dedup();
    let guards = names
        .iter()
        .map(|h| {
            let n: usize = h.trim_start_matches("rx").parse().expect("a host rxN");
            LOCKS[n].lock().unwrap_or_else(|p| p.into_inner())
        })
        .collect();
    Hosts {
        _guards: guards,
        names,
    }
}

impl Hosts {
    /// Checks, within `within`, that no process is left on these hosts
    /// but their daemons (sshd's listener, slurmd, slurmctld), and that
    /// none burns CPU; panics with the process table otherwise.
    pub fn assert_clean(&self, within: Duration) {
        for h in &self.names {
            assert_host_clean(h, within);
        }
    }
}

/// Runs `args` on host `host` (`.ci/on-host`), returns its output.
pub fn on_host(host: &str, args: &[&str]) -> std::process::Output {
    crate::output_of(
        Command::new(repo().join(".ci/on-host"))
            .arg(host)
            .args(args),
    )
}

/// Like [`on_host`], and the command must succeed; returns its stdout.
pub fn on_host_ok(host: &str, args: &[&str]) -> String {
    let out = on_host(host, args);
    assert!(
        out.status.success(),
        "on {host}: {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The network namespace of `host`, as /proc shows it (`net:[INODE]`).
fn netns(host: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/run/netns/{host}")).ok()?.ino();
    Some(format!("net:[{ino}]"))
}

/// One process of a host.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its pid (as this machine sees it).
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// Its command line.
    pub cmdline: String,
    /// CPU time used so far, in clock ticks.
    pub cpu_ticks: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime.
    if f.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return None;
    }
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(Proc {
        pid,
        ppid,
        cmdline: String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .trim()
            .to_string(),
        cpu_ticks: ticks,
    })
}

/// Every live process of `host` (in its network namespace).
pub fn processes(host: &str) -> Vec<Proc> {
    let Some(want) = netns(host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if ns.to_string_lossy() == want {
            if let Some(p) = read_proc(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// The host's daemons: sshd's listener (`sshd -f`), slurmd, slurmctld.
fn is_daemon(p: &Proc) -> bool {
    let first = p.cmdline.split_whitespace().next().unwrap_or_default();
    (p.cmdline.contains("sshd") && p.cmdline.contains("[listener]"))
        || (first.ends_with("sshd") && p.cmdline.contains(" -f "))
        || first.ends_with("slurmd")
        || first.ends_with("slurmctld")
}

/// The processes of `host` other than its daemons.
pub fn leftovers(host: &str) -> Vec<Proc> {
    processes(host)
        .into_iter()
        .filter(|p| !is_daemon(p))
        .collect()
}

/// Panics unless, within `within`, `host` runs nothing but its daemons,
/// and none of them used more than a tenth of a core over half a second.
pub fn assert_host_clean(host: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = leftovers(host);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "{host} still runs, {within:?} after the end: {:#?}",
                left.iter()
                    .map(|p| (&p.pid, &p.cmdline))
                    .collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_no_cpu_burnt(host, &processes(host));
}

/// Panics if one of `procs` used more than a tenth of a core over the
/// next half second (a process spinning after the end).
fn assert_no_cpu_burnt(what: &str, procs: &[Proc]) {
    let tick = Duration::from_millis(500);
    std::thread::sleep(tick);
    let hz = 100.0; // USER_HZ on Linux
    for p in procs {
        if let Some(now) = read_proc(p.pid) {
            let used = (now.cpu_ticks.saturating_sub(p.cpu_ticks)) as f64 / hz;
            assert!(
                used <= 0.1 * tick.as_secs_f64(),
                "on {what}, {} ({}) burnt {used:.2} s of CPU in {tick:?} after the end",
                p.pid,
                p.cmdline
            );
        }
    }
}

/// Processes of this machine's own namespace (the controller) whose
/// command starts with one of `names` (e.g. `salloc`, `srun`).
pub fn controller_processes(names: &[&str]) -> Vec<Proc> {
    let mine = std::fs::read_link("/proc/self/ns/net").ok();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() != mine {
            continue;
        }
        if let Some(p) = read_proc(pid) {
            let first = p.cmdline.split_whitespace().next().unwrap_or_default();
            let base = first.rsplit('/').next().unwrap_or_default();
            if names.contains(&base) {
                out.push(p);
            }
        }
    }
    out
}

/// Panics unless, within `within`, this machine runs no process named in
/// `names` (wrappers such as salloc and srun, left to init or not), and
/// then checks that nothing of the sort burns CPU.
pub fn assert_no_controller_leftovers(names: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = controller_processes(names);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "still running {within:?} after the end: {:#?}",
                left.iter()
                    .map(|p| (&p.pid, &p.ppid, &p.cmdline))
                    .collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn iptables(host: &str, args: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", host, "sh", "-c"])
        .arg(format!("iptables {args}"))
        .output()
        .expect("ip netns exec runs");
    assert!(
        out.status.success(),
        "iptables {args} on {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A partition: every packet to and from `host` is dropped (iptables in
/// its namespace, both ways; its loopback still works), until this guard
/// heals it (also on drop).
#[derive(Debug)]
pub struct Partition {
    host: String,
    healed: bool,
}

/// Cuts `host` off the network (see [`Partition`]).
pub fn partition(host: &str) -> Partition {
    for chain in ["INPUT -i", "OUTPUT -o"] {
        iptables(host, &format!("-I {chain} lo -j ACCEPT"));
    }
    iptables(host, "-A INPUT -j DROP");
    iptables(host, "-A OUTPUT -j DROP");
    Partition {
        host: host.into(),
        healed: false,
    }
}

impl Partition {
    /// Lets packets through again.
    pub fn heal(mut self) {
        self.heal_now();
    }

    fn heal_now(&mut self) {
        if !self.healed {
            self.healed = true;
            iptables(&self.host, "-F");
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.heal_now();
    }
}

/// A dead host: its link is down (so no FIN or RST ever leaves it), every
/// process on it is killed and its address dropped. The guard brings it
/// back (`.ci/hosts-up HOST`: a fresh namespace, its daemons restarted).
#[derive(Debug)]
pub struct Dead {
    host: String,
    revived: bool,
}

/// Kills `host` (see [`Dead`]).
pub fn kill_host(host: &str) -> Dead {
    let ip = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["-n", host])
            .args(args)
            .output()
            .expect("ip runs");
        assert!(
            out.status.success(),
            "ip -n {host} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "set", "eth0", "down"]);
    if host == "rx1" {
        ip(&["link", "set", "eth1", "down"]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = processes(host);
        if procs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{host}'s processes outlived SIGKILL: {procs:?}"
        );
        for p in procs {
            if let Some(pid) = rustix_pid(p.pid) {
                let _ = kill(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ip(&["addr", "flush", "dev", "eth0"]);
    Dead {
        host: host.into(),
        revived: false,
    }
}

fn rustix_pid(pid: u32) -> Option<i32> {
    i32::try_from(pid).ok().filter(|p| *p > 1)
}

fn kill(pid: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory preconditions.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Dead {
    /// Brings the host back, and waits until it serves (bounded by
    /// hosts-up's own 30 s).
    pub fn revive(mut self) {
        self.revive_now();
    }

    fn revive_now(&mut self) {
        if self.revived {
            return;
        }
        self.revived = true;
        let out = Command::new(repo().join(".ci/hosts-up"))
            .arg(&self.host)
            .output()
            .expect(".ci/hosts-up runs");
        assert!(
            out.status.success(),
            ".ci/hosts-up {} failed: {}",
            self.host,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Dead {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.revive_now();
        } else {
            let _ = Command::new(repo().join(".ci/hosts-up"))
                .arg(&self.host)
                .output();
        }
    }
}

/// A user made for one test, with an empty home on each of `hosts` (their
/// /home is their own): a first contact uploads the worker. Removed on
/// drop.
#[derive(Debug)]
pub struct FreshUser {
    /// The login name.
    pub name: String,
    hosts: Vec<String>,
}

impl FreshUser {
    /// Makes the user and its homes.
    pub fn on(hosts: &[&str]) -> FreshUser {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "rxt{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ok = |c: &mut Command| {
            let out = c.output().expect("runs");
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(Command::new("useradd").args([
            "-M",
            "-s",
            "/bin/sh",
            "-d",
            &format!("/home/{name}"),
            &name,
        ]));
        // A fresh account is locked ("!"), which sshd refuses even for keys.
        ok(Command::new("usermod").args(["-p", "*", &name]));
        for h in hosts {
            on_host_ok(
                h,
                &[
                    "install",
                    "-d",
                    "-o",
                    &name,
                    "-g",
                    &name,
                    &format!("/home/{name}"),
                ],
            );
        }
        FreshUser {
            name,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }
}

impl Drop for FreshUser {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = on_host(h, &["pkill", "-KILL", "-u", &self.name]);
            let _ = on_host(h, &["rm", "-rf", &format!("/home/{}", self.name)]);
        }
        let _ = Command::new("userdel").args(["-f", &self.name]).output();
    }
}

/// A TCP relay for slow links: listens on the controller's testbed
/// address and forwards each connection to `target`, delaying every chunk
/// by `delay` in each direction and, with `rate`, passing at most that
/// many bytes per second each way. At most about 1 MiB is in flight per
/// direction (a link's buffer), so a sender is slowed down, not buffered
/// without bound. Threads, so that it never competes with the test's
/// runtime; they end with their connections.
#[derive(Debug)]
pub struct Relay {
    /// `host:port` to connect to instead of `target`.
    pub addr: String,
    /// Its port.
    pub port: u16,
}

impl Relay {
    /// Starts a relay on the controller's testbed address to `target`
    /// (`host:port`).
    pub fn start(target: &str, delay: Duration, rate: Option<u64>) -> Relay {
        Relay::start_at(CONTROLLER, target, delay, rate)
    }

    /// Starts a relay listening on `bind` (an address, any port) to
    /// `target`.
    pub fn start_at(bind: &str, target: &str, delay: Duration, rate: Option<u64>) -> Relay {
        let listener = std::net::TcpListener::bind((bind, 0)).expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let target = target.to_string();
        std::thread::spawn(move || {
            for c in listener.incoming() {
                let Ok(client) = c else { continue };
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    pump(from, to, delay, rate);
                }
            }
        });
        Relay {
            addr: format!("{bind}:{port}"),
            port,
        }
    }
}

/// One direction of a relayed connection: a reader thread stamps chunks,
/// a writer thread sends each when it is due, at most `rate` bytes/s.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    delay: Duration,
    rate: Option<u64>,
) {
    use std::io::{Read, Write};
    const CHUNK: usize = 16 * 1024;
    // 64 chunks of 16 KiB: about 1 MiB in flight.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(64);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        let mut sent_at_rate = Instant::now();
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if let Some(r) = rate {
                // The link is busy until the previous chunks went out.
                sent_at_rate = sent_at_rate.max(Instant::now());
                sent_at_rate += Duration::from_secs_f64(chunk.len() as f64 / r as f64);
                let now = Instant::now();
                if sent_at_rate > now {
                    std::thread::sleep(sent_at_rate - now);
                }
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// A listening worker on a host (started there, as a person would), with
/// a 256-bit secret in a file of its own. Killed on drop.
#[derive(Debug)]
pub struct RemoteListener {
    child: std::process::Child,
    /// The address it listens on (`host address:port`).
    pub addr: String,
    /// The secret's file.
    pub secret: std::path::PathBuf,
}

impl RemoteListener {
    /// Starts `worker --listen ADDR:0` on `host`, on the host's address.
    pub fn start(host: &str, worker: &str) -> RemoteListener {
        use std::io::{BufRead, Read};
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let secret = std::env::temp_dir().join(format!(
            "remex-testbed-secret-{}-{host}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .expect("random bytes");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&secret, format!("{hex}\n")).unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut child = Command::new(repo().join(".ci/on-host"))
            .args([
                host,
                worker,
                "--listen",
                &format!("{}:0", addr(host)),
                "--secret-file",
            ])
            .arg(&secret)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("remex-worker listening on "), "{line:?}");
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        RemoteListener {
            child,
            addr,
            secret,
        }
    }

    /// A `socket=` spec for this listener.
    pub fn spec(&self) -> String {
        self.spec_at(&self.addr)
    }

    /// A `socket=` spec reaching this listener at `addr` (a relay).
    pub fn spec_at(&self, addr: &str) -> String {
        format!("socket={addr}//secret_file={}", self.secret.display())
    }
}

impl Drop for RemoteListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.secret);
    }
}

/// An ssh configuration reaching `host`'s sshd through `relay` as the
/// host `slow-HOST` (the host key checked under the host's name). The
/// caller removes the file.
pub fn ssh_through(relay: &Relay, host: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "remex-testbed-relay-{}-{}",
        std::process::id(),
        relay.port
    ));
    let base = std::fs::read_to_string(SSH_CONFIG).unwrap();
    std::fs::write(
        &path,
        format!(
            "Host slow-{host}\n  HostName {CONTROLLER}\n  Port {}\n  HostKeyAlias {host}\n{}",
            relay.port,
            base.replace("Host rx*", "Host *")
        ),
    )
    .unwrap();
    path
}
