//! Plans: the live-plan slot of a version pair, listing (newest first, filters,
//! tokens bound to their query), policy updates under the revision, and plans
//! and scenarios of any size stored and read back whole.

use std::sync::Arc;

use chrono::Duration;
use planning::{MigrationScenario, PlanStatus};
use store::{PlanActivation, Store, StoreError};
use uuid::Uuid;

use super::fixtures::*;

pub async fn plan_create_and_live_slot(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let target = scenario(tenant, sid, 2, 4);
    let p1 = plan(tenant, sid, 1, 2, t0(), 3);
    s.create_plan(&p1, &target).await.expect("create");
    assert_eq!(
        s.get_plan(tenant, p1.id).await.expect("get"),
        Some(p1.clone())
    );
    assert_eq!(
        s.get_plan_target(tenant, p1.id).await.expect("target"),
        Some(target.clone())
    );
    assert!(is_conflict(&s.create_plan(&p1, &target).await));
    let p2 = plan(tenant, sid, 1, 2, t0() + Duration::seconds(1), 3);
    assert!(
        is_conflict(&s.create_plan(&p2, &target).await),
        "a live plan holds the version pair"
    );
    // Another pair is free.
    let p3 = plan(tenant, sid, 1, 3, t0(), 1);
    s.create_plan(&p3, &scenario(tenant, sid, 3, 2))
        .await
        .expect("other pair");

    let rejected = s
        .transition_plan(&transition(
            &p1,
            PlanStatus::Pending,
            0,
            PlanStatus::Rejected,
        ))
        .await
        .expect("reject");
    assert_eq!(rejected.status, PlanStatus::Rejected);
    assert_eq!(rejected.revision, 1);
    assert_eq!(rejected.rejected_by.as_deref(), Some("bob"));
    assert_eq!(rejected.rejection_reason.as_deref(), Some("because"));
    assert_eq!(rejected.rejected_at, Some(t0() + Duration::hours(1)));
    assert_eq!(
        rejected.transformation_map, p1.transformation_map,
        "the body is returned"
    );
    assert_eq!(
        s.get_plan(tenant, p1.id).await.expect("get"),
        Some(rejected)
    );
    s.create_plan(&p2, &target)
        .await
        .expect("slot freed after reject");

    // Superseded frees the slot too; approved keeps it.
    let approved = s
        .transition_plan(&transition(
            &p2,
            PlanStatus::Pending,
            0,
            PlanStatus::Approved,
        ))
        .await
        .expect("approve");
    assert_eq!(approved.approved_by.as_deref(), Some("bob"));
    let p4 = plan(tenant, sid, 1, 2, t0() + Duration::seconds(2), 1);
    assert!(is_conflict(&s.create_plan(&p4, &target).await));
    s.transition_plan(&transition(
        &p2,
        PlanStatus::Approved,
        1,
        PlanStatus::Superseded,
    ))
    .await
    .expect("supersede");
    s.create_plan(&p4, &target)
        .await
        .expect("slot freed after supersede");
}

pub async fn list_plans_newest_first_with_filters_and_paging(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let (sa, sb) = (Uuid::new_v4(), Uuid::new_v4());
    let mut created = Vec::new();
    for i in 0..5 {
        let p = plan(tenant, sa, 1, 2 + i, t0() + Duration::seconds(i), 1);
        s.create_plan(&p, &scenario(tenant, sa, 2 + i, 2))
            .await
            .expect("create a");
        created.push(p);
    }
    for i in 0..2 {
        let p = plan(
            tenant,
            sb,
            1,
            2 + i,
            t0() + Duration::milliseconds(2500 + i),
            1,
        );
        s.create_plan(&p, &scenario(tenant, sb, 2 + i, 2))
            .await
            .expect("create b");
        created.push(p);
    }
    created.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let expected: Vec<Uuid> = created.iter().map(|p| p.id).collect();

    // Page through everything, two at a time.
    let mut q = plan_query(tenant, 2);
    let mut seen = Vec::new();
    loop {
        let page = s.list_plans(&q).await.expect("list");
        assert_eq!(page.total, 7);
        assert!(page.plans.len() <= 2);
        seen.extend(page.plans.iter().map(|p| p.id));
        match page.next_token {
            Some(t) => q.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, expected, "newest first, each once");

    // Summary items carry the listing fields.
    let first = s.list_plans(&plan_query(tenant, 1)).await.expect("list");
    let item = &first.plans[0];
    assert_eq!(item.id, created[0].id);
    assert_eq!(item.total_anchors, 1);
    assert_eq!(item.estimated_sessions_affected, 7);
    assert_eq!(item.warning_count, 1);
    assert_eq!(item.created_at, created[0].created_at);

    // Scenario filter.
    let mut qa = plan_query(tenant, 3);
    qa.scenario_id = Some(sa);
    let page = s.list_plans(&qa).await.expect("list a");
    assert_eq!(page.total, 5);
    assert_eq!(page.plans.len(), 3);
    assert!(page.plans.iter().all(|p| p.scenario_id == sa));
    qa.next_token = page.next_token;
    let page2 = s.list_plans(&qa).await.expect("list a 2");
    assert_eq!(page2.plans.len(), 2);
    assert!(page2.next_token.is_none());

    // Status filter.
    let newest_a = created
        .iter()
        .find(|p| p.scenario_id == sa)
        .expect("a plan");
    s.transition_plan(&transition(
        newest_a,
        PlanStatus::Pending,
        0,
        PlanStatus::Rejected,
    ))
    .await
    .expect("reject");
    let mut qr = plan_query(tenant, 10);
    qr.status = Some(PlanStatus::Rejected);
    let page = s.list_plans(&qr).await.expect("list rejected");
    assert_eq!(page.total, 1);
    assert_eq!(page.plans.len(), 1);
    assert_eq!(page.plans[0].id, newest_a.id);
    assert_eq!(page.plans[0].status, PlanStatus::Rejected);
    assert!(page.next_token.is_none());
    qr.status = Some(PlanStatus::Pending);
    qr.scenario_id = Some(sa);
    assert_eq!(s.list_plans(&qr).await.expect("pending a").total, 4);

    // Tokens are bound to their query.
    let page = s.list_plans(&plan_query(tenant, 1)).await.expect("list");
    let mut other = plan_query(tenant, 1);
    other.scenario_id = Some(sb);
    other.next_token = page.next_token;
    assert!(matches!(
        s.list_plans(&other).await,
        Err(StoreError::InvalidToken)
    ));
    let mut garbage = plan_query(tenant, 1);
    garbage.next_token = Some("not-a-token".into());
    assert!(matches!(
        s.list_plans(&garbage).await,
        Err(StoreError::InvalidToken)
    ));
}

pub async fn policies_update_needs_pending_and_revision(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let p = plan(tenant, sid, 1, 2, t0(), 2);
    s.create_plan(&p, &scenario(tenant, sid, 2, 3))
        .await
        .expect("create");
    let mut policies = p.anchor_policies.clone();
    for policy in policies.values_mut() {
        policy.update_downstream = false;
        policy.scope_filter.include_channels = vec!["whatsapp".into()];
        policy.force_scenario = Some(MigrationScenario::CleanGraft);
    }
    let updated = s
        .update_plan_policies(tenant, p.id, 0, &policies)
        .await
        .expect("update");
    assert_eq!(updated.revision, 1);
    assert_eq!(updated.anchor_policies, policies);
    assert_eq!(updated.transformation_map, p.transformation_map);
    assert_eq!(s.get_plan(tenant, p.id).await.expect("get"), Some(updated));
    assert!(is_conflict(
        &s.update_plan_policies(tenant, p.id, 0, &p.anchor_policies)
            .await
    ));
    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        1,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    assert!(is_conflict(
        &s.update_plan_policies(tenant, p.id, 2, &p.anchor_policies)
            .await
    ));
    assert!(is_conflict(
        &s.update_plan_policies(tenant, Uuid::new_v4(), 0, &p.anchor_policies)
            .await
    ));
    let stored = s.get_plan(tenant, p.id).await.expect("get").expect("plan");
    assert_eq!(stored.anchor_policies, policies);
    assert_eq!(stored.status, PlanStatus::Approved);
    assert_eq!(stored.revision, 2);
}

pub async fn large_plan_round_trip(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let v1 = scenario(tenant, sid, 1, 10_000);
    s.create_scenario(&v1)
        .await
        .expect("create a 10,000-step scenario");
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(v1)
    );
    let target = scenario(tenant, sid, 2, 10_000);
    let p = plan(tenant, sid, 1, 2, t0(), 10_000);
    s.create_plan(&p, &target)
        .await
        .expect("create a large plan");
    assert_eq!(
        s.get_plan(tenant, p.id).await.expect("get"),
        Some(p.clone())
    );
    assert_eq!(
        s.get_plan_target(tenant, p.id).await.expect("target"),
        Some(target.clone())
    );
    let listed = s.list_plans(&plan_query(tenant, 10)).await.expect("list");
    assert_eq!(listed.plans.len(), 1);
    assert_eq!(listed.plans[0].total_anchors, 10_000);

    let mut policies = p.anchor_policies.clone();
    for policy in policies.values_mut() {
        policy.scope_filter.custom_conditions =
            vec!["session.channel == \"whatsapp\" && session.age_days < 30".into()];
    }
    let updated = s
        .update_plan_policies(tenant, p.id, 0, &policies)
        .await
        .expect("update large policies");
    assert_eq!(updated.anchor_policies, policies);
    let stored = s.get_plan(tenant, p.id).await.expect("get").expect("plan");
    assert_eq!(stored.anchor_policies, policies);
    assert_eq!(stored.transformation_map, p.transformation_map);

    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        1,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    s.activate_plan(&PlanActivation {
        tenant,
        plan_id: p.id,
        expected_revision: 2,
        scenario_id: sid,
        from_version: 1,
        target: target.clone(),
        at: t0(),
        guard: None,
        percent: 100,
        by: None,
    })
    .await
    .expect("activate a large target");
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(target)
    );
}
