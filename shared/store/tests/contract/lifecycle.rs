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
