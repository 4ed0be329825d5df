//! Decisions on plans computed by the real diff (`compute_plan`), not written by hand.

use serde_json::json;

use crate::model::*;
use crate::reconcile::*;
use crate::testkit::name_id;

use super::fixtures::*;
use super::worlds::*;

fn computed(v1: &PreparedScenario, v2: &PreparedScenario) -> PreparedPlan {
    let c = crate::plan::compute_plan(
        v1.definition(),
        v2.definition(),
        &crate::plan::SessionCounts::new(),
    );
    let mut plan = plan_spec(v1.version(), v2.version(), vec![])
        .build(v2)
        .plan()
        .clone();
    plan.transformation_map = c.transformation_map;
    plan.anchor_policies = c.anchor_policies;
    PreparedPlan::new(plan)
}

#[test]
fn computed_gap_fill_plan_collects_then_executes_then_settles() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(true));
    let plan = computed(&v1, &v2);
    let shipping = plan
        .plan()
        .transformation_map
        .anchor_by_hash(&hash_of(&v2, "Shipping"))
        .map(|a| a.migration_scenario);
    assert_eq!(shipping, Some(MigrationScenario::GapFill));
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(
        d.result.collect_fields,
        vec!["age".to_string(), "country".to_string()]
    );
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::ExecuteAction);
    assert_eq!(d.result.execute_action_ids, vec![name_id("Verify ID")]);
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn computed_re_route_plan_blocks_a_customer_who_already_paid() {
    let (v1, v2) = paid_world();
    let plan = computed(&v1, &v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::ReRoute)
    );
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint, "{d:?}");
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Shipping"))
    );

    // Before paying, a minor is re-routed.
    let s = flagged(
        session(1, "Payment", &["Welcome", "Payment"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let mut s = s;
    s.step_history.retain(|v| !v.is_checkpoint);
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Teleport, "{d:?}");
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
}
