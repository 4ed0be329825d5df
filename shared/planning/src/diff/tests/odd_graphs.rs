//! Graphs the diff must survive and order-independence: unreachable steps,
//! cycles, dangling transitions, repeated ids, a shuffled step list.

use crate::diff::*;
use crate::model::MigrationScenario::*;
use crate::testkit::{ScenarioBuilder, name_id, scenario, step, uuid_n};

use super::fixtures::*;

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
