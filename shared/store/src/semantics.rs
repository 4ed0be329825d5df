//! Rules both backend families apply the same way: what a query token is bound
//! to, the counters of an applied
//! migration, and a reconcile write's precondition and fields. The key-value
//! store applies them to values in a transaction; DynamoDB states the same in
//! conditions and update expressions and applies them to what it returns.

use planning::{MigrationPlanSummaryItem, MigrationScenario, Session};

use crate::{EventQuery, PlanQuery, PlanStats, SessionChange, SessionExpectation, StepQuery};

pub(crate) fn plan_query_id(q: &PlanQuery) -> String {
    format!(
        "plans|{}|{}|{}",
        q.tenant,
        q.scenario_id.map(|s| s.to_string()).unwrap_or_default(),
        q.status.map(|s| s.as_str()).unwrap_or_default()
    )
}

pub(crate) fn plan_matches(q: &PlanQuery, item: &MigrationPlanSummaryItem) -> bool {
    q.scenario_id.is_none_or(|s| s == item.scenario_id) && q.status.is_none_or(|s| s == item.status)
}

pub(crate) fn step_query_id(q: &StepQuery) -> String {
    format!(
        "steps|{}|{}|{}|{}|{}",
        q.tenant, q.scenario_id, q.version, q.step_id, q.shard
    )
}

pub(crate) fn event_query_id(q: &EventQuery) -> String {
    format!("events|{}|{}", q.tenant, q.plan_id)
}

/// Add one applied migration to the counters.
pub(crate) fn count_migration(stats: &mut PlanStats, change: &crate::AppliedMigration) {
    stats.migrations_applied += 1;
    if change.was_flagged {
        stats.flagged_applied += 1;
    }
    match change.event.migration_scenario {
        Some(MigrationScenario::CleanGraft) => stats.clean_graft += 1,
        Some(MigrationScenario::GapFill) => stats.gap_fill += 1,
        Some(MigrationScenario::ReRoute) => stats.re_route += 1,
        None => {}
    }
    if change.event.blocked_by_checkpoint {
        stats.checkpoint_blocks += 1;
    }
    if change.event.action == planning::ReconciliationAction::ExitScenario {
        stats.exits += 1;
    }
    let at = change.event.at;
    stats.last_migration_at = Some(stats.last_migration_at.map_or(at, |last| last.max(at)));
}

/// Whether a session satisfies a reconcile write's precondition.
pub(crate) fn session_matches(session: &Session, expect: &SessionExpectation) -> bool {
    match expect {
        SessionExpectation::FlaggedBy(plan_id) => session
            .pending_migration
            .as_ref()
            .is_some_and(|p| p.migration_plan_id == *plan_id),
        SessionExpectation::UnflaggedAt { version } => {
            session.pending_migration.is_none()
                && session.pinned_version.is_none()
                && session.active_scenario_version == *version
        }
    }
}

/// Apply a reconcile write to a session (after its precondition held).
pub(crate) fn apply_session_fields(session: &mut Session, change: &SessionChange) {
    if let Some(pos) = &change.new_position {
        session.active_scenario_version = pos.version;
        session.active_step_id = pos.step_id;
        session.scenario_checksum = Some(pos.checksum.clone());
    }
    if let Some(pin) = change.pin_version {
        session.pinned_version = Some(pin);
    }
    if change.clear_flag {
        session.pending_migration = None;
    }
    for (k, v) in &change.set_variables {
        session.variables.insert(k.clone(), v.clone());
    }
    session.updated_at = change.at;
    session.revision += 1;
}
