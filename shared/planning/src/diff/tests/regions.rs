//! Regions as sets: steps that move between them, and lists cut past the
//! region-entry budget while decisions stay exact.

use crate::diff::*;
use crate::model::MigrationScenario::*;
use crate::testkit::{name_id, scenario, step};

use super::fixtures::*;

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
