//! Marking eligibility: which V1 steps a deployment walks, and which
//! sessions found there it flags with `pending_migration`.
//!
//! The marking worker reads the sessions of a step page by page and writes the
//! flags; the decisions are here, pure, so that they can be tested without a store.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Session, TransformationMap};
use crate::scope::CompiledScope;

/// A V1 step whose sessions a deployment marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedStep {
    pub step_id: Uuid,
    /// The anchor (or edited step) whose policy applies and whose key the flag
    /// carries: the step's own anchor, or a deleted step's nearest anchor. `None`
    /// for a deleted step with no anchor at all: its sessions are still flagged,
    /// and reconcile exits them gracefully.
    pub anchor_content_hash: Option<String>,
}

/// The steps a plan marks: every anchor's V1 step, then every deleted step of V1
/// (edited steps among them, keyed by their own policy key), in map order.
pub fn marked_steps(map: &TransformationMap) -> Vec<MarkedStep> {
    let anchors = map.anchors.iter().map(|a| MarkedStep {
        step_id: a.anchor_node_id_v1,
        anchor_content_hash: Some(a.anchor_content_hash.clone()),
    });
    let deleted = map.deleted_nodes.iter().map(|d| MarkedStep {
        step_id: d.node_id_v1,
        anchor_content_hash: d.nearest_anchor_hash.clone(),
    });
    anchors.chain(deleted).collect()
}

/// What marking does with one session found at a step the plan marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkDecision {
    /// Flag it with this plan's `pending_migration`.
    Mark,
    /// It carries this plan's flag already (an earlier attempt, or a concurrent
    /// delivery of the same page, flagged it): it counts as marked and is not
    /// written again.
    AlreadyMarked,
    /// It carries another plan's flag: left to that plan.
    FlaggedByAnotherPlan,
    /// Pinned to its version by reconcile (a policy kept it there): never
    /// migrated again, so never flagged.
    Pinned,
    /// Outside the anchor policy's scope filter. A custom condition that cannot be
    /// evaluated for the session counts as outside (see [`CompiledScope::includes`]).
    OutOfScope,
}

/// The decision for `session`, sitting at the step named `step_name`, under plan
/// `plan_id` whose policy for the step has the compiled `scope` (`None`: the step
/// has no policy, every session is in scope). The flags come first: a flagged or
/// pinned session is never evaluated against the scope.
pub fn marking_decision(
    session: &Session,
    plan_id: Uuid,
    scope: Option<&CompiledScope<'_>>,
    step_name: &str,
    now: DateTime<Utc>,
) -> MarkDecision {
    match &session.pending_migration {
        Some(flag) if flag.migration_plan_id == plan_id => MarkDecision::AlreadyMarked,
        Some(_) => MarkDecision::FlaggedByAnotherPlan,
        None if session.pinned_version.is_some() => MarkDecision::Pinned,
        None => {
            if scope.is_none_or(|s| s.includes(session, step_name, now)) {
                MarkDecision::Mark
            } else {
                MarkDecision::OutOfScope
            }
        }
    }
}

/// Whether `session` carries plan `plan_id`'s flag: how marking counts a session
/// whose conditional mark did not hold (another delivery of the page flagged it
/// first, or it moved on).
pub fn is_flagged_by(session: &Session, plan_id: Uuid) -> bool {
    session
        .pending_migration
        .as_ref()
        .is_some_and(|flag| flag.migration_plan_id == plan_id)
}

#[cfg(test)]
#[path = "eligibility_tests.rs"]
mod tests;
