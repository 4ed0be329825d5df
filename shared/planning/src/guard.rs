//! The rollout guard: thresholds over a plan's applied migrations that halt it.
//!
//! Pure: the services read the plan's counters and ask [`crossed`] after each
//! applied migration; a crossing becomes one conditional write (`halted`).

use crate::model::RolloutGuard;

/// What the guard looks at: counters of the plan's applied migrations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardFigures {
    /// Migrations applied (flagged or not).
    pub applied: u64,
    /// Of those, the ones that ended the conversation (`exit_scenario`).
    pub exits: u64,
    /// Of those, the ones a checkpoint blocked.
    pub checkpoint_blocks: u64,
    /// Migrated sessions the runtime reported as failed.
    pub reported_failures: u64,
}

/// One threshold the figures exceed, said with its figures: what `halt_reason` stores.
pub fn crossed(guard: &RolloutGuard, figures: &GuardFigures) -> Option<String> {
    if figures.applied == 0 || figures.applied < guard.min_sessions {
        return None;
    }
    let checks = [
        (
            "exit rate",
            "max_exit_rate",
            guard.max_exit_rate,
            figures.exits,
            "ended the conversation",
        ),
        (
            "checkpoint-block rate",
            "max_checkpoint_block_rate",
            guard.max_checkpoint_block_rate,
            figures.checkpoint_blocks,
            "were blocked by a checkpoint",
        ),
        (
            "reported failure rate",
            "max_reported_failure_rate",
            guard.max_reported_failure_rate,
            figures.reported_failures,
            "were reported failed by the runtime",
        ),
    ];
    for (what, name, limit, count, meaning) in checks {
        let Some(limit) = limit else { continue };
        // Compared as count > limit × applied, so that 0.2 of 10 is exactly 2.
        if count as f64 > limit * figures.applied as f64 {
            return Some(format!(
                "{what} {:.3} exceeded {name} {limit}: {count} of {} applied migrations {meaning}",
                count as f64 / figures.applied as f64,
                figures.applied
            ));
        }
    }
    None
}

/// What is wrong with a guard a client sent: (field, message) pairs.
pub fn problems(guard: &RolloutGuard) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for (name, value) in [
        ("max_exit_rate", guard.max_exit_rate),
        ("max_checkpoint_block_rate", guard.max_checkpoint_block_rate),
        ("max_reported_failure_rate", guard.max_reported_failure_rate),
    ] {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            found.push((name, "a rate is a number from 0 to 1".to_owned()));
        }
    }
    if guard.min_sessions == 0 {
        found.push(("min_sessions", "at least 1".to_owned()));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(exit: Option<f64>, blocks: Option<f64>, min: u64) -> RolloutGuard {
        RolloutGuard {
            max_exit_rate: exit,
            max_checkpoint_block_rate: blocks,
            max_reported_failure_rate: None,
            min_sessions: min,
        }
    }

    fn figures(applied: u64, exits: u64, checkpoint_blocks: u64) -> GuardFigures {
        GuardFigures {
            applied,
            exits,
            checkpoint_blocks,
            reported_failures: 0,
        }
    }

    #[test]
    fn reported_failures_count_against_the_applied_migrations() {
        let mut g = guard(None, None, 4);
        g.max_reported_failure_rate = Some(0.25);
        let mut f = figures(8, 0, 0);
        f.reported_failures = 2;
        assert_eq!(crossed(&g, &f), None, "2 of 8 is the threshold itself");
        f.reported_failures = 3;
        let reason = crossed(&g, &f).expect("crossed");
        assert_eq!(
            reason,
            "reported failure rate 0.375 exceeded max_reported_failure_rate 0.25: 3 of 8 applied migrations were reported failed by the runtime"
        );
        let mut bad = g.clone();
        bad.max_reported_failure_rate = Some(2.0);
        assert_eq!(problems(&bad)[0].0, "max_reported_failure_rate");
    }

    #[test]
    fn nothing_halts_before_min_sessions() {
        let g = guard(Some(0.1), None, 50);
        assert_eq!(crossed(&g, &figures(49, 49, 0)), None);
        assert!(crossed(&g, &figures(50, 49, 0)).is_some());
    }

    #[test]
    fn the_threshold_itself_is_allowed_and_one_more_halts() {
        let g = guard(Some(0.2), None, 10);
        assert_eq!(crossed(&g, &figures(10, 2, 0)), None);
        let reason = crossed(&g, &figures(10, 3, 0)).expect("crossed");
        assert_eq!(
            reason,
            "exit rate 0.300 exceeded max_exit_rate 0.2: 3 of 10 applied migrations ended the conversation"
        );
    }

    #[test]
    fn checkpoint_blocks_are_checked_and_absent_thresholds_are_not() {
        let g = guard(None, Some(0.0), 1);
        assert_eq!(
            crossed(&g, &figures(5, 5, 0)),
            None,
            "no exit threshold set"
        );
        let reason = crossed(&g, &figures(5, 0, 1)).expect("crossed");
        assert!(
            reason.starts_with("checkpoint-block rate 0.200 exceeded"),
            "{reason}"
        );
        assert_eq!(crossed(&guard(None, None, 1), &figures(5, 5, 5)), None);
    }

    #[test]
    fn bad_guards_are_named() {
        let bad = guard(Some(1.5), Some(-0.1), 0);
        let fields: Vec<&str> = problems(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            ["max_exit_rate", "max_checkpoint_block_rate", "min_sessions"]
        );
        assert!(problems(&guard(Some(0.0), Some(1.0), 1)).is_empty());
    }
}
