//! `--line-buffer` and `--ungroup`: a job's stdout printed while it runs,
//! not when it ends. The job runs on the worker its slot belongs to (a
//! call of its own, whose stdout comes through a channel): whole lines
//! as they complete (`--line-buffer`, tagged with `--tag`), or bytes as
//! they come (`--ungroup`: lines of two jobs may mix, as in GNU
//! parallel). Its stderr is printed when it ends.
//!
//! `--line-buffer` with `-k` ([`Order`]): as in GNU parallel, the oldest
//! job not yet printed has its lines printed as they come, and a later
//! job's lines are held until its turn.

use crate::emit::{emit_marked, Color};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use remex::worker::{CommandOutcome, CommandRequest};
use remex::{Gateway, TaskResult};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// The longest line `--line-buffer` passes on whole (a longer one goes in
/// pieces, between which another job's line may come): what a job's
/// output holds in memory here.
const LINE_PIECE: u64 = 1 << 20;

/// How stdout is passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Whole lines, each written at once.
    Lines,
    /// Bytes as they come.
    Raw,
}

/// The turns of `--line-buffer -k`: the job whose lines are printed as
/// they come (the oldest not yet printed), and the lines later jobs wrote
/// meanwhile. A job holds at most `hold` bytes (`--max-output`); then it
/// waits for its turn without reading, and its channel's flow control
/// stops its command's output until then: memory stays below slots x
/// `hold`.
pub(crate) struct Order {
    turn: tokio::sync::watch::Sender<u64>,
    held: Mutex<BTreeMap<u64, Vec<u8>>>,
    hold: usize,
}

impl Order {
    /// Turns from job 1; each job holds at most `hold` bytes.
    pub(crate) fn new(hold: u64) -> Arc<Order> {
        Arc::new(Order {
            turn: tokio::sync::watch::Sender::new(1),
            held: Mutex::new(BTreeMap::new()),
            hold: usize::try_from(hold).unwrap_or(usize::MAX).max(1),
        })
    }

    /// Job `seq`'s `line` (after `tag`): printed now on its turn, else
    /// held. False when the job holds its most: wait for its turn.
    fn line(&self, seq: u64, tag: Option<&str>, color: Option<&Color>, line: &[u8]) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if *self.turn.borrow() == seq {
            emit_marked(&mut std::io::stdout().lock(), tag, color, line);
            return true;
        }
        let h = held.entry(seq).or_default();
        emit_marked(h, tag, color, line);
        h.len() < self.hold
    }

    /// Until it is job `seq`'s turn.
    async fn wait_turn(&self, seq: u64) {
        let mut turn = self.turn.subscribe();
        let _ = turn.wait_for(|t| *t >= seq).await;
    }

    /// Job `seq` is printed (or skipped): the next job's turn, what it
    /// held printed first.
    pub(crate) fn printed(&self, seq: u64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.remove(&(seq + 1)) {
            let mut out = std::io::stdout().lock();
            crate::emit::checked(out.write_all(&h));
            crate::emit::checked(out.flush());
        }
        self.turn.send_replace(seq + 1);
    }

    /// The run is over (a `--halt` may have left turns unreached): what
    /// is still held, in order.
    pub(crate) fn finish(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = std::io::stdout().lock();
        for h in held.values() {
            crate::emit::checked(out.write_all(h));
        }
        crate::emit::checked(out.flush());
    }
}

/// Runs `req` on `gw`, its stdout passed on to ours as `flow` says
/// (each line prefixed with `tag` and a tab, in `color` if any, for
/// `Lines`: a line longer than LINE_PIECE then colours in pieces, each
/// ending with a newline; in turns when
/// `order` holds the turns and this job's number); `printed` counts the
/// bytes of stdout passed on, without tags. `first` (`-v`'s command
/// line) goes before the job's output, as its first line. `called`
/// (`--roundrobin`) is told once the call is made.
// Each argument is one thing the caller decides; a struct for them
// would only be unpacked here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    gw: Gateway,
    req: CommandRequest,
    flow: Flow,
    tag: Option<String>,
    color: Option<Color>,
    order: Option<(Arc<Order>, u64)>,
    printed: Arc<AtomicU64>,
    first: Option<String>,
    called: Option<crate::roundrobin::Go>,
) -> remex::Result<TaskResult<CommandOutcome>> {
    let out = gw.newchannel();
    let req = CommandRequest {
        stdout_to: Some(out.handle()),
        ..req
    };
    let call = gw.remote_call("run", &req)?;
    // --roundrobin: its stdin may be fed from now on.
    if let Some(go) = called {
        go.go();
    }
    let first = first
        .map(|c| format!("{c}\n").into_bytes())
        .unwrap_or_default();
    let mut reader = (&first[..]).chain(out.async_reader());
    match flow {
        Flow::Lines => {
            // Each line with its newline (a last one without stays so),
            // whole up to LINE_PIECE bytes; a longer one in pieces, the
            // tag before the first only.
            let mut line = Vec::new();
            let mut mid_line = false;
            loop {
                line.clear();
                match (&mut reader)
                    .take(LINE_PIECE)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                printed.fetch_add(line.len() as u64, Ordering::Relaxed);
                let tag = if mid_line { None } else { tag.as_deref() };
                mid_line = !line.ends_with(b"\n");
                match &order {
                    None => emit_marked(&mut std::io::stdout().lock(), tag, color.as_ref(), &line),
                    Some((o, seq)) => {
                        if !o.line(*seq, tag, color.as_ref(), &line) {
                            o.wait_turn(*seq).await;
                        }
                    }
                }
            }
        }
        Flow::Raw => {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                printed.fetch_add(n as u64, Ordering::Relaxed);
                let mut o = std::io::stdout().lock();
                crate::emit::checked(o.write_all(&buf[..n]));
                crate::emit::checked(o.flush());
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
