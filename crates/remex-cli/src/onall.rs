//! GNU parallel's `--onall` and `--nonall`: every job on every computer
//! (`--nonall`: the command once on each, with no inputs). A computer is
//! one spec's host: the workers of `-S 2/host` or `N*popen` count once,
//! as GNU parallel runs each sshlogin once. Each runs the jobs in their
//! order, one at a time; `-j` computers at once (GNU parallel's: `-j`'s
//! count of this machine's slots, all its CPUs by default). A job's
//! output is printed when it ends, its lines prefixed with the
//! computer's name (`:` for this machine) and a tab under `--tag`.

use std::io::Write;

use futures::StreamExt;
use remex::worker::CommandRequest;

use crate::cli::RunArgs;
use crate::workers::Workers;

/// Runs `jobs` (command lines and their requests, in order) on one
/// worker of each computer of `w`, printing as `a` says (`--tag`, `-v`,
/// `-t`); returns how many (computer, job) runs failed.
pub(crate) async fn everywhere(w: &Workers, jobs: &[(String, CommandRequest)], a: &RunArgs) -> u64 {
    let (tag, verbose) = (a.tag, a.verbose && !a.silent);
    let at_once = crate::slots::local(a.jobs, None);
    let computers = futures::stream::iter(w.one_per_host()).map(|(gw, label)| {
        async move {
            let mut failed = 0u64;
            for (command, req) in jobs {
                if a.trace {
                    eprintln!("{command}");
                }
                match crate::workers::run_on(&gw, req).await {
                    Ok(o) => {
                        let tag = tag.then_some(label.as_str());
                        let mut out = std::io::stdout().lock();
                        if verbose {
                            crate::emit::emit(&mut out, tag, format!("{command}\n").as_bytes());
                        }
                        crate::emit::emit(&mut out, tag, &o.stdout);
                        crate::emit::emit(&mut std::io::stderr().lock(), tag, &o.stderr);
                        if !o.success() {
                            failed += 1;
                        }
                    }
                    // Ended by Ctrl-C: the workers' ends are the interrupt's.
                    Err(_) if crate::interrupt::interrupted() => failed += 1,
                    Err(e) => {
                        crate::emit::checked(std::io::stdout().flush());
                        eprintln!("remex: {label}: {command}: {e}");
                        failed += 1;
                    }
                }
            }
            failed
        }
    });
    computers
        .buffer_unordered(at_once)
        .fold(0, |all, f| async move { all + f })
        .await
}
