//! The checkpoint invariant: no customer is ever moved back past an
//! irreversible step they already passed.
//!
//! Step ids in `step_history` belong to whatever version the session was on when it
//! visited the step, so a checkpoint is located in the target version by id, and by
//! content hash through the definitions the caller gave us (the session's version
//! and every version of the chain) when the ids changed. Several matches are all
//! kept: guarding against a step that might be the checkpoint is the safe side.

use crate::model::StepVisit;

use super::context::ReconcileContext;
use super::prepared::PreparedScenario;

/// Why a move was refused; becomes `checkpoint_warning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub warning: String,
}

struct LastCheckpoint<'a> {
    visit: &'a StepVisit,
    /// Where that step is in the target version; empty when it no longer exists.
    locations: Vec<usize>,
    /// The session sits on the checkpoint itself: landing on its counterpart is
    /// staying put, not going back.
    session_is_on_it: bool,
}

pub(crate) struct CheckpointGuard<'a> {
    current: &'a PreparedScenario,
    last: Option<LastCheckpoint<'a>>,
    /// Earlier checkpoints of the history, located in the target version. The
    /// invariant names only the last one; the earlier ones cost one lookup each and
    /// close the gap where a new version reorders two checkpoints.
    earlier: Vec<usize>,
}

impl<'a> CheckpointGuard<'a> {
    pub fn new(ctx: &ReconcileContext<'a>) -> Self {
        let current = ctx.current;
        let history = &ctx.session.step_history;
        let mut checkpoints = history.iter().rev().filter(|v| v.is_checkpoint);
        let Some(visit) = checkpoints.next() else {
            return CheckpointGuard {
                current,
                last: None,
                earlier: Vec::new(),
            };
        };
        let last = LastCheckpoint {
            visit,
            locations: locate(ctx, visit),
            session_is_on_it: ctx.session.active_step_id == visit.step_id,
        };
        let mut seen = vec![visit.step_id];
        let mut earlier = Vec::new();
        for v in checkpoints {
            if seen.contains(&v.step_id) {
                continue;
            }
            seen.push(v.step_id);
            for i in locate(ctx, v) {
                if !earlier.contains(&i) {
                    earlier.push(i);
                }
            }
        }
        CheckpointGuard {
            current,
            last: Some(last),
            earlier,
        }
    }

    /// May the session be placed on `target` (a teleport, or staying on a step
    /// whose id did not change)?
    pub fn check_landing(&self, target: usize) -> Result<(), Block> {
        let Some(last) = &self.last else {
            return Ok(());
        };
        self.check_gone(last)?;
        let reach = self.current.reachable_from(target);
        let name = &self.current.step(target).name;
        for &c in &last.locations {
            // Landing on the checkpoint itself is going back to it unless the
            // session is still sitting there; a cycle through it is the graph's own
            // design and is not counted as going back.
            let back = if c == target {
                !last.session_is_on_it
            } else {
                reach[c]
            };
            if back {
                return Err(Block {
                    warning: format!(
                        "Moving to '{name}' would take the customer back before checkpoint '{}' they already passed; not moved there.",
                        describe(last.visit)
                    ),
                });
            }
        }
        if self.earlier.iter().any(|&c| c == target || reach[c]) {
            return Err(Block {
                warning: format!(
                    "Moving to '{name}' would take the customer back before an earlier checkpoint they already passed; not moved there.",
                ),
            });
        }
        Ok(())
    }

    /// May the branch chosen at `fork` be re-decided now? Not when the fork comes
    /// before (or is) a checkpoint the customer passed: re-deciding it would undo a
    /// committed action.
    pub fn check_fork(&self, fork: usize) -> Result<(), Block> {
        let Some(last) = &self.last else {
            return Ok(());
        };
        self.check_gone(last)?;
        let reach = self.current.reachable_from(fork);
        let upstream = |c: &usize| *c == fork || reach[*c];
        if last.locations.iter().any(upstream) || self.earlier.iter().any(upstream) {
            return Err(Block {
                warning: format!(
                    "The new decision at '{}' comes before checkpoint '{}' the customer already passed; it is not re-decided.",
                    self.current.step(fork).name,
                    describe(last.visit)
                ),
            });
        }
        Ok(())
    }

    fn check_gone(&self, last: &LastCheckpoint<'_>) -> Result<(), Block> {
        if last.locations.is_empty() {
            return Err(Block {
                warning: format!(
                    "The customer passed checkpoint '{}', which no longer exists in version {}; not moved.",
                    describe(last.visit),
                    self.current.version()
                ),
            });
        }
        Ok(())
    }
}

fn describe(visit: &StepVisit) -> &str {
    visit
        .checkpoint_description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(&visit.step_name)
}

/// Where the visited step is in the target version: by id when the content there
/// is the same (or unknown), plus every step with its content hash.
fn locate(ctx: &ReconcileContext<'_>, visit: &StepVisit) -> Vec<usize> {
    let current = ctx.current;
    let by_id = current.index_of(visit.step_id);
    let known_def = ctx
        .session_version
        .into_iter()
        .chain(ctx.chain.iter().map(|l| l.to))
        .find_map(|d| d.index_of(visit.step_id).map(|i| d.hash(i)));
    let Some(hash) = known_def else {
        return by_id.into_iter().collect();
    };
    if let Some(i) = by_id
        && current.hash(i) == hash
    {
        return vec![i];
    }
    let mut out: Vec<usize> = by_id.into_iter().collect();
    for &j in current.steps_with_hash(hash) {
        if !out.contains(&j) {
            out.push(j);
        }
    }
    out
}
