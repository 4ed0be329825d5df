//! Both renderings of one plan: a re-route with a new fork, a removed step
//! and a checkpoint.

use super::*;
use crate::model::ScenarioInput;
use crate::plan::{SessionCounts, compute_plan};
use crate::testkit::{scenario, step};

fn pair() -> (ScenarioInput, ScenarioInput) {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment").checkpoint("Paid").to("Done"),
            step("Done"),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Age check"),
            step("Age check")
                .branch("Payment", "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18 && name == \"x\"", &["age"], 0),
            step("Payment").checkpoint("Paid").to("Done"),
            step("Done"),
            step("Rejected"),
        ],
    );
    (v1, v2)
}

#[test]
fn text_review_has_every_section() {
    let (v1, v2) = pair();
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let t = text(&plan, &v1, &v2);
    for needle in [
        "Migration plan: Test flow v1 → Test flow v2",
        "SUMMARY",
        "[re-route] 2 anchors: Payment, Done",
        "? new forks: Age check (age >= 18 → Payment",
        "- removed: Ask email",
        "DELETED STEPS",
        "Ask email  → sessions continue at 'Payment'",
        "NEW STEPS",
        "WARNINGS",
        "FIELDS TO COLLECT",
        "age (Age)",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn mermaid_colours_anchors_and_marks_new_and_deleted_steps() {
    let (v1, v2) = pair();
    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let m = mermaid(&plan, &v2);
    assert!(m.starts_with("flowchart TD\n"));
    assert!(m.contains("s0[\"Welcome\"]:::clean_graft"));
    assert!(m.contains("[\"+ Age check\"]:::inserted"));
    assert!(m.contains("[\"Payment ⚑\"]:::re_route"));
    assert!(m.contains("-->|\"age < 18 && name == #quot;x#quot;\"|"));
    assert!(m.contains("subgraph deleted_steps"));
    assert!(m.contains("d0[\"- Ask email\"]:::deleted"));
    assert!(m.contains("d0 -.->|\"sessions move\"|"));
}
