//! Task lanes: many tasks over one long-lived channel, for the task pool.
//!
//! The controller opens a lane with the built-in call `__lane([k, control])`
//! ([`remex_core::builtin::LANE`]). [`LaneRequest`]s arrive on the lane
//! channel; `k` executor threads take them straight off the channel,
//! reading the input themselves while they wait (under load they drain it
//! without sleeping), and answer with [`LaneReply`]s. Cancels `id` arrive
//! on the separate `control` channel, served by a task of the worker's
//! runtime, which waits without reading the input (so that no thread
//! reads the requests only to wake an executor for each) and sees a
//! cancel even while every executor is busy: it closes the running task's
//! channel (a cancellable task such as `sleep` then stops), or drops the
//! task if it has not started.
//!
//! Each task gets a detached channel (local only): tasks run through a lane
//! return their result instead of streaming it, and sending on that
//! channel is an error.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::Mutex;
use remex_core::builtin::{LaneControl, LaneReply, LaneRequest, LaneReturned};
use remex_core::{Channel, ChannelRef, Value};

use crate::Worker;

#[derive(Default)]
struct Running {
    tasks: HashMap<i64, Channel>,
    cancelled: HashSet<i64>,
}

impl Worker {
    pub(crate) fn run_lane(&self, args: Value, lane: &Channel) -> Result<(), String> {
        let (k, control): (usize, ChannelRef) =
            remex_core::from_value(args).map_err(|e| format!("bad lane arguments: {e}"))?;
        let control = lane.attach(control);
        let running = Arc::new(Mutex::new(Running::default()));
        // The control channel is served by a task of the runtime, which
        // waits without reading the input itself: the executors, waiting
        // for requests, read it (a thread waiting on the control channel
        // would read every request and wake an executor for it: a thread
        // wake-up per task, tens of microseconds on an idle vCPU).
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "a lane runs in a worker session's runtime".to_string())?;
        let served = rt.spawn(serve_control(control, lane.clone(), running.clone()));
        std::thread::scope(|s| {
            // The executors run the session's tasks: in its place.
            let place = crate::place::current();
            // And their log events belong to the lane's call.
            let call = crate::wirelog::current();
            for _ in 0..k.clamp(1, 1024) {
                let place = place.clone();
                let call = call.clone();
                let running = &running;
                s.spawn(move || {
                    let _here = crate::place::enter(place);
                    let _call = crate::wirelog::resume(call);
                    self.lane_executor(lane, running)
                });
            }
        });
        served.abort();
        Ok(())
    }

    fn lane_executor(&self, lane: &Channel, running: &Mutex<Running>) {
        while let Ok(v) = lane.receive_blocking::<remex_core::Value>(None) {
            let LaneRequest { id, task, args } = match LaneRequest::from_value(v) {
                Ok(r) => r,
                Err(e) => {
                    crate::say(format!("lane {}: ignoring a request: {e}", lane.id()));
                    continue;
                }
            };
            let task_ch = lane.connection().detached_channel();
            {
                let mut r = running.lock();
                if r.cancelled.remove(&id) {
                    continue;
                }
                r.tasks.insert(id, task_ch.clone());
            }
            let guard = lane.connection().executing_guard();
            let call = crate::wirelog::enter_request(id);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_task(task, args, &task_ch)));
            drop(call);
            drop(guard);
            running.lock().tasks.remove(&id);
            let outcome = match outcome {
                Ok(r) => r,
                Err(p) => Err(format!("panicked: {}", crate::panic_message(&*p))),
            };
            if lane
                .send_value_blocking(LaneReply { id, outcome }.into_value())
                .is_err()
            {
                return;
            }
        }
    }
}

/// Serves a lane's control channel: cancels, and steals of requests no
/// executor took yet, until the channel ends.
async fn serve_control(control: Channel, lane: Channel, running: Arc<Mutex<Running>>) {
    while let Ok(v) = control.receive::<remex_core::Value>().await {
        match LaneControl::from_value(&v) {
            Some(LaneControl::Cancel(id)) => {
                let mut r = running.lock();
                match r.tasks.get(&id) {
                    Some(ch) => ch.close(None),
                    None => {
                        r.cancelled.insert(id);
                    }
                }
            }
            Some(LaneControl::Steal(n)) => {
                // The requests still waiting here, none that an executor
                // took: each item goes to one taker.
                let mut ids = Vec::new();
                while (ids.len() as i64) < n {
                    match lane.try_receive::<remex_core::Value>() {
                        Ok(Some(v)) => match LaneRequest::from_value(v) {
                            Ok(r) => ids.push(r.id),
                            Err(e) => {
                                crate::say(format!("lane {}: ignoring a request: {e}", lane.id()))
                            }
                        },
                        _ => break,
                    }
                }
                if lane
                    .send_value(LaneReturned { ids }.into_value())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            None => break,
        }
    }
}
