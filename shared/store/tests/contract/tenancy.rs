//! Tenancy: every key starts with the tenant, so another tenant finds nothing,
//! changes nothing and cannot use this tenant's page tokens.

use std::sync::Arc;

use planning::PlanStatus;
use store::{SessionPosition, StepQuery, Store, StoreError};
use uuid::Uuid;

use super::fixtures::*;

pub async fn tenant_isolation(s: Arc<dyn Store>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let sid = Uuid::new_v4();
    let v1 = scenario(a, sid, 1, 3);
    s.create_scenario(&v1).await.expect("create");
    let p = plan(a, sid, 1, 2, t0(), 2);
    s.create_plan(&p, &scenario(a, sid, 2, 3))
        .await
        .expect("plan");
    let step_a = v1.steps[0].id;
    s.put_session(&session(a, "s-1", sid, 1, step_a))
        .await
        .expect("session");
    s.create_plan(&plan(a, sid, 1, 3, t0(), 1), &scenario(a, sid, 3, 3))
        .await
        .expect("second plan");

    assert_eq!(s.get_current_scenario(b, sid).await.ok(), Some(None));
    assert_eq!(s.get_scenario_version(b, sid, 1).await.ok(), Some(None));
    assert_eq!(s.get_plan(b, p.id).await.ok(), Some(None));
    assert_eq!(s.get_plan_target(b, p.id).await.ok(), Some(None));
    assert_eq!(s.get_session(b, "s-1").await.ok(), Some(None));
    let page = s.list_plans(&plan_query(b, 10)).await.expect("list");
    assert!(page.plans.is_empty());
    assert_eq!(page.total, 0);
    assert_eq!(
        s.count_sessions_at_step(b, sid, 1, step_a).await.ok(),
        Some(0)
    );
    let sessions = s
        .sessions_at_step(&StepQuery {
            tenant: b,
            scenario_id: sid,
            version: 1,
            step_id: step_a,
            shard: store::step_shard("s-1", s.step_index_shards()),
            limit: 10,
            cursor: None,
        })
        .await
        .expect("sessions");
    assert!(sessions.sessions.is_empty());
    let pos = SessionPosition {
        scenario_id: sid,
        version: 1,
        step_id: step_a,
    };
    assert_eq!(
        s.mark_session(b, "s-1", &pos, &pending(p.id, step_a), "mark-a")
            .await
            .ok(),
        Some(false)
    );
    let mut t = transition(&p, PlanStatus::Pending, 0, PlanStatus::Approved);
    t.tenant = b;
    assert!(is_conflict(&s.transition_plan(&t).await));
    // A's token does not work for B.
    let a_page = s.list_plans(&plan_query(a, 1)).await.expect("list a");
    let token = a_page.next_token.expect("a has two plans");
    let mut q = plan_query(b, 1);
    q.next_token = Some(token);
    assert!(matches!(
        s.list_plans(&q).await,
        Err(StoreError::InvalidToken)
    ));
    // A still sees everything untouched.
    assert_eq!(s.get_plan(a, p.id).await.expect("get"), Some(p));
    assert!(
        s.get_session(a, "s-1")
            .await
            .expect("get")
            .is_some_and(|x| x.pending_migration.is_none())
    );
}
