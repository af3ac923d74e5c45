//! Project tasks: `cargo xtask test` runs every test, `cargo xtask lint`
//! checks formatting, clippy, import circles and one path per name, `cargo xtask bench` measures performance,
//! `cargo xtask fuzz` runs the fuzz targets.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod circles;
mod paths;

#[derive(Parser)]
#[command(about = "remex project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Runs every test of the workspace (unit, integration, doc tests).
    Test {
        /// Extra arguments passed to `cargo test` after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Checks formatting, clippy (warnings are errors), that no modules
    /// import each other in a circle (xtask/src/circles.rs) and that no
    /// public name has two public paths (xtask/src/paths.rs).
    Lint,
    /// Builds the README's `Cargo.toml` lines in a fresh crate outside the
    /// workspace and runs the README's programs marked for it; installs
    /// the `remex` command with `cargo install --path` and runs it.
    Readme,
    /// Runs the benchmarks (release build) and prints the table.
    Bench {
        /// Instead of the table: rows of this build and of the build at
        /// git revision REV (default: the last commit before issue 15),
        /// alternately in one run, with their ratios.
        #[arg(long, value_name = "REV", num_args = 0..=1, default_missing_value = PRE_SCALE_REV)]
        baseline: Option<String>,
        /// The rows `--baseline` compares: b (ping-pong), d (bulk bytes),
        /// f (trivial tasks through the pool), g (64 popen gateways
        /// created), s and sc (20,000 tasks over 1,000 workers: wall
        /// time, the controller's CPU), k (socket= bulk bytes, % of the
        /// TCP floor).
        #[arg(long, value_delimiter = ',', default_value = "f")]
        rows: Vec<String>,
        /// Extra arguments for the benchmark program (e.g. `--quick`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Writes the `remex` command's man pages and shell completions into
    /// target/man and target/completions (from the built command).
    Man,
    /// Refreshes docs/dashboard.png: the dashboard's browser test, with a
    /// screenshot of the page taken at its end.
    Screenshot,
    /// Rewrites the table of rhai's standard library that scripts' close
    /// matches come from (crates/remex-worker/src/script/rhai_std.txt),
    /// from the rhai of Cargo.lock built with its `metadata` feature in a
    /// crate of its own (the workspace builds rhai without it).
    RhaiSignatures,
    /// Runs the soak: mixed traffic over popen and ssh gateways while
    /// workers are killed and re-added; checks nothing was lost.
    Soak {
        /// How long to run.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
    /// Runs each fuzz target (fuzz/fuzz_targets) under libFuzzer for a
    /// while, on the stable toolchain; a crash fails with the input saved.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets (default: all).
        #[arg(long = "target")]
        targets: Vec<String>,
    },
}

const FUZZ_TARGETS: [&str; 4] = ["frame", "handshake", "value", "spec"];

/// The last commit before issue 15 (scale): the build row (f) is compared
/// with by `cargo xtask bench --baseline`.
const PRE_SCALE_REV: &str = "3a8766f2c722882bf2de6d0cea88a492f38caad1";

/// Rounds of `bench --baseline`: each runs both builds once per row.
const BASELINE_ROUNDS: usize = 7;

/// A row `bench --baseline` compares: the benchmark's aid that measures
/// it alone, and how its figure is read from what the aid prints.
struct BaselineRow {
    name: &'static str,
    what: &'static str,
    args: &'static [&'static str],
    unit: &'static str,
    higher_is_better: bool,
    read: fn(&str) -> Option<f64>,
}

/// The last line of `text` starting with `prefix`, its word `n` (from 0)
/// as a number.
fn word_after(text: &str, prefix: &str, n: usize) -> Option<f64> {
    text.lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_whitespace().nth(n))
        .and_then(|w| w.parse().ok())
}

const BASELINE_ROWS: &[BaselineRow] = &[
    BaselineRow {
        name: "b",
        what: "ping-pong round trip",
        args: &["--pingpong-only"],
        unit: "us",
        higher_is_better: false,
        // "remex 7.1 us, floor ..."
        read: |t| word_after(t, "remex ", 1),
    },
    BaselineRow {
        name: "d",
        what: "bulk bytes",
        args: &["--bulk-only"],
        unit: "MB/s",
        higher_is_better: true,
        // "bulk 2345 MB/s, floor ..."
        read: |t| word_after(t, "bulk ", 1),
    },
    BaselineRow {
        name: "f",
        what: "trivial tasks over 2 workers",
        args: &["--tasks-only"],
        unit: "tasks/s",
        higher_is_better: true,
        // "188544 tasks/s"
        read: |t| {
            t.lines().rev().find_map(|l| {
                l.strip_suffix(" tasks/s")
                    .and_then(|n| n.trim().parse().ok())
            })
        },
    },
    BaselineRow {
        name: "g",
        what: "64 popen gateways created",
        args: &["--group-only", "64"],
        unit: "ms",
        higher_is_better: false,
        // "create terminate per-gateway-KiB fds exec"
        read: |t| {
            t.lines()
                .rev()
                .find_map(|l| l.split_whitespace().next().and_then(|w| w.parse().ok()))
        },
    },
    BaselineRow {
        name: "s",
        what: "20,000 trivial tasks over 1,000 popen workers (row f'')",
        args: &["--pool-scale-only", "1000", "20000"],
        unit: "ms",
        higher_is_better: false,
        // "exec-ms tasks-ms cpu-ms"
        read: |t| t.lines().rev().find_map(|l| word_after(l, "", 1)),
    },
    BaselineRow {
        name: "sc",
        what: "the controller's CPU for those tasks (row f'')",
        args: &["--pool-scale-only", "1000", "20000"],
        unit: "ms",
        higher_is_better: false,
        read: |t| t.lines().rev().find_map(|l| word_after(l, "", 2)),
    },
    BaselineRow {
        name: "k",
        what: "socket= bulk bytes, share of the TCP floor of its run",
        args: &["--socket-only"],
        unit: "%",
        higher_is_better: true,
        // "| (k) socket= bulk bytes ... | | 52% of the floor | ..."
        read: |t| {
            let line = t.lines().rev().find(|l| l.starts_with("| (k) "))?;
            let before = line.split("% of the floor").next()?;
            before.rsplit(' ').next()?.parse().ok()
        },
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The crates under `root`'s `crates/` (the directories with a `src/`),
/// sorted: what the lint's source checks read.
fn crate_dirs(root: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map_err(|e| format!("crates/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("src").is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(what: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

/// The ssh suite runs against a real sshd: install it when we can (root
/// with apt-get), otherwise say how; never skip.
fn ensure_sshd() -> Result<(), String> {
    if std::path::Path::new("/usr/sbin/sshd").exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let have_apt = Command::new("sh")
        .args(["-c", "command -v apt-get"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !(root && have_apt) {
        return Err("the ssh tests need OpenSSH's sshd: run `sudo apt-get install -y openssh-server` (or your system's equivalent), then cargo xtask test again".into());
    }
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null",
    ]);
    run("apt-get install openssh-server", c)?;
    // The package may start a system sshd on port 22; the tests run their own.
    let _ = Command::new("sh")
        .args(["-c", "service ssh stop >/dev/null 2>&1"])
        .status();
    Ok(())
}

/// The Slurm suite runs against a real single-node Slurm, which
/// `.ci/slurm-up` installs (root with apt-get) and starts. Where the
/// packages cannot be installed, the suite is skipped with that reason
/// (`REMEX_SLURM_SKIP`); any other failure fails the run.
fn ensure_slurm() -> Result<Option<&'static str>, String> {
    let status = Command::new("bash")
        .arg(root().join(".ci/slurm-up"))
        .status()
        .map_err(|e| format!("cannot run .ci/slurm-up: {e}"))?;
    match status.code() {
        Some(0) => Ok(None),
        Some(3) => {
            eprintln!("xtask: the Slurm suite is skipped: Slurm cannot be installed here");
            Ok(Some(
                "Slurm is not installed and cannot be installed here (needs root and apt-get)",
            ))
        }
        _ => Err(format!(".ci/slurm-up failed: {status}")),
    }
}

/// The container suite runs against podman, which `.ci/podman-up`
/// installs (root with apt-get). Where it cannot be installed, the suite
/// is skipped with that reason (`REMEX_PODMAN_SKIP`).
fn ensure_podman() -> Result<Option<&'static str>, String> {
    let status = Command::new("bash")
        .arg(root().join(".ci/podman-up"))
        .status()
        .map_err(|e| format!("cannot run .ci/podman-up: {e}"))?;
    match status.code() {
        Some(0) => Ok(None),
        Some(3) => {
            eprintln!("xtask: the podman suite is skipped: podman cannot be installed here");
            Ok(Some(
                "podman is not installed and cannot be installed here (needs root and apt-get)",
            ))
        }
        _ => Err(format!(".ci/podman-up failed: {status}")),
    }
}

/// The testbed of hosts (network namespaces with their own names,
/// addresses and sshd, and a multi-node Slurm), which `.ci/hosts-up`
/// brings up (as root). Where it cannot be made (not root, no network
/// namespaces, no packages), its suites are skipped with that reason
/// (`REMEX_TESTBED_SKIP`); any other failure fails the run.
fn ensure_testbed() -> Result<Option<String>, String> {
    let out = Command::new("bash")
        .arg(root().join(".ci/hosts-up"))
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run .ci/hosts-up: {e}"))?;
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => {
            eprintln!("{said}");
            Ok(None)
        }
        Some(3) => {
            eprintln!("xtask: the testbed suites are skipped: {said}");
            Ok(Some(said))
        }
        _ => Err(format!(".ci/hosts-up failed ({}): {said}", out.status)),
    }
}

fn test(args: &[String]) -> Result<(), String> {
    ensure_sshd()?;
    // Doc examples start real gateways: they find the stock worker here.
    let mut c = cargo();
    c.args(["build", "-p", "remex-worker"]);
    run("cargo build -p remex-worker", c)?;
    let worker = root().join("target/debug/remex-worker");
    let slurm_skip = ensure_slurm()?;
    let podman_skip = ensure_podman()?;
    let testbed_skip = ensure_testbed()?;
    let mut c = cargo();
    c.env("REMEX_WORKER_PATH", &worker);
    if let Some(why) = &testbed_skip {
        c.env("REMEX_TESTBED_SKIP", why);
    }
    if let Some(why) = slurm_skip {
        c.env("REMEX_SLURM_SKIP", why);
    }
    if let Some(why) = podman_skip {
        c.env("REMEX_PODMAN_SKIP", why);
    }
    c.args(["test", "--workspace", "--exclude", "xtask"]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    run("cargo test --workspace", c)?;
    // As a new user starts: a crate of their own depending on remex, and
    // the docs they read first, with every link resolving.
    readme()?;
    docs()?;
    // The short soak, after the tests so that they do not compete for the
    // two cores.
    soak(60, testbed_skip.as_deref())?;
    // The portable input path (a reader task per connection, what builds
    // without Linux's epoll/timerfd/eventfd) runs the integration suite
    // too, so that it cannot rot. Last: it rebuilds the test binaries.
    let mut c = cargo();
    if let Some(why) = slurm_skip {
        c.env("REMEX_SLURM_SKIP", why);
    }
    if let Some(why) = podman_skip {
        c.env("REMEX_PODMAN_SKIP", why);
    }
    // The testbed's suites test hosts and networks, which the input path
    // does not change: they run once, above (they take minutes).
    c.env(
        "REMEX_TESTBED_SKIP",
        "the testbed suites run once, in the main pass",
    );
    c.args([
        "test",
        "-p",
        "remex-tests",
        "--features",
        "remex-core/portable",
    ]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    run(
        "cargo test -p remex-tests --features remex-core/portable",
        c,
    )
}

/// A block of the README marked `<!-- readme-check: KIND -->` on the line
/// before its opening fence, with the text block (`text` fence) that
/// follows it, if any, as its expected output.
struct Marked {
    kind: String,
    code: String,
    expected: Option<String>,
    line: usize,
}

fn marked_blocks(readme: &str) -> Vec<Marked> {
    let lines: Vec<&str> = readme.lines().collect();
    let fenced = |start: usize| -> (String, usize) {
        let mut code = String::new();
        let mut i = start + 1;
        while i < lines.len() && !lines[i].starts_with("```") {
            code.push_str(lines[i]);
            code.push('\n');
            i += 1;
        }
        (code, i)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = lines[i]
            .strip_prefix("<!-- readme-check: ")
            .and_then(|k| k.strip_suffix(" -->"))
        else {
            i += 1;
            continue;
        };
        let (code, end) = fenced(i + 1);
        // The expected output: the next fenced `text` block before any
        // other fence or marker.
        let mut expected = None;
        let mut j = end + 1;
        while j < lines.len() && !lines[j].starts_with("<!--") {
            if lines[j].starts_with("```text") {
                expected = Some(fenced(j).0);
                break;
            }
            if lines[j].starts_with("```") {
                break;
            }
            j += 1;
        }
        out.push(Marked {
            kind: kind.to_string(),
            code,
            expected,
            line: i + 1,
        });
        i = end + 1;
    }
    out
}

/// What a new user does: a fresh crate outside the workspace with the
/// README's `Cargo.toml` lines (the path to remex made real), each marked
/// program as a binary of it, built and run with no worker configured.
fn readme() -> Result<(), String> {
    let text =
        std::fs::read_to_string(root().join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let blocks = marked_blocks(&text);
    let deps = blocks
        .iter()
        .find(|b| b.kind == "Cargo.toml")
        .ok_or("README.md has no block marked `readme-check: Cargo.toml`")?;
    let remex_path = root().join("crates/remex");
    let deps = deps.code.replace(
        "path = \"../remex/crates/remex\"",
        &format!("path = {:?}", remex_path.display().to_string()),
    );
    if !deps.contains(&remex_path.display().to_string()) {
        return Err("README.md's Cargo.toml block no longer depends on remex by `path = \"../remex/crates/remex\"`: update xtask readme".into());
    }
    let programs: Vec<&Marked> = blocks.iter().filter(|b| b.kind == "run").collect();
    if programs.is_empty() {
        return Err("README.md has no block marked `readme-check: run`".into());
    }
    let dir = std::env::temp_dir().join("remex-readme-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/bin")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut manifest = String::from(
        "[package]\nname = \"first-hour\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n",
    );
    manifest.push_str(&deps);
    let write = |path: PathBuf, body: &str| {
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(dir.join("Cargo.toml"), &manifest)?;
    // The workspace's versions of shared dependencies, so that the build
    // reuses what `cargo test` compiled; cargo adds the new package.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    for (k, p) in programs.iter().enumerate() {
        write(dir.join(format!("src/bin/readme{k}.rs")), &p.code)?;
    }
    let target = root().join("target");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--offline", "--bins"]);
    run("build the README's programs in a fresh crate", c)?;
    for (k, p) in programs.iter().enumerate() {
        let exe = target.join(format!("debug/readme{k}"));
        let what = format!("README.md's program at line {}", p.line);
        eprintln!("xtask: run {what}");
        // A stranger's environment: no worker configured or on PATH.
        let out = Command::new(&exe)
            .current_dir(&dir)
            .env_remove("REMEX_WORKER_PATH")
            .env_remove("REMEX_WORKER")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .map_err(|e| format!("{what}: cannot run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{what}: {}\nstdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if let Some(expected) = &p.expected {
            if stdout.trim_end() != expected.trim_end() {
                return Err(format!(
                    "{what} printed:\n{stdout}\nthe README says:\n{expected}"
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    install_cli(&target)
}

/// `cargo install --path crates/remex-cli`, as the README says (a debug
/// build into a fresh root, reusing what the tests compiled), then the
/// installed `remex` runs jobs and an exec with nothing else on PATH.
fn install_cli(target: &std::path::Path) -> Result<(), String> {
    let inst = std::env::temp_dir().join("remex-install-check");
    let _ = std::fs::remove_dir_all(&inst);
    let mut c = cargo();
    c.env("CARGO_TARGET_DIR", target)
        .args(["install", "--offline", "--debug", "--locked", "--path"])
        .arg(root().join("crates/remex-cli"))
        .arg("--root")
        .arg(&inst);
    run("cargo install --path crates/remex-cli", c)?;
    let checks: [(&[&str], &str); 2] = [
        (
            &[
                "run", "--tx", "2*popen", "-k", "--", "echo", "{}", ":::", "a", "b",
            ],
            "a\nb\n",
        ),
        (
            &["exec", "--tx", "popen", "--", "echo", "hi"],
            "local: hi\n",
        ),
    ];
    for (args, expected) in checks {
        let what = format!("the installed remex {}", args.join(" "));
        eprintln!("xtask: run {what}");
        let out = Command::new(inst.join("bin/remex"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_remove("REMEX_WORKER_PATH")
            .env_remove("REMEX_WORKER")
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", inst.join("bin").display()),
            )
            .output()
            .map_err(|e| format!("{what}: cannot run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || stdout != expected {
            return Err(format!(
                "{what}: {}\nstdout:\n{stdout}\nexpected:\n{expected}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&inst);
    Ok(())
}

/// The API docs build without warnings (broken links included).
fn docs() -> Result<(), String> {
    let mut c = cargo();
    c.env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--no-deps",
        "--exclude",
        "xtask",
    ]);
    run("cargo doc --workspace --no-deps (warnings are errors)", c)?;
    package()
}

/// The published crates package (metadata, versions on the path
/// dependencies, files): `cargo package` without the build, which the
/// tests have done.
fn package() -> Result<(), String> {
    let mut c = cargo();
    c.args([
        "package",
        "--workspace",
        "--no-verify",
        "--allow-dirty",
        "--exclude",
        "remex-bench",
        "--exclude",
        "remex-tests",
        "--exclude",
        "xtask",
        "--exclude",
        "remex-fuzz",
        "--exclude",
        "remex-models",
    ]);
    run("cargo package --workspace --no-verify", c)
}

fn soak(seconds: u64, testbed_skip: Option<&str>) -> Result<(), String> {
    ensure_sshd()?;
    let mut c = cargo();
    c.args(["build", "-p", "remex-tests", "--bins"]);
    run("build the soak", c)?;
    let mut c = Command::new(root().join("target/debug/remex-soak"));
    c.args(["--seconds", &seconds.to_string()]);
    if let Some(why) = testbed_skip {
        c.env("REMEX_TESTBED_SKIP", why);
    }
    run(&format!("soak for {seconds} s"), c)
}

fn lint() -> Result<(), String> {
    circles::check(&root())?;
    println!("xtask: no new import circle");
    paths::check(&root())?;
    println!("xtask: one public path per name");
    // The check's own tests (the workspace's tests leave xtask out).
    let mut c = cargo();
    c.args(["test", "-p", "xtask", "--quiet"]);
    run("cargo test -p xtask", c)?;
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", c)?;
    clippy("cargo clippy", &["--workspace"])?;
    clippy(
        "cargo clippy (portable input path)",
        &["-p", "remex-core", "--features", "portable"],
    )
}

/// Clippy over `packages` and all their targets, warnings as errors.
fn clippy(what: &str, packages: &[&str]) -> Result<(), String> {
    let mut c = cargo();
    c.arg("clippy")
        .args(packages)
        .args(["--all-targets", "--", "-D", "warnings"]);
    run(what, c)
}

fn bench(args: &[String]) -> Result<(), String> {
    // The rows of the remex command run the release `remex` binary.
    let mut c = cargo();
    c.args(["build", "--release", "-p", "remex-cli"]);
    run("cargo build --release -p remex-cli", c)?;
    let mut c = cargo();
    c.args(["run", "--release", "-p", "remex-bench", "--"])
        .args(args);
    run("remex-bench", c)
}

/// Row (f) of this build and of the build at `rev`, alternately: builds
/// `rev`'s benchmark in a git worktree under target/baseline (kept
/// between runs), then runs `remex-bench --tasks-only` of each in turn
/// and prints each pair, the medians and their ratio. Both builds run
/// their own binary as the worker (`popen//worker=self`).
fn bench_baseline(rev: &str, rows: &[String]) -> Result<(), String> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .output()
        .map_err(|e| format!("git rev-parse: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "no commit {rev:?} in this clone: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = root().join("target/baseline").join(&commit[..12]);
    let tree = dir.join("src");
    if !tree.join("Cargo.toml").exists() {
        let mut c = Command::new("git");
        c.current_dir(root()).args(["worktree", "add", "--detach"]);
        c.arg(&tree).arg(&commit);
        run(&format!("git worktree add {}", tree.display()), c)?;
    }
    let mut c = cargo();
    c.current_dir(&tree)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["build", "--release", "-p", "remex-bench"]);
    run(&format!("cargo build --release (at {})", &commit[..12]), c)?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "remex-bench"]);
    run("cargo build --release -p remex-bench", c)?;
    let builds = [
        (
            format!("{} (before)", &commit[..12]),
            dir.join("target/release/remex-bench"),
        ),
        (
            "this build".to_string(),
            root().join("target/release/remex-bench"),
        ),
    ];
    let rows: Vec<&BaselineRow> = rows
        .iter()
        .map(|r| {
            BASELINE_ROWS
                .iter()
                .find(|b| b.name == r)
                .ok_or_else(|| format!("--rows: no row {r:?} (b, d, f, g, s, sc, k)"))
        })
        .collect::<Result<_, _>>()?;
    // What a build printed for some arguments, this round: rows that read
    // different figures of one run (s and sc) share it.
    let mut printed: Vec<(usize, usize, &[&str], String)> = Vec::new();
    let mut figure = |round: usize, build: usize, row: &BaselineRow| -> Result<f64, String> {
        let bin = &builds[build].1;
        let text = match printed
            .iter()
            .find(|(r, b, args, _)| (*r, *b, *args) == (round, build, row.args))
        {
            Some((_, _, _, text)) => text.clone(),
            None => {
                let out = Command::new(bin)
                    .args(row.args)
                    .output()
                    .map_err(|e| format!("{}: {e}", bin.display()))?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                printed.retain(|(r, ..)| *r == round);
                printed.push((round, build, row.args, text.clone()));
                text
            }
        };
        (row.read)(&text)
            .ok_or_else(|| format!("{} {:?} printed {text:?}", bin.display(), row.args))
    };
    // figures[row][build]
    let mut figures = vec![[Vec::new(), Vec::new()]; rows.len()];
    for round in 1..=BASELINE_ROUNDS {
        for (i, row) in rows.iter().enumerate() {
            let before = figure(round, 0, row)?;
            let now = figure(round, 1, row)?;
            println!(
                "round {round}: ({}) {before:>10.1} {u} before, {now:>10.1} {u} this build ({:.2}x)",
                row.name,
                now / before,
                u = row.unit,
            );
            figures[i][0].push(before);
            figures[i][1].push(now);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\nMedians of {BASELINE_ROUNDS} alternating runs, {} against {}:\n",
        builds[1].0, builds[0].0
    );
    println!("| row | before | this build | this / before |\n|---|---|---|---|");
    for (row, f) in rows.iter().zip(&mut figures) {
        let (b, n) = (median(&mut f[0]), median(&mut f[1]));
        println!(
            "| ({}) {} | {b:.1} {u} | {n:.1} {u} | {:.2}x ({}) |",
            row.name,
            row.what,
            n / b,
            if row.higher_is_better {
                "higher is better"
            } else {
                "lower is better"
            },
            u = row.unit,
        );
    }
    Ok(())
}

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV did not name the host".into())
}

/// Builds the targets with libFuzzer's coverage instrumentation (the flags
/// cargo-fuzz passes, without its nightly-only sanitizer) and runs each.
fn fuzz(seconds: u64, only: &[String]) -> Result<(), String> {
    let targets: Vec<&str> = if only.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        for t in only {
            if !FUZZ_TARGETS.contains(&t.as_str()) {
                return Err(format!(
                    "no fuzz target {t:?}; the targets are {FUZZ_TARGETS:?}"
                ));
            }
        }
        only.iter().map(String::as_str).collect()
    };
    let triple = host_triple()?;
    let target_dir = root().join("target/fuzz");
    let mut c = cargo();
    c.env(
        "RUSTFLAGS",
        [
            "-Cpasses=sancov-module",
            "-Cllvm-args=-sanitizer-coverage-level=4",
            "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
            "-Cllvm-args=-sanitizer-coverage-pc-table",
            "-Cllvm-args=-sanitizer-coverage-trace-compares",
            "--cfg=fuzzing",
            "-Cdebug-assertions",
            "-Coverflow-checks",
        ]
        .join(" "),
    );
    c.args([
        "build",
        "--release",
        "-p",
        "remex-fuzz",
        "--bins",
        "--target",
        &triple,
    ])
    .arg("--target-dir")
    .arg(&target_dir);
    run("build the fuzz targets", c)?;
    for t in targets {
        let corpus = root().join("target/fuzz/corpus").join(t);
        let artifacts = root().join("fuzz/artifacts").join(t);
        for d in [&corpus, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut c = Command::new(target_dir.join(&triple).join("release").join(t));
        c.arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus);
        run(&format!("fuzz {t} for {seconds} s"), c).map_err(|e| {
            format!("{e}: the input is in {}; add it to fuzz/regressions/{t}/ named after the bug, and fix it", artifacts.display())
        })?;
    }
    Ok(())
}

/// `cargo xtask man`: the man pages (target/man) and completion scripts
/// (target/completions) of the `remex` command, made by the command.
fn man() -> Result<(), String> {
    let mut c = cargo();
    c.args(["build", "-p", "remex-cli"]);
    run("cargo build -p remex-cli", c)?;
    let remex = root().join("target/debug/remex");
    let mut c = Command::new(&remex);
    c.arg("manpages").arg(root().join("target/man"));
    run("remex manpages target/man", c)?;
    let dir = root().join("target/completions");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (shell, file) in [
        ("bash", "remex.bash"),
        ("zsh", "_remex"),
        ("fish", "remex.fish"),
    ] {
        let out = Command::new(&remex)
            .args(["completions", shell])
            .output()
            .map_err(|e| format!("remex completions {shell}: {e}"))?;
        if !out.status.success() {
            return Err(format!("remex completions {shell}: {}", out.status));
        }
        let path = dir.join(file);
        std::fs::write(&path, out.stdout).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// `cargo xtask screenshot`: docs/dashboard.png from the dashboard's
/// browser test (`REMEX_DASHBOARD_SCREENSHOT` tells it where).
fn screenshot() -> Result<(), String> {
    let png = root().join("docs/dashboard.png");
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "remex-tests",
        "--test",
        "dashboard",
        "a_browser_shows",
    ])
    .env("REMEX_DASHBOARD_SCREENSHOT", &png);
    run("the dashboard's browser test", c)?;
    eprintln!("xtask: wrote {}", png.display());
    Ok(())
}

/// The version of `name` in the workspace's Cargo.lock.
fn locked_version(name: &str) -> Result<String, String> {
    let lock = root().join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).map_err(|e| format!("{}: {e}", lock.display()))?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err(format!("{name} is not in {}", lock.display()))
}

/// `cargo xtask rhai-signatures`: see [`Task::RhaiSignatures`].
fn rhai_signatures() -> Result<(), String> {
    let version = locked_version("rhai")?;
    let dir = root().join("target/rhai-signatures");
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |path: std::path::PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"rhai-signatures\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nrhai = {{ version = \"={version}\", features = [\"sync\", \"metadata\"] }}\n\n[workspace]\n"
        ),
    )?;
    write(
        dir.join("src/main.rs"),
        "fn main() {\n    let mut sigs = rhai::Engine::new().gen_fn_signatures(true);\n    sigs.sort();\n    sigs.dedup();\n    for s in sigs {\n        println!(\"{s}\");\n    }\n}\n".to_string(),
    )?;
    let out = cargo()
        .args(["run", "-q", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cargo run (rhai-signatures): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo run (rhai-signatures): {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let table = root().join("crates/remex-worker/src/script/rhai_std.txt");
    let mut text = format!(
        "# rhai {version}: its standard library's signatures (cargo xtask rhai-signatures)\n"
    );
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    write(table.clone(), text)?;
    eprintln!("xtask: wrote {}", table.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Test { args } => test(args),
        Task::Lint => lint(),
        Task::Readme => readme(),
        Task::Bench {
            baseline: Some(rev),
            rows,
            ..
        } => bench_baseline(rev, rows),
        Task::Bench {
            baseline: None,
            args,
            ..
        } => bench(args),
        Task::Fuzz { seconds, targets } => fuzz(*seconds, targets),
        Task::Man => man(),
        Task::Screenshot => screenshot(),
        Task::RhaiSignatures => rhai_signatures(),
        Task::Soak { seconds } => ensure_testbed().and_then(|skip| soak(*seconds, skip.as_deref())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripts' close matches list rhai's standard library from a table
    /// made from one rhai version: the locked one.
    #[test]
    fn the_rhai_signature_table_is_made_from_the_locked_rhai() {
        let table = root().join("crates/remex-worker/src/script/rhai_std.txt");
        let text = std::fs::read_to_string(&table).unwrap();
        let first = text.lines().next().unwrap();
        let version = locked_version("rhai").unwrap();
        assert!(
            first.starts_with(&format!("# rhai {version}:")),
            "{} was made from another rhai than {version} ({first}): run cargo xtask rhai-signatures",
            table.display()
        );
    }

    /// Each row's reader finds its figure in what the aid prints (the
    /// lines as remex-bench prints them), and nothing in other text.
    #[test]
    fn baseline_rows_read_the_figure_their_aid_prints() {
        let printed = [
            ("b", "remex 7.1 us, floor 5.0 us (1.42x)\n", 7.1),
            ("d", "bulk 2345 MB/s, floor 4000 MB/s, 59%\n", 2345.0),
            ("f", "warming\n188544 tasks/s\n", 188544.0),
            ("g", "create terminate\n812.5 20.1 33 4 1.2\n", 812.5),
            ("s", "1863.8 642.5 288.5\n", 642.5),
            ("sc", "1863.8 642.5 288.5\n", 288.5),
            (
                "k",
                "| (j) socket= ping-pong | 33.7 us |\n| (k) socket= bulk bytes (Noise session), loopback | 1611 MB/s | 3983 MB/s (plain TCP) | | 36% of the floor | | >= 60% of the floor |\n",
                36.0,
            ),
        ];
        for (name, text, want) in printed {
            let row = BASELINE_ROWS.iter().find(|r| r.name == name).unwrap();
            assert_eq!((row.read)(text), Some(want), "row {name}");
            assert_eq!((row.read)("nothing measured\n"), None, "row {name}");
        }
    }
}
