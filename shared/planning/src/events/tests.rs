//! Which events a plan's history gives, their types and their stable ids.

use chrono::Duration;

use super::*;
use crate::lifecycle::{PlanCommand, transition};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

fn new_plan() -> MigrationPlan {
    MigrationPlan {
        id: crate::testkit::uuid_n(1),
        tenant_id: crate::testkit::uuid_n(2),
        scenario_id: crate::testkit::uuid_n(3),
        scenario_name: "Onboarding".into(),
        from_version: 1,
        to_version: 2,
        scenario_checksum_v1: "a".into(),
        scenario_checksum_v2: "b".into(),
        transformation_map: Default::default(),
        anchor_policies: Default::default(),
        summary: Default::default(),
        status: PlanStatus::Pending,
        created_at: at(0),
        created_by: Some("author".into()),
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: None,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: CREATED_REVISION,
    }
}

/// Applies `command` the way the stores do: the change and its record.
fn change(plan: &mut MigrationPlan, command: PlanCommand, minute: i64) {
    transition(plan.status, command, at(minute))
        .unwrap()
        .apply(plan);
}

/// What activation records (the stores write it; it is not a `StatusChange`).
fn deploy(plan: &mut MigrationPlan, minute: i64, percent: u8) {
    plan.status = PlanStatus::Deploying;
    plan.revision += 1;
    TransitionRecord {
        from: PlanStatus::Approved,
        to: PlanStatus::Deploying,
        at: at(minute),
        revision: plan.revision,
        by: Some("ana".into()),
        reason: None,
        percent: Some(percent),
    }
    .append_to(&mut plan.transitions);
}

fn counters(pending: u64) -> EventCounters {
    EventCounters {
        sessions_marked: 10,
        migrations_applied: 10 - pending,
        migrations_pending: pending,
        flags_withdrawn: 0,
    }
}

fn types(events: &[LifecycleEvent]) -> Vec<&str> {
    events.iter().map(|e| e.detail_type.as_str()).collect()
}

#[test]
fn a_new_plan_announces_its_creation_once() {
    let plan = new_plan();
    let events = unpublished(&plan, 0, counters(0));
    assert_eq!(types(&events), ["Plan Created"]);
    let created = &events[0].detail;
    assert_eq!(created.event_id, format!("{}:created", plan.id));
    assert_eq!((created.from, created.to), (None, PlanStatus::Pending));
    assert_eq!(created.at, at(0));
    assert_eq!(created.by.as_deref(), Some("author"));
    assert!(unpublished(&plan, CREATED_REVISION, counters(0)).is_empty());
}

#[test]
fn a_whole_rollout_gives_one_event_per_change_in_order_with_stable_ids() {
    let mut plan = new_plan();
    change(
        &mut plan,
        PlanCommand::Approve {
            by: Some("lead".into()),
        },
        1,
    );
    deploy(&mut plan, 2, 10);
    change(&mut plan, PlanCommand::FinishDeploying, 3);
    change(
        &mut plan,
        PlanCommand::Ramp {
            percent: 50,
            pass: 1,
        },
        4,
    );
    change(&mut plan, PlanCommand::Pause, 5);
    change(
        &mut plan,
        PlanCommand::Resume {
            to: PlanStatus::Deploying,
        },
        6,
    );
    change(
        &mut plan,
        PlanCommand::Halt {
            reason: "exit rate 9% > 5%".into(),
        },
        7,
    );
    change(&mut plan, PlanCommand::Withdraw { pass: 2 }, 8);
    change(&mut plan, PlanCommand::FinishWithdrawing, 9);
    let events = unpublished(&plan, 0, counters(3));
    assert_eq!(
        types(&events),
        [
            "Plan Created",
            "Plan Approved",
            "Deploy Started",
            "Marking Finished",
            "Rollout Ramped",
            "Rollout Paused",
            "Rollout Resumed",
            "Rollout Halted",
            "Withdrawal Started",
            "Plan Withdrawn",
        ]
    );
    let revisions: Vec<u64> = events.iter().map(|e| e.detail.revision).collect();
    assert_eq!(revisions, (1..=10).collect::<Vec<u64>>());
    let ids: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.detail.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "ids are unique");
    assert_eq!(events[1].detail.by.as_deref(), Some("lead"));
    assert_eq!(events[4].detail.percent, Some(50));
    assert_eq!(
        events[7].detail.reason.as_deref(),
        Some("exit rate 9% > 5%")
    );
    assert!(events.iter().all(|e| e.detail.counters == counters(3)));

    // Sent up to the halt: only what came after, with the same ids as before.
    let rest = unpublished(&plan, 8, counters(3));
    assert_eq!(types(&rest), ["Withdrawal Started", "Plan Withdrawn"]);
    assert_eq!(rest[0].detail.event_id, events[8].detail.event_id);
    assert!(unpublished(&plan, plan.revision, counters(3)).is_empty());
    assert!(!plan.status.is_live(), "a withdrawn plan changes no more");
}

#[test]
fn every_kind_of_change_has_a_type_of_its_own() {
    use PlanStatus::*;
    let changes = [
        (Pending, Approved),
        (Pending, Rejected),
        (Approved, Superseded),
        (Pending, Expired),
        (Deploying, Paused),
        (Deployed, Halted),
        (Paused, Withdrawing),
        (Withdrawing, Withdrawn),
        (Paused, Deployed),
        (Approved, Deploying),
        (Deployed, Deploying),
        (Deploying, Deployed),
    ];
    let names: std::collections::BTreeSet<&str> =
        changes.iter().map(|(f, t)| detail_type(*f, *t)).collect();
    assert_eq!(names.len(), changes.len());
    assert!(!names.contains("Plan Status Changed"));
    assert!(!names.contains(CREATED) && !names.contains(DRAINED));
}

#[test]
fn a_deployed_plan_drains_when_nothing_is_pending_and_each_drain_has_its_revision() {
    let mut plan = new_plan();
    change(&mut plan, PlanCommand::Approve { by: None }, 1);
    deploy(&mut plan, 2, 10);
    assert!(!has_drained(&plan, counters(0)), "still marking");
    change(&mut plan, PlanCommand::FinishDeploying, 3);
    assert!(!has_drained(&plan, counters(1)));
    assert!(has_drained(&plan, counters(0)));
    let first = drained(&plan, counters(0), at(30));
    assert_eq!(first.detail_type, DRAINED);
    assert_eq!(first.detail.event_id, format!("{}:drained:4", plan.id));
    assert_eq!(first.detail.at, at(30));
    // A ramp then a second finish: a drain of its own, another id.
    change(
        &mut plan,
        PlanCommand::Ramp {
            percent: 100,
            pass: 1,
        },
        40,
    );
    change(&mut plan, PlanCommand::FinishDeploying, 41);
    let second = drained(&plan, counters(0), at(90));
    assert_ne!(second.detail.event_id, first.detail.event_id);
}

#[test]
fn the_detail_serializes_with_the_names_consumers_filter_on() {
    let plan = new_plan();
    let event = &unpublished(&plan, 0, counters(2))[0];
    let json = serde_json::to_value(&event.detail).unwrap();
    assert_eq!(json["event_id"], format!("{}:created", plan.id));
    assert_eq!(json["to"], "pending");
    assert_eq!(json["counters"]["migrations_pending"], 2);
    assert!(json.get("from").is_none() && json.get("reason").is_none());
}
