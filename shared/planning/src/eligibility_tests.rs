//! Which steps a deployment walks and which sessions it flags.

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::diff::diff_scenarios;
use crate::model::{PendingMigration, ScopeFilter};
use crate::testkit::{name_id, scenario, step};

const PLAN: Uuid = Uuid::from_u128(0x91a4);
const OTHER_PLAN: Uuid = Uuid::from_u128(0x0b2);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn session(channel: &str, age_days: i64) -> Session {
    let created = now() - chrono::Duration::days(age_days);
    Session {
        session_id: "s-1".into(),
        tenant_id: Uuid::nil(),
        channel: channel.into(),
        customer_id: None,
        active_scenario_id: Uuid::from_u128(1),
        active_scenario_version: 1,
        active_step_id: name_id("Payment"),
        scenario_checksum: None,
        step_history: Vec::new(),
        variables: Default::default(),
        pending_migration: None,
        pinned_version: None,
        created_at: created,
        updated_at: created,
        revision: 3,
    }
}

fn flagged_by(mut s: Session, plan: Uuid) -> Session {
    s.pending_migration = Some(PendingMigration {
        migration_plan_id: plan,
        target_version: 2,
        anchor_content_hash: "h".into(),
        from_step_id: s.active_step_id,
        marked_at: now(),
    });
    s
}

fn pinned(mut s: Session) -> Session {
    s.pinned_version = Some(1);
    s
}

fn web_only() -> ScopeFilter {
    ScopeFilter {
        include_channels: vec!["web".into()],
        ..ScopeFilter::default()
    }
}

#[test]
fn without_a_policy_every_unflagged_session_is_marked() {
    for channel in ["web", "sms"] {
        let s = session(channel, 400);
        assert_eq!(
            marking_decision(&s, PLAN, None, "Payment", now()),
            MarkDecision::Mark
        );
    }
}

#[test]
fn the_scope_filter_decides_for_unflagged_sessions() {
    let filter = web_only();
    let scope = CompiledScope::compile(&filter).expect("scope");
    let decide = |s: &Session| marking_decision(s, PLAN, Some(&scope), "Payment", now());
    assert_eq!(decide(&session("web", 1)), MarkDecision::Mark);
    assert_eq!(decide(&session("sms", 1)), MarkDecision::OutOfScope);

    let filter = ScopeFilter {
        exclude_current_nodes: vec!["Payment".into()],
        ..ScopeFilter::default()
    };
    let scope = CompiledScope::compile(&filter).expect("scope");
    let s = session("web", 1);
    assert_eq!(
        marking_decision(&s, PLAN, Some(&scope), "Payment", now()),
        MarkDecision::OutOfScope
    );
    assert_eq!(
        marking_decision(&s, PLAN, Some(&scope), "Shipping", now()),
        MarkDecision::Mark
    );
}

#[test]
fn a_condition_that_cannot_be_evaluated_leaves_the_session_out() {
    let filter = ScopeFilter {
        custom_conditions: vec!["session.variables.age >= 18".into()],
        ..ScopeFilter::default()
    };
    let scope = CompiledScope::compile(&filter).expect("scope");
    let mut adult = session("web", 1);
    adult.variables.insert("age".into(), 30.into());
    assert_eq!(
        marking_decision(&adult, PLAN, Some(&scope), "Payment", now()),
        MarkDecision::Mark
    );
    // No `age` variable: the condition errors, and the session is not migrated.
    let unknown = session("web", 1);
    assert_eq!(
        marking_decision(&unknown, PLAN, Some(&scope), "Payment", now()),
        MarkDecision::OutOfScope
    );
}

#[test]
fn flags_and_pins_come_before_the_scope() {
    let filter = web_only();
    let scope = CompiledScope::compile(&filter).expect("scope");
    for channel in ["web", "sms"] {
        let decide = |s: &Session| marking_decision(s, PLAN, Some(&scope), "Payment", now());
        assert_eq!(
            decide(&flagged_by(session(channel, 1), PLAN)),
            MarkDecision::AlreadyMarked
        );
        assert_eq!(
            decide(&flagged_by(session(channel, 1), OTHER_PLAN)),
            MarkDecision::FlaggedByAnotherPlan
        );
        assert_eq!(decide(&pinned(session(channel, 1))), MarkDecision::Pinned);
        // A flag outranks a pin (a pinned session that somehow got a flag).
        assert_eq!(
            decide(&pinned(flagged_by(session(channel, 1), PLAN))),
            MarkDecision::AlreadyMarked
        );
    }
}

#[test]
fn only_this_plans_flag_counts() {
    let s = session("web", 1);
    assert!(!is_flagged_by(&s, PLAN));
    assert!(is_flagged_by(&flagged_by(s.clone(), PLAN), PLAN));
    assert!(!is_flagged_by(&flagged_by(s.clone(), OTHER_PLAN), PLAN));
    assert!(!is_flagged_by(&pinned(s), PLAN));
}

#[test]
fn a_plan_marks_its_anchors_then_its_deleted_steps() {
    let v1 = scenario(
        1,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email"]).to("Legacy"),
            step("Legacy").to("Done"),
            step("Done").terminal(),
        ],
    );
    // "Legacy" deleted, "Ask email" edited in place.
    let v2 = scenario(
        2,
        vec![
            step("Welcome").to("Ask email"),
            step("Ask email").collects(&["email", "phone"]).to("Done"),
            step("Done").terminal(),
        ],
    );
    let map = diff_scenarios(&v1, &v2).transformation_map;
    let steps = marked_steps(&map);
    let ids: Vec<Uuid> = steps.iter().map(|s| s.step_id).collect();
    let anchor_ids: Vec<Uuid> = map.anchors.iter().map(|a| a.anchor_node_id_v1).collect();
    let deleted_ids: Vec<Uuid> = map.deleted_nodes.iter().map(|d| d.node_id_v1).collect();
    assert_eq!(ids, [anchor_ids, deleted_ids].concat());
    assert!(ids.contains(&name_id("Legacy")));
    assert!(ids.contains(&name_id("Ask email")));
    for (marked, anchor) in steps.iter().zip(&map.anchors) {
        assert_eq!(
            marked.anchor_content_hash.as_deref(),
            Some(anchor.anchor_content_hash.as_str())
        );
    }
    // A deleted step carries its nearest anchor's key; the edited step its own.
    let edited = steps
        .iter()
        .find(|s| s.step_id == name_id("Ask email"))
        .expect("edited");
    assert_eq!(
        edited.anchor_content_hash.as_deref(),
        Some(map.edited_steps[0].step.anchor_content_hash.as_str())
    );
    let legacy = steps
        .iter()
        .find(|s| s.step_id == name_id("Legacy"))
        .expect("deleted");
    assert!(legacy.anchor_content_hash.is_some());
}

#[test]
fn a_deleted_step_without_any_anchor_is_still_marked() {
    let v1 = scenario(1, vec![step("Old").terminal()]);
    let v2 = scenario(2, vec![step("New").terminal()]);
    let map = diff_scenarios(&v1, &v2).transformation_map;
    assert_eq!(
        marked_steps(&map),
        vec![MarkedStep {
            step_id: name_id("Old"),
            anchor_content_hash: None,
        }]
    );
}

fn arb_session() -> impl Strategy<Value = Session> {
    (
        prop_oneof![Just("web"), Just("sms"), Just("voice")],
        0i64..800,
        prop_oneof![Just(None), Just(Some(PLAN)), Just(Some(OTHER_PLAN))],
        any::<bool>(),
    )
        .prop_map(|(channel, age, flag, pin)| {
            let mut s = session(channel, age);
            if let Some(plan) = flag {
                s = flagged_by(s, plan);
            }
            if pin {
                s = pinned(s);
            }
            s
        })
}

proptest! {
    /// Marking flags exactly the sessions that carry no flag, no pin and are in
    /// scope; a session counts as marked afterwards exactly when it is flagged by
    /// this plan or was flagged now.
    #[test]
    fn the_decision_matches_the_rule(
        s in arb_session(),
        max_age in proptest::option::of(0i64..800),
        channels in proptest::sample::subsequence(vec!["web", "sms", "voice"], 0..=3),
    ) {
        let filter = ScopeFilter {
            include_channels: channels.iter().map(|c| c.to_string()).collect(),
            max_session_age_days: max_age,
            ..ScopeFilter::default()
        };
        let scope = CompiledScope::compile(&filter).expect("scope");
        let decision = marking_decision(&s, PLAN, Some(&scope), "Payment", now());
        let in_scope = scope.includes(&s, "Payment", now());
        let free = s.pending_migration.is_none() && s.pinned_version.is_none();
        prop_assert_eq!(decision == MarkDecision::Mark, free && in_scope);
        prop_assert_eq!(decision == MarkDecision::AlreadyMarked, is_flagged_by(&s, PLAN));
        // Without a scope, only the flags and the pin decide.
        let unscoped = marking_decision(&s, PLAN, None, "Payment", now());
        prop_assert_eq!(unscoped == MarkDecision::Mark, free);
        prop_assert_ne!(unscoped, MarkDecision::OutOfScope);
    }
}
