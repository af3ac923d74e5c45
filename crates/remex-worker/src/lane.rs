//! Task lanes: many tasks over one long-lived channel, for the task pool.
//!
//! The controller opens a lane with the built-in call `__lane([k, control])`
//! ([`remex_core::builtin::LANE`]). [`LaneRequest`]s arrive on the lane
//! channel; `k` executor threads take them straight off the channel (under
//! load they drain it without sleeping) and answer with [`LaneReply`]s. Cancels `id`
//! arrive on the separate `control` channel, served by its own thread, so
//! that a cancel is seen even while every executor is busy: it closes the
//! running task's channel (a cancellable task such as `sleep` then stops),
//! or drops the task if it has not started.
//!
//! Each task gets a detached channel (local only): tasks run through a lane
//! return their result instead of streaming it, and sending on that
//! channel is an error.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

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
        let running = Mutex::new(Running::default());
        std::thread::scope(|s| {
            s.spawn(|| {
                while let Ok(v) = control.receive_blocking::<remex_core::Value>(None) {
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
                            // The requests still waiting here, none that an
                            // executor took: each item goes to one taker.
                            let mut ids = Vec::new();
                            while (ids.len() as i64) < n {
                                match lane.try_receive::<remex_core::Value>() {
                                    Ok(Some(v)) => match LaneRequest::from_value(v) {
                                        Ok(r) => ids.push(r.id),
                                        Err(e) => crate::say(format!(
                                            "lane {}: ignoring a request: {e}",
                                            lane.id()
                                        )),
                                    },
                                    _ => break,
                                }
                            }
                            if lane
                                .send_value_blocking(LaneReturned { ids }.into_value())
                                .is_err()
                            {
                                break;
                            }
                        }
                        None => break,
                    }
                }
            });
            // The executors run the session's tasks: in its place.
            let place = crate::place::current();
            // And their log events belong to the lane's call.
            let call = crate::wirelog::current();
            for _ in 0..k.clamp(1, 1024) {
                let place = place.clone();
                let call = call.clone();
                s.spawn(|| {
                    let _here = crate::place::enter(place);
                    let _call = crate::wirelog::resume(call);
                    self.lane_executor(lane, &running)
                });
            }
        });
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
