//! `--timeout N%`, GNU parallel's relative timeout: a job that runs
//! longer than N% of the median run time of the jobs finished so far is
//! killed (its future aborted, which ends its command on the worker).
//! Until a job has finished there is no limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, AbortRegistration};

/// The running jobs and the run times that set their limit.
pub(crate) struct Relative {
    pct: f64,
    /// Run times (seconds) of the finished jobs, sorted.
    times: Vec<f64>,
    /// seq -> when it was submitted, and how to kill it.
    running: HashMap<u64, (Instant, AbortHandle)>,
}

impl Relative {
    pub(crate) fn new(pct: f64) -> Relative {
        Relative {
            pct,
            times: Vec::new(),
            running: HashMap::new(),
        }
    }

    /// Job `seq` starts now: the registration its future is aborted by.
    pub(crate) fn arm(&mut self, seq: u64) -> AbortRegistration {
        let (handle, reg) = AbortHandle::new_pair();
        self.running.insert(seq, (Instant::now(), handle));
        reg
    }

    /// Job `seq` ended, after `seconds` when it ran to its end.
    pub(crate) fn ended(&mut self, seq: u64, seconds: Option<f64>) {
        self.running.remove(&seq);
        if let Some(s) = seconds {
            let at = self.times.partition_point(|t| *t < s);
            self.times.insert(at, s);
        }
    }

    /// The limit now: N% of the median, once a job has finished.
    pub(crate) fn limit(&self) -> Option<Duration> {
        let n = self.times.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            self.times[n / 2]
        } else {
            (self.times[n / 2 - 1] + self.times[n / 2]) / 2.0
        };
        Duration::try_from_secs_f64(median * self.pct / 100.0).ok()
    }

    /// Kills the jobs that ran past the limit; returns how many.
    pub(crate) fn kill_overdue(&mut self) -> usize {
        let Some(limit) = self.limit() else { return 0 };
        let mut killed = 0;
        self.running.retain(|_, (t0, h)| {
            let over = t0.elapsed() > limit;
            if over {
                h.abort();
                killed += 1;
            }
            !over
        });
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_share_of_the_median_and_kills_what_runs_past_it() {
        let mut r = Relative::new(200.0);
        assert_eq!(r.limit(), None, "nothing finished: no limit");
        let reg = r.arm(1);
        let job = futures::future::Abortable::new(std::future::pending::<()>(), reg);
        assert_eq!(r.kill_overdue(), 0);
        for (seq, s) in [(2, 2.1), (3, 2.2), (4, 3.0)] {
            let _ = r.arm(seq);
            r.ended(seq, Some(s));
        }
        let secs = |r: &Relative| r.limit().unwrap().as_secs_f64();
        assert!((secs(&r) - 4.4).abs() < 1e-9, "{}", secs(&r));
        r.ended(5, Some(2.3));
        assert!((secs(&r) - 4.5).abs() < 1e-9, "{}", secs(&r));
        // Job 1 is not past 4.5 s yet; with a limit of 0 it is.
        assert_eq!(r.kill_overdue(), 0);
        r.pct = 0.0;
        assert_eq!(r.kill_overdue(), 1);
        assert!(job.is_aborted());
    }
}
