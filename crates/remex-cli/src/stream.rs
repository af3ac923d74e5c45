//! `--line-buffer` and `--ungroup`: a job's stdout printed while it runs,
//! not when it ends. The job runs on the worker its slot belongs to (a
//! call of its own, whose stdout comes through a channel): whole lines
//! as they complete (`--line-buffer`, tagged with `--tag`), or bytes as
//! they come (`--ungroup`: lines of two jobs may mix, as in GNU
//! parallel). Its stderr is printed when it ends.

use std::io::Write;

use remex::worker::{CommandOutcome, CommandRequest};
use remex::{Gateway, TaskResult};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// How stdout is passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Whole lines, each written at once.
    Lines,
    /// Bytes as they come.
    Raw,
}

/// Runs `req` on `gw`, its stdout passed on to ours as `flow` says
/// (each line prefixed with `tag` and a tab, for `Lines`).
pub(crate) async fn run(
    gw: Gateway,
    req: CommandRequest,
    flow: Flow,
    tag: Option<String>,
) -> remex::Result<TaskResult<CommandOutcome>> {
    let out = gw.newchannel();
    let req = CommandRequest {
        stdout_to: Some(out.handle()),
        ..req
    };
    let call = gw.remote_call("run", &req)?;
    let mut reader = out.async_reader();
    match flow {
        Flow::Lines => {
            let mut lines = reader.split(b'\n');
            while let Ok(Some(mut line)) = lines.next_segment().await {
                line.push(b'\n');
                crate::emit::emit(&mut std::io::stdout().lock(), tag.as_deref(), &line);
            }
        }
        Flow::Raw => {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&buf[..n]);
                let _ = o.flush();
            }
        }
    }
    let value: CommandOutcome = call.receive().await?;
    Ok(TaskResult {
        value,
        gateway: gw.id().to_string(),
        attempts: 1,
    })
}
