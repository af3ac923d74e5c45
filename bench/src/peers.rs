//! The Python peers (execnet, dask.distributed, Ray) run from this
//! directory's scripts, when installed.

use super::*;

/// The number `dask_ray_bench.py WHICH ARG ROUNDS` prints, or why none
/// (not installed, failed).
pub(crate) fn python_value(which: &str, arg: &str, rounds: usize) -> Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dask_ray_bench.py");
    let out = Command::new("python3")
        .args([script, which, arg, &rounds.to_string()])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").trim().to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| "no value printed".to_string())
}

/// Trivial tasks per second through dask.distributed or Ray (`which`):
/// `n` tasks per round.
pub(crate) fn python_rate(which: &str, n: usize, rounds: usize) -> Result<f64, String> {
    python_value(which, &n.to_string(), rounds)
}

pub(crate) fn execnet_rows(c: &Counts) -> Result<[f64; 5], String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/execnet_bench.py");
    let out = Command::new("python3")
        .arg(script)
        .args([c.reps, c.pings, c.msgs / 10, c.bulk_mb, c.chunk].map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> Result<f64, String> {
        let i = text
            .find(&format!("\"{k}\": "))
            .ok_or(format!("no {k} in {text}"))?;
        let rest = &text[i + k.len() + 4..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().map_err(|e| format!("{k}: {e}"))
    };
    Ok([
        field("create_ms")?,
        field("rtt_us")?,
        field("msgs_per_s")?,
        field("bulk_mb_s")?,
        field("group8_ms")?,
    ])
}
