//! Rows (l), (m): scripts calling tasks, and what their limits cost.

use super::*;

/// Rows (l) and (m): scripts. (l) a script calling the `echo` task `calls`
/// times in a loop, per call, beside the same calls from the controller
/// (`remote_call` + receive, one after another); (m) a tight arithmetic
/// loop under no limits, the default limits (memory) and every limit set,
/// alternating, medians.
pub(crate) struct ScriptRows {
    pub(crate) script_call_us: f64,
    pub(crate) remote_call_us: f64,
    pub(crate) loop_none_ms: f64,
    pub(crate) loop_default_ms: f64,
    pub(crate) loop_all_ms: f64,
}

pub(crate) async fn script_rows(c: &Counts) -> remex::Result<ScriptRows> {
    let calls = c.tasks;
    let gw = makegateway("popen//worker=self").await?;
    let mut script = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..c.rounds.min(5) {
        let t0 = Instant::now();
        let ch = gw.remote_exec_with(
            "let s = 0; for i in 0..n { s += call_task(\"echo\", i); } channel.send(s)",
            &std::collections::HashMap::from([("n", calls)]),
        )?;
        let sum: i64 = ch.receive().await?;
        assert_eq!(sum as usize, calls * (calls - 1) / 2);
        script.push(t0.elapsed().as_secs_f64() / calls as f64 * 1e6);
        let n = calls / 10;
        let t0 = Instant::now();
        for i in 0..n {
            let _: i64 = gw.remote_call("echo", &i)?.receive().await?;
        }
        direct.push(t0.elapsed().as_secs_f64() / n as f64 * 1e6);
    }
    gw.exit().await?;
    let specs = [
        "popen//worker=self//script_max_memory=0",
        "popen//worker=self",
        "popen//worker=self//script_max_operations=1000000000000//script_max_string=1000000//script_max_array=1000000//script_max_map=1000000",
    ];
    let mut gws = Vec::new();
    for s in specs {
        gws.push(makegateway(s).await?);
    }
    let iters = c.msgs * 2;
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..c.rounds {
        for (g, t) in gws.iter().zip(times.iter_mut()) {
            let t0 = Instant::now();
            let ch = g.remote_exec_with(
                "let s = 0; for i in 0..n { s += i % 7; } channel.send(s)",
                &std::collections::HashMap::from([("n", iters)]),
            )?;
            let _: i64 = ch.receive().await?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    for g in gws {
        g.exit().await?;
    }
    let [none, default, all] = times;
    Ok(ScriptRows {
        script_call_us: median(script),
        remote_call_us: median(direct),
        loop_none_ms: median(none),
        loop_default_ms: median(default),
        loop_all_ms: median(all),
    })
}

pub(crate) fn print_script_rows(s: &ScriptRows, iters: usize) {
    println!(
        "| (l) a script calling a task in a loop, per call | {:.2} us | | | | | < 2 us |",
        s.script_call_us
    );
    println!(
        "| (l') the same calls from the controller (remote_call + receive), per call | {:.1} us | | | | ({:.0}x the script's) | |",
        s.remote_call_us,
        s.remote_call_us / s.script_call_us
    );
    println!(
        "| (m) a tight script loop ({iters} iterations): no limits / default (memory) / every limit | {:.0} ms / {:.0} ms ({:+.1}%) / {:.0} ms ({:+.1}%) | | | | | limits < 10% |",
        s.loop_none_ms,
        s.loop_default_ms,
        (s.loop_default_ms / s.loop_none_ms - 1.0) * 100.0,
        s.loop_all_ms,
        (s.loop_all_ms / s.loop_none_ms - 1.0) * 100.0
    );
}
