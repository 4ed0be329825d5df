//! A step edited in place (same id, other content) keeps its sessions, and the
//! review says "edited", not "deleted + new".
//!
//! The rules of docs/design.md ("Edited steps are the same step"), end to end
//! through the public API: the diff,
//! the plan and its summary, the renderings, and the reconcile decision on plans
//! computed by `compute_plan`, with sessions flagged the way marking flags them
//! (a chain per anchor and per deleted node, flag = the chain's anchor hash).
//! Then properties over generated scenarios.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use planning::hash::step_content_hash;
use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{Decision, PlanLink, PreparedPlan, PreparedScenario, ReconcileContext};
use planning::testkit::{self, EditKind, Rng, conversation, name_id, scenario, step};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Helpers: a deployed plan, marking, a session, a decision
// ---------------------------------------------------------------------------

fn deployed(v1: &ScenarioInput, v2: &ScenarioInput, computed: PlanComputation) -> MigrationPlan {
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
        revision: 1,
    }
}

fn plan_of(v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
    deployed(v1, v2, compute_plan(v1, v2, &SessionCounts::new()))
}

/// The flag marking sets for a session at `step` (as `api::marking::chains_of`:
/// an anchor's chain carries its hash, a deleted node's its `nearest_anchor_hash`).
fn marking_flag(plan: &MigrationPlan, step: Uuid) -> Option<PendingMigration> {
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
fn session_at(def: &ScenarioInput, at: Uuid, history: &[Uuid]) -> Session {
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
fn decide_chain(
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
fn decide_flagged(
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

fn landed_on(d: &Decision) -> Option<Uuid> {
    d.new_position.as_ref().map(|p| p.step_id)
}

// ---------------------------------------------------------------------------
// The worked example: the terms step reworded in place
// ---------------------------------------------------------------------------

/// Welcome → Explain terms → Sign up → Done.
fn terms(version: i64, description: &str) -> ScenarioInput {
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

fn full_stop() -> (ScenarioInput, ScenarioInput) {
    (
        terms(1, "Read the terms to the customer"),
        terms(2, "Read the terms to the customer."),
    )
}

#[test]
fn a_full_stop_added_to_a_description_is_an_edit_not_a_deletion() {
    let (v1, v2) = full_stop();
    let counts: SessionCounts = [(name_id("Explain terms"), 7), (name_id("Sign up"), 2)]
        .into_iter()
        .collect();
    let plan = compute_plan(&v1, &v2, &counts);
    let map = &plan.transformation_map;

    // Anchors: untouched by the edit, apart from naming it in their regions.
    let names: Vec<&str> = map.anchors.iter().map(|a| a.anchor_name.as_str()).collect();
    assert_eq!(names, ["Welcome", "Sign up", "Done"]);
    for a in &map.anchors {
        assert_eq!(a.migration_scenario, MigrationScenario::CleanGraft);
        for r in [&a.upstream_changes, &a.downstream_changes] {
            assert!(r.inserted_nodes.is_empty(), "{}: {r:?}", a.anchor_name);
            assert!(r.removed_node_ids.is_empty(), "{}: {r:?}", a.anchor_name);
            assert!(r.new_forks.is_empty(), "{}: {r:?}", a.anchor_name);
            assert!(
                r.modified_transitions.is_empty(),
                "{}: {r:?}",
                a.anchor_name
            );
        }
    }
    let welcome = &map.anchors[0];
    assert_eq!(welcome.downstream_changes.edited_nodes.len(), 1);
    let node = &welcome.downstream_changes.edited_nodes[0];
    assert_eq!(node.node_id, name_id("Explain terms"));
    assert_eq!(node.changed, [StepAttribute::Description]);
    assert!(!node.owes_something());
    assert_eq!(map.anchors[1].upstream_changes.edited_nodes.len(), 1);

    // The edited step.
    assert_eq!(map.edited_steps.len(), 1);
    let edited = &map.edited_steps[0];
    let explain_v2 = v2.steps.iter().find(|s| s.name == "Explain terms").unwrap();
    assert_eq!(edited.key(), step_content_hash(explain_v2));
    assert_eq!(edited.content_hash_v2, step_content_hash(explain_v2));
    assert_eq!(edited.step.anchor_node_id_v1, name_id("Explain terms"));
    assert_eq!(edited.step.anchor_node_id_v2, name_id("Explain terms"));
    assert_eq!(
        edited.step.migration_scenario,
        MigrationScenario::CleanGraft
    );
    assert_eq!(
        edited.changes,
        [AttributeChange {
            attribute: StepAttribute::Description,
            before: json!("Read the terms to the customer"),
            after: json!("Read the terms to the customer."),
        }]
    );
    assert_eq!(
        edited.nearest_anchor_id_v2,
        Some(name_id("Sign up")),
        "what relocate_to_nearest_anchor would do"
    );

    // Compatibility: still a deleted node for the original's clients, landing on itself.
    assert_eq!(map.deleted_nodes.len(), 1);
    let d = &map.deleted_nodes[0];
    assert!(d.edited);
    assert_eq!(d.nearest_anchor_hash.as_deref(), Some(edited.key()));
    assert_eq!(d.nearest_anchor_id_v2, Some(name_id("Explain terms")));
    assert!(map.new_node_ids.is_empty());

    // Summary and policies.
    let s = &plan.summary;
    assert_eq!(
        (s.total_anchors, s.nodes_deleted, s.steps_edited),
        (3, 0, 1)
    );
    assert_eq!(s.sessions_by_anchor.get(edited.key()), Some(&7));
    assert_eq!(s.estimated_sessions_affected, 9);
    let policy = &plan.anchor_policies[edited.key()];
    assert_eq!(policy.edited_step_behavior, Some(EditedStepBehavior::Stay));
    assert_eq!(policy.anchor_name, "Explain terms");
    assert!(
        s.warnings.iter().all(|w| !w.message.contains("deleted")),
        "{:?}",
        s.warnings
    );
    let edit_warning = s
        .warnings
        .iter()
        .find(|w| w.message.contains("edited in place"))
        .expect("the edit is reported");
    assert_eq!(edit_warning.severity, Severity::Info);
    assert_eq!(edit_warning.affected_sessions_estimate, 7);
    assert!(edit_warning.message.contains("description"));
    assert!(edit_warning.message.contains("stay on it"));
}

#[test]
fn the_review_shows_the_edit_with_its_changed_attribute() {
    let (v1, v2) = full_stop();
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let text = planning::render::text(&plan, &v1, &v2);
    for needle in [
        "edited steps            1",
        "deleted steps           0",
        "EDITED STEPS",
        "[clean graft] Explain terms",
        "~ description: \"Read the terms to the customer\" → \"Read the terms to the customer.\"",
        "sessions there: stay on the edited step",
        "* edited: Explain terms [description]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    for absent in [
        "DELETED STEPS",
        "NEW STEPS",
        "+ inserted",
        "- removed",
        "~ transitions",
    ] {
        assert!(!text.contains(absent), "{absent:?} in\n{text}");
    }
    let mermaid = planning::render::mermaid(&plan, &v2);
    assert!(
        mermaid.contains("[\"✎ Explain terms\"]:::clean_graft"),
        "{mermaid}"
    );
    assert!(!mermaid.contains("deleted_steps"), "{mermaid}");
    assert!(!mermaid.contains("+ Explain terms"), "{mermaid}");
}

#[test]
fn sessions_at_the_edited_step_stay_on_it() {
    let (v1, v2) = full_stop();
    let plan = plan_of(&v1, &v2);
    let explain = name_id("Explain terms");
    let d = decide_flagged(&v1, &v2, &plan, explain, &[name_id("Welcome"), explain]);
    assert_eq!(d.result.action, ReconciliationAction::Continue, "{d:?}");
    assert_eq!(landed_on(&d), Some(explain));
    assert!(d.applies_migration && d.clear_flag);
    assert_eq!(d.new_position.as_ref().map(|p| p.version), Some(2));
    let reason = d.result.reason.clone().unwrap_or_default();
    assert!(reason.contains("edited in place"), "{reason}");

    // Unflagged (a late arrival): the same.
    let s = session_at(&v1, explain, &[explain]);
    let d = decide_chain(&[v1.clone(), v2.clone()], &[plan], &s, &BTreeMap::new());
    assert_eq!(landed_on(&d), Some(explain));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
}

#[test]
fn relocate_policy_restores_the_original_behaviour() {
    let (v1, v2) = full_stop();
    let mut plan = plan_of(&v1, &v2);
    let key = plan.transformation_map.edited_steps[0].key().to_string();
    plan.anchor_policies
        .get_mut(&key)
        .unwrap()
        .edited_step_behavior = Some(EditedStepBehavior::RelocateToNearestAnchor);
    let explain = name_id("Explain terms");
    let d = decide_flagged(&v1, &v2, &plan, explain, &[explain]);
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(landed_on(&d), Some(name_id("Sign up")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("deleted_step"));
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("its policy relocates")),
        "{d:?}"
    );

    // update_downstream = false on the edited step's policy pins, whatever the behaviour.
    plan.anchor_policies
        .get_mut(&key)
        .unwrap()
        .update_downstream = false;
    let d = decide_flagged(&v1, &v2, &plan, explain, &[explain]);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.pin_version, Some(1));
    assert!(d.new_position.is_none());
}

#[test]
fn the_edited_steps_scope_filter_applies() {
    let (v1, v2) = full_stop();
    let mut plan = plan_of(&v1, &v2);
    let key = plan.transformation_map.edited_steps[0].key().to_string();
    plan.anchor_policies
        .get_mut(&key)
        .unwrap()
        .scope_filter
        .exclude_channels = vec!["whatsapp".into()];
    let explain = name_id("Explain terms");
    // An unflagged session is checked against the filter now: out of scope.
    let s = session_at(&v1, explain, &[explain]);
    let d = decide_chain(&[v1.clone(), v2.clone()], &[plan], &s, &BTreeMap::new());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.new_position.is_none() && d.pin_version.is_none());
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("outside the scope")),
        "{d:?}"
    );
}

#[test]
fn renamed_with_a_new_id_is_still_deleted_plus_new() {
    let v1 = terms(1, "Read the terms");
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Terms and conditions"),
            step("Terms and conditions")
                .description("Read the terms")
                .to("Sign up"),
            step("Sign up").collects(&["email"]).to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_of(&v1, &v2);
    let map = &plan.transformation_map;
    assert!(map.edited_steps.is_empty());
    assert_eq!(map.deleted_nodes.len(), 1);
    let d = &map.deleted_nodes[0];
    assert!(!d.edited);
    assert_eq!(d.nearest_anchor_id_v2, Some(name_id("Sign up")));
    assert_eq!(map.new_node_ids, [name_id("Terms and conditions")]);
    assert_eq!(plan.summary.nodes_deleted, 1);
    let explain = name_id("Explain terms");
    let decision = decide_flagged(&v1, &v2, &plan, explain, &[explain]);
    assert_eq!(landed_on(&decision), Some(name_id("Sign up")));
    assert_eq!(
        decision.result.teleport_reason.as_deref(),
        Some("deleted_step")
    );
}

#[test]
fn transitions_through_an_edited_step_compare_as_unchanged() {
    // Welcome → Explain terms (edited) and Explain terms → Sign up: no transition
    // change anywhere; a real change next to it is still reported.
    let v1 = terms(1, "Old");
    let mut v2 = terms(2, "New");
    let welcome = v2.steps.iter_mut().find(|s| s.name == "Welcome").unwrap();
    welcome.transitions[0].priority = 3;
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let map = &plan.transformation_map;
    let welcome = &map.anchors[0];
    let kinds: Vec<_> = welcome
        .downstream_changes
        .modified_transitions
        .iter()
        .map(|t| (t.change_type, t.to_step_id_v1, t.to_step_id_v2))
        .collect();
    assert_eq!(
        kinds,
        [(
            TransitionChangeType::Modified,
            Some(name_id("Explain terms")),
            Some(name_id("Explain terms"))
        )]
    );
    assert!(
        map.edited_steps[0]
            .step
            .downstream_changes
            .modified_transitions
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// The anchor machinery on edited steps
// ---------------------------------------------------------------------------

#[test]
fn a_field_added_to_an_edited_step_is_gap_filled_downstream_only() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask contact"),
            step("Ask contact").collects(&["email"]).to("Confirm"),
            step("Confirm").to("Done"),
            step("Done").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask contact"),
            step("Ask contact")
                .collects(&["email", "phone"])
                .to("Confirm"),
            step("Confirm").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_of(&v1, &v2);
    let map = &plan.transformation_map;
    let edited = &map.edited_steps[0];
    assert_eq!(
        edited.step.migration_scenario,
        MigrationScenario::CleanGraft
    );
    let confirm = map
        .anchors
        .iter()
        .find(|a| a.anchor_name == "Confirm")
        .unwrap();
    assert_eq!(confirm.migration_scenario, MigrationScenario::GapFill);
    assert_eq!(
        confirm.upstream_changes.edited_nodes[0].added_fields,
        ["phone"]
    );
    let fields: Vec<&str> = plan
        .summary
        .fields_to_collect
        .iter()
        .map(|f| f.field_name.as_str())
        .collect();
    assert_eq!(fields, ["phone"]);

    // A session past the step gives its phone; one at the step stays there.
    let ask = name_id("Ask contact");
    let at_confirm = decide_flagged(&v1, &v2, &plan, name_id("Confirm"), &[ask]);
    assert_eq!(at_confirm.result.action, ReconciliationAction::Collect);
    assert_eq!(at_confirm.result.collect_fields, ["phone"]);
    let at_ask = decide_flagged(&v1, &v2, &plan, ask, &[ask]);
    assert_eq!(at_ask.result.action, ReconciliationAction::Continue);
    assert_eq!(landed_on(&at_ask), Some(ask));
}

#[test]
fn an_edited_step_gets_gap_fill_from_an_inserted_upstream_step() {
    let v1 = terms(1, "Old");
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask age"),
            step("Ask age").collects(&["age"]).to("Explain terms"),
            step("Explain terms").description("New").to("Sign up"),
            step("Sign up").collects(&["email"]).to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_of(&v1, &v2);
    let edited = &plan.transformation_map.edited_steps[0];
    assert_eq!(edited.step.migration_scenario, MigrationScenario::GapFill);
    let explain = name_id("Explain terms");
    let d = decide_flagged(&v1, &v2, &plan, explain, &[explain]);
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, ["age"]);
    // Once the age is known, the session continues on the edited step.
    let mut s = session_at(&v1, explain, &[explain]);
    s.pending_migration = marking_flag(&plan, explain);
    s.variables.insert("age".into(), json!(30));
    let d = decide_chain(&[v1.clone(), v2.clone()], &[plan], &s, &BTreeMap::new());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(landed_on(&d), Some(explain));
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::GapFill)
    );
}

#[test]
fn an_edited_step_is_re_routed_by_a_new_upstream_fork() {
    let v1 = terms(1, "Old");
    let v2 = scenario(
        2,
        vec![
            step("Welcome")
                .branch("Explain terms", "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18", &["age"], 0),
            step("Explain terms").description("New").to("Sign up"),
            step("Sign up").collects(&["email"]).to("Done"),
            step("Done").terminal(),
            step("Rejected").terminal(),
        ],
    );
    let plan = plan_of(&v1, &v2);
    let edited = &plan.transformation_map.edited_steps[0];
    assert_eq!(edited.step.migration_scenario, MigrationScenario::ReRoute);
    let explain = name_id("Explain terms");
    let mut s = session_at(&v1, explain, &[name_id("Welcome"), explain]);
    s.pending_migration = marking_flag(&plan, explain);
    let minor: BTreeMap<String, KnownField> =
        [("age".to_string(), KnownField::Plain(json!(16)))].into();
    let d = decide_chain(
        &[v1.clone(), v2.clone()],
        std::slice::from_ref(&plan),
        &s,
        &minor,
    );
    assert_eq!(landed_on(&d), Some(name_id("Rejected")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("re_route"));
    let adult: BTreeMap<String, KnownField> =
        [("age".to_string(), KnownField::Plain(json!(40)))].into();
    let d = decide_chain(&[v1, v2], &[plan], &s, &adult);
    assert_eq!(landed_on(&d), Some(explain));
}

#[test]
fn an_edit_that_makes_the_step_a_checkpoint_or_a_required_action_is_called_out() {
    let v1 = terms(1, "Terms");
    let mut v2 = terms(2, "Terms");
    let explain = v2
        .steps
        .iter_mut()
        .find(|s| s.name == "Explain terms")
        .unwrap();
    explain.is_checkpoint = true;
    explain.checkpoint_description = Some("Terms accepted".into());
    explain.performs_action = true;
    explain.is_required_action = true;
    let counts: SessionCounts = [(name_id("Explain terms"), 4)].into_iter().collect();
    let plan = compute_plan(&v1, &v2, &counts);
    let edited = &plan.transformation_map.edited_steps[0];
    assert!(edited.becomes_checkpoint() && edited.becomes_required_action());
    let w = plan
        .summary
        .warnings
        .iter()
        .find(|w| {
            w.message
                .contains("becomes a checkpoint and a required action")
        })
        .unwrap_or_else(|| panic!("{:?}", plan.summary.warnings));
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.affected_sessions_estimate, 4);
    let text = planning::render::text(&plan, &v1, &v2);
    assert!(
        text.contains("the edit makes it a checkpoint and a required action"),
        "{text}"
    );

    // Sessions past it never performed that action: they execute it (gap fill)…
    let plan = deployed(&v1, &v2, plan);
    let sign_up = &plan.transformation_map.anchors[1];
    assert_eq!(sign_up.anchor_name, "Sign up");
    assert_eq!(sign_up.migration_scenario, MigrationScenario::GapFill);
    let e = name_id("Explain terms");
    let d = decide_flagged(&v1, &v2, &plan, name_id("Sign up"), &[e]);
    assert_eq!(
        d.result.action,
        ReconciliationAction::ExecuteAction,
        "{d:?}"
    );
    assert_eq!(d.result.execute_action_ids, [e]);
    assert_eq!(d.result.target_step_id, Some(name_id("Sign up")));
    // … while sessions at it stay on it.
    let d = decide_flagged(&v1, &v2, &plan, e, &[e]);
    assert_eq!(landed_on(&d), Some(e));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
}

#[test]
fn a_step_that_already_performed_an_action_is_not_run_again() {
    let mut v1 = terms(1, "Terms");
    v1.steps
        .iter_mut()
        .find(|s| s.name == "Explain terms")
        .unwrap()
        .performs_action = true;
    let mut v2 = v1.clone();
    v2.version = 2;
    let explain = v2
        .steps
        .iter_mut()
        .find(|s| s.name == "Explain terms")
        .unwrap();
    explain.is_required_action = true;
    explain.description = Some("Terms, now required".into());
    let plan = plan_of(&v1, &v2);
    let sign_up = &plan.transformation_map.anchors[1];
    assert_eq!(sign_up.migration_scenario, MigrationScenario::CleanGraft);
    assert!(!sign_up.upstream_changes.edited_nodes[0].new_required_action);
    let d = decide_flagged(
        &v1,
        &v2,
        &plan,
        name_id("Sign up"),
        &[name_id("Explain terms")],
    );
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.execute_action_ids.is_empty());
}

#[test]
fn a_deleted_step_next_to_an_edited_step_continues_on_it() {
    // Welcome → Intro → Explain terms → Sign up; Intro deleted, Explain terms edited.
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Intro"),
            step("Intro").to("Explain terms"),
            step("Explain terms").description("Old").to("Sign up"),
            step("Sign up").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Explain terms"),
            step("Explain terms").description("New").to("Sign up"),
            step("Sign up").terminal(),
        ],
    );
    let plan = plan_of(&v1, &v2);
    let map = &plan.transformation_map;
    let intro = map
        .deleted_nodes
        .iter()
        .find(|d| d.node_name == "Intro")
        .unwrap();
    assert!(!intro.edited);
    assert_eq!(intro.nearest_anchor_id_v2, Some(name_id("Explain terms")));
    assert_eq!(
        intro.nearest_anchor_hash.as_deref(),
        Some(map.edited_steps[0].key())
    );
    let text = planning::render::text(&compute_plan(&v1, &v2, &SessionCounts::new()), &v1, &v2);
    assert!(
        text.contains("Intro  → sessions continue at 'Explain terms'"),
        "{text}"
    );
    let d = decide_flagged(&v1, &v2, &plan, name_id("Intro"), &[name_id("Intro")]);
    assert_eq!(landed_on(&d), Some(name_id("Explain terms")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("deleted_step"));
}

#[test]
fn a_composite_chain_follows_an_edited_step_through_every_version() {
    let v1 = terms(1, "One");
    let v2 = terms(2, "Two");
    let v3 = terms(3, "Three");
    let p1 = plan_of(&v1, &v2);
    let p2 = plan_of(&v2, &v3);
    assert_eq!(p2.transformation_map.edited_steps.len(), 1);
    let explain = name_id("Explain terms");
    let mut s = session_at(&v1, explain, &[explain]);
    s.pending_migration = marking_flag(&p1, explain);
    let d = decide_chain(&[v1, v2, v3], &[p1, p2], &s, &BTreeMap::new());
    assert_eq!(d.result.action, ReconciliationAction::Continue, "{d:?}");
    assert_eq!(
        d.new_position.as_ref().map(|p| (p.version, p.step_id)),
        Some((3, explain))
    );
}

#[test]
fn a_broken_chain_finds_an_edited_step_by_its_id() {
    let (v1, v2) = full_stop();
    let explain = name_id("Explain terms");
    let s = session_at(&v1, explain, &[explain]);
    // No plan at all: relocation by content hash, then by id.
    let d = decide_chain(&[v1, v2], &[], &s, &BTreeMap::new());
    assert_eq!(d.result.action, ReconciliationAction::Continue, "{d:?}");
    assert_eq!(
        d.new_position.as_ref().map(|p| (p.version, p.step_id)),
        Some((2, explain))
    );
}

#[test]
fn an_edit_to_the_content_of_an_existing_anchor_gets_a_synthetic_key() {
    // "Explain terms" is edited to read exactly like "Notes", which stays: the
    // content hash is taken, so the edited step's policy key is another hash.
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to_id(name_id("Explain terms")),
            step("Explain terms").description("Old").to("Notes"),
            step("Notes").id(name_id("Notes")).to("Done"),
            step("Done").terminal(),
        ],
    );
    let mut v2 = v1.clone();
    v2.version = 2;
    let explain = v2
        .steps
        .iter_mut()
        .find(|s| s.name == "Explain terms")
        .unwrap();
    explain.name = "Notes".into();
    explain.description = None;
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let map = &plan.transformation_map;
    assert_eq!(map.edited_steps.len(), 1, "{map:?}");
    let key = map.edited_steps[0].key();
    let notes = map
        .anchors
        .iter()
        .find(|a| a.anchor_name == "Notes")
        .unwrap();
    assert_ne!(key, notes.anchor_content_hash);
    assert_eq!(
        map.edited_steps[0].content_hash_v2,
        notes.anchor_content_hash
    );
    assert_eq!(key.len(), 16);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(plan.anchor_policies.contains_key(key));
    assert!(
        plan.anchor_policies
            .contains_key(&notes.anchor_content_hash)
    );
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

#[test]
fn json_of_an_edited_step_and_stored_plans_without_it() {
    let (v1, v2) = full_stop();
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let value = serde_json::to_value(&plan).unwrap();
    let edited = &value["transformation_map"]["edited_steps"][0];
    for field in [
        "anchor_content_hash",
        "anchor_name",
        "anchor_node_id_v1",
        "anchor_node_id_v2",
        "upstream_changes",
        "downstream_changes",
        "migration_scenario",
        "content_hash_v1",
        "content_hash_v2",
        "node_name_v1",
        "changes",
        "nearest_anchor_hash",
        "nearest_anchor_id_v2",
    ] {
        assert!(edited.get(field).is_some(), "{field} missing in {edited}");
    }
    assert_eq!(edited["changes"][0]["attribute"], "description");
    assert_eq!(
        value["transformation_map"]["deleted_nodes"][0]["edited"],
        true
    );
    assert_eq!(
        value["anchor_policies"][edited["anchor_content_hash"].as_str().unwrap()]["edited_step_behavior"],
        "stay"
    );
    assert_eq!(value["summary"]["steps_edited"], 1);
    assert_eq!(
        value["transformation_map"]["anchors"][0]["downstream_changes"]["edited_nodes"][0]["changed"]
            [0],
        "description"
    );
    // Round trip.
    let back: PlanComputation = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(back, plan);

    // A plan stored before edits were recognised still loads.
    let mut old = value;
    old["transformation_map"]
        .as_object_mut()
        .unwrap()
        .remove("edited_steps");
    old["summary"]
        .as_object_mut()
        .unwrap()
        .remove("steps_edited");
    for d in old["transformation_map"]["deleted_nodes"]
        .as_array_mut()
        .unwrap()
    {
        d.as_object_mut().unwrap().remove("edited");
    }
    for a in old["transformation_map"]["anchors"].as_array_mut().unwrap() {
        for side in ["upstream_changes", "downstream_changes"] {
            a[side].as_object_mut().unwrap().remove("edited_nodes");
        }
    }
    for p in old["anchor_policies"].as_object_mut().unwrap().values_mut() {
        p.as_object_mut().unwrap().remove("edited_step_behavior");
    }
    let loaded: PlanComputation = serde_json::from_value(old).unwrap();
    assert!(loaded.transformation_map.edited_steps.is_empty());
    assert!(!loaded.transformation_map.deleted_nodes[0].edited);

    // The policy field takes the two documented values only.
    let policy = |behavior: &str| {
        serde_json::from_value::<AnchorMigrationPolicy>(json!({
            "anchor_content_hash": "0123456789abcdef",
            "anchor_name": "Explain terms",
            "edited_step_behavior": behavior,
        }))
    };
    assert_eq!(
        policy("relocate_to_nearest_anchor")
            .unwrap()
            .edited_step_behavior,
        Some(EditedStepBehavior::RelocateToNearestAnchor)
    );
    assert!(policy("stay").is_ok());
    assert!(policy("delete").is_err());
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// A random walk from the entry: the session's position and history.
fn walk(def: &ScenarioInput, rng: &mut Rng, to: Option<Uuid>) -> (Uuid, Vec<Uuid>) {
    let mut at = def.entry_step_id;
    let mut history = vec![at];
    for _ in 0..rng.below(40) {
        if Some(at) == to {
            break;
        }
        let Some(step) = def.steps.iter().find(|s| s.id == at) else {
            break;
        };
        if step.transitions.is_empty() {
            break;
        }
        at = step.transitions[rng.below(step.transitions.len())].to_step_id;
        history.push(at);
    }
    (at, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// With edits in place only (no structural change), no session moves off its
    /// step: every session stays, is asked for fields, or executes an action, on
    /// the step it is on — whatever the step and however many steps were edited.
    #[test]
    fn an_edit_only_change_never_moves_a_session_off_its_step(
        n in 2usize..60,
        seed in any::<u64>(),
        k in 1usize..6,
        edit_seed in any::<u64>(),
        walk_seed in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let v2 = testkit::edit_in_place(&v1, k, edit_seed);
        let plan = plan_of(&v1, &v2);
        let map = &plan.transformation_map;
        prop_assert!(map.new_node_ids.is_empty());
        prop_assert!(map.deleted_nodes.iter().all(|d| d.edited), "{:?}", map.deleted_nodes);
        let mut rng = Rng::new(walk_seed);
        for _ in 0..4 {
            let (at, history) = walk(&v1, &mut rng, None);
            let d = decide_flagged(&v1, &v2, &plan, at, &history);
            prop_assert!(
                matches!(
                    d.result.action,
                    ReconciliationAction::Continue
                        | ReconciliationAction::Collect
                        | ReconciliationAction::ExecuteAction
                ),
                "{d:?}"
            );
            if let Some(p) = &d.new_position {
                prop_assert_eq!(p.step_id, at, "moved off its step: {:?}", d);
            }
            if let Some(t) = d.result.target_step_id {
                prop_assert_eq!(t, at);
            }
        }
    }

    /// Structural edits plus edits in place: a session waiting at an edited step is
    /// never skipped past it — it lands on it, or a new fork's decision diverts it
    /// (a re-route), or a checkpoint keeps it where it is; never a "deleted step"
    /// relocation, never an exit.
    #[test]
    fn a_session_never_skips_the_edited_step_it_waits_at(
        n in 3usize..70,
        seed in any::<u64>(),
        k in 0usize..6,
        edit_seed in any::<u64>(),
        in_place in 1usize..5,
        walk_seed in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let mut v2 = testkit::edit(&v1, k, edit_seed);
        let mut rng = Rng::new(edit_seed ^ 0xed17);
        for e in 0..in_place {
            testkit::apply_edit(&mut v2, EditKind::EditContent, &mut rng, e);
        }
        let plan = plan_of(&v1, &v2);
        let mut rng = Rng::new(walk_seed);
        for e in plan.transformation_map.edited_steps.clone() {
            let at = e.step.anchor_node_id_v1;
            let (reached, mut history) = walk(&v1, &mut rng, Some(at));
            if reached != at {
                history.push(at);
            }
            let d = decide_flagged(&v1, &v2, &plan, at, &history);
            prop_assert_ne!(d.result.action, ReconciliationAction::ExitScenario, "{:?}", d);
            prop_assert_ne!(d.result.teleport_reason.as_deref(), Some("deleted_step"), "{:?}", d);
            match landed_on(&d) {
                None => prop_assert!(
                    d.result.action == ReconciliationAction::Collect || d.pin_version.is_some(),
                    "{d:?}"
                ),
                Some(step) if step == at => {}
                Some(_) => prop_assert_eq!(
                    d.result.teleport_reason.as_deref(),
                    Some("re_route"),
                    "skipped the edited step: {:?}",
                    d
                ),
            }
        }
    }

    /// A step renamed under a new id (no id match) behaves as before edits were
    /// recognised: deleted (not edited) plus a new step, and its sessions go to its
    /// nearest anchor.
    #[test]
    fn a_step_renamed_with_a_new_id_is_still_deleted_and_new(
        n in 3usize..60,
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let mut v2 = v1.clone();
        v2.version = 2;
        let mut rng = Rng::new(pick);
        let i = 1 + rng.below(v2.steps.len() - 1);
        let old = v2.steps[i].id;
        let new = rng.uuid();
        v2.steps[i].id = new;
        v2.steps[i].name = format!("{} (renamed)", v2.steps[i].name);
        for st in &mut v2.steps {
            for t in &mut st.transitions {
                if t.to_step_id == old {
                    t.to_step_id = new;
                }
            }
        }
        let plan = plan_of(&v1, &v2);
        let map = &plan.transformation_map;
        prop_assert!(map.edited_steps.is_empty());
        prop_assert_eq!(&map.new_node_ids, &vec![new]);
        prop_assert_eq!(map.deleted_nodes.len(), 1);
        let d = &map.deleted_nodes[0];
        prop_assert!(!d.edited);
        prop_assert_eq!(d.node_id_v1, old);
        prop_assert_eq!(plan.summary.nodes_deleted, 1);
        let decision = decide_flagged(&v1, &v2, &plan, old, &[old]);
        match d.nearest_anchor_id_v2 {
            // A renamed checkpoint the session sits on "no longer exists": pinned.
            Some(_) if decision.result.blocked_by_checkpoint => {
                prop_assert!(decision.pin_version.is_some());
            }
            // The nearest anchor gap-fills the renamed step's own field first.
            Some(_) if decision.result.action == ReconciliationAction::Collect => {}
            Some(target) => {
                prop_assert_eq!(landed_on(&decision), Some(target), "{:?}", decision);
                prop_assert_eq!(decision.result.teleport_reason.as_deref(), Some("deleted_step"));
            }
            None => prop_assert_eq!(decision.result.action, ReconciliationAction::ExitScenario),
        }
    }
}
