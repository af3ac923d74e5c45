//! GNU parallel's `--roundrobin`: `--pipe`'s blocks go to a few long jobs
//! instead of a job each, in turn: block i to the job of slot i mod N, on
//! its stdin as it comes (`CommandRequest::stdin_from`). A slot's job
//! starts with the first block it gets (so fewer blocks than slots make
//! fewer jobs, as in GNU parallel); a job that ends before its input does
//! leaves its slot to a new job for the next block. At the input's end
//! every job's stdin ends, and the jobs end as their commands do. A job is
//! never run again elsewhere: what it was fed is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use remex::worker::CommandRequest;
use remex::Gateway;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{Receiver, Sender};

use crate::jobs::Inputs;

/// Blocks queued for a job beyond the one it is being fed (each up to
/// `--block`).
const AHEAD: usize = 1;

/// The inputs the command's loop makes jobs of: one (with no argument)
/// for each job to start, in order; an error ends them.
pub(crate) type Starts = Receiver<Result<Vec<String>, String>>;

/// The blocks queued for the jobs, by job number, until each job takes
/// its queue.
#[derive(Clone, Default)]
pub(crate) struct Blocks(Arc<Mutex<HashMap<u64, Receiver<bytes::Bytes>>>>);

/// Reads `inputs` (`--pipe`'s blocks) on a thread of its own, handing
/// them to the jobs of `slots` slots in turn, and a start for each job
/// that a block needs.
pub(crate) fn feed(inputs: Inputs, slots: usize) -> Result<(Starts, Blocks), String> {
    let slots = slots.max(1);
    let (starts_tx, starts) = tokio::sync::mpsc::channel(slots);
    let blocks = Blocks::default();
    let queues = blocks.clone();
    std::thread::Builder::new()
        .name("remex-blocks".into())
        .spawn(move || read(inputs, slots, &starts_tx, &queues))
        .map_err(|e| format!("cannot start the thread that reads the input: {e}"))?;
    Ok((starts, blocks))
}

/// The reading thread's work (see [`feed`]); it ends when the input
/// does (dropping every queue: the jobs' stdin ends), or when the
/// command's loop takes no more jobs.
fn read(
    mut inputs: Inputs,
    slots: usize,
    starts: &Sender<Result<Vec<String>, String>>,
    blocks: &Blocks,
) {
    let mut lanes: Vec<Option<Sender<bytes::Bytes>>> = vec![None; slots];
    let mut jobs: u64 = 0;
    for (i, input) in inputs.by_ref().enumerate() {
        let mut block: bytes::Bytes = match input {
            Ok(mut args) => args
                .pop()
                .map(|b| crate::raw::bytes(&b).into_owned())
                .unwrap_or_default()
                .into(),
            Err(e) => {
                let _ = starts.blocking_send(Err(e));
                return;
            }
        };
        let lane = &mut lanes[i % slots];
        loop {
            let to = match lane {
                Some(to) => to.clone(),
                // The slot's job, started for this block.
                None => {
                    let (to, queue) = tokio::sync::mpsc::channel(AHEAD);
                    jobs += 1;
                    blocks
                        .0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(jobs, queue);
                    if starts.blocking_send(Ok(Vec::new())).is_err() {
                        return;
                    }
                    *lane = Some(to.clone());
                    to
                }
            };
            match to.blocking_send(block) {
                Ok(()) => break,
                // Its job is over: a new one for the block.
                Err(back) => {
                    block = back.0;
                    *lane = None;
                }
            }
        }
    }
}

/// A job's feeding: stops when dropped (the job over).
pub(crate) struct Feeding {
    task: tokio::task::JoinHandle<()>,
    /// Bytes written to the job's stdin.
    fed: Arc<AtomicU64>,
}

impl Feeding {
    /// The bytes the job was fed, its feeding over (the job's Send in
    /// the job log).
    pub(crate) fn fed(self) -> u64 {
        self.fed.load(Ordering::Acquire)
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Tells a job's feeding that its call is made.
pub(crate) struct Go(tokio::sync::oneshot::Sender<()>);

impl Go {
    /// The call is made: feed it.
    pub(crate) fn go(self) {
        let _ = self.0.send(());
    }
}

/// `req` (job `seq`) with its stdin fed its blocks through a channel of
/// `gw`'s, by a task that ends the stdin after the last (or stops when
/// the job no longer reads). The task starts once told that the call is
/// made ([`Go`]): an item sent to a channel before the call that names it
/// would find no channel there.
pub(crate) fn attach(
    gw: &Gateway,
    mut req: CommandRequest,
    blocks: &Blocks,
    seq: u64,
) -> (CommandRequest, Feeding, Go) {
    let ch = gw.newchannel();
    req.stdin_from = Some(ch.handle());
    let queue = blocks
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&seq);
    let (go, called) = tokio::sync::oneshot::channel();
    let fed = Arc::new(AtomicU64::new(0));
    let counted = fed.clone();
    let task = tokio::spawn(async move {
        // The call was never made: nothing to feed.
        if called.await.is_err() {
            return;
        }
        let mut to = ch.async_writer();
        if let Some(mut queue) = queue {
            while let Some(block) = queue.recv().await {
                if to.write_all(&block).await.is_err() {
                    return;
                }
                counted.fetch_add(block.len() as u64, Ordering::AcqRel);
            }
        }
        let _ = to.shutdown().await;
    });
    (req, Feeding { task, fed }, Go(go))
}
