//! Project tasks: `cargo xtask test` runs every test, `cargo xtask lint`
//! checks formatting and clippy, `cargo xtask bench` measures performance,
//! `cargo xtask fuzz` runs the fuzz targets.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

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
    /// Checks formatting and clippy (warnings are errors).
    Lint,
    /// Runs the benchmarks (release build) and prints the table.
    Bench {
        /// Extra arguments for the benchmark program (e.g. `--quick`).
        #[arg(last = true)]
        args: Vec<String>,
    },
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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
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

fn test(args: &[String]) -> Result<(), String> {
    ensure_sshd()?;
    // Doc examples start real gateways: they find the stock worker here.
    let mut c = cargo();
    c.args(["build", "-p", "remex-worker"]);
    run("cargo build -p remex-worker", c)?;
    let worker = root().join("target/debug/remex-worker");
    let mut c = cargo();
    c.env("REMEX_WORKER_PATH", &worker);
    c.args(["test", "--workspace", "--exclude", "xtask"]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    run("cargo test --workspace", c)?;
    // The short soak, after the tests so that they do not compete for the
    // two cores.
    soak(60)?;
    // The portable input path (a reader task per connection, what builds
    // without Linux's epoll/timerfd/eventfd) runs the integration suite
    // too, so that it cannot rot. Last: it rebuilds the test binaries.
    let mut c = cargo();
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

fn soak(seconds: u64) -> Result<(), String> {
    ensure_sshd()?;
    let mut c = cargo();
    c.args(["build", "-p", "remex-tests", "--bins"]);
    run("build the soak", c)?;
    let mut c = Command::new(root().join("target/debug/remex-soak"));
    c.args(["--seconds", &seconds.to_string()]);
    run(&format!("soak for {seconds} s"), c)
}

fn lint() -> Result<(), String> {
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "remex-core",
        "--features",
        "portable",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (portable input path)", c)
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "remex-bench", "--"])
        .args(args);
    run("remex-bench", c)
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Test { args } => test(args),
        Task::Lint => lint(),
        Task::Bench { args } => bench(args),
        Task::Fuzz { seconds, targets } => fuzz(*seconds, targets),
        Task::Soak { seconds } => soak(*seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: failed: {e}");
            ExitCode::FAILURE
        }
    }
}
