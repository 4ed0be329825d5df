//! Clean graft: the session lands on its anchor's V2 step, silently.

use crate::model::*;
use crate::reconcile::*;
use crate::testkit::{name_id, step};

use super::fixtures::*;
use super::worlds::*;

#[test]
fn clean_graft_with_unchanged_id_continues_but_migrates() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
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
    assert!(d.applies_migration && d.clear_flag);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::CleanGraft)
    );
    assert_eq!(
        d.new_position,
        Some(Position {
            version: 2,
            step_id: name_id("Shipping"),
            checksum: v2.checksum().to_string()
        })
    );
    assert_eq!(d.flag_plan_id, Some(plan.id()));
    assert_eq!(d.plan_id, Some(plan.id()));
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn clean_graft_teleports_silently_when_the_id_changed() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping 2"),
            step("Shipping").id(name_id("Shipping 2")).to("Done"),
            step("Done").terminal(),
        ],
    );
    // The anchor's V2 step is found under the id of "Shipping 2".
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft).v2_id_of("Shipping 2")],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping 2"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping 2")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("clean_graft"));
    assert_eq!(d.result.user_message, None);
    assert!(!d.result.blocked_by_checkpoint);
    assert_settled(&world, &s, &d, &none());
}
