//! Late arrivals (no flag) and scope filters: evaluated at decision time, and a
//! flag computed for another position is not trusted.

use serde_json::json;

use crate::model::*;
use crate::testkit::name_id;

use super::fixtures::*;
use super::worlds::*;

#[test]
fn late_arrival_in_scope_migrates_as_if_flagged() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(d.flag_plan_id, None);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::GapFill)
    );
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn late_arrival_out_of_scope_stays_without_write() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", |p| {
        p.scope_filter.exclude_channels = vec!["whatsapp".into()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.writes_session());
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("scope"))
    );

    // Scope by CEL over the session, and by step name.
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", |p| {
        p.scope_filter.custom_conditions = vec!["session.current_step == 'Shipping'".into()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    assert!(world.decide(&s, &none()).applies_migration);
}

#[test]
fn a_flag_for_another_position_is_not_trusted() {
    // Marked at Email, then the runtime moved the session to Shipping.
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![
            anchor("Email", MigrationScenario::CleanGraft),
            anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false),
        ],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let mut s = flagged(
        session(1, "Email", &["Welcome", "Email"]),
        &plan,
        &hash_of(&v2, "Email"),
    );
    s.active_step_id = name_id("Shipping");
    let d = world.decide(&s, &none());
    assert_eq!(d.result.anchor_hash, Some(hash_of(&v2, "Shipping")));
    assert_eq!(d.result.action, ReconciliationAction::Collect);
}
