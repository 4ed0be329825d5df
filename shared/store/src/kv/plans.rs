//! Scenarios and plans: create, list, policies, lifecycle transitions, activation.

use std::collections::BTreeMap;

use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationPlanSummaryItem, PlanStatus, ScenarioVersion,
};
use uuid::Uuid;

use crate::codec::{decode_token, encode_token};

use super::keys::{
    deploying_key, plan_header_key, plan_index_key, plan_index_prefix, plan_key, plan_summary_key,
    plan_target_key, prefix_end, scenario_head_key, scenario_version_key, slot_key,
};
use super::outbox::record_change;
use super::retention::expire_deployed_plan;
use super::values::{conflict, decode_value, load, save};
use super::{KvRead, KvWrite};
use crate::plan_header;
use crate::semantics::{plan_matches, plan_query_id};
use crate::{
    ActivationError, PlanActivation, PlanPage, PlanQuery, PlanTransition, Retention, ScenarioHead,
    StoreError, StoreResult,
};

pub(super) fn create_scenario(kv: &mut dyn KvWrite, s: &ScenarioVersion) -> StoreResult<()> {
    let head = scenario_head_key(s.tenant_id, s.id);
    if kv.get(&head)?.is_some() {
        return Err(conflict("scenario already exists"));
    }
    save(
        kv,
        &head,
        &ScenarioHead {
            current_version: s.version,
            rollout: None,
        },
    )?;
    save(kv, &scenario_version_key(s.tenant_id, s.id, s.version), s)
}

pub(super) fn get_scenario_head(
    kv: &dyn KvRead,
    t: Uuid,
    sid: Uuid,
) -> StoreResult<Option<ScenarioHead>> {
    load(kv, &scenario_head_key(t, sid))
}

pub(super) fn get_current_scenario(
    kv: &dyn KvRead,
    t: Uuid,
    sid: Uuid,
) -> StoreResult<Option<ScenarioVersion>> {
    let Some(head) = load::<ScenarioHead>(kv, &scenario_head_key(t, sid))? else {
        return Ok(None);
    };
    load(kv, &scenario_version_key(t, sid, head.current_version))
}

pub(super) fn create_plan(
    kv: &mut dyn KvWrite,
    plan: &MigrationPlan,
    target: &ScenarioVersion,
) -> StoreResult<()> {
    let t = plan.tenant_id;
    let slot = slot_key(plan);
    if kv.get(&slot)?.is_some() {
        return Err(conflict("a live plan exists for this version pair"));
    }
    if kv.get(&plan_key(t, plan.id))?.is_some() {
        return Err(conflict("plan id already exists"));
    }
    save(kv, &slot, &plan.id)?;
    record_change(kv, t, plan.id, plan.revision, true)?;
    save(kv, &plan_key(t, plan.id), plan)?;
    save(kv, &plan_header_key(t, plan.id), &plan_header(plan))?;
    save(kv, &plan_summary_key(t, plan.id), &plan.summary)?;
    save(kv, &plan_target_key(t, plan.id), target)?;
    save(
        kv,
        &plan_index_key(plan),
        &MigrationPlanSummaryItem::of(plan),
    )
}

/// Store a changed plan and keep its listing entry and slot in step.
pub(super) fn store_plan(kv: &mut dyn KvWrite, plan: &MigrationPlan) -> StoreResult<()> {
    record_change(kv, plan.tenant_id, plan.id, plan.revision, false)?;
    let registry = deploying_key(plan.tenant_id, plan.id);
    if plan.status.walks_chains() {
        kv.put(&registry, Vec::new())?;
    } else {
        kv.delete(&registry)?;
    }
    save(kv, &plan_key(plan.tenant_id, plan.id), plan)?;
    save(
        kv,
        &plan_header_key(plan.tenant_id, plan.id),
        &plan_header(plan),
    )?;
    save(
        kv,
        &plan_index_key(plan),
        &MigrationPlanSummaryItem::of(plan),
    )?;
    if !plan.status.is_live() {
        let slot = slot_key(plan);
        if load::<Uuid>(kv, &slot)? == Some(plan.id) {
            kv.delete(&slot)?;
        }
    }
    Ok(())
}

pub(super) fn list_plans(kv: &dyn KvRead, q: &PlanQuery) -> StoreResult<PlanPage> {
    let query_id = plan_query_id(q);
    let prefix = plan_index_prefix(q.tenant);
    let all_end = prefix_end(&prefix);
    let end = match &q.next_token {
        Some(token) => {
            let key = decode_token(token, &query_id)?;
            if !key.starts_with(&prefix) {
                return Err(StoreError::InvalidToken);
            }
            key
        }
        None => all_end.clone(),
    };
    let mut total = 0u64;
    for (_, bytes) in kv.range(&prefix, &all_end, true, usize::MAX)? {
        let item: MigrationPlanSummaryItem = decode_value(&bytes)?;
        if plan_matches(q, &item) {
            total += 1;
        }
    }
    let mut plans = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, bytes) in kv.range(&prefix, &end, true, usize::MAX)? {
        let item: MigrationPlanSummaryItem = decode_value(&bytes)?;
        if !plan_matches(q, &item) {
            continue;
        }
        if plans.len() == q.limit {
            more = true;
            break;
        }
        plans.push(item);
        last_key = Some(key);
    }
    let next_token = match (more, last_key) {
        (true, Some(key)) => Some(encode_token(&key, &query_id)),
        _ => None,
    };
    Ok(PlanPage {
        plans,
        total,
        next_token,
    })
}

pub(super) fn update_plan_policies(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    expected_revision: u64,
    policies: &BTreeMap<String, AnchorMigrationPolicy>,
) -> StoreResult<MigrationPlan> {
    let mut plan: MigrationPlan =
        load(kv, &plan_key(t, pid))?.ok_or_else(|| conflict("plan not found"))?;
    if plan.status != PlanStatus::Pending || plan.revision != expected_revision {
        return Err(conflict("plan is not pending at the expected revision"));
    }
    plan.anchor_policies = policies.clone();
    plan.revision += 1;
    store_plan(kv, &plan)?;
    Ok(plan)
}

pub(super) fn transition_plan(
    kv: &mut dyn KvWrite,
    transition: &PlanTransition,
    retention: Retention,
) -> StoreResult<MigrationPlan> {
    let change = &transition.change;
    let mut plan: MigrationPlan = load(kv, &plan_key(transition.tenant, transition.plan_id))?
        .ok_or_else(|| conflict("plan not found"))?;
    if plan.status != change.from || plan.revision != transition.expected_revision {
        return Err(conflict("plan changed concurrently"));
    }
    if let Some(ramp) = &transition.rollout {
        move_rollout(kv, transition.tenant, transition.plan_id, ramp)?;
    }
    change.apply(&mut plan);
    store_plan(kv, &plan)?;
    if change.to == PlanStatus::Deployed {
        let until = Retention::until(change.at, retention.deployed_plan_days);
        expire_deployed_plan(kv, &plan, until)?;
    }
    Ok(plan)
}

pub(super) fn activate_plan(
    kv: &mut dyn KvWrite,
    a: &PlanActivation,
) -> Result<MigrationPlan, ActivationError> {
    let t = a.tenant;
    let mut plan: MigrationPlan =
        load(kv, &plan_key(t, a.plan_id))?.ok_or(ActivationError::PlanChanged)?;
    if plan.status != PlanStatus::Approved || plan.revision != a.expected_revision {
        return Err(ActivationError::PlanChanged);
    }
    let head_key = scenario_head_key(t, a.scenario_id);
    let head: Option<ScenarioHead> = load(kv, &head_key)?;
    // Another partial rollout leaves this version: this plan cannot deploy beside it.
    if !head.is_some_and(|h| h.current_version == a.from_version && h.rollout.is_none()) {
        return Err(ActivationError::ScenarioMoved);
    }
    plan.status = PlanStatus::Deploying;
    plan.revision += 1;
    plan.guard = a.guard.clone();
    plan.percent = (a.percent < 100).then_some(a.percent);
    a.record(plan.revision).append_to(&mut plan.transitions);
    store_plan(kv, &plan)?;
    let head = ScenarioHead::rolled_out(a.from_version, a.target.version, a.plan_id, a.percent);
    save(kv, &head_key, &head)?;
    save(
        kv,
        &scenario_version_key(t, a.scenario_id, a.target.version),
        &a.target,
    )?;
    Ok(plan)
}

/// A ramp's change to the scenario ([`crate::RolloutMove`]): only while the
/// scenario is at the plan's from-version with this plan's partial rollout.
fn move_rollout(
    kv: &mut dyn KvWrite,
    t: Uuid,
    plan_id: Uuid,
    ramp: &crate::RolloutMove,
) -> StoreResult<()> {
    let head_key = scenario_head_key(t, ramp.scenario_id);
    let head: Option<ScenarioHead> = load(kv, &head_key)?;
    if ramp.withdraw {
        let Some(mut head) = head else {
            return Ok(());
        };
        if head.rollout.as_ref().is_some_and(|r| r.plan_id == plan_id) {
            head.rollout = None;
        } else if head.current_version == ramp.to_version && head.rollout.is_none() {
            head.current_version = ramp.from_version;
        } else {
            // The scenario moved on since: left as it is.
            return Ok(());
        }
        return save(kv, &head_key, &head);
    }
    let ours = head.is_some_and(|h| {
        h.current_version == ramp.from_version && h.rollout.is_some_and(|r| r.plan_id == plan_id)
    });
    if !ours {
        return Err(conflict("the scenario has no partial rollout of this plan"));
    }
    let head = ScenarioHead::rolled_out(ramp.from_version, ramp.to_version, plan_id, ramp.percent);
    save(kv, &head_key, &head)
}
