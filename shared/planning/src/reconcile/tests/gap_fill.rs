//! Gap fill: fields of inserted upstream steps are collected (from known
//! fields, then session variables) and inserted required actions executed.

use serde_json::json;

use crate::model::*;
use crate::reconcile::*;
use crate::testkit::name_id;

use super::fixtures::*;
use super::worlds::*;

#[test]
fn gap_fill_collects_missing_fields_and_keeps_the_flag() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let k = known(&[("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert_eq!(d.fields_asked, vec!["age".to_string()]);
    assert!(
        d.result
            .user_message
            .as_deref()
            .is_some_and(|m| m.contains("age"))
    );
    assert!(!d.clear_flag && !d.applies_migration && d.new_position.is_none());
    // What was filled is still saved.
    assert_eq!(d.set_variables.get("country"), Some(&json!("FR")));
    assert_eq!(
        d.fields_filled.get("country").map(String::as_str),
        Some(SOURCE_KNOWN)
    );
    // Deterministic: the same call gives the same decision.
    assert_eq!(d, world.decide(&s, &k));
    // Saving the filled values and calling again still asks for the missing one only.
    let again = world.decide(&apply(&s, &d), &none());
    assert_eq!(again.result.collect_fields, vec!["age".to_string()]);
}

#[test]
fn gap_fill_uses_known_fields_then_variables_with_confidence_thresholds() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let mut s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    s.variables.insert("country".into(), json!("DE"));

    // Too unsure: not used, the variable does not hold age either.
    let d = world.decide(&s, &known(&[("age", candidate(json!(30), 0.8))]));
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);

    // Used, but to be confirmed.
    let k = known(&[("age", candidate(json!(30), 0.9))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(d.result.confirm_fields, vec!["age".to_string()]);
    assert_eq!(
        d.set_variables,
        [("age".to_string(), json!(30))].into_iter().collect()
    );
    assert_eq!(
        d.fields_filled.get("age").map(String::as_str),
        Some("extraction")
    );
    assert_eq!(
        d.fields_filled.get("country").map(String::as_str),
        Some(SOURCE_VARIABLES)
    );
    assert_settled(&world, &s, &d, &k);

    // Sure enough: used without confirmation; a plain value wins over the variable.
    let d = world.decide(
        &s,
        &known(&[
            ("age", candidate(json!(30), 0.97)),
            ("country", plain(json!("FR"))),
        ]),
    );
    assert!(d.result.confirm_fields.is_empty());
    assert_eq!(d.set_variables.get("country"), Some(&json!("FR")));
}

#[test]
fn gap_fill_required_action_is_executed() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(true));
    let plan = gap_plan(&v2, true);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::ExecuteAction);
    assert_eq!(d.result.execute_action_ids, vec![name_id("Verify ID")]);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping")));
    assert!(d.applies_migration && d.clear_flag);
    assert_settled(&world, &s, &d, &k);
}
