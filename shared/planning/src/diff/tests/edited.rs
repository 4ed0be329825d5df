//! Edited steps (same id, other content): neither inserted nor removed, new
//! forks only on changed conditions, and cut like the other region lists.

use crate::diff::*;
use crate::model::{MigrationScenario::*, RegionChanges, TransitionChangeType};
use crate::testkit::{name_id, scenario, step, uuid_n};

use super::fixtures::*;

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
