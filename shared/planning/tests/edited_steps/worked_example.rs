//! The worked example: the terms step reworded in place, through the diff, the
//! review, the policies and the decision; transitions through it compare as
//! unchanged, and a step renamed under a new id stays deleted plus new.

use std::collections::BTreeMap;

use serde_json::json;

use planning::hash::step_content_hash;
use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::testkit::{name_id, scenario, step};

use super::helpers::*;

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
