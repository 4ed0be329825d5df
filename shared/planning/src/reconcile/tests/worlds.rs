//! The example flows several tests share, each with its plan where it has one:
//! the support flow (v1), the gap-fill world, the re-route world and the
//! paid-customer world.

use crate::model::*;
use crate::reconcile::*;
use crate::testkit::{StepBuilder, step};

use super::fixtures::*;

/// Welcome → Email → Payment (checkpoint) → Shipping → Done.
pub(super) fn v1_steps() -> Vec<StepBuilder> {
    vec![
        step("Welcome").to("Email"),
        step("Email").collects(&["email"]).to("Payment"),
        step("Payment")
            .checkpoint("Payment processed")
            .performs_action()
            .to("Shipping"),
        step("Shipping").to("Done"),
        step("Done").terminal(),
    ]
}

pub(super) fn v1() -> PreparedScenario {
    flow(1, v1_steps())
}

/// V2 inserts "Age check" (collects age) and "Verify ID" (required action) before Payment.
pub(super) fn gap_world_steps(with_action: bool) -> Vec<StepBuilder> {
    let mut steps = vec![
        step("Welcome").to("Email"),
        step("Email").collects(&["email"]).to("Age check"),
    ];
    if with_action {
        steps.push(
            step("Age check")
                .collects(&["age", "country"])
                .to("Verify ID"),
        );
        steps.push(step("Verify ID").required_action().to("Payment"));
    } else {
        steps.push(
            step("Age check")
                .collects(&["age", "country"])
                .to("Payment"),
        );
    }
    steps.extend([
        step("Payment")
            .checkpoint("Payment processed")
            .performs_action()
            .to("Shipping"),
        step("Shipping").to("Done"),
        step("Done").terminal(),
    ]);
    steps
}

pub(super) fn gap_plan(v2: &PreparedScenario, with_action: bool) -> PreparedPlan {
    let mut a = anchor("Shipping", MigrationScenario::GapFill).inserted(
        "Age check",
        &["age", "country"],
        false,
    );
    if with_action {
        a = a.inserted("Verify ID", &[], true);
    }
    plan_spec(1, 2, vec![a]).build(v2)
}

/// V1: Welcome → Email → Offer → Done. V2 inserts a fork "Age gate" before Offer:
/// adults go on to Offer, minors to Rejected (a dead end).
pub(super) fn reroute_v1() -> PreparedScenario {
    flow(
        1,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Offer"),
            step("Offer").to("Done"),
            step("Done").terminal(),
        ],
    )
}

pub(super) fn reroute_v2(minor_condition: &str) -> PreparedScenario {
    flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Age gate"),
            step("Age gate")
                .branch("Offer", "age >= 18", &["age"], 1)
                .branch("Rejected", minor_condition, &["age"], 0),
            step("Offer").to("Done"),
            step("Rejected").terminal(),
            step("Done").terminal(),
        ],
    )
}

pub(super) fn reroute_plan(v2: &PreparedScenario) -> PreparedPlan {
    plan_spec(
        1,
        2,
        vec![
            anchor("Offer", MigrationScenario::ReRoute)
                .inserted("Age gate", &[], false)
                .fork("Age gate"),
        ],
    )
    .build(v2)
}

/// V1: Welcome → Payment (checkpoint) → Shipping → Done. V2 puts an age gate
/// before Payment: minors go to Rejected. A customer who already paid is past it.
pub(super) fn paid_world() -> (PreparedScenario, PreparedScenario) {
    let v1 = flow(
        1,
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
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Age gate"),
            step("Age gate")
                .branch("Payment", "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18", &["age"], 0),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Rejected").terminal(),
            step("Done").terminal(),
        ],
    );
    (v1, v2)
}
