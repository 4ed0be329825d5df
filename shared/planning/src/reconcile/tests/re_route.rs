//! Re-route: a new upstream fork's conditions are evaluated, and the session
//! is diverted, asked for the fields its conditions need, or kept on its anchor.

use serde_json::json;

use crate::model::*;
use crate::testkit::name_id;

use super::fixtures::*;
use super::worlds::*;

#[test]
fn re_route_asks_for_missing_condition_fields() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("age < 18");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert!(!d.clear_flag);
}

#[test]
fn re_route_teleports_to_a_true_branch_that_leaves_the_anchor_path() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("age < 18");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let k = known(&[("age", plain(json!(16)))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("re_route"));
    assert!(d.result.user_message.is_some());
    assert_eq!(d.set_variables.get("age"), Some(&json!(16)));
    assert_settled(&world, &s, &d, &k);

    // An adult stays on the anchor's path: graft.
    let d = world.decide(&s, &known(&[("age", plain(json!(30)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
}

#[test]
fn re_route_never_takes_an_invalid_condition_and_says_so() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("customer looks underage");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    let reason = d.result.reason.unwrap_or_default();
    assert!(reason.contains("not valid CEL"), "{reason}");
}

#[test]
fn re_route_fallback_branch_is_taken_when_every_other_is_false() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
    // No value for `age`: CEL fails, so the fallback cannot be concluded either.
    let d = world.decide(&s, &known(&[("age", plain(json!("unknown")))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
}

#[test]
fn re_route_upstream_of_a_passed_checkpoint_is_blocked_and_grafts_on_the_anchor() {
    let (v1, v2) = paid_world();
    let plan = plan_spec(
        1,
        2,
        vec![
            anchor("Shipping", MigrationScenario::ReRoute)
                .inserted("Age gate", &[], false)
                .fork("Age gate"),
        ],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    // "Customers under 18 should be rejected, but they already paid."
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint);
    assert!(d.result.checkpoint_warning.is_some());
    assert!(d.applies_migration);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Shipping"))
    );
    assert_eq!(d.new_position.as_ref().map(|p| p.version), Some(2));

    // Without the age, nobody is asked: that fork can never be re-decided.
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration && !d.result.blocked_by_checkpoint);
}
