//! One test per diff rule (anchors, regions, forks, transition changes, deleted
//! and new steps), on small hand-written scenarios.

use std::collections::HashMap;

use super::*;
use crate::model::{
    AnchorTransformation, MigrationScenario::*, RegionChanges, TransitionChangeType,
};
use crate::testkit::{ScenarioBuilder, StepBuilder, name_id, scenario, step, uuid_n};

fn anchor<'m>(out: &'m DiffOutput, name: &str) -> &'m AnchorTransformation {
    out.transformation_map
        .anchors
        .iter()
        .find(|a| a.anchor_name == name)
        .unwrap_or_else(|| panic!("no anchor {name}"))
}

fn names_inserted(r: &RegionChanges) -> Vec<&str> {
    r.inserted_nodes
        .iter()
        .map(|n| n.node_name.as_str())
        .collect()
}

fn names_forks(r: &RegionChanges) -> Vec<&str> {
    r.new_forks
        .iter()
        .map(|f| f.fork_node_name.as_str())
        .collect()
}

/// Welcome → Ask email → Checkout → Done
fn linear() -> ScenarioInput {
    scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    )
}

#[test]
fn self_diff_is_all_clean_grafts_without_changes() {
    let v = linear();
    let out = diff_scenarios(&v, &v);
    assert_eq!(out.transformation_map.anchors.len(), 4);
    for a in &out.transformation_map.anchors {
        assert_eq!(a.migration_scenario, CleanGraft);
        assert!(a.upstream_changes.is_empty() && a.downstream_changes.is_empty());
        assert_eq!(a.anchor_node_id_v1, a.anchor_node_id_v2);
    }
    assert!(out.transformation_map.deleted_nodes.is_empty());
    assert!(out.transformation_map.new_node_ids.is_empty());
    assert!(out.ambiguous.is_empty());
}

#[test]
fn anchors_pair_by_content_even_when_ids_change() {
    let v1 = linear();
    let mut v2 = linear();
    // Re-issue every id (as an editor that regenerates ids would) and fix the links.
    let remap: HashMap<Uuid, Uuid> = v2
        .steps
        .iter()
        .enumerate()
        .map(|(k, s)| (s.id, uuid_n(100 + k as u64)))
        .collect();
    for s in &mut v2.steps {
        s.id = remap[&s.id];
        for t in &mut s.transitions {
            t.to_step_id = remap[&t.to_step_id];
        }
    }
    v2.entry_step_id = remap[&v2.entry_step_id];
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(out.transformation_map.anchors.len(), 4);
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.anchor_node_id_v1, name_id("Checkout"));
    assert_eq!(checkout.anchor_node_id_v2, uuid_n(102));
    assert!(
        out.transformation_map
            .anchors
            .iter()
            .all(|a| a.upstream_changes.is_empty() && a.downstream_changes.is_empty())
    );
}

#[test]
fn anchors_follow_v2_flow_order() {
    let out = diff_scenarios(&linear(), &linear());
    let order: Vec<&str> = out
        .transformation_map
        .anchors
        .iter()
        .map(|a| a.anchor_name.as_str())
        .collect();
    assert_eq!(order, ["Welcome", "Ask email", "Checkout", "Done"]);
}

#[test]
fn inserted_collecting_step_is_gap_fill_downstream_only() {
    let v1 = linear();
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Ask age"),
            step("Ask age").collects(&["age"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(
        out.transformation_map.new_node_ids,
        vec![name_id("Ask age")]
    );
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, GapFill);
    assert_eq!(names_inserted(&checkout.upstream_changes), ["Ask age"]);
    assert_eq!(
        checkout.upstream_changes.inserted_nodes[0].collects_fields,
        ["age"]
    );
    assert_eq!(anchor(&out, "Done").migration_scenario, GapFill);
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.migration_scenario, CleanGraft);
    assert_eq!(names_inserted(&welcome.downstream_changes), ["Ask age"]);
    assert!(welcome.upstream_changes.inserted_nodes.is_empty());
}

#[test]
fn inserted_required_action_is_gap_fill_and_plain_step_is_clean_graft() {
    let v1 = linear();
    let with = |s: StepBuilder| {
        scenario(
            2,
            vec![
                step("Welcome").to(&s.clone().build().name),
                s.to("Ask email"),
                step("Ask email").collects(&["email"]).to("Checkout"),
                step("Checkout").to("Done"),
                step("Done").terminal(),
            ],
        )
    };
    let out = diff_scenarios(&v1, &with(step("Verify identity").required_action()));
    assert_eq!(anchor(&out, "Checkout").migration_scenario, GapFill);
    assert!(anchor(&out, "Checkout").upstream_changes.inserted_nodes[0].is_required_action);

    let out = diff_scenarios(&v1, &with(step("Small talk")));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, CleanGraft);
    assert_eq!(names_inserted(&checkout.upstream_changes), ["Small talk"]);
}

/// Welcome → Age check (fork: adult → Ask email, minor → Rejected) → …
fn with_age_check(minor_target: &str) -> ScenarioInput {
    scenario(
        2,
        vec![
            step("Welcome").to("Age check"),
            step("Age check")
                .branch("Ask email", "age >= 18", &["age"], 1)
                .branch(minor_target, "age < 18", &["age"], 0),
            step("Ask email").collects(&["email"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Rejected").terminal(),
        ],
    )
}

#[test]
fn inserted_fork_with_an_escaping_branch_is_re_route() {
    let out = diff_scenarios(&linear(), &with_age_check("Rejected"));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, ReRoute);
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    let fork = &checkout.upstream_changes.new_forks[0];
    assert_eq!(fork.branches.len(), 2);
    assert_eq!(fork.branches[1].target_step_name, "Rejected");
    assert_eq!(fork.branches[1].condition_fields, ["age"]);
    // The fork is downstream of Welcome: a downstream fork does not re-route.
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.migration_scenario, CleanGraft);
    assert_eq!(names_forks(&welcome.downstream_changes), ["Age check"]);
}

#[test]
fn inserted_fork_whose_branches_all_reach_the_anchor_is_not_re_route() {
    // Both branches end up at Ask email, hence at Checkout.
    let out = diff_scenarios(&linear(), &with_age_check("Ask email"));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    assert_eq!(checkout.migration_scenario, CleanGraft);
}

#[test]
fn existing_step_gaining_a_branch_is_a_new_fork() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Human agent").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").to_if("Checkout", "", 0).to_if(
                "Human agent",
                "wants_human == true",
                1,
            ),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Human agent").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert!(out.transformation_map.new_node_ids.is_empty());
    let checkout = anchor(&out, "Checkout");
    assert_eq!(names_forks(&checkout.upstream_changes), ["Ask email"]);
    assert_eq!(checkout.migration_scenario, ReRoute);
    // At the fork itself the new branch is a downstream fork, not an upstream one.
    let ask = anchor(&out, "Ask email");
    assert_eq!(names_forks(&ask.downstream_changes), ["Ask email"]);
    assert_eq!(ask.migration_scenario, CleanGraft);
    // Human agent is now reachable from Welcome: it moved into Welcome's downstream.
    let welcome = anchor(&out, "Welcome");
    assert_eq!(names_inserted(&welcome.downstream_changes), ["Human agent"]);
    let added: Vec<_> = ask
        .downstream_changes
        .modified_transitions
        .iter()
        .map(|c| c.change_type)
        .collect();
    assert_eq!(added, [TransitionChangeType::Added]);
}

#[test]
fn fork_whose_branch_now_points_at_an_inserted_step_is_not_a_new_fork() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Route"),
            step("Route")
                .to_if("Sales", "intent == 'buy'", 1)
                .to_if("Support", "", 0),
            step("Sales").to("Done"),
            step("Support").to("Done"),
            step("Done").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Route"),
            step("Route")
                .to_if("Qualify", "intent == 'buy'", 1)
                .to_if("Support", "", 0),
            step("Qualify").to("Sales"),
            step("Sales").to("Done"),
            step("Support").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    for a in &out.transformation_map.anchors {
        assert!(a.upstream_changes.new_forks.is_empty(), "{}", a.anchor_name);
        assert!(
            a.downstream_changes.new_forks.is_empty(),
            "{}",
            a.anchor_name
        );
    }
    assert_eq!(anchor(&out, "Sales").migration_scenario, CleanGraft);
    // The redirected branch is a modified transition of Route (same target hash? no:
    // Sales → Qualify is another target, so one removed and one added).
    let route = anchor(&out, "Route");
    let kinds: Vec<_> = route
        .downstream_changes
        .modified_transitions
        .iter()
        .map(|c| (c.change_type, c.to_step_id_v1, c.to_step_id_v2))
        .collect();
    assert_eq!(
        kinds,
        [
            (TransitionChangeType::Added, None, Some(name_id("Qualify"))),
            (TransitionChangeType::Removed, Some(name_id("Sales")), None),
        ]
    );
}

#[test]
fn condition_change_is_a_modified_transition_and_a_new_fork() {
    let v1 = with_age_check("Rejected");
    let mut v2 = v1.clone();
    v2.version = 3;
    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.transitions[0].condition_text = "age >= 21".into();
    fork.transitions[1].condition_text = "age < 21".into();
    let out = diff_scenarios(&v1, &v2);
    let own = &anchor(&out, "Age check")
        .downstream_changes
        .modified_transitions;
    assert_eq!(own.len(), 2);
    assert!(
        own.iter()
            .all(|c| c.change_type == TransitionChangeType::Modified
                && c.from_step_id == name_id("Age check"))
    );
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.upstream_changes.modified_transitions.len(), 2);
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    assert_eq!(checkout.migration_scenario, ReRoute);
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.downstream_changes.modified_transitions.len(), 2);
    assert!(welcome.upstream_changes.is_empty());
}

#[test]
fn priority_only_change_is_modified_but_not_a_new_fork() {
    let v1 = with_age_check("Rejected");
    let mut v2 = v1.clone();
    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.transitions[0].priority = 7;
    let out = diff_scenarios(&v1, &v2);
    let checkout = anchor(&out, "Checkout");
    assert!(checkout.upstream_changes.new_forks.is_empty());
    assert_eq!(checkout.upstream_changes.modified_transitions.len(), 1);
    assert_eq!(checkout.migration_scenario, CleanGraft);
}

#[test]
fn deleted_step_is_removed_from_regions_and_relocates_forward() {
    let v1 = linear();
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    let deleted = &out.transformation_map.deleted_nodes;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].node_name, "Ask email");
    assert_eq!(deleted[0].nearest_anchor_id_v2, Some(name_id("Checkout")));
    assert_eq!(
        deleted[0].nearest_anchor_hash.as_deref(),
        Some(anchor(&out, "Checkout").anchor_content_hash.as_str())
    );
    assert_eq!(
        anchor(&out, "Checkout").upstream_changes.removed_node_ids,
        [name_id("Ask email")]
    );
    assert_eq!(
        anchor(&out, "Welcome").downstream_changes.removed_node_ids,
        [name_id("Ask email")]
    );
}

#[test]
fn nearest_anchor_ties_go_to_the_higher_priority_transition() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Old"),
            step("Old").to_if("Left", "a", 0).to_if("Right", "b", 5),
            step("Left").terminal(),
            step("Right").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Left"),
            step("Left").terminal(),
            step("Right").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    let old = &out.transformation_map.deleted_nodes[0];
    assert_eq!(old.nearest_anchor_id_v2, Some(name_id("Right")));
}

#[test]
fn nearest_anchor_prefers_shorter_paths_then_falls_back_backward_then_none() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Gone 1"),
            step("Gone 1").to("Gone 2").to_if("Done", "x", -1),
            step("Gone 2").to("Gone 3"),
            step("Gone 3").terminal(),
            step("Done").terminal(),
            step("Island").terminal(),
        ],
    );
    let v2 = scenario(2, vec![step("Welcome").to("Done"), step("Done").terminal()]);
    let out = diff_scenarios(&v1, &v2);
    let by_name = |n: &str| {
        out.transformation_map
            .deleted_nodes
            .iter()
            .find(|d| d.node_name == n)
            .unwrap()
    };
    // Shortest path wins over the higher-priority transition.
    assert_eq!(
        by_name("Gone 1").nearest_anchor_id_v2,
        Some(name_id("Done"))
    );
    // No anchor ahead: the closest one behind.
    assert_eq!(
        by_name("Gone 3").nearest_anchor_id_v2,
        Some(name_id("Welcome"))
    );
    assert_eq!(by_name("Island").nearest_anchor_id_v2, None);
    assert_eq!(by_name("Island").nearest_anchor_hash, None);
    // Deleted steps come in V1 flow order.
    let order: Vec<&str> = out
        .transformation_map
        .deleted_nodes
        .iter()
        .map(|d| d.node_name.as_str())
        .collect();
    assert_eq!(order, ["Gone 1", "Gone 2", "Gone 3", "Island"]);
}

#[test]
fn swapped_steps_move_between_regions() {
    let v1 = scenario(
        1,
        vec![
            step("A").to("B"),
            step("B").collects(&["email"]).to("C"),
            step("C").collects(&["age"]).to("D"),
            step("D"),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("A").to("C"),
            step("C").collects(&["age"]).to("B"),
            step("B").collects(&["email"]).to("D"),
            step("D"),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    let b = anchor(&out, "B");
    assert_eq!(names_inserted(&b.upstream_changes), ["C"]);
    assert_eq!(b.downstream_changes.removed_node_ids, [name_id("C")]);
    assert_eq!(
        b.migration_scenario, GapFill,
        "sessions at B never gave their age"
    );
    let c = anchor(&out, "C");
    assert_eq!(c.upstream_changes.removed_node_ids, [name_id("B")]);
    assert_eq!(names_inserted(&c.downstream_changes), ["B"]);
    assert_eq!(c.migration_scenario, CleanGraft);
    let d = anchor(&out, "D");
    assert!(d.upstream_changes.inserted_nodes.is_empty());
    assert!(d.upstream_changes.removed_node_ids.is_empty());
}

#[test]
fn duplicates_pair_equal_ids_first() {
    // Two "Confirm" steps with identical content.
    let c1 = uuid_n(1);
    let c2 = uuid_n(2);
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to_id(c1),
            step("Confirm").id(c1).to("Pay"),
            step("Pay").to_id(c2),
            step("Confirm").id(c2).to("Done"),
            step("Done"),
        ],
    );
    let out = diff_scenarios(&v1, &v1);
    assert_eq!(out.transformation_map.anchors.len(), 5);
    assert!(out.ambiguous.is_empty());
    let confirms: Vec<(Uuid, Uuid)> = out
        .transformation_map
        .anchors
        .iter()
        .filter(|a| a.anchor_name == "Confirm")
        .map(|a| (a.anchor_node_id_v1, a.anchor_node_id_v2))
        .collect();
    assert_eq!(confirms, [(c1, c1), (c2, c2)]);
}

#[test]
fn duplicates_with_new_ids_pair_by_neighbourhood() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to_id(uuid_n(1)),
            step("Confirm").id(uuid_n(1)).to("Pay"),
            step("Pay").to_id(uuid_n(2)),
            step("Confirm").id(uuid_n(2)).to("Done"),
            step("Done"),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to_id(uuid_n(11)),
            step("Confirm").id(uuid_n(11)).to("Pay"),
            step("Pay").to_id(uuid_n(12)),
            step("Confirm").id(uuid_n(12)).to("Done"),
            step("Done"),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert!(out.ambiguous.is_empty());
    let pairs: Vec<(Uuid, Uuid)> = out
        .transformation_map
        .anchors
        .iter()
        .filter(|a| a.anchor_name == "Confirm")
        .map(|a| (a.anchor_node_id_v1, a.anchor_node_id_v2))
        .collect();
    assert_eq!(pairs, [(uuid_n(1), uuid_n(11)), (uuid_n(2), uuid_n(12))]);
    assert!(
        out.transformation_map
            .anchors
            .iter()
            .all(|a| a.upstream_changes.is_empty())
    );
}

#[test]
fn indistinguishable_duplicates_are_ambiguous_not_dropped() {
    // Two identical, unconnected "Note" steps whose ids all changed.
    let v1 = scenario(
        1,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(1)),
            step("Note").id(uuid_n(2)),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(3)),
            step("Note").id(uuid_n(4)),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(out.ambiguous.len(), 1);
    let group = &out.ambiguous[0];
    assert_eq!(group.step_name, "Note");
    assert_eq!(group.v1_step_ids.len(), 2);
    assert_eq!(group.v2_step_ids.len(), 2);
    assert_eq!(out.transformation_map.anchors.len(), 1);
    assert_eq!(out.transformation_map.deleted_nodes.len(), 2);
    assert_eq!(out.transformation_map.new_node_ids.len(), 2);
}

#[test]
fn a_single_remaining_copy_pairs_and_an_extra_copy_is_deleted() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to_id(uuid_n(1)).to_id(uuid_n(2)),
            step("Note").id(uuid_n(1)),
            step("Note").id(uuid_n(2)),
        ],
    );
    let v2 = scenario(
        2,
        vec![step("Welcome").to_id(uuid_n(2)), step("Note").id(uuid_n(2))],
    );
    let out = diff_scenarios(&v1, &v2);
    assert!(out.ambiguous.is_empty());
    assert_eq!(out.transformation_map.anchors.len(), 2);
    assert_eq!(out.transformation_map.deleted_nodes.len(), 1);
    assert_eq!(
        out.transformation_map.deleted_nodes[0].node_id_v1,
        uuid_n(1)
    );
    // Regions compare by hash: a "Note" is still downstream of Welcome.
    assert!(
        anchor(&out, "Welcome")
            .downstream_changes
            .removed_node_ids
            .is_empty()
    );
}

#[test]
fn unreachable_v2_steps_are_listed() {
    let v2 = scenario(
        2,
        vec![step("Welcome").to("Done"), step("Done"), step("Orphan")],
    );
    let out = diff_scenarios(&linear(), &v2);
    assert_eq!(out.unreachable_v2_step_ids, [name_id("Orphan")]);
}

#[test]
fn cycles_and_self_loops_terminate() {
    let v1 = scenario(
        1,
        vec![
            step("A").to("B"),
            step("B").to("C").to("B"),
            step("C").to("A"),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("A").to("N"),
            step("N").collects(&["x"]).to("B"),
            step("B").to("C").to("B"),
            step("C").to("A"),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    // In a cycle everything is upstream of everything: N is upstream of all anchors.
    for a in &out.transformation_map.anchors {
        assert_eq!(
            names_inserted(&a.upstream_changes),
            ["N"],
            "{}",
            a.anchor_name
        );
        assert_eq!(a.migration_scenario, GapFill);
    }
}

#[test]
fn dangling_transitions_and_repeated_ids_do_not_panic() {
    let mut v1 = linear();
    v1.steps[0].transitions.push(crate::model::TransitionInput {
        to_step_id: uuid_n(999),
        condition_text: "x".into(),
        priority: 0,
        condition_fields: vec![],
    });
    let mut v2 = linear();
    v2.steps[1].id = v2.steps[0].id;
    v2.entry_step_id = uuid_n(5);
    let _ = diff_scenarios(&v1, &v2);
    let _ = diff_scenarios(&v2, &v1);
    let empty = ScenarioBuilder::new("Empty", 1).build();
    let _ = diff_scenarios(&empty, &v1);
    let _ = diff_scenarios(&v1, &empty);
}

#[test]
fn step_list_order_does_not_change_the_output() {
    let v1 = crate::testkit::conversation(60, 3);
    let v2 = crate::testkit::edit(&v1, 4, 9);
    let a = serde_json::to_string(&diff_scenarios(&v1, &v2)).unwrap();
    let mut s1 = v1.clone();
    let mut s2 = v2.clone();
    s1.steps.reverse();
    s2.steps.rotate_left(7);
    let b = serde_json::to_string(&diff_scenarios(&s1, &s2)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_loop_back_to_the_entry_cuts_region_lists_but_not_decisions() {
    let v1 = crate::testkit::conversation(150, 5);
    let mut v2 = v1.clone();
    v2.version = 2;
    let entry = v2.entry_step_id;
    if let Some(last) = v2.steps.last_mut() {
        last.transitions.push(crate::model::TransitionInput {
            to_step_id: entry,
            condition_text: "wants_restart".into(),
            priority: 0,
            condition_fields: vec![],
        });
    }
    let full = Analysis::new(&v1, &v2).output;
    assert_eq!(full.truncated_anchors, 0);
    let cut = Analysis::with_budget(&v1, &v2, 1_000).output;
    assert!(cut.truncated_anchors > 0 && cut.omitted_region_entries > 0);
    for (a, b) in full
        .transformation_map
        .anchors
        .iter()
        .zip(&cut.transformation_map.anchors)
    {
        assert_eq!(a.anchor_node_id_v1, b.anchor_node_id_v1);
        assert_eq!(a.migration_scenario, b.migration_scenario);
        let up = &b.upstream_changes;
        assert!(up.inserted_nodes.len() <= TRUNCATED_REGION_ITEMS);
        assert!(up.new_forks.len() <= TRUNCATED_REGION_ITEMS);
        // Decisive steps are kept first: a cut list of a gap-fill anchor still
        // names steps that collect fields.
        if a.migration_scenario == GapFill {
            assert!(
                up.inserted_nodes
                    .iter()
                    .any(|n| !n.collects_fields.is_empty())
            );
        }
    }
    // The first anchor (the entry) now has every other step upstream of it.
    let entry_anchor = &full.transformation_map.anchors[0];
    assert_eq!(entry_anchor.upstream_changes.inserted_nodes.len(), 149);
}

// ---------------------------------------------------------------------------
// Edited steps (same id, other content)
// ---------------------------------------------------------------------------

fn edited<'m>(out: &'m DiffOutput, name: &str) -> &'m crate::model::EditedStep {
    out.transformation_map
        .edited_steps
        .iter()
        .find(|e| e.step.anchor_name == name)
        .unwrap_or_else(|| panic!("no edited step {name}"))
}

fn names_edited(r: &RegionChanges) -> Vec<&str> {
    r.edited_nodes
        .iter()
        .map(|n| n.node_name.as_str())
        .collect()
}

#[test]
fn an_edited_step_is_neither_inserted_nor_removed() {
    let v1 = linear();
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email")
                .description("Ask politely")
                .collects(&["email"])
                .to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    let map = &out.transformation_map;
    assert_eq!(map.anchors.len(), 3);
    assert_eq!(map.edited_steps.len(), 1);
    assert!(map.new_node_ids.is_empty());
    let e = edited(&out, "Ask email");
    assert_eq!(e.step.migration_scenario, CleanGraft);
    assert!(e.step.upstream_changes.is_empty() && e.step.downstream_changes.is_empty());
    let checkout = anchor(&out, "Checkout");
    assert!(checkout.upstream_changes.inserted_nodes.is_empty());
    assert!(checkout.upstream_changes.removed_node_ids.is_empty());
    assert_eq!(names_edited(&checkout.upstream_changes), ["Ask email"]);
    assert_eq!(checkout.migration_scenario, CleanGraft, "no new field");
    assert_eq!(
        names_edited(&anchor(&out, "Welcome").downstream_changes),
        ["Ask email"]
    );
    assert!(out.ambiguous.is_empty());
}

#[test]
fn an_edited_fork_is_a_new_fork_only_when_its_conditions_change() {
    let v1 = with_age_check("Rejected");
    let mut v2 = v1.clone();
    v2.version = 3;
    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.description = Some("Ask the customer's age".into());
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(
        edited(&out, "Age check").step.migration_scenario,
        CleanGraft
    );
    let checkout = anchor(&out, "Checkout");
    assert!(checkout.upstream_changes.new_forks.is_empty());
    assert_eq!(checkout.migration_scenario, CleanGraft);

    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.transitions[0].condition_text = "age >= 21".into();
    let out = diff_scenarios(&v1, &v2);
    let checkout = anchor(&out, "Checkout");
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    assert_eq!(checkout.migration_scenario, ReRoute);
    let own = &edited(&out, "Age check").step.downstream_changes;
    assert_eq!(names_forks(own), ["Age check"]);
    assert_eq!(own.modified_transitions.len(), 1);
    assert_eq!(
        own.modified_transitions[0].change_type,
        TransitionChangeType::Modified
    );
}

#[test]
fn an_edited_step_that_moves_is_inserted_where_it_arrives() {
    // B (edited, now also collecting "phone") moves behind C.
    let v1 = scenario(
        1,
        vec![
            step("A").to("B"),
            step("B").collects(&["email"]).to("C"),
            step("C").to("D"),
            step("D"),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("A").to("C"),
            step("C").to("B"),
            step("B").collects(&["email", "phone"]).to("D"),
            step("D"),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    let c = anchor(&out, "C");
    assert!(c.downstream_changes.edited_nodes.is_empty());
    assert_eq!(names_inserted(&c.downstream_changes), ["B"]);
    assert_eq!(c.upstream_changes.removed_node_ids, [name_id("B")]);
    let d = anchor(&out, "D");
    assert_eq!(names_edited(&d.upstream_changes), ["B"]);
    assert_eq!(d.upstream_changes.edited_nodes[0].added_fields, ["phone"]);
    assert_eq!(d.migration_scenario, GapFill);
    let b = edited(&out, "B");
    assert_eq!(names_inserted(&b.step.upstream_changes), ["C"]);
}

#[test]
fn an_ambiguous_copy_that_shares_an_id_is_an_edit() {
    // Two identical "Note" steps; in V2 one keeps its id but changes content.
    let v1 = scenario(
        1,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(1)),
            step("Note").id(uuid_n(2)),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(3)),
            step("Note").id(uuid_n(4)),
            step("Note").id(uuid_n(1)).description("edited"),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(out.transformation_map.edited_steps.len(), 1);
    let e = &out.transformation_map.edited_steps[0];
    assert_eq!(e.step.anchor_node_id_v1, uuid_n(1));
    assert_eq!(out.ambiguous.len(), 1);
    assert_eq!(out.ambiguous[0].v1_step_ids, [uuid_n(2)]);
}

#[test]
fn edited_lists_are_cut_like_the_others() {
    let v1 = crate::testkit::conversation(150, 5);
    let mut v2 = crate::testkit::edit_in_place(&v1, 30, 2);
    let entry = v2.entry_step_id;
    if let Some(last) = v2.steps.last_mut() {
        last.transitions.push(crate::model::TransitionInput {
            to_step_id: entry,
            condition_text: "wants_restart".into(),
            priority: 0,
            condition_fields: vec![],
        });
    }
    let full = Analysis::new(&v1, &v2).output;
    let cut = Analysis::with_budget(&v1, &v2, 1_000).output;
    assert!(cut.truncated_anchors > 0);
    for (a, b) in full
        .transformation_map
        .targets()
        .zip(cut.transformation_map.targets())
    {
        assert_eq!(a.migration_scenario, b.migration_scenario);
        assert!(b.upstream_changes.edited_nodes.len() <= TRUNCATED_REGION_ITEMS);
    }
}
