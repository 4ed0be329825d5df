//! Lifecycle events: what a plan's history says to the outside world.
//!
//! A plan's `transitions` are written in the same conditional write as each
//! status change, so they already are the durable record of what happened; the
//! events are computed from them (and from the plan's creation and its drain)
//! by whoever sends them, as often as needed. Each event has a stable
//! `event_id`, the same however many times it is sent, which is what lets a
//! consumer drop repeats: delivery is at least once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{MigrationPlan, PlanStatus, TransitionRecord};

/// The `source` every event carries.
pub const EVENT_SOURCE: &str = "focal.migrations";

/// The revision a plan is created at (its "created" event says so).
pub const CREATED_REVISION: u64 = 1;

/// One lifecycle event, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// What happened, in words (EventBridge's `detail-type`): one per kind of
    /// change, see [`detail_type`].
    pub detail_type: String,
    pub detail: EventDetail,
}

/// The body of an event (EventBridge's `detail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDetail {
    /// `{plan}:{revision}` for a status change, `{plan}:created` and
    /// `{plan}:drained:{revision}` (the plan's revision when it drained): the
    /// same for every send.
    pub event_id: String,
    pub tenant_id: Uuid,
    pub plan_id: Uuid,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub from_version: i64,
    pub to_version: i64,
    /// The status before the change (absent for the creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PlanStatus>,
    /// The status the change led to (for a drain: the plan's status).
    pub to: PlanStatus,
    /// The plan's revision after the change.
    pub revision: u64,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// The plan's counters when the event was sent (not when the change was
    /// made: the counters keep moving and are not versioned).
    pub counters: EventCounters,
}

/// The rollout's counters an event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounters {
    pub sessions_marked: u64,
    pub migrations_applied: u64,
    pub migrations_pending: u64,
    pub flags_withdrawn: u64,
}

/// The `detail-type` of a change from `from` to `to`.
pub fn detail_type(from: PlanStatus, to: PlanStatus) -> &'static str {
    use PlanStatus::*;
    match (from, to) {
        (_, Approved) => "Plan Approved",
        (_, Rejected) => "Plan Rejected",
        (_, Superseded) => "Plan Superseded",
        (_, Expired) => "Plan Expired",
        (_, Paused) => "Rollout Paused",
        (_, Halted) => "Rollout Halted",
        (_, Withdrawing) => "Withdrawal Started",
        (_, Withdrawn) => "Plan Withdrawn",
        (Paused | Halted, _) => "Rollout Resumed",
        (Approved, Deploying) => "Deploy Started",
        (Deployed, Deploying) => "Rollout Ramped",
        (Deploying, Deployed) => "Marking Finished",
        _ => "Plan Status Changed",
    }
}

/// The `detail-type` of a plan's creation.
pub const CREATED: &str = "Plan Created";
/// The `detail-type` of a deployed plan with no flagged session left to migrate.
pub const DRAINED: &str = "Deployment Drained";

/// The events of `plan` not yet sent: its creation when nothing was
/// (`published` is 0), then each kept history record with a revision above
/// `published`, oldest first. Records the bounded history already dropped are
/// not recovered (the history keeps the newest fifty).
pub fn unpublished(
    plan: &MigrationPlan,
    published: u64,
    counters: EventCounters,
) -> Vec<LifecycleEvent> {
    let mut events = Vec::new();
    if published == 0 {
        let mut created = detail(plan, None, PlanStatus::Pending, CREATED_REVISION, counters)
            .at(plan.created_at)
            .by(plan.created_by.clone());
        created.event_id = format!("{}:created", plan.id);
        events.push(LifecycleEvent {
            detail_type: CREATED.to_owned(),
            detail: created,
        });
    }
    let mut records: Vec<&TransitionRecord> = plan
        .transitions
        .iter()
        .filter(|r| r.revision > published)
        .collect();
    records.sort_by_key(|r| r.revision);
    events.extend(records.into_iter().map(|r| LifecycleEvent {
        detail_type: detail_type(r.from, r.to).to_owned(),
        detail: EventDetail {
            by: r.by.clone(),
            reason: r.reason.clone(),
            percent: r.percent,
            ..detail(plan, Some(r.from), r.to, r.revision, counters).at(r.at)
        },
    }));
    events
}

/// Whether a plan should announce that it has drained: deployed, with no
/// flagged session left to migrate.
pub fn has_drained(plan: &MigrationPlan, counters: EventCounters) -> bool {
    plan.status == PlanStatus::Deployed && counters.migrations_pending == 0
}

/// The "drained" event of `plan` at its current revision, seen at `now`.
pub fn drained(
    plan: &MigrationPlan,
    counters: EventCounters,
    now: DateTime<Utc>,
) -> LifecycleEvent {
    let mut detail = detail(plan, None, plan.status, plan.revision, counters).at(now);
    detail.event_id = format!("{}:drained:{}", plan.id, plan.revision);
    LifecycleEvent {
        detail_type: DRAINED.to_owned(),
        detail,
    }
}

fn detail(
    plan: &MigrationPlan,
    from: Option<PlanStatus>,
    to: PlanStatus,
    revision: u64,
    counters: EventCounters,
) -> EventDetail {
    EventDetail {
        event_id: format!("{}:{revision}", plan.id),
        tenant_id: plan.tenant_id,
        plan_id: plan.id,
        scenario_id: plan.scenario_id,
        scenario_name: plan.scenario_name.clone(),
        from_version: plan.from_version,
        to_version: plan.to_version,
        from,
        to,
        revision,
        at: plan.created_at,
        by: None,
        reason: None,
        percent: None,
        counters,
    }
}

impl EventDetail {
    fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }
    fn by(mut self, by: Option<String>) -> Self {
        self.by = by;
        self
    }
}

#[cfg(test)]
mod tests;
