//! Rows (a)-(d): a popen gateway's start, round trips, one-way messages
//! and bulk bytes, against the pipe floor.

use super::*;

/// Mean remex round trip in microseconds over `n` pings on `ch` (an
/// `echo_loop` call).
pub(crate) async fn remex_rtt(ch: &remex::Channel, n: usize) -> remex::Result<f64> {
    let t0 = Instant::now();
    for i in 0..n as i64 {
        ch.send_value(Value::Int(i)).await?;
        ch.receive::<remex::Value>().await?;
    }
    Ok(t0.elapsed().as_secs_f64() / n as f64 * 1e6)
}

/// remex bandwidth in MB/s: `gw`'s worker streams `total` bytes in
/// `chunk`-byte items.
pub(crate) async fn remex_rate(
    gw: &remex::Gateway,
    total: usize,
    chunk: usize,
) -> remex::Result<f64> {
    let ch = gw.remote_call("bulk", &(total, chunk))?;
    let t0 = Instant::now();
    let mut got = 0;
    while got < total {
        if let Value::Bytes(b) = ch.receive::<remex::Value>().await? {
            got += b.len();
        }
    }
    let r = got as f64 / t0.elapsed().as_secs_f64() / 1e6;
    ch.waitclose(Some(Duration::from_secs(60))).await?;
    Ok(r)
}

pub(crate) struct RemexRows {
    pub(crate) create_ms: f64,
    /// (a)'s floor: this binary spawned until its first byte, ms.
    pub(crate) create_floor_ms: f64,
    pub(crate) rtt: Paired,
    pub(crate) rtt_threads: Paired,
    pub(crate) msgs_per_s: f64,
    pub(crate) bulk: Paired,
    pub(crate) bulk_default_pipe: f64,
}

pub(crate) async fn remex_rows(c: &Counts) -> remex::Result<RemexRows> {
    let spec = "popen//worker=self";
    let mut creates = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..c.reps {
        floors.push(spawn_floor_ms(1));
        let t0 = Instant::now();
        let gw = makegateway(spec).await?;
        gw.remote_exec("channel.send(1)")?.receive::<i64>().await?;
        creates.push(t0.elapsed().as_secs_f64() * 1e3);
        gw.exit().await?;
    }
    let gw = makegateway(spec).await?;
    let ch = gw.remote_call("echo_loop", &())?;
    let mut echo = PipeEcho::start();
    remex_rtt(&ch, 200).await?;
    echo.rtt(200);
    // Rounds alternate remex and the floor, so both see the same noise.
    let mut rtt = Paired::default();
    for _ in 0..c.rounds {
        let r = remex_rtt(&ch, c.pings).await?;
        rtt.push(r, echo.rtt(c.pings));
    }
    // The same from a plain thread with blocking calls, as remex::blocking
    // and execnet users write it.
    let mut rtt_threads = Paired::default();
    for _ in 0..c.rounds {
        let (ch2, n) = (ch.clone(), c.pings);
        let r = tokio::task::spawn_blocking(move || -> remex::Result<f64> {
            let t0 = Instant::now();
            for i in 0..n as i64 {
                ch2.send_value_blocking(Value::Int(i))?;
                ch2.receive_blocking::<remex::Value>(None)?;
            }
            Ok(t0.elapsed().as_secs_f64() / n as f64 * 1e6)
        })
        .await
        .expect("the ping thread runs")?;
        rtt_threads.push(r, echo.rtt(c.pings));
    }
    echo.stop();
    ch.close(None);
    let rates = remex_flood_rates(&gw, c.msgs).await?;
    let total = c.bulk_mb << 20;
    let mut bulk = Paired::default();
    let mut default_pipe = Vec::new();
    for _ in 0..c.rounds {
        let r = remex_rate(&gw, total, c.chunk).await?;
        bulk.push(r, pipe_bandwidth(total, c.chunk, true));
        default_pipe.push(pipe_bandwidth(total, c.chunk, false));
    }
    gw.exit().await?;
    Ok(RemexRows {
        create_ms: median(creates),
        create_floor_ms: median(floors),
        rtt,
        rtt_threads,
        msgs_per_s: median(rates),
        bulk,
        bulk_default_pipe: median(default_pipe),
    })
}

/// Row (c): three floods of `msgs` small messages from the worker,
/// messages per second of each.
pub(crate) async fn remex_flood_rates(gw: &remex::Gateway, msgs: usize) -> remex::Result<Vec<f64>> {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let ch = gw.remote_call("flood", &(msgs as i64))?;
        let t0 = Instant::now();
        for _ in 0..msgs {
            ch.receive::<remex::Value>().await?;
        }
        rates.push(msgs as f64 / t0.elapsed().as_secs_f64());
        ch.waitclose(Some(Duration::from_secs(60))).await?;
    }
    Ok(rates)
}

/// Controller-to-worker one-way rate, as an extra row.
pub(crate) async fn remex_send_rate(c: &Counts) -> remex::Result<f64> {
    let gw = makegateway("popen//worker=self").await?;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let ch = gw.remote_call("sink", &())?;
        let t0 = Instant::now();
        for i in 0..c.msgs as i64 {
            ch.send_value(Value::Int(i)).await?;
        }
        ch.close_write();
        let n: i64 = ch.receive().await?;
        assert_eq!(n as usize, c.msgs);
        rates.push(c.msgs as f64 / t0.elapsed().as_secs_f64());
    }
    gw.exit().await?;
    Ok(median(rates))
}
