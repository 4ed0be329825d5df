//! Plan, policy and summary rules: the transformation map, default policies,
//! policy validation, and the summary's counts and warnings.

use super::fields::display_name;
use super::*;
use crate::model::Severity;
use crate::testkit::{name_id, scenario, step};

fn linear() -> ScenarioInput {
    scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    )
}

/// V2: an age check fork before the payment (minors are rejected), a deleted step,
/// a new collecting step.
fn edited() -> ScenarioInput {
    scenario(
        2,
        vec![
            step("Welcome").to("Age check"),
            step("Age check")
                .branch("Ask phone", "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18", &["age"], 0),
            step("Ask phone").collects(&["phone_number"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
            step("Rejected").terminal(),
        ],
    )
}

fn counts(pairs: &[(&str, u64)]) -> SessionCounts {
    pairs.iter().map(|(n, c)| (name_id(n), *c)).collect()
}

fn warnings_with<'p>(plan: &'p PlanComputation, needle: &str) -> Vec<&'p MigrationWarning> {
    plan.summary
        .warnings
        .iter()
        .filter(|w| w.message.contains(needle))
        .collect()
}

#[test]
fn checksums_policies_and_counters() {
    let plan = compute_plan(&linear(), &edited(), &SessionCounts::new());
    assert_eq!(plan.scenario_checksum_v1, scenario_checksum(&linear()));
    assert_eq!(plan.scenario_checksum_v2, scenario_checksum(&edited()));
    let s = &plan.summary;
    assert_eq!(s.total_anchors, 4);
    assert_eq!(s.nodes_deleted, 1);
    assert_eq!(
        s.anchors_with_clean_graft + s.anchors_with_gap_fill + s.anchors_with_re_route,
        4
    );
    assert_eq!(s.anchors_with_re_route, 3, "Payment, Shipping, Done");
    assert_eq!(plan.anchor_policies.len(), 4);
    for a in &plan.transformation_map.anchors {
        let p = &plan.anchor_policies[&a.anchor_content_hash];
        assert_eq!(p.anchor_name, a.anchor_name);
        assert!(p.update_downstream);
        assert_eq!(p.force_scenario, None);
        assert_eq!(p.scope_filter, ScopeFilter::default());
    }
    assert_eq!(s.estimated_sessions_affected, 0);
    // Every anchor is listed, with 0 sessions (the original's clients index it).
    assert_eq!(s.sessions_by_anchor.len(), 4);
    for a in &plan.transformation_map.anchors {
        assert_eq!(s.sessions_by_anchor[&a.anchor_content_hash], 0);
    }
}

#[test]
fn counted_steps_are_anchors_and_deleted_steps() {
    let draft = prepare(&linear(), &edited());
    let steps = draft.counted_steps();
    let expected: Vec<Uuid> = ["Welcome", "Payment", "Shipping", "Done", "Ask email"]
        .iter()
        .map(|n| name_id(n))
        .collect();
    assert_eq!(steps, expected);
    assert_eq!(counted_steps(&draft.transformation_map), expected);
}

#[test]
fn sessions_on_deleted_steps_count_at_their_nearest_anchor() {
    let plan = compute_plan(
        &linear(),
        &edited(),
        &counts(&[
            ("Ask email", 5),
            ("Payment", 7),
            ("Shipping", 2),
            ("Unrelated", 100),
        ]),
    );
    let s = &plan.summary;
    let hash = |n: &str| {
        plan.transformation_map
            .anchors
            .iter()
            .find(|a| a.anchor_name == n)
            .unwrap()
            .anchor_content_hash
            .clone()
    };
    assert_eq!(s.sessions_by_anchor[&hash("Payment")], 12);
    assert_eq!(s.sessions_by_anchor[&hash("Shipping")], 2);
    assert_eq!(s.sessions_by_anchor[&hash("Welcome")], 0);
    assert_eq!(s.estimated_sessions_affected, 14);
    let deleted = warnings_with(&plan, "deleted step 'Ask email'");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].severity, Severity::Warning);
    assert_eq!(deleted[0].affected_sessions_estimate, 5);
    assert_eq!(deleted[0].anchor_name, "Payment");
}

#[test]
fn deleted_step_without_anchor_is_critical_and_first() {
    let v1 = scenario(
        1,
        vec![step("Welcome").to("Done"), step("Done"), step("Island")],
    );
    let v2 = scenario(2, vec![step("Welcome").to("Done"), step("Done")]);
    let plan = compute_plan(&v1, &v2, &counts(&[("Island", 3)]));
    let first = &plan.summary.warnings[0];
    assert_eq!(first.severity, Severity::Critical);
    assert!(first.message.contains("'Island'"));
    assert_eq!(first.affected_sessions_estimate, 3);

    let offline = compute_plan(&linear(), &edited(), &SessionCounts::new());
    let info = warnings_with(&offline, "Step 'Ask email' is deleted");
    assert_eq!(info[0].severity, Severity::Info);
}

#[test]
fn re_route_past_a_checkpoint_is_warned() {
    let plan = compute_plan(
        &linear(),
        &edited(),
        &counts(&[("Shipping", 4), ("Done", 1)]),
    );
    let w = warnings_with(&plan, "New fork 'Age check'");
    assert_eq!(w.len(), 1, "{:#?}", plan.summary.warnings);
    assert!(w[0].message.contains("'Payment'"));
    // Customers at Shipping and Done passed Payment; customers at Payment did not yet.
    assert!(w[0].message.contains("2 re-route anchors"));
    assert_eq!(w[0].anchor_name, "Shipping");
    assert_eq!(w[0].affected_sessions_estimate, 5);
}

#[test]
fn no_checkpoint_warning_when_the_checkpoint_is_before_the_fork() {
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Gift check"),
            step("Gift check")
                .branch("Shipping", "is_gift == false", &["is_gift"], 0)
                .branch("Gift wrap", "is_gift == true", &["is_gift"], 1),
            step("Shipping").to("Done"),
            step("Done").terminal(),
            step("Gift wrap").terminal(),
        ],
    );
    let plan = compute_plan(&linear(), &v2, &SessionCounts::new());
    assert!(plan.summary.anchors_with_re_route > 0);
    assert!(warnings_with(&plan, "New fork").is_empty());
}

#[test]
fn conditions_that_are_not_cel_are_warned() {
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Mood"),
            step("Mood")
                .to_if("Ask email", "", 0)
                .to_if("Human agent", "customer seems upset", 1),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
            step("Human agent").terminal(),
        ],
    );
    let plan = compute_plan(&linear(), &v2, &counts(&[("Payment", 2)]));
    let w = warnings_with(&plan, "not valid CEL");
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("\"customer seems upset\""));
    assert_eq!(w[0].anchor_name, "Mood");
    assert_eq!(w[0].affected_sessions_estimate, 2);
    // The CEL fork of `edited()` is fine.
    let ok = compute_plan(&linear(), &edited(), &SessionCounts::new());
    assert!(warnings_with(&ok, "not valid CEL").is_empty());
}

#[test]
fn fields_to_collect_come_from_new_steps_and_fork_conditions() {
    let plan = compute_plan(&linear(), &edited(), &counts(&[("Done", 3)]));
    let fields = &plan.summary.fields_to_collect;
    let names: Vec<&str> = fields.iter().map(|f| f.field_name.as_str()).collect();
    assert_eq!(names, ["age", "phone_number"]);
    let age = &fields[0];
    assert_eq!(age.display_name, "Age");
    assert!(!age.can_extract_from_conversation);
    assert!(age.reason.contains("new fork 'Age check'"));
    let phone = &fields[1];
    assert_eq!(phone.display_name, "Phone Number");
    assert!(phone.can_extract_from_conversation);
    assert_eq!(phone.affected_anchors, ["Payment", "Shipping", "Done"]);
    let w = warnings_with(&plan, "Field 'phone_number'");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].severity, Severity::Info);
    assert_eq!(w[0].affected_sessions_estimate, 3);
}

#[test]
fn new_required_actions_are_announced() {
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("KYC"),
            step("KYC").required_action().to("Ask email"),
            step("Ask email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = compute_plan(&linear(), &v2, &SessionCounts::new());
    let w = warnings_with(&plan, "New required action 'KYC'");
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("4 anchors"));
}

#[test]
fn ambiguous_and_unreachable_steps_are_warned() {
    use crate::testkit::uuid_n;
    let v1 = scenario(
        1,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(1)),
            step("Note").id(uuid_n(2)),
        ],
    );
    let v2 = scenario(
        2,
        vec![
            step("Welcome"),
            step("Note").id(uuid_n(3)),
            step("Note").id(uuid_n(4)),
        ],
    );
    let mut c = SessionCounts::new();
    c.insert(uuid_n(1), 2);
    c.insert(uuid_n(2), 1);
    let plan = compute_plan(&v1, &v2, &c);
    let w = warnings_with(&plan, "could not be told apart");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].anchor_name, "Note");
    assert_eq!(w[0].affected_sessions_estimate, 3);
    let u = warnings_with(&plan, "cannot be reached from the entry step");
    assert_eq!(u.len(), 1);
    assert!(u[0].message.starts_with("2 steps"));
}

#[test]
fn warnings_are_ordered_by_severity() {
    let plan = compute_plan(&linear(), &edited(), &counts(&[("Ask email", 1)]));
    let severities: Vec<Severity> = plan.summary.warnings.iter().map(|w| w.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(severities, sorted);
}

#[test]
fn display_names_follow_python_title() {
    assert_eq!(display_name("date_of_birth"), "Date Of Birth");
    assert_eq!(display_name("e-mail"), "E Mail");
    assert_eq!(display_name("iban2fa"), "Iban2Fa");
}
