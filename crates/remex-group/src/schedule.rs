//! Which lane a queued task with constraints goes to (one bound to its
//! scattered data, or that lost a worker before; the others take the
//! oldest free place, [`crate::room`]): a pure function of the lanes'
//! loads and the task's constraints, so that the rule is tested without
//! workers.
//!
//! The rule: among the lanes with room (fewer tasks in flight than the
//! capacity) that may run the task (a holder of its scattered data, if it
//! has any), the least loaded, the first of equals; a lane whose worker
//! already failed this task only if no other lane may run it at all.

/// A lane as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneLoad<'a> {
    /// Its gateway's id.
    pub(crate) gateway: &'a str,
    /// Tasks in flight on it.
    pub(crate) load: usize,
}

/// What a task asks of its lane.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Constraints<'a> {
    /// The gateways holding its scattered data (`None`: any gateway).
    pub(crate) allowed: Option<&'a [String]>,
    /// Gateways where it failed before (their workers died under it).
    pub(crate) avoid: &'a [String],
}

impl Constraints<'_> {
    fn allows(&self, gateway: &str) -> bool {
        self.allowed
            .is_none_or(|a| a.iter().any(|id| id == gateway))
    }

    fn avoids(&self, gateway: &str) -> bool {
        self.avoid.iter().any(|a| a == gateway)
    }
}

/// The index of the lane to send the task to, or `None` if every lane that
/// may run it is full (`capacity`: tasks in flight a lane may hold).
/// `lanes` is walked twice and never collected: this runs for every task.
pub(crate) fn pick_lane<'a>(
    lanes: impl Iterator<Item = LaneLoad<'a>> + Clone,
    capacity: usize,
    task: Constraints<'_>,
) -> Option<usize> {
    let elsewhere = lanes
        .clone()
        .any(|l| task.allows(l.gateway) && !task.avoids(l.gateway));
    lanes
        .enumerate()
        .filter(|(_, l)| l.load < capacity && task.allows(l.gateway))
        .filter(|(_, l)| !elsewhere || !task.avoids(l.gateway))
        .min_by_key(|(_, l)| l.load)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes<'a>(loads: &[(&'a str, usize)]) -> Vec<LaneLoad<'a>> {
        loads
            .iter()
            .map(|&(gateway, load)| LaneLoad { gateway, load })
            .collect()
    }

    #[test]
    fn the_least_loaded_lane_with_room_the_first_of_equals() {
        let l = lanes(&[("a", 3), ("b", 1), ("c", 1)]);
        assert_eq!(
            pick_lane(l.iter().copied(), 8, Constraints::default()),
            Some(1)
        );
        let l = lanes(&[("a", 8), ("b", 8)]);
        assert_eq!(
            pick_lane(l.iter().copied(), 8, Constraints::default()),
            None,
            "all full"
        );
        assert_eq!(
            pick_lane(std::iter::empty(), 8, Constraints::default()),
            None
        );
    }

    #[test]
    fn a_task_with_scattered_data_goes_to_a_holder_even_a_busier_one() {
        let l = lanes(&[("a", 0), ("b", 5)]);
        let holders = ["b".to_string()];
        let task = Constraints {
            allowed: Some(&holders),
            avoid: &[],
        };
        assert_eq!(pick_lane(l.iter().copied(), 8, task), Some(1));
        let l = lanes(&[("a", 0), ("b", 8)]);
        assert_eq!(
            pick_lane(l.iter().copied(), 8, task),
            None,
            "its only holder is full: it waits"
        );
    }

    #[test]
    fn a_worker_that_failed_the_task_gets_it_again_only_when_nothing_else_can() {
        let l = lanes(&[("a", 0), ("b", 6)]);
        let failed = ["a".to_string()];
        let task = Constraints {
            allowed: None,
            avoid: &failed,
        };
        assert_eq!(
            pick_lane(l.iter().copied(), 8, task),
            Some(1),
            "b, though busier"
        );
        let l = lanes(&[("a", 0), ("b", 8)]);
        assert_eq!(
            pick_lane(l.iter().copied(), 8, task),
            None,
            "b is full: wait for it, not a"
        );
        let l = lanes(&[("a", 0)]);
        assert_eq!(
            pick_lane(l.iter().copied(), 8, task),
            Some(0),
            "a is the only one left"
        );
    }
}
