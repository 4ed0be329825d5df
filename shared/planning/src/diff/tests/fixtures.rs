//! Helpers shared by the diff tests: looking anchors up by name, the names in a
//! region, and the flows most tests start from.

use crate::diff::*;
use crate::model::{AnchorTransformation, RegionChanges, ScenarioInput};
use crate::testkit::{scenario, step};

pub(super) fn anchor<'m>(out: &'m DiffOutput, name: &str) -> &'m AnchorTransformation {
    out.transformation_map
        .anchors
        .iter()
        .find(|a| a.anchor_name == name)
        .unwrap_or_else(|| panic!("no anchor {name}"))
}

pub(super) fn names_inserted(r: &RegionChanges) -> Vec<&str> {
    r.inserted_nodes
        .iter()
        .map(|n| n.node_name.as_str())
        .collect()
}

pub(super) fn names_forks(r: &RegionChanges) -> Vec<&str> {
    r.new_forks
        .iter()
        .map(|f| f.fork_node_name.as_str())
        .collect()
}

/// Welcome → Ask email → Checkout → Done
pub(super) fn linear() -> ScenarioInput {
    scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    )
}

/// Welcome → Age check (fork: adult → Ask email, minor → Rejected) → …
pub(super) fn with_age_check(minor_target: &str) -> ScenarioInput {
    scenario(
        2,
        vec![
            step("Welcome").to("Age check"),
            step("Age check")
                .branch("Ask email", "age >= 18", &["age"], 1)
                .branch(minor_target, "age < 18", &["age"], 0),
            step("Ask email").collects(&["email"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Rejected").terminal(),
        ],
    )
}
