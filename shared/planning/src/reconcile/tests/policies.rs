//! Anchor policies: `update_downstream = false` pins, `force_scenario` overrides
//! the computed scenario.

use crate::model::*;

use super::fixtures::*;
use super::worlds::*;

#[test]
fn update_downstream_false_pins_the_session_where_it_is() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false)],
    )
    .policy("Shipping", |p| p.update_downstream = false)
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.pin_version, Some(1));
    assert!(d.clear_flag && d.applies_migration);
    assert_eq!(d.new_position, None);
    assert!(d.result.collect_fields.is_empty());
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn force_scenario_overrides_the_computed_one() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false)],
    )
    .policy("Shipping", |p| {
        p.force_scenario = Some(MigrationScenario::CleanGraft)
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::CleanGraft)
    );
    assert!(d.result.collect_fields.is_empty());

    // And upwards: a clean graft forced to gap fill asks for the inserted fields.
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft).inserted(
            "Age check",
            &["age"],
            false,
        )],
    )
    .policy("Shipping", |p| {
        p.force_scenario = Some(MigrationScenario::GapFill)
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
}
