//! The foundation's main job: start local workers, run scripts and tasks on
//! them, stream results back over channels, and shut down cleanly.
//!
//! `cargo run --release --example quickstart -- [TASKS]`
//!
//! The program serves as its own worker (`worker=self`), so nothing has to
//! be built or installed beforehand.

use std::time::Instant;

use remex::worker::{Task, TaskError, Worker};

fn worker() -> Worker {
    Worker::new().task("square", |t: &Task| {
        let x: i64 = t.args()?;
        Ok::<_, TaskError>(x * x)
    })
}

#[tokio::main]
async fn main() -> remex::Result<()> {
    remex::serve_if_worker(worker);
    let tasks: i64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let t0 = Instant::now();

    let gws =
        futures::future::try_join_all((0..2).map(|_| remex::makegateway("popen//worker=self")))
            .await?;
    println!("started {} workers in {:?}", gws.len(), t0.elapsed());
    for gw in &gws {
        let info = gw.rinfo();
        println!(
            "  {}: pid {} on {} (remex {})",
            gw.id(),
            info.pid,
            info.platform,
            info.version
        );
    }

    // execnet's example: a script that answers one request.
    let ch = gws[0].remote_exec("channel.send(channel.receive() + 1)")?;
    ch.send(&1).await?;
    println!("script: 1 + 1 = {}", ch.receive::<i64>().await?);

    // One long-lived script per worker squares every number it receives;
    // the numbers are spread over the workers and the results streamed back.
    let t1 = Instant::now();
    let chans: Vec<_> = gws
        .iter()
        .map(|gw| gw.remote_exec("for x in channel { channel.send(x * x) }"))
        .collect::<remex::Result<_>>()?;
    let per = tasks / chans.len() as i64;
    let mut total: i128 = 0;
    let senders = chans.iter().enumerate().map(|(w, ch)| {
        let ch = ch.clone();
        async move {
            for i in 0..per {
                ch.send(&(w as i64 * per + i)).await?;
            }
            ch.close_write();
            remex::Result::Ok(())
        }
    });
    let receivers = chans.iter().map(|ch| async move {
        let mut sum: i128 = 0;
        for _ in 0..per {
            sum += i128::from(ch.receive::<i64>().await?);
        }
        remex::Result::Ok(sum)
    });
    let (sent, sums): (remex::Result<Vec<()>>, remex::Result<Vec<i128>>) = futures::join!(
        futures::future::try_join_all(senders),
        futures::future::try_join_all(receivers)
    );
    sent?;
    for s in sums? {
        total += s;
    }
    let n = per * chans.len() as i64;
    let expected: i128 = (0..n as i128).map(|x| x * x).sum();
    assert_eq!(total, expected, "every square arrived exactly once");
    println!(
        "streamed {n} squares through 2 workers in {:?}: sum {total}",
        t1.elapsed()
    );

    // A registered Rust task, called by name.
    let ch = gws[1].remote_call("square", &12)?;
    println!("task: square(12) = {}", ch.receive::<i64>().await?);

    // A failure comes back as a remote error with its position.
    let err = gws[0]
        .remote_exec("let x = 1;\nx.no_such_method()")?
        .waitclose(None)
        .await
        .unwrap_err();
    println!("a failing script reports: {err}");

    let status = gws[0].remote_status().await?;
    println!("status of {}: {status:?}", gws[0].id());
    for gw in &gws {
        gw.exit().await?;
    }
    println!(
        "done in {:?}; workers: {:?}",
        t0.elapsed(),
        gws.iter().map(|g| g.state()).collect::<Vec<_>>()
    );
    Ok(())
}
