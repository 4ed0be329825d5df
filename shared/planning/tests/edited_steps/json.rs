//! JSON: an edited step in a stored plan, and plans stored before edited steps
//! existed.

use serde_json::json;

use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};

use super::helpers::*;

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
