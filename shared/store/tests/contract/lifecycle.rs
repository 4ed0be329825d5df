//! The plan lifecycle: concurrent transitions (exactly one wins) and the
//! atomic activation that makes the target version current.

use std::sync::Arc;

use chrono::Duration;
use planning::{MigrationPlan, PlanStatus, ScenarioVersion};
use store::{ActivationError, PlanActivation, Store, StoreError};
use uuid::Uuid;

use super::fixtures::*;

pub async fn concurrent_transitions_exactly_one_wins(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    s.create_plan(&p, &scenario(tenant, sid, 2, 2))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&s);
        let to = if i % 2 == 0 {
            PlanStatus::Approved
        } else {
            PlanStatus::Rejected
        };
        let t = transition(&p, PlanStatus::Pending, 0, to);
        tasks.push(tokio::spawn(async move { s.transition_plan(&t).await }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        match task.await.expect("join") {
            Ok(plan) => wins.push(plan),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one transition wins");
    let stored = s.get_plan(tenant, p.id).await.expect("get").expect("plan");
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.status, wins[0].status);

    // And of 8 concurrent approvals of a fresh plan, exactly one wins.
    let q = plan(tenant, sid, 1, 3, t0(), 1);
    s.create_plan(&q, &scenario(tenant, sid, 3, 2))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        let t = transition(&q, PlanStatus::Pending, 0, PlanStatus::Approved);
        tasks.push(tokio::spawn(async move { s.transition_plan(&t).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1);
}

pub async fn activation_is_atomic(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let v1 = scenario(tenant, sid, 1, 3);
    s.create_scenario(&v1).await.expect("create");
    let v2 = scenario(tenant, sid, 2, 4);
    let v3 = scenario(tenant, sid, 3, 5);
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    let q = plan(tenant, sid, 1, 3, t0(), 1);
    s.create_plan(&p, &v2).await.expect("plan p");
    s.create_plan(&q, &v3).await.expect("plan q");
    let activation = |plan: &MigrationPlan, rev: u64, target: &ScenarioVersion| PlanActivation {
        tenant,
        plan_id: plan.id,
        expected_revision: rev,
        scenario_id: sid,
        from_version: 1,
        target: target.clone(),
        at: t0() + Duration::hours(2),
        guard: None,
        percent: 100,
        by: None,
    };
    // Not approved yet.
    assert!(matches!(
        s.activate_plan(&activation(&p, 0, &v2)).await,
        Err(ActivationError::PlanChanged)
    ));
    for plan in [&p, &q] {
        s.transition_plan(&transition(
            plan,
            PlanStatus::Pending,
            0,
            PlanStatus::Approved,
        ))
        .await
        .expect("approve");
    }
    // Wrong revision.
    assert!(matches!(
        s.activate_plan(&activation(&p, 0, &v2)).await,
        Err(ActivationError::PlanChanged)
    ));
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(v1.clone()),
        "a failed activation changes nothing"
    );
    let deploying = s
        .activate_plan(&activation(&p, 1, &v2))
        .await
        .expect("activate");
    assert_eq!(deploying.status, PlanStatus::Deploying);
    assert_eq!(deploying.revision, 2);
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(v2.clone())
    );
    assert_eq!(
        s.get_scenario_version(tenant, sid, 1).await.expect("get"),
        Some(v1)
    );
    assert_eq!(
        s.get_scenario_version(tenant, sid, 2).await.expect("get"),
        Some(v2.clone())
    );
    // Second activation of the same plan: it moved.
    assert!(matches!(
        s.activate_plan(&activation(&p, 1, &v2)).await,
        Err(ActivationError::PlanChanged)
    ));
    // The other plan's from-version is no longer current.
    assert!(matches!(
        s.activate_plan(&activation(&q, 1, &v3)).await,
        Err(ActivationError::ScenarioMoved)
    ));
    let q_stored = s.get_plan(tenant, q.id).await.expect("get").expect("q");
    assert_eq!(q_stored.status, PlanStatus::Approved);
    assert_eq!(q_stored.revision, 1);
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(v2)
    );
    assert_eq!(
        s.get_scenario_version(tenant, sid, 3).await.expect("get"),
        None
    );
    // Finishing the deployment.
    let deployed = s
        .transition_plan(&transition(
            &p,
            PlanStatus::Deploying,
            2,
            PlanStatus::Deployed,
        ))
        .await
        .expect("deployed");
    assert_eq!(deployed.deployed_at, Some(t0() + Duration::hours(1)));
}

/// A paused plan applies nothing: a session change that requires it to be
/// applying fails whole (no session write, no event, no counter), and a resume
/// lets the same change through; a plan paused while deploying leaves the
/// sweep's list and returns to it on resume.
pub async fn a_paused_plan_applies_nothing(s: Arc<dyn Store>) {
    use std::collections::BTreeMap;

    use planning::MigrationScenario;
    use planning::lifecycle::{PlanCommand, transition as lifecycle_transition};
    use store::{AppliedMigration, PlanStats, PlanTransition, SessionChange, SessionExpectation};

    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let v1 = scenario(tenant, sid, 1, 3);
    s.create_scenario(&v1).await.expect("create");
    let v2 = scenario(tenant, sid, 2, 4);
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    s.create_plan(&p, &v2).await.expect("plan");
    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        0,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    let activation = PlanActivation {
        tenant,
        plan_id: p.id,
        expected_revision: 1,
        scenario_id: sid,
        from_version: 1,
        target: v2.clone(),
        at: t0() + Duration::hours(2),
        guard: None,
        percent: 100,
        by: None,
    };
    let deploying = s.activate_plan(&activation).await.expect("activate");
    let registered = |list: Vec<(Uuid, Uuid)>| list.contains(&(tenant, p.id));
    assert!(registered(s.list_deploying(1_000).await.expect("list")));

    let step = Uuid::new_v4();
    let mut x = session(tenant, "s-paused", sid, 1, step);
    x.pending_migration = Some(pending(p.id, step));
    s.put_session(&x).await.expect("put");
    let at = t0() + Duration::hours(3);
    let change = SessionChange {
        tenant,
        session_id: "s-paused".into(),
        expect: SessionExpectation::FlaggedBy(p.id),
        expected_revision: 0,
        new_position: None,
        pin_version: Some(1),
        clear_flag: true,
        set_variables: BTreeMap::new(),
        at,
        applied: Some(AppliedMigration {
            event: event(
                tenant,
                p.id,
                "s-paused",
                at,
                MigrationScenario::CleanGraft,
                true,
            ),
            was_flagged: true,
        }),
        require_applying: vec![p.id],
        expect_head: None,
    };

    let step_to = |plan: &MigrationPlan, command: PlanCommand| PlanTransition {
        tenant,
        plan_id: plan.id,
        expected_revision: plan.revision,
        change: lifecycle_transition(plan.status, command, at).expect("legal"),
        rollout: None,
    };
    let paused = s
        .transition_plan(&step_to(&deploying, PlanCommand::Pause))
        .await
        .expect("pause");
    assert_eq!(paused.status, PlanStatus::Paused);
    assert_eq!(paused.paused_from, Some(PlanStatus::Deploying));
    let header = s
        .get_plan_header(tenant, p.id)
        .await
        .expect("header")
        .expect("plan");
    assert_eq!(
        (header.status, header.paused_from),
        (PlanStatus::Paused, Some(PlanStatus::Deploying))
    );
    assert!(
        !registered(s.list_deploying(1_000).await.expect("list")),
        "a paused plan is not the sweep's"
    );

    match s.apply_session_change(&change).await {
        Err(StoreError::PlanNotApplying(id)) => assert_eq!(id, p.id),
        other => panic!("a paused plan let a migration through: {other:?}"),
    }
    assert_eq!(
        s.get_session(tenant, "s-paused").await.expect("get"),
        Some(x.clone())
    );
    assert_eq!(
        s.get_plan_stats(tenant, p.id).await.expect("stats"),
        PlanStats::default()
    );

    let resumed = s
        .transition_plan(&step_to(
            &paused,
            PlanCommand::Resume {
                to: PlanStatus::Deploying,
            },
        ))
        .await
        .expect("resume");
    assert_eq!(
        (resumed.status, resumed.paused_from),
        (PlanStatus::Deploying, None)
    );
    assert!(
        registered(s.list_deploying(1_000).await.expect("list")),
        "a resumed deployment is the sweep's again"
    );
    assert!(s.apply_session_change(&change).await.expect("apply"));
    assert_eq!(
        s.get_plan_stats(tenant, p.id)
            .await
            .expect("stats")
            .flagged_applied,
        1
    );
}

/// The guard a deploy gives is stored with the activation and read back on the
/// header; a halt stores its reason and the status it stopped, a resume clears
/// both; migrations that exit are counted apart.
pub async fn a_guard_is_stored_and_a_halt_says_why(s: Arc<dyn Store>) {
    use std::collections::BTreeMap;

    use planning::lifecycle::{PlanCommand, transition as lifecycle_transition};
    use planning::{MigrationScenario, ReconciliationAction, RolloutGuard};
    use store::{AppliedMigration, PlanTransition, SessionChange, SessionExpectation};

    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    s.create_scenario(&scenario(tenant, sid, 1, 3))
        .await
        .expect("create");
    let v2 = scenario(tenant, sid, 2, 4);
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    s.create_plan(&p, &v2).await.expect("plan");
    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        0,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    let guard = RolloutGuard {
        max_exit_rate: Some(0.25),
        max_checkpoint_block_rate: None,
        max_reported_failure_rate: None,
        min_sessions: 7,
    };
    let deploying = s
        .activate_plan(&PlanActivation {
            tenant,
            plan_id: p.id,
            expected_revision: 1,
            scenario_id: sid,
            from_version: 1,
            target: v2,
            at: t0() + Duration::hours(2),
            guard: Some(guard.clone()),
            percent: 100,
            by: None,
        })
        .await
        .expect("activate");
    assert_eq!(deploying.guard.as_ref(), Some(&guard));
    let header = s
        .get_plan_header(tenant, p.id)
        .await
        .expect("header")
        .expect("plan");
    assert_eq!(header.guard, Some(guard.clone()));

    // One exit applied: counted in `exits`.
    let step = Uuid::new_v4();
    let mut x = session(tenant, "leaves", sid, 1, step);
    x.pending_migration = Some(pending(p.id, step));
    s.put_session(&x).await.expect("put");
    let at = t0() + Duration::hours(3);
    let mut exit = event(
        tenant,
        p.id,
        "leaves",
        at,
        MigrationScenario::CleanGraft,
        false,
    );
    exit.action = ReconciliationAction::ExitScenario;
    let applied = SessionChange {
        tenant,
        session_id: "leaves".into(),
        expect: SessionExpectation::FlaggedBy(p.id),
        expected_revision: 0,
        new_position: None,
        pin_version: None,
        clear_flag: true,
        set_variables: BTreeMap::new(),
        at,
        applied: Some(AppliedMigration {
            event: exit,
            was_flagged: true,
        }),
        require_applying: vec![p.id],
        expect_head: None,
    };
    assert!(s.apply_session_change(&applied).await.expect("apply"));
    let stats = s.get_plan_stats(tenant, p.id).await.expect("stats");
    assert_eq!((stats.migrations_applied, stats.exits), (1, 1));

    let step_to = |plan: &MigrationPlan, command: PlanCommand| PlanTransition {
        tenant,
        plan_id: plan.id,
        expected_revision: plan.revision,
        change: lifecycle_transition(plan.status, command, at).expect("legal"),
        rollout: None,
    };
    let reason = "exit rate 1.000 exceeded max_exit_rate 0.25: 7 of 7".to_string();
    let halted = s
        .transition_plan(&step_to(
            &deploying,
            PlanCommand::Halt {
                reason: reason.clone(),
            },
        ))
        .await
        .expect("halt");
    let header = s
        .get_plan_header(tenant, p.id)
        .await
        .expect("header")
        .expect("plan");
    for plan in [&halted, &header] {
        assert_eq!(plan.status, PlanStatus::Halted);
        assert_eq!(plan.halt_reason.as_deref(), Some(reason.as_str()));
        assert_eq!(plan.paused_from, Some(PlanStatus::Deploying));
        assert_eq!(
            plan.guard,
            Some(guard.clone()),
            "the guard outlives the halt"
        );
    }
    let resumed = s
        .transition_plan(&step_to(
            &header,
            PlanCommand::Resume {
                to: PlanStatus::Deploying,
            },
        ))
        .await
        .expect("resume");
    let header = s
        .get_plan_header(tenant, p.id)
        .await
        .expect("header")
        .expect("plan");
    for plan in [&resumed, &header] {
        assert_eq!(
            (plan.status, plan.halt_reason.as_deref(), plan.paused_from),
            (PlanStatus::Deploying, None, None)
        );
    }
}
