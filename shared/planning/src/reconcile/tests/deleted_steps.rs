//! Sessions on deleted steps: through the nearest anchor, or out of the scenario.

use crate::model::*;
use crate::testkit::{name_id, step};

use super::fixtures::*;
use super::worlds::*;

#[test]
fn a_session_on_a_deleted_step_goes_through_its_nearest_anchor() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Payment"),
            step("Payment")
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
        vec![
            anchor("Welcome", MigrationScenario::CleanGraft),
            anchor("Payment", MigrationScenario::GapFill),
        ],
    )
    .deleted("Email", Some("Payment"))
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    // The marker puts the nearest anchor's hash in the flag.
    let s = flagged(
        session(1, "Email", &["Welcome", "Email"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Payment")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("deleted_step"));
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::GapFill)
    );
    assert!(d.result.user_message.is_some());
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn a_deleted_step_without_anchor_exits_the_scenario() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![step("Start over").to("End"), step("End").terminal()],
    );
    let plan = plan_spec(1, 2, vec![]).deleted("Email", None).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(session(1, "Email", &["Welcome", "Email"]), &plan, "");
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert!(
        d.result
            .user_message
            .as_deref()
            .is_some_and(|m| m.contains("start again"))
    );
    assert!(d.applies_migration && d.clear_flag);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Start over"))
    );
    assert_settled(&world, &s, &d, &none());
}
