//! The policy rules of `PUT /migration-plans/{plan_id}/policies`, one test each,
//! on plans computed from small scenarios.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::diff::diff_scenarios;
use crate::plan::default_policies;
use crate::testkit::{scenario, step};

/// Welcome → Ask email → Payment → Done, with "Ask email" edited in place in V2
/// (it now collects the phone number too): three anchors and one edited step.
fn map_with_edited_step() -> TransformationMap {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment").to("Done"),
            step("Done").terminal(),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email")
                .collects(&["email", "phone"])
                .to("Payment"),
            step("Payment").to("Done"),
            step("Done").terminal(),
        ],
    );
    let map = diff_scenarios(&v1, &v2).transformation_map;
    assert_eq!(map.anchors.len(), 3);
    assert_eq!(map.edited_steps.len(), 1);
    map
}

/// A one-step scenario whose only step is edited: no anchor to relocate to.
fn map_without_anchors() -> TransformationMap {
    let v1 = scenario(1, vec![step("Only").terminal()]);
    let v2 = scenario(2, vec![step("Only").description("changed").terminal()]);
    let map = diff_scenarios(&v1, &v2).transformation_map;
    assert!(map.anchors.is_empty());
    assert_eq!(map.edited_steps.len(), 1);
    map
}

fn anchor_key(map: &TransformationMap, name: &str) -> String {
    map.anchors
        .iter()
        .find(|a| a.anchor_name == name)
        .expect("anchor")
        .anchor_content_hash
        .clone()
}

fn edited_key(map: &TransformationMap) -> String {
    map.edited_steps[0].step.anchor_content_hash.clone()
}

fn issues(
    map: &TransformationMap,
    policies: &BTreeMap<String, AnchorMigrationPolicy>,
) -> Vec<ValidationIssue> {
    validate_policies(map, policies).expect_err("invalid policies")
}

fn loc(parts: &[serde_json::Value]) -> Vec<LocPart> {
    serde_json::from_value(json!(parts)).expect("location")
}

#[test]
fn the_default_policies_are_valid() {
    for map in [map_with_edited_step(), map_without_anchors()] {
        assert_eq!(validate_policies(&map, &default_policies(&map)), Ok(()));
    }
    let map = map_with_edited_step();
    assert_eq!(validate_policies(&map, &BTreeMap::new()), Ok(()));
}

#[test]
fn an_unknown_key_is_reported_alone() {
    let map = map_with_edited_step();
    let mut policy = default_policies(&map).into_values().next().expect("policy");
    // Problems that would be reported for a known key are not looked at.
    policy.scope_filter.min_session_age_days = Some(-1);
    policy.scope_filter.custom_conditions = vec!["this is (( not cel".into()];
    let policies = BTreeMap::from([("0000000000000000".to_string(), policy)]);
    let found = issues(&map, &policies);
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: loc(&[json!("0000000000000000")]),
            msg: "unknown anchor content hash".into(),
            kind: "value_error.unknown_anchor".into(),
        }]
    );
}

#[test]
fn a_policy_repeats_its_key() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Payment");
    let mut policies = default_policies(&map);
    policies.get_mut(&key).expect("policy").anchor_content_hash = anchor_key(&map, "Welcome");
    let found = issues(&map, &policies);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].loc,
        loc(&[json!(key), json!("anchor_content_hash")])
    );
    assert_eq!(found[0].msg, "must equal the policy's key");
    assert_eq!(found[0].kind, "value_error.mismatch");
}

#[test]
fn only_an_edited_step_has_an_edited_step_behavior() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Payment");
    let mut policies = default_policies(&map);
    policies.get_mut(&key).expect("policy").edited_step_behavior = Some(EditedStepBehavior::Stay);
    let found = issues(&map, &policies);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].loc,
        loc(&[json!(key), json!("edited_step_behavior")])
    );
    assert_eq!(
        found[0].msg,
        "only the policy of an edited step (transformation_map.edited_steps) has an edited_step_behavior"
    );
    assert_eq!(found[0].kind, "value_error.not_edited_step");
}

#[test]
fn relocating_needs_a_nearest_anchor() {
    let map = map_with_edited_step();
    let key = edited_key(&map);
    let mut policies = default_policies(&map);
    policies.get_mut(&key).expect("policy").edited_step_behavior =
        Some(EditedStepBehavior::RelocateToNearestAnchor);
    assert_eq!(validate_policies(&map, &policies), Ok(()));

    let map = map_without_anchors();
    let key = edited_key(&map);
    let mut policies = default_policies(&map);
    policies.get_mut(&key).expect("policy").edited_step_behavior =
        Some(EditedStepBehavior::RelocateToNearestAnchor);
    let found = issues(&map, &policies);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].loc,
        loc(&[json!(key), json!("edited_step_behavior")])
    );
    assert_eq!(
        found[0].msg,
        "edited step 'Only' has no nearest anchor to relocate its sessions to"
    );
    assert_eq!(found[0].kind, "value_error.no_nearest_anchor");
    // Staying needs no anchor.
    policies.get_mut(&key).expect("policy").edited_step_behavior = Some(EditedStepBehavior::Stay);
    assert_eq!(validate_policies(&map, &policies), Ok(()));
}

#[test]
fn session_ages_are_bounded_and_ordered() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Welcome");
    let with = |min: Option<i64>, max: Option<i64>| {
        let mut policies = default_policies(&map);
        let filter = &mut policies.get_mut(&key).expect("policy").scope_filter;
        filter.min_session_age_days = min;
        filter.max_session_age_days = max;
        validate_policies(&map, &policies)
    };
    let at = |field: &str| loc(&[json!(key), json!("scope_filter"), json!(field)]);

    assert_eq!(with(Some(0), Some(MAX_SESSION_AGE_DAYS)), Ok(()));
    assert_eq!(with(Some(3), Some(3)), Ok(()));

    let found = with(Some(-1), None).expect_err("negative");
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: at("min_session_age_days"),
            msg: "must be zero or positive".into(),
            kind: "greater_than_equal".into(),
        }]
    );

    let found = with(None, Some(i64::MAX)).expect_err("too old");
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: at("max_session_age_days"),
            msg: "must be at most 3650 days".into(),
            kind: "less_than_equal".into(),
        }]
    );

    let found = with(Some(10), Some(3)).expect_err("empty range");
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: at("min_session_age_days"),
            msg: "must not exceed max_session_age_days (no session could match)".into(),
            kind: "value_error.range".into(),
        }]
    );

    // Both out of bounds, and in the wrong order: max is reported first.
    let found = with(Some(MAX_SESSION_AGE_DAYS + 1), Some(-5)).expect_err("all wrong");
    let kinds: Vec<(&[LocPart], &str)> = found
        .iter()
        .map(|i| (i.loc.as_slice(), i.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (at("max_session_age_days").as_slice(), "greater_than_equal"),
            (at("min_session_age_days").as_slice(), "less_than_equal"),
            (at("min_session_age_days").as_slice(), "value_error.range"),
        ]
    );
}

#[test]
fn too_many_custom_conditions_are_not_compiled() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Welcome");
    let mut policies = default_policies(&map);
    // Not CEL either: only the count is reported.
    policies
        .get_mut(&key)
        .expect("policy")
        .scope_filter
        .custom_conditions = vec!["not (( cel".to_string(); MAX_CUSTOM_CONDITIONS + 1];
    let found = issues(&map, &policies);
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: loc(&[
                json!(key),
                json!("scope_filter"),
                json!("custom_conditions")
            ]),
            msg: "17 custom conditions; the limit (max custom conditions) is 16".into(),
            kind: "value_error.cel.limit".into(),
        }]
    );
}

#[test]
fn conditions_that_do_not_compile_are_located_by_index() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Payment");
    let mut policies = default_policies(&map);
    policies
        .get_mut(&key)
        .expect("policy")
        .scope_filter
        .custom_conditions = vec![
        "session.age_days >= 0".into(),
        "this is (( not cel".into(),
        "1 + 1".into(),
    ];
    let found = issues(&map, &policies);
    let at = |i: usize| {
        loc(&[
            json!(key),
            json!("scope_filter"),
            json!("custom_conditions"),
            json!(i),
        ])
    };
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].loc, at(1));
    assert_eq!(found[0].kind, "value_error.cel");
    assert_eq!(found[1].loc, at(2));
    assert_eq!(found[1].kind, "value_error.cel.not_boolean");
    assert!(found[1].msg.contains("not a boolean"), "{}", found[1].msg);
}

#[test]
fn an_overlong_condition_is_refused_by_its_own_limit() {
    let map = map_with_edited_step();
    let key = anchor_key(&map, "Payment");
    let mut policies = default_policies(&map);
    // Far past the expression limit, but it counts as one character more than
    // the limit against the request budget.
    policies
        .get_mut(&key)
        .expect("policy")
        .scope_filter
        .custom_conditions = vec![format!("{})", " ".repeat(200_000))];
    let found = issues(&map, &policies);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "value_error.cel.limit");
    assert!(
        found[0].msg.contains("max expression length"),
        "{}",
        found[0].msg
    );
}

#[test]
fn the_request_budget_of_condition_characters_spans_policies() {
    let map = map_with_edited_step();
    let mut policies = default_policies(&map);
    // 16 conditions of 4,000 characters: 64,000 per policy, under the budget of
    // 65,536 alone, over it from the second policy on.
    let long = format!("session.age_days >= 0{}", " ".repeat(4_000 - 21));
    assert_eq!(long.chars().count(), 4_000);
    for policy in policies.values_mut() {
        policy.scope_filter.custom_conditions = vec![long.clone(); MAX_CUSTOM_CONDITIONS];
    }
    assert!(policies.len() >= 3);
    let found = issues(&map, &policies);
    // Reported once, on the policy that crossed it; later ones are not compiled.
    let second = policies.keys().nth(1).expect("second");
    assert_eq!(
        found,
        vec![ValidationIssue {
            loc: loc(&[
                json!(second),
                json!("scope_filter"),
                json!("custom_conditions")
            ]),
            msg: "the custom conditions of this request exceed 65536 characters in total (limit: max condition characters per request); send the policies in several requests".into(),
            kind: "value_error.cel.limit".into(),
        }]
    );
    // Each alone is fine.
    for (key, policy) in &policies {
        let one = BTreeMap::from([(key.clone(), policy.clone())]);
        assert_eq!(validate_policies(&map, &one), Ok(()));
    }
}

#[test]
fn every_problem_of_every_policy_is_reported() {
    let map = map_with_edited_step();
    let welcome = anchor_key(&map, "Welcome");
    let payment = anchor_key(&map, "Payment");
    let mut policies = default_policies(&map);
    policies
        .get_mut(&welcome)
        .expect("policy")
        .anchor_content_hash = "x".into();
    policies
        .get_mut(&welcome)
        .expect("policy")
        .scope_filter
        .max_session_age_days = Some(-2);
    policies
        .get_mut(&payment)
        .expect("policy")
        .scope_filter
        .custom_conditions = vec!["((".into()];
    let found = issues(&map, &policies);
    let kinds: Vec<&str> = found.iter().map(|i| i.kind.as_str()).collect();
    let mut expected = [
        (welcome.as_str(), "value_error.mismatch"),
        (welcome.as_str(), "greater_than_equal"),
        (payment.as_str(), "value_error.cel"),
    ];
    // In key order.
    expected.sort_by_key(|(k, _)| *k);
    assert_eq!(
        kinds,
        expected.iter().map(|(_, kind)| *kind).collect::<Vec<_>>()
    );
}

proptest! {
    /// Any pair of ages: accepted exactly when both are in range and ordered,
    /// otherwise each problem is named at its field.
    #[test]
    fn ages_are_accepted_exactly_when_in_range_and_ordered(
        min in proptest::option::of(-5i64..4_000),
        max in proptest::option::of(-5i64..4_000),
    ) {
        let map = map_with_edited_step();
        let key = anchor_key(&map, "Done");
        let mut policies = default_policies(&map);
        let filter = &mut policies.get_mut(&key).expect("policy").scope_filter;
        filter.min_session_age_days = min;
        filter.max_session_age_days = max;
        let in_range = |v: Option<i64>| v.is_none_or(|v| (0..=MAX_SESSION_AGE_DAYS).contains(&v));
        let ordered = match (min, max) {
            (Some(a), Some(b)) => a <= b,
            _ => true,
        };
        let result = validate_policies(&map, &policies);
        prop_assert_eq!(result.is_ok(), in_range(min) && in_range(max) && ordered);
        if let Err(found) = result {
            for issue in found {
                prop_assert_eq!(&issue.loc[..2], &loc(&[json!(key), json!("scope_filter")])[..]);
            }
        }
    }
}
