//! `remex`: run commands on many workers from the shell.
//!
//! - `remex run`: a command per input, spread over the workers, in GNU
//!   parallel's model (replacement strings, `:::` inputs, job log and
//!   resume, retries, halt, timeouts, a progress bar);
//! - `remex exec`: one command on every worker, output tagged by worker;
//! - `remex rsync`: a local directory to every worker;
//! - `remex completions SHELL`, `remex manpages DIR`: shell completion
//!   and man pages.
//!
//! The program is its own worker (`remex::serve_if_worker`): local workers
//! are copies of it, and ssh hosts get it uploaded. See docs/cli.md.

#![forbid(unsafe_code)]

mod abbrev;
mod blockfile;
mod cli;
mod emit;
mod exec;
mod groupby;
mod halt;
mod interrupt;
mod joblog;
mod jobs;
mod making;
mod onall;
mod pipe;
mod pipepart;
mod plus;
mod raw;
mod reading;
mod relative;
mod reload;
mod results;
mod roundrobin;
mod rsync;
mod run;
mod setup;
mod slots;
mod stream;
mod workers;

/// `--log-format`: a subscriber on stderr at RUST_LOG's level (warn by
/// default); the workers then send their events as records at that level.
fn logs(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        cli::LogFormat::Text => builder.try_init(),
        cli::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

fn main() {
    remex::serve_if_worker(remex::worker::Worker::new);
    let args = cli::parse();
    if let Some(format) = args.log_format {
        logs(format);
    }
    match &args.command {
        cli::Command::Completions { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "remex", &mut std::io::stdout());
            std::process::exit(0);
        }
        cli::Command::Manpages { dir } => match cli::manpages(dir) {
            Ok(pages) => {
                for p in pages {
                    println!("{}", p.display());
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!(
                    "remex: cannot write the man pages into {}: {e}",
                    dir.display()
                );
                std::process::exit(255);
            }
        },
        _ => {}
    }
    // The command's loop runs on the main thread (`block_on`), the
    // workers' connections on the runtime's threads: a loop held by a
    // slow stdout (`remex run ... | less`) must not hold the connections'
    // liveness probes, or workers over ssh would end their sessions
    // (docs/decisions.md).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remex: cannot start the async runtime: {e}");
            std::process::exit(255);
        }
    };
    let status = rt.block_on(async {
        // Ctrl-Z: the jobs stop too, and the workers wait (GNU parallel's
        // habit; see remex::catch_stops).
        if let Ok(serve) = remex::catch_stops() {
            tokio::spawn(serve);
        }
        if let Some(serve) = interrupt::catch() {
            tokio::spawn(serve);
        }
        let status = match args.command {
            cli::Command::Run(a) => run::run(*a).await,
            cli::Command::Exec(a) => exec::exec(a).await,
            cli::Command::Rsync(a) => rsync::rsync(a).await,
            cli::Command::Completions { .. } | cli::Command::Manpages { .. } => Ok(0),
        };
        interrupt::settle().await;
        status
    });
    match status {
        Ok(code) => std::process::exit(code),
        Err(msg) => {
            eprintln!("remex: {msg}");
            std::process::exit(255);
        }
    }
}
