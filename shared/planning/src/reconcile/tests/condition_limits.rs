//! Conditions over a limit (docs/design.md, "Conditions are bounded"): reported,
//! never taken.

use serde_json::json;

use crate::model::*;

use super::fixtures::*;
use super::worlds::*;

/// A list literal of `n` numbers: a condition that does a lot of work.
fn numbers(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

#[test]
fn re_route_reports_a_condition_over_a_limit_or_the_budget() {
    let v1 = reroute_v1();
    let over_depth = format!("{} > age", vec!["1"; 200].join("+"));
    let over_budget = format!("{0}.all(a, {0}.all(b, age < 18))", numbers(300));
    for (condition, limit) in [
        (over_depth.as_str(), "max expression depth"),
        (over_budget.as_str(), "max evaluation steps"),
    ] {
        let v2 = reroute_v2(condition);
        let plan = reroute_plan(&v2);
        let world = World::one(&v1, &v2, &plan);
        let s = flagged(
            session(1, "Offer", &["Welcome", "Email", "Offer"]),
            &plan,
            &hash_of(&v2, "Offer"),
        );
        // A minor: only the hostile branch could divert them; it is not taken.
        let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
        assert_eq!(d.result.action, ReconciliationAction::Continue);
        let reason = d.result.reason.unwrap_or_default();
        assert!(
            reason.contains("was not taken") && reason.contains(limit),
            "{reason}"
        );
        // The condition is quoted shortened.
        assert!(reason.chars().count() < 1_000, "{reason}");
    }
}

#[test]
fn a_scope_condition_over_the_budget_leaves_the_session_out_and_says_so() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let bomb = format!(
        "{0}.all(a, {0}.all(b, session.age_days >= 0))",
        numbers(300)
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", move |p| {
        p.scope_filter.custom_conditions = vec![bomb.clone()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.applies_migration && !d.writes_session());
    let reason = d.result.reason.unwrap_or_default();
    assert!(
        reason.contains("outside the scope")
            && reason.contains("custom condition 0")
            && reason.contains("max evaluation steps"),
        "{reason}"
    );
}
