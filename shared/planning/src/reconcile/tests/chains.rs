//! Composite migrations over several plans, and broken chains relocated by
//! content hash.

use serde_json::json;

use crate::model::*;
use crate::reconcile::*;
use crate::testkit::{name_id, step};

use super::fixtures::*;
use super::worlds::*;

/// v1 → v2 inserts "Age check" (age, country) before Shipping; v2 → v3 removes
/// the country question: a composite migration asks for age only.
#[test]
fn composite_accumulates_and_prunes_fields() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Age check 3"),
            step("Age check 3").collects(&["age"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let p12 = gap_plan(&v2, false);
    let p23 = plan_spec(
        2,
        3,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted(
            "Age check 3",
            &["age"],
            false,
        )],
    )
    .build(&v3);
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![
            PlanLink {
                plan: &p12,
                to: &v2,
            },
            PlanLink {
                plan: &p23,
                to: &v3,
            },
        ],
    };
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &p12,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("'country' is no longer used"))
    );
    let k = known(&[("age", plain(json!(33)))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.new_position.as_ref().map(|p| p.version), Some(3));
    assert_eq!(d.flag_plan_id, Some(p12.id()));
    assert_eq!(d.plan_id, Some(p23.id()));
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn composite_follows_an_anchor_renamed_between_versions() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    // v3 replaces Shipping by "Delivery" (new content): v2's Shipping is deleted,
    // its nearest anchor is Done.
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Delivery"),
            step("Delivery").to("Done"),
            step("Done").terminal(),
        ],
    );
    let p12 = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let p23 = plan_spec(2, 3, vec![anchor("Done", MigrationScenario::CleanGraft)])
        .deleted("Shipping", Some("Done"))
        .build(&v3);
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![
            PlanLink {
                plan: &p12,
                to: &v2,
            },
            PlanLink {
                plan: &p23,
                to: &v3,
            },
        ],
    };
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &p12,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Done")));
}

#[test]
fn a_broken_chain_relocates_by_content_hash_or_exits() {
    let v1 = v1();
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping 3"),
            step("Shipping").id(name_id("Shipping 3")).to("Done"),
            step("Done").terminal(),
        ],
    );
    let p23 = plan_spec(2, 3, vec![]).build(&v3);
    // The v1 → v2 plan is missing.
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![PlanLink {
            plan: &p23,
            to: &v3,
        }],
    };
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping 3")));
    assert_eq!(
        d.result.teleport_reason.as_deref(),
        Some("relocated_by_content_hash")
    );
    assert_settled(&world, &s, &d, &none());

    // A step with no counterpart: exit.
    let s = session(1, "Email", &["Welcome", "Email"]);
    let v3b = flow(3, vec![step("Hello").to("Bye"), step("Bye").terminal()]);
    let world = World {
        session_version: &v1,
        current: &v3b,
        chain: vec![],
    };
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert_settled(&world, &s, &d, &none());
}
