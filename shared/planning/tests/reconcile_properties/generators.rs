//! Generators, seeded so that a failing case reproduces from its seed: random
//! scenarios with cycles, mutated next versions, plans drawn from the real graphs
//! (not computed by the diff), sessions that walked randomly, known fields.

use std::collections::{BTreeMap, HashSet};

use chrono::Duration;
use serde_json::json;
use uuid::Uuid;

use planning::hash::step_content_hash;
use planning::model::*;
use planning::testkit::Rng;

use crate::support::now;

pub(super) const FIELDS: &[&str] = &["email", "age", "country", "phone", "order_id"];
pub(super) const CONDITIONS: &[(&str, &[&str])] = &[
    ("age >= 18", &["age"]),
    ("age < 18", &["age"]),
    ("country == 'FR'", &["country"]),
    ("size(order_id) > 3", &["order_id"]),
    ("", &[]),
    ("customer seems upset", &[]),
];

pub(super) fn new_step(rng: &mut Rng, tag: &str) -> StepInput {
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

pub(super) fn transition(rng: &mut Rng, to: Uuid) -> TransitionInput {
    let (text, fields) = CONDITIONS[rng.below(CONDITIONS.len())];
    TransitionInput {
        to_step_id: to,
        condition_text: text.to_string(),
        priority: rng.below(3) as i64,
        condition_fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

/// A mostly-forward graph with forks and some back edges (cycles).
pub(super) fn random_scenario(rng: &mut Rng, n: usize) -> ScenarioInput {
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
pub(super) fn mutate(rng: &mut Rng, base: &ScenarioInput, version: i64) -> ScenarioInput {
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

pub(super) fn can_reach(def: &ScenarioInput, to: Uuid, from: Uuid) -> bool {
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
pub(super) fn random_plan(rng: &mut Rng, v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
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
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    }
}

/// A session that walked randomly through `def` from its entry.
pub(super) fn random_session(
    rng: &mut Rng,
    def: &ScenarioInput,
    plan: Option<&MigrationPlan>,
) -> Session {
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

pub(super) fn random_known(rng: &mut Rng) -> BTreeMap<String, KnownField> {
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

pub(super) fn value_for(rng: &mut Rng, field: &str) -> serde_json::Value {
    match field {
        "age" => json!([10, 17, 18, 40][rng.below(4)]),
        "country" => json!(["FR", "DE"][rng.below(2)]),
        _ => json!(format!("{field}-{}", rng.below(100))),
    }
}
