//! Helpers shared by the cross-crate integration tests: process checks
//! against the operating system.

use std::time::{Duration, Instant};

/// Whether a process is gone (no such pid, or a zombie nobody has reaped
/// yet: it runs no code any more).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
    }
}

/// Whether a process runs whose command line is exactly `argv` (from
/// /proc; a zombie's is empty).
///
/// ```
/// assert!(!remex_tests::runs_command(&["no-such-program", "31.7"]));
/// ```
pub fn runs_command(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| c == want)
}

/// Waits until `pid` is gone or `within` has passed; returns whether it is
/// gone.
pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if process_gone(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of the live children of `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    if fields.get(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid)
                        && !process_gone(p)
                    {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// How long [`ran`], [`finished`] and [`output_of`] let a command run:
/// far past any command of the
/// suite (the slowest take seconds), so that a hang fails its test, naming
/// the command and the processes it left, rather than the whole run.
pub const COMMAND_BOUND: Duration = Duration::from_secs(300);

/// Waits for `child` to end and collects what it printed (stdout and
/// stderr as the child was spawned with: piped ones are read), for at most
/// `within`. Past it, the child and every process below it are killed
/// (SIGKILL) and the error names each of them with its state and the
/// kernel function it waits in, which is what a hang's report needs.
///
/// ```
/// use std::process::{Command, Stdio};
/// use std::time::Duration;
/// let child = Command::new("sleep").arg("30").stdout(Stdio::piped()).spawn().unwrap();
/// let pid = child.id();
/// let e = remex_tests::output_within(child, Duration::from_millis(200)).unwrap_err();
/// assert!(e.contains("sleep 30"), "{e}");
/// assert!(remex_tests::wait_gone(pid, Duration::from_secs(10)));
/// ```
pub fn output_within(
    child: std::process::Child,
    within: Duration,
) -> Result<std::process::Output, String> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(o) => o.map_err(|e| format!("cannot wait for pid {pid}: {e}")),
        Err(_) => {
            let tree = process_tree(pid);
            let described: Vec<String> = tree.iter().map(|&p| describe_process(p)).collect();
            for &p in &tree {
                // SAFETY: kill(2) with a pid read from /proc; at worst the
                // pid is gone (ESRCH).
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
            // The reader thread ends once the pipes close; it is left to
            // do so (a grandchild outside the tree may hold them).
            Err(format!(
                "did not end within {within:?}; killed its processes:\n{}",
                described.join("\n")
            ))
        }
    }
}

/// `child` run to its end, what it printed collected (as
/// `Child::wait_with_output`), within [`COMMAND_BOUND`]; past it, panics
/// naming the processes it left ([`output_within`]).
#[track_caller]
pub fn finished(child: std::process::Child) -> std::process::Output {
    let pid = child.id();
    output_within(child, COMMAND_BOUND).unwrap_or_else(|e| panic!("pid {pid}: {e}"))
}

/// `cmd` run to its end as `Command::output` runs it (stdin empty, stdout
/// and stderr collected), within [`COMMAND_BOUND`]; past it, panics naming
/// the command and the processes it left ([`output_within`]).
#[track_caller]
pub fn output_of(cmd: &mut std::process::Command) -> std::process::Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    output_within(child, COMMAND_BOUND).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// `pid` and every live process below it, parents first.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let below = children_of(tree[i]);
        tree.extend(below);
        i += 1;
    }
    tree
}

/// A process for a hang's report: its pid, the kernel function it waits
/// in and its command line, then a line for each of its threads: its id,
/// name, state and wait.
pub fn describe_process(pid: u32) -> String {
    let read =
        |what: &str| std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default();
    let cmdline = read("cmdline").replace('\0', " ");
    let mut line = format!("{pid} {} {}", read("wchan"), cmdline.trim_end());
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let path = t.path();
            let get = |what: &str| std::fs::read_to_string(path.join(what)).unwrap_or_default();
            let state = get("stat")
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
                .unwrap_or_default();
            line.push_str(&format!(
                "\n    thread {} {} {state} {}",
                t.file_name().to_string_lossy(),
                get("comm").trim_end(),
                get("wchan")
            ));
        }
    }
    line
}

/// Byte `k` of the deterministic bulk-transfer pattern.
pub fn pattern_byte(k: usize) -> u8 {
    ((k * 7 + 13) % 251) as u8
}

/// Chunk `index` of a bulk transfer: the pattern with the chunk's index in
/// its first 8 bytes (little endian), so that loss, duplication and
/// reordering are all visible.
pub fn bulk_chunk(index: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(pattern_byte).collect();
    let n = len.min(8);
    v[..n].copy_from_slice(&index.to_le_bytes()[..n]);
    v
}

/// Resident memory of a process in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The calling thread's id, for [`wait_blocked`].
pub fn thread_id() -> i32 {
    // SAFETY: gettid(2) has no preconditions.
    unsafe { libc::gettid() }
}

/// The fields of /proc/PID/stat after the command name (field 3, the
/// state, is `[0]`; utime is `[11]`, stime `[12]`, nice `[16]`).
pub fn proc_stat(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Waits until thread `tid` of this process sleeps in the kernel waiting
/// for input or a wake-up (state S, in poll, epoll or a futex): how a test
/// knows that a thread is blocked in a receive, from the OS rather than a
/// guess. Polls /proc every millisecond, for at most `within`.
pub fn wait_blocked(tid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let path = format!("/proc/self/task/{tid}");
    loop {
        let state = std::fs::read_to_string(format!("{path}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('S'))
            });
        let wchan = std::fs::read_to_string(format!("{path}/wchan")).unwrap_or_default();
        let waiting = ["poll", "futex", "epoll"].iter().any(|w| wchan.contains(w));
        if state == Some(true) && waiting {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A real OpenSSH server on a loopback address, with keys made for it, for
/// the ssh tests. Stopped on drop.
#[derive(Debug)]
pub struct Sshd {
    dir: std::path::PathBuf,
    child: std::process::Child,
    /// The user the specs log in as (`root`, or a fresh user).
    pub user: String,
    /// The address it listens on.
    pub addr: String,
    /// Its port.
    pub port: u16,
}

fn run_ok(cmd: &mut std::process::Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port(addr: &str) -> u16 {
    std::net::TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {addr}: {e}"))
}

impl Sshd {
    /// Starts sshd on `addr` (e.g. `127.0.0.2`), admitting the key it
    /// generates for root. Panics with the install command if there is no
    /// sshd.
    pub fn start(addr: &str) -> Sshd {
        let sshd = std::path::Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "no /usr/sbin/sshd: install it (apt-get install -y openssh-server); cargo xtask test does so as root"
        );
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "remex-sshd-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for key in ["host_key", "user_key", "other_key"] {
            run_ok(
                std::process::Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.join(key)),
            );
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port(addr);
        let cfg = format!(
            "Port {port}\nListenAddress {addr}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPrintMotd no\nPrintLastLog no\n\
             LogLevel INFO\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), cfg).unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let other_pub = std::fs::read_to_string(dir.join("other_key.pub")).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[{addr}]:{port} {host_pub}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("wrong_known_hosts"),
            format!("[{addr}]:{port} {other_pub}"),
        )
        .unwrap();
        for (name, key, known) in [
            ("ssh_config", "user_key", "known_hosts"),
            ("ssh_config_wrong_key", "other_key", "known_hosts"),
            ("ssh_config_wrong_host", "user_key", "wrong_known_hosts"),
        ] {
            let c = format!(
                "Host *\n  IdentityFile {d}/{key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/{known}\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                d = dir.display()
            );
            std::fs::write(dir.join(name), c).unwrap();
        }
        let child = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd starts");
        // No event announces that sshd listens: poll the port, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((addr, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd on {addr}:{port} did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Sshd {
            dir,
            child,
            user: "root".into(),
            addr: addr.to_string(),
            port,
        }
    }

    /// Like [`Sshd::start`], logging in as a new user whose home is a fresh
    /// directory (so a bootstrap starts from an empty cache) and whose
    /// `.bashrc` prints noise, as real hosts' shells do.
    pub fn start_for_new_user(addr: &str) -> Sshd {
        let mut sshd = Sshd::start(addr);
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let user = format!(
            "rx{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let home = sshd.dir.join("home");
        run_ok(
            std::process::Command::new("useradd")
                .args(["-M", "-s", "/bin/bash", "-d"])
                .arg(&home)
                .arg(&user),
        );
        // A fresh account is locked ("!"), which sshd refuses even for keys.
        run_ok(
            std::process::Command::new("usermod")
                .args(["-p", "*"])
                .arg(&user),
        );
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".bashrc"),
            "echo 'hello from .bashrc'\nprintf 'and no newline'\n",
        )
        .unwrap();
        run_ok(
            std::process::Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(&home),
        );
        sshd.user = user;
        sshd
    }

    /// The login user's home directory (for a fresh user).
    pub fn home(&self) -> std::path::PathBuf {
        self.dir.join("home")
    }

    /// A spec reaching this server as root with the admitted key, plus
    /// `extra` (`//key=value...`).
    pub fn spec(&self, extra: &str) -> String {
        self.spec_with("ssh_config", extra)
    }

    /// A spec using one of the client configs: `ssh_config`,
    /// `ssh_config_wrong_key`, `ssh_config_wrong_host`.
    pub fn spec_with(&self, config: &str, extra: &str) -> String {
        format!(
            "ssh={}@{}//port={}//ssh_config={}{extra}",
            self.user,
            self.addr,
            self.port,
            self.dir.join(config).display()
        )
    }

    /// Writes an ssh config naming this server `alias` (host, port, user,
    /// key, known hosts), for clients that take only a host name, such as
    /// execnet; returns its path.
    pub fn alias_config(&self, alias: &str) -> std::path::PathBuf {
        let path = self.dir.join(format!("alias_{alias}"));
        let c = format!(
            "Host {alias}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            self.addr,
            self.port,
            self.user,
            d = self.dir.display()
        );
        std::fs::write(&path, c).unwrap();
        path
    }

    /// What sshd logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// The pid of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.user != "root" {
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-u", &self.user])
                .status();
            // -f: the killed processes may not be gone yet.
            let _ = std::process::Command::new("userdel")
                .args(["-f", &self.user])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command run to its end: its exit status and what it printed, as
/// text ([`ran`]).
#[derive(Debug)]
pub struct Ran {
    /// What the command was, for messages.
    pub what: String,
    /// How it ended.
    pub status: std::process::ExitStatus,
    /// Its stdout (lossy UTF-8).
    pub stdout: String,
    /// Its stderr (lossy UTF-8).
    pub stderr: String,
}

/// Runs `cmd` to its end with an empty stdin and collects what it printed.
/// Panics, naming the command, if it cannot start.
#[track_caller]
pub fn ran(cmd: &mut std::process::Command) -> Ran {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let o = output_of(cmd);
    Ran {
        what,
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl Ran {
    /// Itself, once it is known the command succeeded; panics with the
    /// command, its status and what it printed otherwise.
    #[track_caller]
    pub fn ok(self) -> Ran {
        assert!(
            self.status.success(),
            "{} failed ({}):\n{}\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The lines of its stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The lines of its stdout, sorted (for output whose order may vary).
    pub fn sorted_lines(&self) -> Vec<&str> {
        let mut l = self.lines();
        l.sort_unstable();
        l
    }
}

/// The path of the remex crate's example `name`, built by the whole suite
/// (cargo builds examples beside the test binaries' directory).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the whole suite (cargo xtask test)",
        path.display()
    );
    path
}

/// Starts `controller` (the `remex-test-controller` binary) with `args`
/// (its role and what the role takes) as a separate controller process,
/// and returns the process and the pids it printed after `PIDS `.
pub fn start_controller(controller: &str, args: &[&str]) -> (std::process::Child, Vec<u32>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(controller)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("PIDS ").map(str::to_string))
        .expect("the controller prints its workers' pids");
    let pids = line.split(' ').map(|s| s.parse().unwrap()).collect();
    (child, pids)
}

/// A listening worker (`WORKER --listen 127.0.0.1:0 --secret-file ...`),
/// with its secret in a file of its own, for the `socket=` tests. Killed on
/// drop.
#[derive(Debug)]
pub struct Listener {
    /// The listening process.
    pub child: std::process::Child,
    /// The address it listens on.
    pub addr: String,
    /// Holds `secret` (the listener's) and `wrong` (another secret).
    pub dir: std::path::PathBuf,
    stderr: Option<std::sync::mpsc::Receiver<String>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The secret of [`Listener`]s.
pub const LISTENER_SECRET: &str = "correct horse battery staple";

impl Listener {
    /// Starts `worker` listening, its stderr read by the test.
    pub fn start(worker: &str, name: &str) -> Listener {
        Listener::start_with(worker, name, "", None)
    }

    /// Starts `worker` listening through `sh -c '{prefix} exec WORKER ...'`
    /// (e.g. `ulimit -n 64;`), with `stderr` as its stderr if given (else
    /// piped and read by the test).
    pub fn start_with(
        worker: &str,
        name: &str,
        prefix: &str,
        stderr: Option<std::process::Stdio>,
    ) -> Listener {
        use std::io::BufRead;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "remex-socket-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // Readable by their owner only: remex refuses others.
        for (name, text) in [
            ("secret", LISTENER_SECRET),
            ("wrong", "incorrect horse battery staple"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, format!("{text}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        let script = format!("{prefix} exec \"$0\" --listen 127.0.0.1:0 --secret-file \"$1\"");
        let piped = stderr.is_none();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(worker)
            .arg(dir.join("secret"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr.unwrap_or_else(std::process::Stdio::piped))
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("remex-worker listening on "), "{line:?}");
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        let stderr = piped.then(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let err = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
            rx
        });
        Listener {
            child,
            addr,
            dir,
            stderr,
        }
    }

    /// A spec for this listener with the secret file `secret` (`secret`
    /// or `wrong`).
    pub fn spec(&self, secret: &str) -> String {
        format!(
            "socket={}//secret_file={}",
            self.addr,
            self.dir.join(secret).display()
        )
    }

    /// A spec reaching `addr` (a proxy) with this listener's secret.
    pub fn spec_at(&self, addr: &str) -> String {
        format!(
            "socket={addr}//secret_file={}",
            self.dir.join("secret").display()
        )
    }

    /// Waits up to 10 s for a stderr line containing `what`.
    pub fn logged(&self, what: &str) -> bool {
        let Some(rx) = &self.stderr else {
            return false;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if l.contains(what) {
                return true;
            }
        }
        false
    }

    /// The stderr lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.stderr
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Whether the listener is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The error a gateway to a broken worker side (two workers on one
/// stream, say) ends with: its start's error, else its first script's,
/// else the connection's end (the break may come after a good answer).
/// Waits at most `within` for each; kills the gateway.
pub async fn first_failure(started: remex::Result<remex::Gateway>, within: Duration) -> String {
    let gw = match started {
        Err(e) => return e.to_string(),
        Ok(gw) => gw,
    };
    let text = match gw.remote_exec("channel.send(1)") {
        Err(e) => e.to_string(),
        Ok(ch) => match ch.waitclose(Some(within)).await {
            Err(e) => e.to_string(),
            Ok(()) => tokio::time::timeout(within, gw.connection().closed())
                .await
                .map(|e| e.to_string())
                .unwrap_or_default(),
        },
    };
    let _ = gw.kill().await;
    text
}

/// FNV-1a over `data`, continuing from `h` (start with
/// `0xcbf29ce484222325`): a cheap hash to compare streams end to end.
pub fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
pub mod testbed;
