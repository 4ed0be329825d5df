//! Invariants of the reconcile decision over random scenarios, plans and sessions.
//!
//! Plans here are random too (anchors, scenarios, inserted steps, forks, policies
//! drawn from the real graphs, but not computed by the diff): the decision has to
//! be safe whatever plan it is handed, so a looser plan is a stronger test.
//! Graphs have cycles; histories are random walks through the session's version.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use planning::hash::step_content_hash;
use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{
    Decision, PlanLink, PreparedPlan, PreparedScenario, ReconcileContext, decide,
};
use planning::testkit::Rng;

const FIELDS: &[&str] = &["email", "age", "country", "phone", "order_id"];
const CONDITIONS: &[(&str, &[&str])] = &[
    ("age >= 18", &["age"]),
    ("age < 18", &["age"]),
    ("country == 'FR'", &["country"]),
    ("size(order_id) > 3", &["order_id"]),
    ("", &[]),
    ("customer seems upset", &[]),
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Generators (seeded, so a failing case reproduces from its seed)
// ---------------------------------------------------------------------------

fn new_step(rng: &mut Rng, tag: &str) -> StepInput {
    let checkpoint = rng.one_in(5);
    let required = rng.one_in(8);
    StepInput {
        id: rng.uuid(),
        name: format!("Step {tag}"),
        description: None,
        transitions: Vec::new(),
        rule_ids: Vec::new(),
        collects_profile_fields: if rng.one_in(3) {
            vec![FIELDS[rng.below(FIELDS.len())].to_string()]
        } else {
            Vec::new()
        },
        is_checkpoint: checkpoint,
        checkpoint_description: checkpoint.then(|| format!("Checkpoint {tag}")),
        is_entry: false,
        is_terminal: false,
        performs_action: checkpoint || required,
        is_required_action: required,
    }
}

fn transition(rng: &mut Rng, to: Uuid) -> TransitionInput {
    let (text, fields) = CONDITIONS[rng.below(CONDITIONS.len())];
    TransitionInput {
        to_step_id: to,
        condition_text: text.to_string(),
        priority: rng.below(3) as i64,
        condition_fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

/// A mostly-forward graph with forks and some back edges (cycles).
fn random_scenario(rng: &mut Rng, n: usize) -> ScenarioInput {
    let mut steps: Vec<StepInput> = (0..n).map(|i| new_step(rng, &format!("{i}"))).collect();
    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    for i in 0..n {
        let mut out = Vec::new();
        if i + 1 < n {
            out.push(ids[i + 1]);
        }
        if rng.one_in(3) {
            let j = if rng.one_in(4) {
                rng.below(i + 1)
            } else {
                (i + 2 + rng.below(4)).min(n - 1)
            };
            if !out.contains(&ids[j]) {
                out.push(ids[j]);
            }
        }
        steps[i].transitions = if out.len() >= 2 {
            out.into_iter().map(|to| transition(rng, to)).collect()
        } else {
            out.into_iter()
                .map(|to| TransitionInput {
                    to_step_id: to,
                    condition_text: String::new(),
                    priority: 0,
                    condition_fields: Vec::new(),
                })
                .collect()
        };
        steps[i].is_terminal = steps[i].transitions.is_empty();
    }
    steps[0].is_entry = true;
    ScenarioInput {
        name: "Random flow".into(),
        description: None,
        version: 1,
        entry_step_id: ids[0],
        steps,
    }
}

/// The next version: deletions, insertions, content edits, id changes, rewiring.
fn mutate(rng: &mut Rng, base: &ScenarioInput, version: i64) -> ScenarioInput {
    let mut s = base.clone();
    s.version = version;
    let edits = 1 + rng.below(5);
    for e in 0..edits {
        let len = s.steps.len();
        match rng.below(6) {
            0 if len > 2 => {
                let d = 1 + rng.below(len - 1);
                let gone = s.steps.remove(d);
                let next = gone.transitions.first().map(|t| t.to_step_id);
                for st in &mut s.steps {
                    st.transitions
                        .retain(|t| t.to_step_id != gone.id || next.is_some());
                    for t in &mut st.transitions {
                        if t.to_step_id == gone.id
                            && let Some(n) = next
                        {
                            t.to_step_id = n;
                        }
                    }
                }
            }
            1 => {
                let u = rng.below(len);
                let mut ins = new_step(rng, &format!("v{version}-ins{e}"));
                if let Some(t) = s.steps[u].transitions.first_mut() {
                    ins.transitions.push(TransitionInput {
                        to_step_id: t.to_step_id,
                        condition_text: String::new(),
                        priority: 0,
                        condition_fields: Vec::new(),
                    });
                    t.to_step_id = ins.id;
                } else {
                    s.steps[u].transitions.push(transition(rng, ins.id));
                    ins.is_terminal = true;
                }
                // Sometimes a fork: the new step may also divert elsewhere.
                if rng.one_in(2) {
                    let other = s.steps[rng.below(len)].id;
                    if ins.transitions.iter().all(|t| t.to_step_id != other) {
                        ins.transitions.push(transition(rng, other));
                    }
                }
                s.steps.insert(u + 1, ins);
            }
            2 => {
                let i = rng.below(len);
                s.steps[i].description = Some(format!("edited in v{version}"));
            }
            3 => {
                let i = rng.below(len);
                let old = s.steps[i].id;
                let new = rng.uuid();
                s.steps[i].id = new;
                for st in &mut s.steps {
                    for t in &mut st.transitions {
                        if t.to_step_id == old {
                            t.to_step_id = new;
                        }
                    }
                }
                if s.entry_step_id == old {
                    s.entry_step_id = new;
                }
            }
            4 => {
                let u = rng.below(len);
                let v = rng.below(len);
                let to = s.steps[v].id;
                if s.steps[u].transitions.iter().all(|t| t.to_step_id != to) {
                    let t = transition(rng, to);
                    s.steps[u].transitions.push(t);
                }
            }
            _ => {
                let i = rng.below(len);
                let st = &mut s.steps[i];
                st.is_checkpoint = !st.is_checkpoint;
                st.checkpoint_description =
                    st.is_checkpoint.then(|| format!("Checkpoint v{version}"));
            }
        }
    }
    s
}

fn can_reach(def: &ScenarioInput, to: Uuid, from: Uuid) -> bool {
    let mut seen: HashSet<Uuid> = HashSet::new();
    let succ = |id: Uuid| -> Vec<Uuid> {
        def.steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.transitions.iter().map(|t| t.to_step_id).collect())
            .unwrap_or_default()
    };
    let mut stack = succ(from);
    while let Some(x) = stack.pop() {
        if x == to {
            return true;
        }
        if seen.insert(x) {
            stack.extend(succ(x));
        }
    }
    false
}

/// A plan between two versions, drawn from their graphs but not computed by the diff.
fn random_plan(rng: &mut Rng, v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
    let hash2: Vec<String> = v2.steps.iter().map(step_content_hash).collect();
    let mut anchors = Vec::new();
    let mut deleted_nodes = Vec::new();
    let new_steps: Vec<&StepInput> = v2
        .steps
        .iter()
        .filter(|s| v1.steps.iter().all(|o| o.id != s.id))
        .collect();
    for s in &v1.steps {
        let h = step_content_hash(s);
        let matches: Vec<usize> = (0..v2.steps.len()).filter(|&i| hash2[i] == h).collect();
        if let [j] = matches.as_slice() {
            let v2_step = &v2.steps[*j];
            let mut upstream = RegionChanges::default();
            for n in &new_steps {
                if can_reach(v2, v2_step.id, n.id) && rng.one_in(2) {
                    upstream.inserted_nodes.push(InsertedNode {
                        node_id: n.id,
                        node_name: n.name.clone(),
                        collects_fields: n.collects_profile_fields.clone(),
                        has_rules: false,
                        is_required_action: n.is_required_action,
                        is_checkpoint: n.is_checkpoint,
                    });
                }
            }
            for f in &v2.steps {
                if f.transitions.len() >= 2 && rng.one_in(2) {
                    upstream.new_forks.push(NewFork {
                        fork_node_id: f.id,
                        fork_node_name: f.name.clone(),
                        branches: Vec::new(),
                    });
                }
            }
            let scenario = match rng.below(3) {
                0 => MigrationScenario::CleanGraft,
                1 => MigrationScenario::GapFill,
                _ => MigrationScenario::ReRoute,
            };
            anchors.push(AnchorTransformation {
                anchor_content_hash: h,
                anchor_name: s.name.clone(),
                anchor_node_id_v1: s.id,
                anchor_node_id_v2: v2_step.id,
                upstream_changes: upstream,
                downstream_changes: RegionChanges::default(),
                migration_scenario: scenario,
            });
        } else {
            deleted_nodes.push(s);
        }
    }
    let deleted_nodes = deleted_nodes
        .into_iter()
        .map(|s| {
            let nearest =
                (!anchors.is_empty() && !rng.one_in(4)).then(|| &anchors[rng.below(anchors.len())]);
            DeletedNode {
                node_id_v1: s.id,
                node_name: s.name.clone(),
                nearest_anchor_hash: nearest.map(|a| a.anchor_content_hash.clone()),
                nearest_anchor_id_v2: nearest.map(|a| a.anchor_node_id_v2),
                edited: false,
            }
        })
        .collect();
    let anchor_policies = anchors
        .iter()
        .map(|a| {
            let force = match rng.below(8) {
                0 => Some(MigrationScenario::CleanGraft),
                1 => Some(MigrationScenario::GapFill),
                2 => Some(MigrationScenario::ReRoute),
                _ => None,
            };
            (
                a.anchor_content_hash.clone(),
                AnchorMigrationPolicy {
                    anchor_content_hash: a.anchor_content_hash.clone(),
                    anchor_name: a.anchor_name.clone(),
                    scope_filter: ScopeFilter::default(),
                    update_downstream: !rng.one_in(10),
                    force_scenario: force,
                    edited_step_behavior: None,
                },
            )
        })
        .collect();
    MigrationPlan {
        id: rng.uuid(),
        tenant_id: Uuid::nil(),
        scenario_id: Uuid::nil(),
        scenario_name: "Random flow".into(),
        from_version: v1.version,
        to_version: v2.version,
        scenario_checksum_v1: String::new(),
        scenario_checksum_v2: String::new(),
        transformation_map: TransformationMap {
            anchors,
            deleted_nodes,
            new_node_ids: new_steps.iter().map(|s| s.id).collect(),
            edited_steps: Vec::new(),
        },
        anchor_policies,
        summary: MigrationSummary::default(),
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
        revision: 1,
    }
}

/// A session that walked randomly through `def` from its entry.
fn random_session(rng: &mut Rng, def: &ScenarioInput, plan: Option<&MigrationPlan>) -> Session {
    let by_id = |id: Uuid| def.steps.iter().find(|s| s.id == id);
    let mut at = def.entry_step_id;
    let mut history = Vec::new();
    let walk = 1 + rng.below(14);
    for k in 0..walk {
        let Some(step) = by_id(at) else { break };
        history.push(StepVisit {
            step_id: step.id,
            step_name: step.name.clone(),
            visited_at: now() - Duration::hours((walk - k) as i64),
            is_checkpoint: step.is_checkpoint,
            checkpoint_description: step.checkpoint_description.clone(),
        });
        if step.transitions.is_empty() || k + 1 == walk {
            break;
        }
        at = step.transitions[rng.below(step.transitions.len())].to_step_id;
    }
    let mut variables = BTreeMap::new();
    if rng.one_in(2) {
        variables.insert("email".to_string(), json!("a@b.c"));
    }
    if rng.one_in(3) {
        variables.insert("age".to_string(), json!(10 + rng.below(40)));
    }
    let pending_migration = plan.filter(|_| rng.below(4) != 0).map(|p| {
        // As marking flags: an anchor's hash, or a deleted node's (an edited
        // step's included) nearest anchor hash.
        let map = &p.transformation_map;
        let anchor = map
            .anchors
            .iter()
            .find(|a| a.anchor_node_id_v1 == at)
            .map(|a| a.anchor_content_hash.clone())
            .or_else(|| {
                map.deleted_nodes
                    .iter()
                    .find(|d| d.node_id_v1 == at)
                    .and_then(|d| d.nearest_anchor_hash.clone())
            })
            .unwrap_or_default();
        PendingMigration {
            migration_plan_id: p.id,
            target_version: p.to_version,
            anchor_content_hash: anchor,
            from_step_id: at,
            marked_at: now() - Duration::hours(1),
        }
    });
    Session {
        session_id: "prop".into(),
        tenant_id: Uuid::nil(),
        channel: "whatsapp".into(),
        customer_id: None,
        active_scenario_id: Uuid::nil(),
        active_scenario_version: def.version,
        active_step_id: at,
        scenario_checksum: None,
        step_history: history,
        variables,
        pending_migration,
        pinned_version: None,
        created_at: now() - Duration::days(2),
        updated_at: now() - Duration::hours(1),
        revision: 0,
    }
}

fn random_known(rng: &mut Rng) -> BTreeMap<String, KnownField> {
    let mut k = BTreeMap::new();
    for f in FIELDS {
        match rng.below(5) {
            0 => {
                k.insert(f.to_string(), KnownField::Plain(value_for(rng, f)));
            }
            1 => {
                let confidence = [0.5, 0.84, 0.85, 0.9, 0.95, 0.99][rng.below(6)];
                k.insert(
                    f.to_string(),
                    KnownField::Candidate {
                        value: value_for(rng, f),
                        source: Some("extraction".into()),
                        confidence: Some(confidence),
                    },
                );
            }
            _ => {}
        }
    }
    k
}

fn value_for(rng: &mut Rng, field: &str) -> serde_json::Value {
    match field {
        "age" => json!([10, 17, 18, 40][rng.below(4)]),
        "country" => json!(["FR", "DE"][rng.below(2)]),
        _ => json!(format!("{field}-{}", rng.below(100))),
    }
}

// ---------------------------------------------------------------------------
// A generated world
// ---------------------------------------------------------------------------

struct World {
    versions: Vec<PreparedScenario>,
    plans: Vec<PreparedPlan>,
    session: Session,
    known: BTreeMap<String, KnownField>,
}

impl World {
    /// `links` plans from version 1 to version `links + 1`; the session is on v1.
    fn generate(seed: u64, size: usize, links: usize) -> World {
        Self::build(seed, size, links, false)
    }

    /// The same, with plans computed by the real diff (`compute_plan`) and random
    /// policies on top.
    fn generate_computed(seed: u64, size: usize, links: usize) -> World {
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

    fn chain(&self) -> Vec<PlanLink<'_>> {
        self.plans
            .iter()
            .zip(&self.versions[1..])
            .map(|(plan, to)| PlanLink { plan, to })
            .collect()
    }

    fn decide(&self, session: &Session) -> Decision {
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

    fn current(&self) -> &PreparedScenario {
        &self.versions[self.versions.len() - 1]
    }
}

/// What the endpoint writes.
fn apply(s: &Session, d: &Decision) -> Session {
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
fn locations(world: &World, visit: &StepVisit) -> Vec<Uuid> {
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
fn check_checkpoints(world: &World, d: &Decision) -> Result<(), TestCaseError> {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No teleport (nor in-place migration) ever lands where the customer would pass
    /// a checkpoint again, across single plans and chains.
    #[test]
    fn no_landing_upstream_of_a_passed_checkpoint(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        check_checkpoints(&world, &d)?;
    }

    /// Same inputs, same decision; applying it and deciding again changes nothing more.
    #[test]
    fn decide_is_deterministic_and_idempotent(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        prop_assert_eq!(&d, &world.decide(&world.session));
        let after = apply(&world.session, &d);
        let again = world.decide(&after);
        if d.result.action == ReconciliationAction::Collect {
            // The flag stays and nothing new is known: the same question again.
            prop_assert_eq!(again.result.action, ReconciliationAction::Collect);
            prop_assert_eq!(&again.result.collect_fields, &d.result.collect_fields);
            prop_assert!(again.set_variables.is_empty());
        } else {
            prop_assert_eq!(again.result.action, ReconciliationAction::Continue, "{:?} then {:?}", d, again);
            prop_assert!(!again.applies_migration);
            if d.writes_session() {
                prop_assert!(!again.writes_session(), "{:?} then {:?}", d, again);
            }
        }
    }

    /// Both invariants again, on plans computed by the real diff.
    #[test]
    fn computed_plans_keep_the_invariants(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate_computed(seed, size, links);
        let d = world.decide(&world.session);
        check_checkpoints(&world, &d)?;
        prop_assert_eq!(&d, &world.decide(&world.session));
        let again = world.decide(&apply(&world.session, &d));
        if d.result.action != ReconciliationAction::Collect {
            prop_assert_eq!(again.result.action, ReconciliationAction::Continue);
            prop_assert!(!again.applies_migration);
        }
        let final_def = world.current().definition();
        for f in &d.result.collect_fields {
            let needed = final_def.steps.iter().any(|s| {
                s.collects_profile_fields.contains(f)
                    || s.transitions.iter().any(|t| t.condition_fields.contains(f))
            });
            prop_assert!(needed, "asked for {f}, unused in version {}", final_def.version);
        }
    }

    /// A composite migration only asks for fields the final version still uses.
    #[test]
    fn composite_never_asks_for_a_field_the_final_version_does_not_need(seed in any::<u64>(), size in 3usize..30, links in 2usize..5) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        let final_def = world.current().definition();
        for f in &d.result.collect_fields {
            let needed = final_def.steps.iter().any(|s| {
                s.collects_profile_fields.contains(f)
                    || s.transitions.iter().any(|t| t.condition_fields.contains(f))
            });
            prop_assert!(needed, "asked for {f}, unused in version {}", final_def.version);
        }
    }
}

/// The properties above are only as good as the cases they see: make sure the
/// generator reaches every outcome, including moves of customers past checkpoints.
#[test]
fn generated_worlds_reach_every_outcome() {
    let mut by_action: BTreeMap<String, usize> = BTreeMap::new();
    let mut blocked = 0;
    let mut moved_past_checkpoint = 0;
    let mut composite_collect = 0;
    let mut diversions = 0;
    for seed in 0..4000u64 {
        let links = 1 + (seed % 3) as usize;
        let size = 3 + (seed % 25) as usize;
        let world = if seed % 2 == 0 {
            World::generate(seed, size, links)
        } else {
            World::generate_computed(seed, size, links)
        };
        let d = world.decide(&world.session);
        *by_action
            .entry(format!("{:?}", d.result.action))
            .or_default() += 1;
        if d.result.blocked_by_checkpoint {
            blocked += 1;
        }
        if d.new_position.is_some() && world.session.step_history.iter().any(|v| v.is_checkpoint) {
            moved_past_checkpoint += 1;
        }
        if d.result.teleport_reason.as_deref() == Some("re_route") {
            diversions += 1;
        }
        if links > 1 && d.result.action == ReconciliationAction::Collect {
            composite_collect += 1;
        }
    }
    eprintln!(
        "{by_action:?} blocked={blocked} moved_past_checkpoint={moved_past_checkpoint} composite_collect={composite_collect} diversions={diversions}"
    );
    for action in [
        "Continue",
        "Teleport",
        "Collect",
        "ExecuteAction",
        "ExitScenario",
    ] {
        assert!(
            by_action.get(action).copied().unwrap_or(0) >= 10,
            "{action}: {by_action:?}"
        );
    }
    assert!(blocked >= 50, "{blocked}");
    assert!(moved_past_checkpoint >= 50, "{moved_past_checkpoint}");
    assert!(composite_collect >= 20, "{composite_collect}");
    assert!(diversions >= 10, "{diversions}");
}
