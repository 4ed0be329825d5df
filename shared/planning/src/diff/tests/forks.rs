//! New forks and transition changes between existing steps.

use crate::diff::*;
use crate::model::{MigrationScenario::*, TransitionChangeType};
use crate::testkit::{name_id, scenario, step};

use super::fixtures::*;

#[test]
fn existing_step_gaining_a_branch_is_a_new_fork() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").to("Checkout"),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Human agent").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").to_if("Checkout", "", 0).to_if(
                "Human agent",
                "wants_human == true",
                1,
            ),
            step("Checkout").to("Done"),
            step("Done").terminal(),
            step("Human agent").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    assert!(out.transformation_map.new_node_ids.is_empty());
    let checkout = anchor(&out, "Checkout");
    assert_eq!(names_forks(&checkout.upstream_changes), ["Ask email"]);
    assert_eq!(checkout.migration_scenario, ReRoute);
    // At the fork itself the new branch is a downstream fork, not an upstream one.
    let ask = anchor(&out, "Ask email");
    assert_eq!(names_forks(&ask.downstream_changes), ["Ask email"]);
    assert_eq!(ask.migration_scenario, CleanGraft);
    // Human agent is now reachable from Welcome: it moved into Welcome's downstream.
    let welcome = anchor(&out, "Welcome");
    assert_eq!(names_inserted(&welcome.downstream_changes), ["Human agent"]);
    let added: Vec<_> = ask
        .downstream_changes
        .modified_transitions
        .iter()
        .map(|c| c.change_type)
        .collect();
    assert_eq!(added, [TransitionChangeType::Added]);
}

#[test]
fn fork_whose_branch_now_points_at_an_inserted_step_is_not_a_new_fork() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Route"),
            step("Route")
                .to_if("Sales", "intent == 'buy'", 1)
                .to_if("Support", "", 0),
            step("Sales").to("Done"),
            step("Support").to("Done"),
            step("Done").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Route"),
            step("Route")
                .to_if("Qualify", "intent == 'buy'", 1)
                .to_if("Support", "", 0),
            step("Qualify").to("Sales"),
            step("Sales").to("Done"),
            step("Support").to("Done"),
            step("Done").terminal(),
        ],
    );
    let out = diff_scenarios(&v1, &v2);
    for a in &out.transformation_map.anchors {
        assert!(a.upstream_changes.new_forks.is_empty(), "{}", a.anchor_name);
        assert!(
            a.downstream_changes.new_forks.is_empty(),
            "{}",
            a.anchor_name
        );
    }
    assert_eq!(anchor(&out, "Sales").migration_scenario, CleanGraft);
    // The redirected branch is a modified transition of Route (same target hash? no:
    // Sales → Qualify is another target, so one removed and one added).
    let route = anchor(&out, "Route");
    let kinds: Vec<_> = route
        .downstream_changes
        .modified_transitions
        .iter()
        .map(|c| (c.change_type, c.to_step_id_v1, c.to_step_id_v2))
        .collect();
    assert_eq!(
        kinds,
        [
            (TransitionChangeType::Added, None, Some(name_id("Qualify"))),
            (TransitionChangeType::Removed, Some(name_id("Sales")), None),
        ]
    );
}

#[test]
fn condition_change_is_a_modified_transition_and_a_new_fork() {
    let v1 = with_age_check("Rejected");
    let mut v2 = v1.clone();
    v2.version = 3;
    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.transitions[0].condition_text = "age >= 21".into();
    fork.transitions[1].condition_text = "age < 21".into();
    let out = diff_scenarios(&v1, &v2);
    let own = &anchor(&out, "Age check")
        .downstream_changes
        .modified_transitions;
    assert_eq!(own.len(), 2);
    assert!(
        own.iter()
            .all(|c| c.change_type == TransitionChangeType::Modified
                && c.from_step_id == name_id("Age check"))
    );
    let checkout = anchor(&out, "Checkout");
    assert_eq!(checkout.upstream_changes.modified_transitions.len(), 2);
    assert_eq!(names_forks(&checkout.upstream_changes), ["Age check"]);
    assert_eq!(checkout.migration_scenario, ReRoute);
    let welcome = anchor(&out, "Welcome");
    assert_eq!(welcome.downstream_changes.modified_transitions.len(), 2);
    assert!(welcome.upstream_changes.is_empty());
}

#[test]
fn priority_only_change_is_modified_but_not_a_new_fork() {
    let v1 = with_age_check("Rejected");
    let mut v2 = v1.clone();
    let fork = v2.steps.iter_mut().find(|s| s.name == "Age check").unwrap();
    fork.transitions[0].priority = 7;
    let out = diff_scenarios(&v1, &v2);
    let checkout = anchor(&out, "Checkout");
    assert!(checkout.upstream_changes.new_forks.is_empty());
    assert_eq!(checkout.upstream_changes.modified_transitions.len(), 1);
    assert_eq!(checkout.migration_scenario, CleanGraft);
}
