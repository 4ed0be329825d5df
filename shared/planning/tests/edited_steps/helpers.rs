//! What the edited-step tests share: a deployed plan, the flag marking sets, a
//! session, a decision over a chain, and the worked example's two versions (the
//! terms step reworded in place).

use std::collections::BTreeMap;

use chrono::Duration;
use uuid::Uuid;

use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{Decision, PlanLink, PreparedPlan, PreparedScenario, ReconcileContext};
use planning::testkit::{scenario, step};

use crate::support::now;

pub(super) fn deployed(
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    computed: PlanComputation,
) -> MigrationPlan {
    MigrationPlan {
        id: Uuid::from_u128(0xabc0 + v2.version as u128),
        tenant_id: Uuid::nil(),
        scenario_id: Uuid::nil(),
        scenario_name: v2.name.clone(),
        from_version: v1.version,
        to_version: v2.version,
        scenario_checksum_v1: computed.scenario_checksum_v1,
        scenario_checksum_v2: computed.scenario_checksum_v2,
        transformation_map: computed.transformation_map,
        anchor_policies: computed.anchor_policies,
        summary: computed.summary,
        status: PlanStatus::Deployed,
        created_at: now(),
        created_by: None,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: Some(now()),
        expires_at: None,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    }
}

pub(super) fn plan_of(v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
    deployed(v1, v2, compute_plan(v1, v2, &SessionCounts::new()))
}

/// The flag marking sets for a session at `step` (as `api::marking::chains_of`:
/// an anchor's chain carries its hash, a deleted node's its `nearest_anchor_hash`).
pub(super) fn marking_flag(plan: &MigrationPlan, step: Uuid) -> Option<PendingMigration> {
    let map = &plan.transformation_map;
    let hash = map
        .anchors
        .iter()
        .find(|a| a.anchor_node_id_v1 == step)
        .map(|a| a.anchor_content_hash.clone())
        .or_else(|| {
            map.deleted_nodes
                .iter()
                .find(|d| d.node_id_v1 == step)
                .map(|d| d.nearest_anchor_hash.clone().unwrap_or_default())
        })?;
    Some(PendingMigration {
        migration_plan_id: plan.id,
        target_version: plan.to_version,
        anchor_content_hash: hash,
        from_step_id: step,
        marked_at: now() - Duration::hours(1),
    })
}

/// A session of `def` sitting at `at`, having visited `history` (names or ids).
pub(super) fn session_at(def: &ScenarioInput, at: Uuid, history: &[Uuid]) -> Session {
    let visits = history
        .iter()
        .filter_map(|id| def.steps.iter().find(|s| s.id == *id))
        .map(|s| StepVisit {
            step_id: s.id,
            step_name: s.name.clone(),
            visited_at: now() - Duration::hours(5),
            is_checkpoint: s.is_checkpoint,
            checkpoint_description: s.checkpoint_description.clone(),
        })
        .collect();
    Session {
        session_id: "s".into(),
        tenant_id: Uuid::nil(),
        channel: "whatsapp".into(),
        customer_id: None,
        active_scenario_id: Uuid::nil(),
        active_scenario_version: def.version,
        active_step_id: at,
        scenario_checksum: None,
        step_history: visits,
        variables: BTreeMap::new(),
        pending_migration: None,
        pinned_version: None,
        created_at: now() - Duration::days(2),
        updated_at: now() - Duration::hours(1),
        revision: 0,
    }
}

/// Decide over a chain `defs[0] → … → defs[last]` with `plans[i]` between.
pub(super) fn decide_chain(
    defs: &[ScenarioInput],
    plans: &[MigrationPlan],
    session: &Session,
    known: &BTreeMap<String, KnownField>,
) -> Decision {
    let prepared: Vec<PreparedScenario> = defs.iter().cloned().map(PreparedScenario::new).collect();
    let prepared_plans: Vec<PreparedPlan> = plans.iter().cloned().map(PreparedPlan::new).collect();
    let chain: Vec<PlanLink<'_>> = prepared_plans
        .iter()
        .zip(&prepared[1..])
        .map(|(plan, to)| PlanLink { plan, to })
        .collect();
    planning::reconcile::decide(&ReconcileContext {
        session,
        current: &prepared[prepared.len() - 1],
        chain: &chain,
        session_version: prepared.first(),
        known_fields: known,
        now: now(),
    })
}

/// A flagged session at `at` (with `history`) migrating over one plan.
pub(super) fn decide_flagged(
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    plan: &MigrationPlan,
    at: Uuid,
    history: &[Uuid],
) -> Decision {
    let mut s = session_at(v1, at, history);
    s.pending_migration = marking_flag(plan, at);
    decide_chain(
        &[v1.clone(), v2.clone()],
        std::slice::from_ref(plan),
        &s,
        &BTreeMap::new(),
    )
}

pub(super) fn landed_on(d: &Decision) -> Option<Uuid> {
    d.new_position.as_ref().map(|p| p.step_id)
}

/// Welcome → Explain terms → Sign up → Done.
pub(super) fn terms(version: i64, description: &str) -> ScenarioInput {
    scenario(
        version,
        vec![
            step("Welcome").to("Explain terms"),
            step("Explain terms").description(description).to("Sign up"),
            step("Sign up").collects(&["email"]).to("Done"),
            step("Done").terminal(),
        ],
    )
}

pub(super) fn full_stop() -> (ScenarioInput, ScenarioInput) {
    (
        terms(1, "Read the terms to the customer"),
        terms(2, "Read the terms to the customer."),
    )
}
