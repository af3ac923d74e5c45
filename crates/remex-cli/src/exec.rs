//! `remex exec`: one command on every worker, output tagged by worker
//! (pdsh's and clush's model), stdout streamed line by line through a
//! channel read as a file; with `-b`, identical outputs merged (clush's
//! `-b`, `dshbak -c`).

use std::io::Write;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use remex::worker::{CommandOutcome, CommandRequest};
use tokio::io::AsyncBufReadExt;

use crate::cli::ExecArgs;
use crate::workers::{self, Workers};

/// Prints `data` with each line prefixed by `label: `.
fn tagged(out: &mut dyn Write, label: &str, data: &[u8]) {
    for line in data.split_inclusive(|b| *b == b'\n') {
        crate::emit::checked(write!(out, "{label}: "));
        crate::emit::checked(out.write_all(line));
    }
    if !data.is_empty() && !data.ends_with(b"\n") {
        crate::emit::checked(out.write_all(b"\n"));
    }
}

/// Why a worker's command did not succeed, if it did not.
fn failure(r: &remex::Result<CommandOutcome>) -> Option<String> {
    match r {
        Ok(o) if o.success() => None,
        Ok(o) if o.timed_out => Some("timed out".into()),
        Ok(o) => Some(match (o.code, o.signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended without a status".into(),
        }),
        Err(e) => Some(e.to_string()),
    }
}

/// Runs `remex exec`; returns the exit status.
pub(crate) async fn exec(a: ExecArgs) -> Result<i32, String> {
    if let Some(crate::cli::Timeout::Percent(_)) = a.limits.timeout {
        return Err("--timeout N% (of the median job) is for remex run; give seconds".into());
    }
    let specs = workers::specs(&a.workers)?;
    let w = Workers::start(&specs, &a.workers).await?;
    let req = a.limits.request(a.command.join(" "));
    let gateways = w.group.gateways();
    let mut running = FuturesUnordered::new();
    for (i, gw) in gateways.iter().enumerate() {
        // Without -b, stdout is streamed: each line is printed, tagged, as
        // the worker's command writes it.
        let stream = (!a.merge).then(|| gw.newchannel());
        let req = CommandRequest {
            stdout_to: stream.as_ref().map(|c| c.handle()),
            ..req.clone()
        };
        let ch = gw.remote_call("run", &req);
        let label = w.label(gw.id());
        running.push(async move {
            if let (Some(out), true) = (stream, ch.is_ok()) {
                let mut lines = out.async_reader().split(b'\n');
                while let Ok(Some(line)) = lines.next_segment().await {
                    let mut o = std::io::stdout().lock();
                    crate::emit::checked(write!(o, "{label}: "));
                    crate::emit::checked(o.write_all(&line));
                    crate::emit::checked(o.write_all(b"\n"));
                }
            }
            let r = match ch {
                Ok(ch) => ch.receive::<CommandOutcome>().await,
                Err(e) => Err(e),
            };
            (i, r)
        });
    }
    let mut results: Vec<Option<remex::Result<CommandOutcome>>> =
        gateways.iter().map(|_| None).collect();
    let mut failed = 0;
    while let Some((i, r)) = running.next().await {
        if crate::interrupt::interrupted() {
            // Ended by Ctrl-C: the workers' ends are the interrupt's.
            break;
        }
        let label = w.label(gateways[i].id());
        if !a.merge {
            if let Ok(o) = &r {
                tagged(&mut std::io::stderr().lock(), &label, &o.stderr);
            }
        }
        if let Some(why) = failure(&r) {
            failed += 1;
            crate::emit::checked(std::io::stdout().flush());
            eprintln!("remex: {label}: {why}");
        }
        results[i] = Some(r);
    }
    if a.merge {
        // Each distinct output once, in the order of the workers.
        let mut groups: Vec<(Vec<String>, &CommandOutcome)> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let Some(Ok(o)) = r else { continue };
            let label = w.label(gateways[i].id());
            let same = |g: &&mut (Vec<String>, &CommandOutcome)| {
                g.1.stdout == o.stdout && g.1.stderr == o.stderr && g.1.code == o.code
            };
            match groups.iter_mut().find(|g| same(g)) {
                Some(g) => g.0.push(label),
                None => groups.push((vec![label], o)),
            }
        }
        let mut out = std::io::stdout().lock();
        for (labels, o) in groups {
            crate::emit::checked(writeln!(out, "---------------"));
            crate::emit::checked(writeln!(out, "{} ({})", labels.join(","), labels.len()));
            crate::emit::checked(writeln!(out, "---------------"));
            crate::emit::checked(out.write_all(&o.stdout));
            if !o.stdout.is_empty() && !o.stdout.ends_with(b"\n") {
                crate::emit::checked(writeln!(out));
            }
            crate::emit::checked(out.flush());
            crate::emit::checked(std::io::stderr().write_all(&o.stderr));
        }
    }
    w.group.terminate(Duration::from_secs(5)).await;
    Ok(failed.min(101))
}
