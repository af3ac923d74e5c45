//! `--halt`, as GNU parallel's: when to stop starting jobs (`soon`) or
//! also kill the running ones (`now`), after a number or a share of jobs
//! failed, succeeded or finished.

use std::fmt;

/// Stop starting jobs, or also kill the running ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Soon,
    Now,
}

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Fail,
    Success,
    Done,
}

/// How many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Amount {
    Jobs(u64),
    /// A share of the finished jobs, once at least three finished.
    Percent(f64),
}

/// A `--halt` policy; `None` inside is `never`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Halt(pub Option<(When, Count, Amount)>);

impl std::str::FromStr for Halt {
    type Err = String;

    fn from_str(s: &str) -> Result<Halt, String> {
        let bad = || {
            format!(
                "--halt {s:?}: expected never, now,fail=N, soon,fail=N, now,fail=P%, \
                 soon,success=N, now,done=N (and the like), or 0, 1, 2"
            )
        };
        match s {
            "never" | "0" => return Ok(Halt(None)),
            "1" => return Ok(Halt(Some((When::Soon, Count::Fail, Amount::Jobs(1))))),
            "2" => return Ok(Halt(Some((When::Now, Count::Fail, Amount::Jobs(1))))),
            _ => {}
        }
        let (when, rest) = s.split_once(',').ok_or_else(bad)?;
        let when = match when {
            "now" => When::Now,
            "soon" => When::Soon,
            _ => return Err(bad()),
        };
        let (count, amount) = rest.split_once('=').ok_or_else(bad)?;
        let count = match count {
            "fail" => Count::Fail,
            "success" => Count::Success,
            "done" => Count::Done,
            _ => return Err(bad()),
        };
        let amount = match amount.strip_suffix('%') {
            Some(p) => Amount::Percent(
                p.parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0 && *p <= 100.0)
                    .ok_or_else(bad)?,
            ),
            None => Amount::Jobs(
                amount
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(bad)?,
            ),
        };
        Ok(Halt(Some((when, count, amount))))
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "never"),
            Some((when, count, amount)) => {
                let when = if when == When::Now { "now" } else { "soon" };
                let count = match count {
                    Count::Fail => "fail",
                    Count::Success => "success",
                    Count::Done => "done",
                };
                match amount {
                    Amount::Jobs(n) => write!(f, "{when},{count}={n}"),
                    Amount::Percent(p) => write!(f, "{when},{count}={p}%"),
                }
            }
        }
    }
}

impl Halt {
    /// Whether a share is asked for (then the jobs are counted first).
    pub(crate) fn wants_total(&self) -> bool {
        matches!(self.0, Some((_, _, Amount::Percent(_))))
    }

    /// The exit status once the halt is reached, GNU parallel's rule:
    /// `success=`: 0; a share: the percentage of the `total` jobs that
    /// failed (rounded up); `fail=1` or `done=1`, or a share that is one
    /// job of the total (`fail=20%` of 5): the last job's own status
    /// (`code`); else the number failed (at most 101).
    pub(crate) fn status(&self, failed: u64, total: Option<u64>, code: i32) -> i32 {
        match self.0 {
            Some((_, Count::Success, _)) | None => 0,
            // GNU parallel turns the share into a count of jobs (total x
            // P/100, a float) and that count's rule applies when it is 1.
            Some((_, _, Amount::Percent(p)))
                if total.is_some_and(|t| t as f64 * (p / 100.0) == 1.0) =>
            {
                code
            }
            Some((_, _, Amount::Percent(_))) => {
                let total = total.unwrap_or(failed).max(1);
                (failed * 100).div_ceil(total) as i32
            }
            Some((_, _, Amount::Jobs(1))) => code,
            Some(_) => failed.min(101) as i32,
        }
    }

    /// The exit status of a run the halt was not reached in: with a share
    /// asked for, the percentage of the jobs `started` (retries each one
    /// more) that failed, rounded up; else the number failed (at most
    /// 101). GNU parallel's rule (`--halt soon,fail=50%` where one job of
    /// five failed ends 20).
    pub(crate) fn end_status(&self, failed: u64, started: u64) -> i32 {
        match self.0 {
            Some((_, _, Amount::Percent(_))) => (failed * 100).div_ceil(started.max(1)) as i32,
            _ => failed.min(101) as i32,
        }
    }

    /// Whether to halt, and how, after `failed` and `succeeded` jobs of
    /// `total` (a share is of the total when known, as GNU parallel's;
    /// else of the finished jobs, once three finished).
    pub(crate) fn check(&self, failed: u64, succeeded: u64, total: Option<u64>) -> Option<When> {
        let (when, count, amount) = self.0?;
        let done = failed + succeeded;
        let n = match count {
            Count::Fail => failed,
            Count::Success => succeeded,
            Count::Done => done,
        };
        let hit = match amount {
            Amount::Jobs(k) => n >= k,
            Amount::Percent(p) => match total {
                Some(t) => n as f64 * 100.0 >= p * t as f64,
                None => done >= 3 && n as f64 * 100.0 >= p * done as f64,
            },
        };
        hit.then_some(when)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_trigger_as_gnu_parallels() {
        let h: Halt = "now,fail=1".parse().unwrap();
        assert_eq!(h.check(0, 10, None), None);
        assert_eq!(h.check(1, 0, None), Some(When::Now));
        let h: Halt = "soon,fail=30%".parse().unwrap();
        assert_eq!(h.check(1, 0, None), None, "fewer than three jobs done");
        assert_eq!(h.check(1, 2, None), Some(When::Soon));
        assert_eq!(h.check(1, 3, None), None);
        let h: Halt = "soon,success=2".parse().unwrap();
        assert_eq!(
            (h.check(5, 1, None), h.check(0, 2, None)),
            (None, Some(When::Soon))
        );
        assert_eq!(
            "now,done=3".parse::<Halt>().unwrap().check(1, 2, None),
            Some(When::Now)
        );
        assert_eq!("2".parse::<Halt>().unwrap(), "now,fail=1".parse().unwrap());
        assert_eq!("never".parse::<Halt>().unwrap().check(100, 0, None), None);
        assert_eq!(
            "soon,fail=30%".parse::<Halt>().unwrap().to_string(),
            "soon,fail=30%"
        );
        // A share of all the jobs when their number is known; the status.
        let h: Halt = "soon,fail=20%".parse().unwrap();
        assert_eq!(h.check(1, 2, Some(10)), None);
        assert_eq!(h.check(2, 1, Some(10)), Some(When::Soon));
        assert_eq!(h.status(2, Some(10), 2), 20);
        // A share that is one job is fail=1: the job's own status.
        let h: Halt = "soon,fail=20%".parse().unwrap();
        assert_eq!(h.status(1, Some(5), 7), 7);
        assert_eq!(h.status(1, Some(6), 7), 17);
        assert_eq!("now,fail=1".parse::<Halt>().unwrap().status(1, None, 7), 7);
        // Not reached: a share's status is the share that failed.
        assert_eq!("now,fail=50%".parse::<Halt>().unwrap().end_status(1, 3), 34);
        assert_eq!(
            "soon,success=50%".parse::<Halt>().unwrap().end_status(3, 8),
            38
        );
        assert_eq!("soon,fail=3".parse::<Halt>().unwrap().end_status(2, 9), 2);
        assert_eq!(Halt(None).end_status(200, 300), 101);
        assert_eq!("soon,fail=3".parse::<Halt>().unwrap().status(4, None, 7), 4);
        assert_eq!(
            "now,success=1".parse::<Halt>().unwrap().status(3, None, 0),
            0
        );
        for bad in [
            "later,fail=1",
            "now,fail",
            "now,fail=0",
            "now,lost=1",
            "now,fail=120%",
            "x",
        ] {
            let e = bad.parse::<Halt>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
