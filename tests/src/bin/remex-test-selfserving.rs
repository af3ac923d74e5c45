//! A program that serves as its own worker the documented way: it calls
//! `remex::serve_if_worker` first thing in `main`, then starts a plain
//! `popen` gateway (no `worker=`) and calls a task only it has. Prints
//! `RESULT <value> <worker pid>` or `ERROR <message>`.
//!
//! With the argument `via`: a second gateway started through the first
//! (`via=`), whose worker is this program again; prints `VIA <value>`.
//!
//! With the argument `env`: the gateway's spec sets `env:REMEX_PROBE=set`;
//! prints `ENV <the variable as the worker process has it> <REMEX_WORKER
//! as the process has it> | <both as a command of the worker sees them>`
//! (a worker served from inside a runtime keeps its process environment
//! as it was).

use remex::worker::{Task, TaskError, Worker};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    remex::serve_if_worker(|| {
        Worker::new()
            .task("whoami", |_t: &Task| {
                Ok::<_, TaskError>(format!("self-serving {}", std::process::id()))
            })
            .task("process_env", |_t: &Task| {
                let var = |n: &str| std::env::var(n).unwrap_or_else(|_| "unset".into());
                Ok::<_, TaskError>(format!("{} {}", var("REMEX_PROBE"), var("REMEX_WORKER")))
            })
    });
    if std::env::args().nth(1).as_deref() == Some("via") {
        let run = async {
            let g = remex::Group::new(["popen//id=hop", "popen//via=hop"]).await?;
            let far = g
                .ids()
                .into_iter()
                .find(|id| id != "hop")
                .and_then(|id| g.by_id(&id))
                .ok_or(remex::Error::NoWorker {
                    reason: "no relayed gateway".into(),
                })?;
            let r: String = far.remote_call("whoami", &())?.receive().await?;
            g.terminate(std::time::Duration::from_secs(5)).await;
            Ok::<_, remex::Error>(r)
        };
        match run.await {
            Ok(r) => println!("VIA {r}"),
            Err(e) => println!("ERROR {e}"),
        }
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("env") {
        let run = async {
            let gw = remex::makegateway("popen//env:REMEX_PROBE=set").await?;
            let process: String = gw.remote_call("process_env", &())?.receive().await?;
            let command: String = gw
                .remote_call("shell", "echo ${REMEX_PROBE-unset} ${REMEX_WORKER-unset}")?
                .receive()
                .await?;
            gw.exit().await?;
            Ok::<_, remex::Error>(format!("{process} | {command}"))
        };
        match run.await {
            Ok(s) => println!("ENV {s}"),
            Err(e) => println!("ERROR {e}"),
        }
        return;
    }
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
