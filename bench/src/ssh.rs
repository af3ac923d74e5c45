//! Rows (h), (i), (h'): ssh gateways on a loopback sshd.

use super::*;

/// ssh rows: gateway create with a cached worker + first reply, and the
/// round trip, against a real sshd on 127.0.0.2 (started here, as root);
/// execnet's ssh gateway against the same sshd when it can reach it.
/// What the ssh rows measured.
pub(crate) struct SshRows {
    /// (h) ms: one gateway created (cached worker) and its first reply.
    pub(crate) create: f64,
    /// (i) us: a round trip.
    pub(crate) rtt: f64,
    /// execnet's (h) and (i), when it ran.
    pub(crate) execnet: Option<(f64, f64)>,
    /// (h') ms: a Group of 1 and of 16 gateways to the one host ready and
    /// answering an exec on each (medians).
    pub(crate) group: (f64, f64),
}

/// ms for a Group of `n` ssh gateways (`spec`) to start and answer an exec
/// on each, ended after.
pub(crate) async fn ssh_group_ms(spec: &str, n: usize) -> Result<f64, String> {
    let t0 = Instant::now();
    let g = remex::Group::new([format!("{n}*{spec}")])
        .await
        .map_err(|e| e.to_string())?;
    let mch = g
        .remote_exec("channel.send(1)")
        .map_err(|e| e.to_string())?;
    let got: Vec<i64> = mch.receive_each().await.map_err(|e| e.to_string())?;
    assert_eq!(got.len(), n);
    let took = t0.elapsed().as_secs_f64() * 1e3;
    g.terminate(Duration::from_secs(2)).await;
    Ok(took)
}

pub(crate) async fn ssh_rows(c: &Counts) -> Result<SshRows, String> {
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        return Err("no sshd (apt-get install -y openssh-server)".into());
    }
    let sshd = remex_tests::Sshd::start("127.0.0.2");
    let cfg = sshd.alias_config("remexbench");
    let spec = format!("ssh=remexbench//ssh_config={}//worker=self", cfg.display());
    // The first connect uploads this program; the measured ones reuse it.
    let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
    gw.exit().await.map_err(|e| e.to_string())?;
    let mut creates = Vec::new();
    for _ in 0..c.reps.min(11) {
        let t0 = Instant::now();
        let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
        gw.remote_exec("channel.send(1)")
            .map_err(|e| e.to_string())?
            .receive::<i64>()
            .await
            .map_err(|e| e.to_string())?;
        creates.push(t0.elapsed().as_secs_f64() * 1e3);
        gw.exit().await.map_err(|e| e.to_string())?;
    }
    let gw = makegateway(&spec).await.map_err(|e| e.to_string())?;
    let ch = gw
        .remote_call("echo_loop", &())
        .map_err(|e| e.to_string())?;
    let n = c.pings.min(5_000);
    for i in 0..200i64 {
        ch.send_value(Value::Int(i))
            .await
            .map_err(|e| e.to_string())?;
        ch.receive::<remex::Value>()
            .await
            .map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    for i in 0..n as i64 {
        ch.send_value(Value::Int(i))
            .await
            .map_err(|e| e.to_string())?;
        ch.receive::<remex::Value>()
            .await
            .map_err(|e| e.to_string())?;
    }
    let rtt = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
    gw.exit().await.map_err(|e| e.to_string())?;
    // (h') one host, 1 and 16 workers, alternately.
    let (mut one, mut sixteen) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        one.push(ssh_group_ms(&spec, 1).await?);
        sixteen.push(ssh_group_ms(&spec, 16).await?);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/execnet_ssh_bench.py");
    let execnet = Command::new("python3")
        .arg(script)
        .arg(&cfg)
        .args([c.reps.min(11), n].map(|x| x.to_string()))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let t = String::from_utf8_lossy(&o.stdout).to_string();
            let v: Vec<f64> = t
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (v.len() == 2).then(|| (v[0], v[1]))
        });
    Ok(SshRows {
        create: median(creates),
        rtt,
        execnet,
        group: (median(one), median(sixteen)),
    })
}
