//! The anchor machinery on edited steps: gap fill, re-route, checkpoints and
//! required actions, deleted neighbours, composite and broken chains, synthetic keys.

use std::collections::BTreeMap;

use serde_json::json;

use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::testkit::{name_id, scenario, step};

use super::helpers::*;

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
