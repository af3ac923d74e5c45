//! The worker's command line: how a gateway starts it (no arguments:
//! serve on stdin/stdout) and how a person starts a listener (`--listen`).

use std::io::IsTerminal;

use clap::Parser;

/// A remex worker: serves one remex controller over stdin/stdout, or, with
/// --listen, controllers over TCP (`socket=` gateways). Gateways start it
/// (`makegateway("popen")`, `ssh=`, `cmd=`); it is not meant to be run by
/// hand except as a listener.
#[derive(Debug, Parser)]
#[command(name = "remex-worker", version = remex_core::VERSION)]
pub(crate) struct Args {
    /// Listen on ADDR (host:port; port 0 picks a free one) for `socket=`
    /// gateways instead of serving stdin/stdout. The bound address is
    /// printed on stdout.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub listen: Option<String>,
    /// With --listen: read the shared secret from this file (trailing
    /// newlines are dropped).
    #[arg(long, value_name = "PATH", requires = "listen")]
    pub secret_file: Option<String>,
    /// With --listen: read the shared secret from this environment
    /// variable (default REMEX_SECRET); it is removed from the environment
    /// before any session runs. Never give the secret itself on the
    /// command line.
    #[arg(long, value_name = "NAME", requires = "listen")]
    pub secret_env: Option<String>,
    /// With --listen: exit when stdin ends (the installer went away).
    #[arg(long, requires = "listen")]
    pub exit_with_stdin: bool,
}

/// The arguments of this process; `--help`, `--version` and mistakes end
/// it here (mistakes with status 2 and clap's message), and so does a
/// terminal on stdin without `--listen` (a hint instead of a silent wait
/// for a handshake nobody will send).
pub(crate) fn parse() -> Args {
    let args = Args::parse();
    if args.listen.is_none() && std::io::stdin().is_terminal() {
        crate::exit::fail(
            "stdin is a terminal. A worker is started by a remex controller \
             (makegateway(\"popen\"), ssh=, cmd=), which speaks to it over stdin/stdout; \
             to serve socket= gateways, run it with --listen ADDR. See --help.",
        )
    }
    args
}
