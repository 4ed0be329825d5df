//! The checkpoint invariant on plain landings: never upstream of, or onto, a
//! checkpoint the session already passed.

use crate::model::*;
use crate::testkit::{name_id, step};

use super::fixtures::*;
use super::worlds::*;

#[test]
fn landing_upstream_of_the_last_checkpoint_pins_the_session() {
    // V2 moves Shipping before Payment: a customer past Payment at Shipping would
    // pay again after the graft.
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint);
    assert!(
        d.result
            .checkpoint_warning
            .as_deref()
            .is_some_and(|w| w.contains("Payment processed"))
    );
    assert_eq!(d.pin_version, Some(1));
    assert_eq!(d.new_position, None);
    assert!(d.clear_flag && d.applies_migration);
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn a_checkpoint_that_no_longer_exists_blocks() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert!(d.result.blocked_by_checkpoint);
    assert_eq!(d.pin_version, Some(1));
}

#[test]
fn a_checkpoint_whose_id_changed_is_found_by_content_hash() {
    let v1 = v1();
    // Same graph, Payment has a new id but the same content.
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment 2"),
            step("Payment")
                .id(name_id("Payment 2"))
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert!(!d.result.blocked_by_checkpoint, "{d:?}");
    assert!(d.applies_migration);
    assert!(d.new_position.is_some());

    // And the same relocated checkpoint still blocks a landing upstream of it.
    let v2b = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Payment 2"),
            step("Payment")
                .id(name_id("Payment 2"))
                .checkpoint("Payment processed")
                .performs_action()
                .to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2b);
    let world = World::one(&v1, &v2b, &plan);
    let d = world.decide(&s, &none());
    assert!(d.result.blocked_by_checkpoint);
}

#[test]
fn a_session_sitting_on_the_checkpoint_may_graft_onto_it() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Payment", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Payment", &["Welcome", "Email", "Payment"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let d = world.decide(&s, &none());
    assert!(!d.result.blocked_by_checkpoint);
    assert!(d.applies_migration && d.new_position.is_some());
}
