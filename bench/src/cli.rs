//! Rows (n0)-(p): the `remex` command against GNU parallel and rsync.

use super::*;

/// Rows (n)-(p): the `remex` command beside GNU parallel, and rsync beside
/// `rsync -a`, in the same run. `None` where the other tool is missing.
pub(crate) struct CliRows {
    /// The floor: `/bin/true` spawned from two threads of this program.
    pub(crate) spawn_floor: f64,
    pub(crate) local_remex: f64,
    pub(crate) local_parallel: Option<f64>,
    pub(crate) ssh: Result<SshCliRows, String>,
}

pub(crate) struct SshCliRows {
    pub(crate) jobs_remex: f64,
    pub(crate) jobs_parallel: Option<f64>,
    pub(crate) rsync_first: f64,
    pub(crate) rsync_again: f64,
    pub(crate) rsync_tool: Option<(f64, f64)>,
}

/// Jobs per second of `cmd`, run to its end (it must succeed).
pub(crate) fn jobs_per_s(mut cmd: Command, jobs: usize) -> Result<f64, String> {
    let t0 = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(jobs as f64 / t0.elapsed().as_secs_f64())
}

pub(crate) fn remex_cli() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("remex")))
        .unwrap_or_else(|| "remex".into())
}

pub(crate) fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) async fn cli_rows(jobs: usize, files: usize) -> Result<CliRows, String> {
    let remex = remex_cli();
    if !remex.exists() {
        return Err(format!(
            "{} is missing (cargo build --release -p remex-cli)",
            remex.display()
        ));
    }
    let inputs: Vec<String> = (1..=jobs).map(|i| i.to_string()).collect();
    let run = |tx: &[&str]| {
        let mut c = Command::new(&remex);
        c.arg("run").arg("--no-bar");
        for t in tx {
            c.args(["--tx", t]);
        }
        c.args(["--", "/bin/true", ":::"]).args(&inputs);
        c
    };
    let parallel = |extra: &[&str]| {
        let mut c = Command::new("parallel");
        c.args(extra).args(["/bin/true", ":::"]).args(&inputs);
        c
    };
    let has_parallel = have("parallel");
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for half in inputs.chunks(jobs.div_ceil(2)) {
            s.spawn(move || {
                for i in half {
                    let _ = Command::new("/bin/true").arg(i).status();
                }
            });
        }
    });
    let spawn_floor = jobs as f64 / t0.elapsed().as_secs_f64();
    let local_remex = jobs_per_s(run(&["2*popen"]), jobs)?;
    let local_parallel = if has_parallel {
        Some(jobs_per_s(parallel(&["-j2"]), jobs)?)
    } else {
        None
    };
    let ssh = async {
        if !std::path::Path::new("/usr/sbin/sshd").exists() {
            return Err("no sshd (apt-get install -y openssh-server)".into());
        }
        let sshd = remex_tests::Sshd::start("127.0.0.7");
        let cfg = sshd.alias_config("remexcli");
        let spec = format!("ssh=remexcli//ssh_config={}", cfg.display());
        // The first run uploads the remex binary; the measured one reuses it.
        jobs_per_s(run(&[&spec]), 1.max(jobs / 100))?;
        let jobs_remex = jobs_per_s(run(&[&format!("2*{spec}")]), jobs)?;
        let jobs_parallel = if has_parallel {
            // GNU parallel opens an ssh connection per job: fewer jobs.
            let n = (jobs / 10).max(1);
            let ssh = format!("ssh -F {}", cfg.display());
            let mut c = Command::new("parallel");
            c.args(["-S", "2/remexcli", "--ssh", &ssh, "/bin/true", ":::"])
                .args(&inputs[..n]);
            Some(jobs_per_s(c, n)?)
        } else {
            None
        };
        // rsync: a tree of small files to two gateways, then again.
        let root = std::env::temp_dir().join(format!("remex-bench-rsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let src = root.join("src");
        for i in 0..files {
            let dir = src.join(format!("d{:03}", i % 100));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("f{i}")), format!("{i}\n").repeat(100))
                .map_err(|e| e.to_string())?;
        }
        let (rsync_first, rsync_again) = async {
            let a = makegateway(&spec).await.map_err(|e| e.to_string())?;
            let b = makegateway(&spec).await.map_err(|e| e.to_string())?;
            let send = || {
                remex::rsync::RSync::new(&src)
                    .add_target(&a, root.join("a").display().to_string())
                    .add_target(&b, root.join("b").display().to_string())
            };
            let t0 = Instant::now();
            send().send().await.map_err(|e| e.to_string())?;
            let first = t0.elapsed().as_secs_f64() * 1e3;
            let t0 = Instant::now();
            let r = send().send().await.map_err(|e| e.to_string())?;
            let again = t0.elapsed().as_secs_f64() * 1e3;
            if r.iter().any(|r| r.files_sent > 0) {
                return Err("the second send sent files".to_string());
            }
            a.exit().await.map_err(|e| e.to_string())?;
            b.exit().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((first, again))
        }
        .await?;
        let rsync_tool = if have("rsync") {
            let both = || -> Result<f64, String> {
                let t0 = Instant::now();
                let kids: Vec<_> = ["ra", "rb"]
                    .iter()
                    .map(|d| {
                        Command::new("rsync")
                            .args(["-a", "-e", &format!("ssh -F {}", cfg.display())])
                            .arg(format!("{}/", src.display()))
                            .arg(format!("remexcli:{}/", root.join(d).display()))
                            .spawn()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                for mut k in kids {
                    let s = k.wait().map_err(|e| e.to_string())?;
                    if !s.success() {
                        return Err(format!("rsync -a failed: {s}"));
                    }
                }
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            };
            Some((both()?, both()?))
        } else {
            None
        };
        let _ = std::fs::remove_dir_all(&root);
        Ok::<_, String>(SshCliRows {
            jobs_remex,
            jobs_parallel,
            rsync_first,
            rsync_again,
            rsync_tool,
        })
    }
    .await;
    Ok(CliRows {
        spawn_floor,
        local_remex,
        local_parallel,
        ssh,
    })
}

pub(crate) fn print_cli_rows(r: &Result<CliRows, String>, jobs: usize, files: usize) {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            println!("| (n)-(p) the remex command | not measured: {e} | | | | | |");
            return;
        }
    };
    let vs = |mine: f64, theirs: Option<f64>| match theirs {
        Some(t) => (
            format!("{t:.0} jobs/s"),
            format!("{:.1}x GNU parallel", mine / t),
        ),
        None => ("n/a (apt-get install parallel)".into(), String::new()),
    };
    let (p, ratio) = vs(r.local_remex, r.local_parallel);
    // (n)'s target is a share of the floor: the floor itself is a few
    // times GNU parallel on two cores (issue 30), so "10x GNU parallel"
    // is out of any tool's reach there.
    println!(
        "| (n0) the floor: /bin/true spawned from 2 threads | {:.0} jobs/s | | | | | |",
        r.spawn_floor,
    );
    println!(
        "| (n) {jobs} /bin/true jobs, 2 local workers (remex run --tx 2*popen / parallel -j2) | {:.0} jobs/s | {:.0}% of (n0) | {p} | | {ratio} | >= 85% of (n0) |",
        r.local_remex,
        r.local_remex / r.spawn_floor * 100.0
    );
    match &r.ssh {
        Ok(s) => {
            let (p, ratio) = vs(s.jobs_remex, s.jobs_parallel);
            println!(
                "| (o) /bin/true jobs over 2 ssh connections, loopback (remex run --tx 2*ssh= / parallel -S 2/host) | {:.0} jobs/s | | {p} | | {ratio} | >= 10x GNU parallel |",
                s.jobs_remex
            );
            let tool = |i: usize| {
                s.rsync_tool
                    .map(|t| format!("{:.0} ms", if i == 0 { t.0 } else { t.1 }))
                    .unwrap_or_else(|| "n/a (apt-get install rsync)".into())
            };
            let x = |mine: f64, i: usize| {
                s.rsync_tool
                    .map(|t| format!("{:.1}x rsync -a", (if i == 0 { t.0 } else { t.1 }) / mine))
                    .unwrap_or_default()
            };
            println!(
                "| (p) rsync of {files} files to 2 ssh gateways: first send (rsync -a twice at once) | {:.0} ms | | {} | | {} | |",
                s.rsync_first, tool(0), x(s.rsync_first, 0)
            );
            println!(
                "| (p') the same, nothing changed | {:.0} ms | | {} | | {} | |",
                s.rsync_again,
                tool(1),
                x(s.rsync_again, 1)
            );
        }
        Err(e) => println!("| (o), (p) over ssh | not measured: {e} | | | | | |"),
    }
}
