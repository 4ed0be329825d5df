//! Inserted steps and the migration scenario they give their anchors: gap fill
//! for collecting steps and required actions, re-route for a fork with an
//! escaping branch.

use crate::diff::*;
use crate::model::MigrationScenario::*;
use crate::testkit::{StepBuilder, name_id, scenario, step};

use super::fixtures::*;

#[test]
fn inserted_collecting_step_is_gap_fill_downstream_only() {
    let v1 = linear();
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Ask age"),
            step("Ask age").collects(&["age"]).to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert_eq!(
        out.transformation_map.new_node_ids,
        vec![name_id("Ask age")]
    );
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, GapFill);
    assert_eq!(names_inserted(&checkout.upstream_changes), ["Ask age"]);
    assert_eq!(
        checkout.upstream_changes.inserted_nodes[0].collects_fields,
        ["age"]
    );
    assert_eq!(anchor(&out, "Done").migration_scenario, GapFill);
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.migration_scenario, CleanGraft);
    assert_eq!(names_inserted(&welcome.downstream_changes), ["Ask age"]);
    assert!(welcome.upstream_changes.inserted_nodes.is_empty());
}

#[test]
fn inserted_required_action_is_gap_fill_and_plain_step_is_clean_graft() {
    let v1 = linear();
    let with = |s: StepBuilder| {
        scenario(
            2,
            vec![
                step("Welcome").to(&s.clone().build().name),
                s.to("Ask email"),
                step("Ask email").collects(&["email"]).to("Checkout"),
                step("Checkout").to("Done"),
                step("Done").terminal(),
            ],
        )
    };
    let out = diff_scenarios(&v1, &with(step("Verify identity").required_action()));
    assert_eq!(anchor(&out, "Checkout").migration_scenario, GapFill);
    assert!(anchor(&out, "Checkout").upstream_changes.inserted_nodes[0].is_required_action);

    let out = diff_scenarios(&v1, &with(step("Small talk")));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, CleanGraft);
    assert_eq!(names_inserted(&checkout.upstream_changes), ["Small talk"]);
}

#[test]
fn inserted_fork_with_an_escaping_branch_is_re_route() {
    let out = diff_scenarios(&linear(), &with_age_check("Rejected"));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.migration_scenario, ReRoute);
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    let fork = &checkout.upstream_changes.new_forks[0];
    assert_eq!(fork.branches.len(), 2);
    assert_eq!(fork.branches[1].target_step_name, "Rejected");
    assert_eq!(fork.branches[1].condition_fields, ["age"]);
    // The fork is downstream of Welcome: a downstream fork does not re-route.
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.migration_scenario, CleanGraft);
    assert_eq!(names_forks(&welcome.downstream_changes), ["Age check"]);
}

#[test]
fn inserted_fork_whose_branches_all_reach_the_anchor_is_not_re_route() {
    // Both branches end up at Ask email, hence at Checkout.
    let out = diff_scenarios(&linear(), &with_age_check("Ask email"));
    let checkout = anchor(&out, "Checkout");
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    assert_eq!(checkout.migration_scenario, CleanGraft);
}
