//! Reconcile: a session change applied once under concurrency with its audit
//! event and the plan counters, and the unflagged, pinned and `collect` cases.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use planning::MigrationScenario;
use store::{
    AppliedMigration, EventQuery, NewPosition, PlanStats, SessionChange, SessionExpectation, Store,
};
use uuid::Uuid;

use super::fixtures::*;

pub async fn apply_session_change_once_under_concurrency(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_new) = (Uuid::new_v4(), Uuid::new_v4());
    let plan_id = Uuid::new_v4();
    let mut x = session(tenant, "s-1", sid, 1, step_a);
    x.pending_migration = Some(pending(plan_id, step_a));
    s.put_session(&x).await.expect("put");
    let at = t0() + Duration::days(1);
    let change = |i: i64| SessionChange {
        tenant,
        session_id: "s-1".into(),
        expect: SessionExpectation::FlaggedBy(plan_id),
        expected_revision: 0,
        new_position: Some(NewPosition {
            version: 2,
            step_id: step_new,
            checksum: "cccccccccccccccc".into(),
        }),
        pin_version: None,
        clear_flag: true,
        set_variables: BTreeMap::from([
            ("age".to_owned(), serde_json::json!(42)),
            ("email".to_owned(), serde_json::json!("new@b.c")),
        ]),
        at,
        applied: Some(AppliedMigration {
            event: event(
                tenant,
                plan_id,
                "s-1",
                at + Duration::seconds(i),
                MigrationScenario::GapFill,
                true,
            ),
            was_flagged: true,
        }),
        require_applying: Vec::new(),
        expect_head: None,
    };
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (s, c) = (Arc::clone(&s), change(i));
        tasks.push(tokio::spawn(
            async move { s.apply_session_change(&c).await },
        ));
    }
    let mut applied = 0;
    for task in tasks {
        if task.await.expect("join").expect("apply") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one concurrent attempt applies");
    assert!(
        !s.apply_session_change(&change(99)).await.expect("retry"),
        "a retry after success changes nothing"
    );
    let stored = s.get_session(tenant, "s-1").await.expect("get").expect("s");
    let mut expected = x.clone();
    expected.active_scenario_version = 2;
    expected.active_step_id = step_new;
    expected.scenario_checksum = Some("cccccccccccccccc".into());
    expected.pending_migration = None;
    expected.updated_at = at;
    expected.revision = 1;
    expected
        .variables
        .insert("age".into(), serde_json::json!(42));
    expected
        .variables
        .insert("email".into(), serde_json::json!("new@b.c"));
    assert_eq!(stored, expected);
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(stats.migrations_applied, 1);
    assert_eq!(stats.flagged_applied, 1);
    assert_eq!(stats.gap_fill, 1);
    assert_eq!(stats.clean_graft + stats.re_route, 0);
    assert_eq!(stats.checkpoint_blocks, 1);
    assert!(stats.last_migration_at.is_some());
    // The drain's per-minute count moved once too, in the minute applied.
    let minutes = s
        .applied_per_minute(tenant, plan_id, planning::drain::minute_of(at))
        .await
        .expect("per minute");
    assert_eq!(
        minutes,
        vec![planning::AppliedInMinute {
            minute: planning::drain::minute_of(at),
            applied: 1
        }]
    );
    let events = s
        .list_events(&EventQuery {
            tenant,
            plan_id,
            limit: 50,
            next_token: None,
        })
        .await
        .expect("events");
    assert_eq!(events.events.len(), 1);
    assert_eq!(stats.last_migration_at, Some(events.events[0].at));
    // The index follows the move.
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 1, step_a).await.ok(),
        Some(0)
    );
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 2, step_new)
            .await
            .ok(),
        Some(1)
    );
}

pub async fn apply_session_change_unflagged_and_pinned(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let step_a = Uuid::new_v4();
    let plan_id = Uuid::new_v4();
    let x = session(tenant, "late", sid, 1, step_a);
    s.put_session(&x).await.expect("put");
    let at = t0() + Duration::days(2);
    let pin = SessionChange {
        tenant,
        session_id: "late".into(),
        expect: SessionExpectation::UnflaggedAt { version: 1 },
        expected_revision: 0,
        new_position: None,
        pin_version: Some(1),
        clear_flag: true,
        set_variables: BTreeMap::new(),
        at,
        applied: Some(AppliedMigration {
            event: event(
                tenant,
                plan_id,
                "late",
                at,
                MigrationScenario::CleanGraft,
                false,
            ),
            was_flagged: false,
        }),
        require_applying: Vec::new(),
        expect_head: None,
    };
    // Wrong expectations first: nothing is written.
    let mut wrong_version = pin.clone();
    wrong_version.expect = SessionExpectation::UnflaggedAt { version: 2 };
    assert!(!s.apply_session_change(&wrong_version).await.expect("apply"));
    let mut wrong_plan = pin.clone();
    wrong_plan.expect = SessionExpectation::FlaggedBy(plan_id);
    assert!(!s.apply_session_change(&wrong_plan).await.expect("apply"));
    let mut missing = pin.clone();
    missing.session_id = "nobody".into();
    assert!(!s.apply_session_change(&missing).await.expect("apply"));
    assert_eq!(
        s.get_plan_stats(tenant, plan_id).await.expect("stats"),
        PlanStats::default()
    );
    assert_eq!(
        s.get_session(tenant, "late").await.expect("get"),
        Some(x.clone())
    );

    assert!(s.apply_session_change(&pin).await.expect("apply"));
    let mut again = pin.clone();
    again.applied = Some(AppliedMigration {
        event: event(
            tenant,
            plan_id,
            "late",
            at,
            MigrationScenario::CleanGraft,
            false,
        ),
        was_flagged: false,
    });
    assert!(
        !s.apply_session_change(&again).await.expect("apply"),
        "a pinned session is never migrated again"
    );
    let stored = s
        .get_session(tenant, "late")
        .await
        .expect("get")
        .expect("s");
    let mut expected = x.clone();
    expected.pinned_version = Some(1);
    expected.updated_at = at;
    expected.revision = 1;
    assert_eq!(stored, expected);
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(stats.migrations_applied, 1);
    assert_eq!(stats.flagged_applied, 0);
    assert_eq!(stats.clean_graft, 1);
    assert_eq!(stats.checkpoint_blocks, 0);
    assert_eq!(stats.last_migration_at, Some(at));

    // A `collect` outcome: variables only, the flag stays, no event.
    let mut flagged = session(tenant, "collect", sid, 1, step_a);
    flagged.pending_migration = Some(pending(plan_id, step_a));
    s.put_session(&flagged).await.expect("put");
    let collect = SessionChange {
        tenant,
        session_id: "collect".into(),
        expect: SessionExpectation::FlaggedBy(plan_id),
        expected_revision: 0,
        new_position: None,
        pin_version: None,
        clear_flag: false,
        set_variables: BTreeMap::from([("email".to_owned(), serde_json::json!("x@y.z"))]),
        at,
        applied: None,
        require_applying: Vec::new(),
        expect_head: None,
    };
    assert!(s.apply_session_change(&collect).await.expect("apply"));
    let stored = s
        .get_session(tenant, "collect")
        .await
        .expect("get")
        .expect("s");
    assert_eq!(stored.pending_migration, flagged.pending_migration);
    assert_eq!(stored.variables["email"], serde_json::json!("x@y.z"));
    assert_eq!(
        s.get_plan_stats(tenant, plan_id)
            .await
            .expect("stats")
            .migrations_applied,
        1
    );
}

/// The drain's per-minute counts: exact per minute, only the flagged
/// migrations (those that shorten the pending list), only this plan's, and
/// only from the minute asked for on.
pub async fn applied_per_minute_counts_flagged_migrations_by_minute(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_new) = (Uuid::new_v4(), Uuid::new_v4());
    let (plan_id, other_plan) = (Uuid::new_v4(), Uuid::new_v4());
    let minute = |m: i64| planning::drain::minute_of(t0()) + Duration::minutes(m);
    // (session, plan, applied at, flagged)
    let cases = [
        ("m-0", plan_id, minute(0) + Duration::seconds(5), true),
        ("m-1", plan_id, minute(0) + Duration::seconds(59), true),
        ("m-2", plan_id, minute(1), true),
        ("m-3", plan_id, minute(3) + Duration::seconds(30), true),
        ("m-4", plan_id, minute(3) + Duration::seconds(31), false),
        ("m-5", other_plan, minute(3), true),
    ];
    for (id, plan, at, flagged) in cases {
        let mut x = session(tenant, id, sid, 1, step_a);
        if flagged {
            x.pending_migration = Some(pending(plan, step_a));
        }
        s.put_session(&x).await.expect("put");
        let change = clean_graft_to_v2(tenant, id, plan, flagged, 0, step_new, at);
        assert!(
            s.apply_session_change(&change).await.expect("apply"),
            "{id}"
        );
    }
    let counted = |m: i64, applied: u64| planning::AppliedInMinute {
        minute: minute(m),
        applied,
    };
    assert_eq!(
        s.applied_per_minute(tenant, plan_id, minute(0))
            .await
            .unwrap(),
        vec![counted(0, 2), counted(1, 1), counted(3, 1)]
    );
    assert_eq!(
        s.applied_per_minute(tenant, plan_id, minute(1))
            .await
            .unwrap(),
        vec![counted(1, 1), counted(3, 1)]
    );
    assert!(
        s.applied_per_minute(tenant, plan_id, minute(4))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.applied_per_minute(tenant, other_plan, minute(0))
            .await
            .unwrap(),
        vec![counted(3, 1)]
    );
    // Another tenant sees nothing of it.
    assert!(
        s.applied_per_minute(Uuid::new_v4(), plan_id, minute(0))
            .await
            .unwrap()
            .is_empty()
    );
}
