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

fn test(args: &[String]) -> Result<(), String> {
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
