//! A generated world (versions, plans between them, a session and its known
//! fields), what the endpoint writes for a decision, and the checkpoint invariant
//! checked on a decision.

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use planning::hash::step_content_hash;
use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{
    Decision, PlanLink, PreparedPlan, PreparedScenario, ReconcileContext, decide,
};
use planning::testkit::Rng;

use crate::support::now;

use super::generators::*;

pub(super) struct World {
    pub(super) versions: Vec<PreparedScenario>,
    pub(super) plans: Vec<PreparedPlan>,
    pub(super) session: Session,
    pub(super) known: BTreeMap<String, KnownField>,
}

impl World {
    /// `links` plans from version 1 to version `links + 1`; the session is on v1.
    pub(super) fn generate(seed: u64, size: usize, links: usize) -> World {
        Self::build(seed, size, links, false)
    }

    /// The same, with plans computed by the real diff (`compute_plan`) and random
    /// policies on top.
    pub(super) fn generate_computed(seed: u64, size: usize, links: usize) -> World {
        Self::build(seed, size, links, true)
    }

    fn build(seed: u64, size: usize, links: usize, computed: bool) -> World {
        let mut rng = Rng::new(seed);
        let mut defs = vec![random_scenario(&mut rng, size)];
        for v in 0..links {
            let next = mutate(&mut rng, &defs[v], v as i64 + 2);
            defs.push(next);
        }
        let plans: Vec<MigrationPlan> = (0..links)
            .map(|i| {
                let mut plan = random_plan(&mut rng, &defs[i], &defs[i + 1]);
                if computed {
                    let real = compute_plan(&defs[i], &defs[i + 1], &SessionCounts::new());
                    plan.transformation_map = real.transformation_map;
                    plan.anchor_policies = real.anchor_policies;
                    for p in plan.anchor_policies.values_mut() {
                        p.update_downstream = !rng.one_in(10);
                        if rng.one_in(8) {
                            p.force_scenario = Some(MigrationScenario::GapFill);
                        }
                        // Edited steps: sometimes the original behaviour.
                        if p.edited_step_behavior.is_some() && rng.one_in(3) {
                            p.edited_step_behavior =
                                Some(EditedStepBehavior::RelocateToNearestAnchor);
                        }
                    }
                }
                plan
            })
            .collect();
        let session = random_session(&mut rng, &defs[0], plans.first());
        let known = random_known(&mut rng);
        World {
            versions: defs.into_iter().map(PreparedScenario::new).collect(),
            plans: plans.into_iter().map(PreparedPlan::new).collect(),
            session,
            known,
        }
    }

    pub(super) fn chain(&self) -> Vec<PlanLink<'_>> {
        self.plans
            .iter()
            .zip(&self.versions[1..])
            .map(|(plan, to)| PlanLink { plan, to })
            .collect()
    }

    pub(super) fn decide(&self, session: &Session) -> Decision {
        let chain = self.chain();
        decide(&ReconcileContext {
            session,
            current: self.current(),
            chain: &chain,
            session_version: self.versions.first(),
            known_fields: &self.known,
            now: now(),
        })
    }

    pub(super) fn current(&self) -> &PreparedScenario {
        &self.versions[self.versions.len() - 1]
    }
}

/// What the endpoint writes.
pub(super) fn apply(s: &Session, d: &Decision) -> Session {
    let mut s = s.clone();
    if let Some(p) = &d.new_position {
        s.active_scenario_version = p.version;
        s.active_step_id = p.step_id;
        s.scenario_checksum = Some(p.checksum.clone());
    }
    if let Some(v) = d.pin_version {
        s.pinned_version = Some(v);
    }
    if d.clear_flag {
        s.pending_migration = None;
    }
    s.variables.extend(d.set_variables.clone());
    s
}

/// Where a visited step of the session's version is in the final version: its id,
/// and every step with its content.
pub(super) fn locations(world: &World, visit: &StepVisit) -> Vec<Uuid> {
    let final_def = world.current().definition();
    let v1 = world.versions[0].definition();
    let mut out: Vec<Uuid> = final_def
        .steps
        .iter()
        .filter(|s| s.id == visit.step_id)
        .map(|s| s.id)
        .collect();
    if let Some(original) = v1.steps.iter().find(|s| s.id == visit.step_id) {
        let h = step_content_hash(original);
        for s in &final_def.steps {
            if step_content_hash(s) == h && !out.contains(&s.id) {
                out.push(s.id);
            }
        }
    }
    out
}

/// The checkpoint invariant, checked from the outside.
pub(super) fn check_checkpoints(world: &World, d: &Decision) -> Result<(), TestCaseError> {
    let s = &world.session;
    let Some(position) = &d.new_position else {
        return Ok(());
    };
    if d.result.action == ReconciliationAction::ExitScenario {
        return Ok(());
    }
    let Some(last) = s.step_history.iter().rev().find(|v| v.is_checkpoint) else {
        return Ok(());
    };
    let final_def = world.current().definition();
    let target = position.step_id;
    let at_last = locations(world, last);
    prop_assert!(
        !at_last.is_empty(),
        "moved although checkpoint {} no longer exists: {d:?}",
        last.step_name
    );
    for c in at_last {
        if c == target {
            prop_assert_eq!(
                s.active_step_id,
                last.step_id,
                "landed back on checkpoint {} already passed",
                last.step_name
            );
        } else {
            prop_assert!(
                !can_reach(final_def, c, target),
                "target {target} reaches checkpoint {}: {d:?}",
                last.step_name
            );
        }
    }
    for earlier in s.step_history.iter().filter(|v| v.is_checkpoint) {
        for c in locations(world, earlier) {
            if c != target {
                prop_assert!(
                    !can_reach(final_def, c, target),
                    "reaches earlier checkpoint"
                );
            }
        }
    }
    Ok(())
}
