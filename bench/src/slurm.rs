//! Row (s): Slurm, when it runs here (`.ci/slurm-up`).

use super::*;

/// The Slurm rows: (s) 8 workers ready, dial-back and stdio; (s') bulk
/// bytes from one worker through dial-back and through srun's stdio;
/// (s'') trivial tasks through 2 dial-back workers.
pub(crate) struct SlurmRows {
    /// Create + first reply from all 8, ms (median): dial-back, stdio.
    pub(crate) ready8: (f64, f64),
    /// MB/s (median): dial-back, stdio.
    pub(crate) bulk: (f64, f64),
    pub(crate) tasks_per_s: f64,
    pub(crate) tasks: usize,
    pub(crate) bulk_mb: usize,
}

pub(crate) fn slurm_present() -> Result<(), String> {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("idle"));
    match ok {
        Some(true) => Ok(()),
        Some(false) => Err("no idle Slurm node (sinfo)".into()),
        None => Err("no Slurm here (bash .ci/slurm-up starts one)".into()),
    }
}

pub(crate) async fn slurm_rows(c: &Counts) -> Result<SlurmRows, String> {
    use remex::{gather, Errors, Group};
    slurm_present()?;
    let spec = |extra: &str| format!("slurm//job_name=remex-bench//worker=self{extra}");
    let dial = "//listen=127.0.0.1";
    let err = |e: remex::Error| e.to_string();
    let ready = |extra: String| async move {
        let t0 = Instant::now();
        let g = Group::new([spec(&extra)]).await.map_err(err)?;
        let got: Vec<i64> = g
            .remote_exec("channel.send(1)")
            .map_err(err)?
            .receive_each()
            .await
            .map_err(err)?;
        assert_eq!(got.len(), 8);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        g.terminate(Duration::from_secs(2)).await;
        Ok::<f64, String>(ms)
    };
    let (mut rd, mut rs) = (Vec::new(), Vec::new());
    for _ in 0..c.reps.clamp(1, 3) {
        rd.push(ready(format!("//ntasks=8{dial}")).await?);
        rs.push(ready("//ntasks=8//stdio".to_string()).await?);
    }
    let total = (c.bulk_mb / 4).max(16) << 20;
    let rate = |extra: &'static str| async move {
        let g = Group::new([spec(extra)]).await.map_err(err)?;
        let gw = g.gateways().remove(0);
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(remex_rate(&gw, total, c.chunk).await.map_err(err)?);
        }
        g.terminate(Duration::from_secs(2)).await;
        Ok::<f64, String>(median(v))
    };
    let bulk = (rate("//listen=127.0.0.1").await?, rate("//stdio").await?);
    let g = Group::new([spec(&format!("//ntasks=2{dial}"))])
        .await
        .map_err(err)?;
    g.set_tasks_per_worker(16);
    let tasks = 2_000;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let futs = (0..tasks)
            .map(|i| g.submit::<Value>("echo", &(i as i64)))
            .collect::<remex::Result<Vec<_>>>()
            .map_err(err)?;
        let got = gather(futs, Errors::Raise).await.map_err(err)?;
        assert_eq!(got.value.len(), tasks);
        rates.push(tasks as f64 / t0.elapsed().as_secs_f64());
    }
    g.terminate(Duration::from_secs(2)).await;
    Ok(SlurmRows {
        ready8: (median(rd), median(rs)),
        bulk,
        tasks_per_s: median(rates),
        tasks,
        bulk_mb: total >> 20,
    })
}

pub(crate) fn print_slurm_rows(r: &Result<SlurmRows, String>) {
    match r {
        Ok(r) => {
            println!(
                "| (s) slurm//ntasks=8 (one allocation): create + first reply from all 8, workers dialing back / over srun stdio | {:.0} ms / {:.0} ms | | | | | < 1 s |",
                r.ready8.0, r.ready8.1
            );
            println!(
                "| (s') bulk bytes from one Slurm worker ({} MiB): dial-back / srun stdio | {:.0} MB/s / {:.0} MB/s | | | {:.1}x stdio | | dial-back >= 10x stdio |",
                r.bulk_mb,
                r.bulk.0,
                r.bulk.1,
                r.bulk.0 / r.bulk.1
            );
            println!(
                "| (s'') {} trivial tasks through 2 Slurm workers (dial-back) | {:.0} tasks/s | | | | | |",
                r.tasks, r.tasks_per_s
            );
        }
        Err(why) => println!("| (s) Slurm rows | not measured: {why} | | | | | |"),
    }
}
