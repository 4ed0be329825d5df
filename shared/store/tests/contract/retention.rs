//! Retention: what a deployed plan leaves behind is deleted once its period is
//! over, and a session or scenario never is.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use planning::{MigrationScenario, PlanStatus};
use store::{
    AppliedMigration, ChainStart, EventQuery, MarkedPage, PlanActivation, PlanStats, SessionChange,
    SessionExpectation, Store,
};
use uuid::Uuid;

use super::fixtures::*;

/// What a deployment leaves behind is deleted after its retention: by the
/// sweep on the embedded and in-memory stores; DynamoDB's TTL does it (its
/// `ttl` attributes are checked in `tests/tests/retention.rs`), so there the
/// sweep deletes nothing and everything stays readable.
pub async fn retention_deletes_a_deployed_plan_after_its_period(s: Arc<dyn Store>) {
    let start = t0();
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let v1 = scenario(tenant, sid, 1, 3);
    s.create_scenario(&v1).await.expect("create");
    let v2 = scenario(tenant, sid, 2, 3);
    let p = plan(tenant, sid, 1, 2, start, 1);
    s.create_plan(&p, &v2).await.expect("plan");
    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        0,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    s.activate_plan(&PlanActivation {
        tenant,
        plan_id: p.id,
        expected_revision: 1,
        scenario_id: sid,
        from_version: 1,
        target: v2.clone(),
        at: start,
        guard: None,
        percent: 100,
        by: None,
    })
    .await
    .expect("activate");
    assert_eq!(
        s.list_deploying(100).await.expect("deploying"),
        vec![(tenant, p.id)]
    );
    let chain = Uuid::new_v4();
    s.start_marking(
        tenant,
        p.id,
        0,
        &[ChainStart {
            step_id: chain,
            shard: 0,
            shards: 1,
            anchor_content_hash: None,
            pass: 0,
            percent: 100,
        }],
        start,
    )
    .await
    .expect("start");
    assert!(
        s.record_marking_page(&MarkedPage {
            tenant,
            plan_id: p.id,
            page_id: "only".into(),
            chain_step: chain,
            chain_shard: 0,
            chain_pass: 0,
            cursor: None,
            next_cursor: None,
            sessions_marked: 0,
            flags_withdrawn: 0,
            by_anchor: BTreeMap::new(),
            at: start,
        })
        .await
        .expect("record")
    );
    let mut x = session(tenant, "kept", sid, 1, Uuid::new_v4());
    x.pending_migration = Some(pending(p.id, x.active_step_id));
    s.put_session(&x).await.expect("put");
    let applied = SessionChange {
        tenant,
        session_id: "kept".into(),
        expect: SessionExpectation::FlaggedBy(p.id),
        expected_revision: 0,
        new_position: None,
        pin_version: None,
        clear_flag: true,
        set_variables: BTreeMap::new(),
        at: start,
        applied: Some(AppliedMigration {
            event: event(
                tenant,
                p.id,
                "kept",
                start,
                MigrationScenario::CleanGraft,
                false,
            ),
            was_flagged: true,
        }),
        require_applying: Vec::new(),
        expect_head: None,
    };
    assert!(s.apply_session_change(&applied).await.expect("apply"));
    let mut deployed = transition(&p, PlanStatus::Deploying, 2, PlanStatus::Deployed);
    deployed.change.at = start + Duration::hours(1);
    s.transition_plan(&deployed).await.expect("deployed");
    assert!(
        s.list_deploying(100).await.expect("deploying").is_empty(),
        "off the sweep's list with the transition"
    );
    let events = EventQuery {
        tenant,
        plan_id: p.id,
        limit: 10,
        next_token: None,
    };
    // Within the periods nothing goes but the drain's per-minute count of the
    // migration, kept a day (on DynamoDB by TTL: the sweep removes nothing).
    let minute = planning::drain::minute_of(start);
    let early = s
        .sweep_expired(start + Duration::days(20), 10_000)
        .await
        .expect("sweep");
    assert!(early <= 1, "{early}");
    if early == 1 {
        assert!(
            s.applied_per_minute(tenant, p.id, minute)
                .await
                .expect("per minute")
                .is_empty()
        );
    }
    assert!(s.get_plan(tenant, p.id).await.expect("get").is_some());
    assert_eq!(
        s.list_events(&events).await.expect("events").events.len(),
        1
    );
    // Past every period.
    let removed = s
        .sweep_expired(start + Duration::days(500), 10_000)
        .await
        .expect("sweep");
    let plan_now = s.get_plan(tenant, p.id).await.expect("get");
    let events_now = s.list_events(&events).await.expect("events").events;
    assert_eq!(
        early == 1,
        removed > 0,
        "a store sweeps both periods or neither"
    );
    if removed == 0 {
        // Native TTL (DynamoDB): deleted by the service, not by us.
        assert!(plan_now.is_some());
        assert_eq!(events_now.len(), 1);
    } else {
        assert!(plan_now.is_none(), "the deployed plan is gone");
        assert!(events_now.is_empty(), "its events are gone");
        assert!(
            s.list_chains(tenant, p.id)
                .await
                .expect("chains")
                .is_empty()
        );
        assert_eq!(
            s.get_plan_stats(tenant, p.id).await.expect("stats"),
            PlanStats::default()
        );
        assert!(
            s.list_plans(&plan_query(tenant, 10))
                .await
                .expect("list")
                .plans
                .is_empty()
        );
    }
    // The session itself and the scenario versions are never ours to delete.
    assert!(s.get_session(tenant, "kept").await.expect("get").is_some());
    assert!(
        s.get_scenario_version(tenant, sid, 1)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        s.sweep_expired(start + Duration::days(500), 10_000)
            .await
            .expect("again"),
        0,
        "a second sweep finds nothing"
    );
}
