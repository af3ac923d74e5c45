//! `remex rsync SRC DEST`: a local directory to every worker at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use remex::rsync::RSync;

use crate::cli::RsyncArgs;
use crate::workers::{self, Workers};

/// Runs `remex rsync`; returns the exit status.
pub(crate) async fn rsync(a: RsyncArgs) -> Result<i32, String> {
    let excludes = a
        .exclude
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("--exclude {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !a.source.is_dir() {
        return Err(format!("{} is not a directory", a.source.display()));
    }
    let specs = workers::specs(&a.workers)?;
    let w = Workers::start(&specs, &a.workers).await?;
    let target = if a.no_bar {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(s) = ProgressStyle::with_template(
        "{elapsed_precise} {spinner} {bytes} sent, {bytes_per_sec} {msg}",
    ) {
        bar.set_style(s);
    }
    let b = bar.clone();
    // Each target reports its own running totals: the bar shows their sum.
    let per_target: Mutex<HashMap<String, (u64, u64)>> = Mutex::new(HashMap::new());
    let mut rs = RSync::new(&a.source)
        .delete(a.delete)
        .filter(move |p| {
            !p.iter()
                .any(|c| excludes.iter().any(|g| g.matches(&c.to_string_lossy())))
        })
        .on_progress(move |p| {
            let mut m = per_target.lock().unwrap_or_else(|e| e.into_inner());
            m.insert(p.gateway.clone(), (p.bytes_sent, p.files_sent));
            let (bytes, files) = m.values().fold((0, 0), |(b, f), (x, y)| (b + x, f + y));
            b.set_position(bytes);
            b.set_message(format!("{files} files"));
        });
    for gw in w.group.gateways() {
        rs = rs.add_target(&gw, a.dest.clone());
    }
    let result = rs.send().await;
    bar.finish_and_clear();
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            w.group.terminate(Duration::from_secs(5)).await;
            return Err(e.to_string());
        }
    };
    for r in &reports {
        let label = w.label(&r.gateway);
        println!(
            "{label}: {} files sent ({}), {} touched, {} unchanged, {} deleted",
            r.files_sent,
            HumanBytes(r.bytes_sent),
            r.files_touched,
            r.files_unchanged,
            r.deleted,
        );
        for (path, why) in &r.vanished {
            eprintln!("remex: {label}: {path} vanished during the send: {why}");
        }
    }
    w.group.terminate(Duration::from_secs(5)).await;
    Ok(0)
}
