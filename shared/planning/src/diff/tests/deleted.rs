//! Deleted steps: removed from regions, and the nearest anchor their sessions
//! relocate to.

use crate::diff::*;
use crate::testkit::{name_id, scenario, step};

use super::fixtures::*;

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
