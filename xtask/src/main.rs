//! Project tasks: `cargo xtask test` runs every test, `cargo xtask lint`
//! checks formatting and clippy, `cargo xtask bench` measures performance.

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
}

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
    run("cargo test --workspace", c)
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
    run("cargo clippy", c)
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "remex-bench", "--"])
        .args(args);
    run("remex-bench", c)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Test { args } => test(args),
        Task::Lint => lint(),
        Task::Bench { args } => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: failed: {e}");
            ExitCode::FAILURE
        }
    }
}
