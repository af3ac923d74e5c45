//! A program that serves as its own worker the documented way: it calls
//! `remex::serve_if_worker` first thing in `main`, then starts a plain
//! `popen` gateway (no `worker=`) and calls a task only it has. Prints
//! `RESULT <value> <worker pid>` or `ERROR <message>`.

use remex::worker::{Task, TaskError, Worker};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    remex::serve_if_worker(|| {
        Worker::new().task("whoami", |_t: &Task| {
            Ok::<_, TaskError>(format!("self-serving {}", std::process::id()))
        })
    });
    let run = async {
        let gw = remex::makegateway("popen").await?;
        let r: String = gw.remote_call("whoami", &())?.receive().await?;
        let pid = gw.rinfo().pid;
        gw.exit().await?;
        Ok::<_, remex::Error>((r, pid))
    };
    match run.await {
        Ok((r, pid)) => println!("RESULT {r} {pid}"),
        Err(e) => println!("ERROR {e}"),
    }
}
