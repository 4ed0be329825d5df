//! Anchors: pairing by content (ids may change), output order, and duplicated
//! content (paired by id, then by neighbourhood, else reported ambiguous).

use std::collections::HashMap;

use uuid::Uuid;

use crate::diff::*;
use crate::model::MigrationScenario::*;
use crate::testkit::{name_id, scenario, step, uuid_n};

use super::fixtures::*;

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
