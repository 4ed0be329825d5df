//! Audit events: listed oldest first, paged by tokens bound to their plan and
//! tenant, and counted in the plan's stats.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use planning::MigrationScenario;
use store::{AppliedMigration, EventQuery, SessionChange, SessionExpectation, Store, StoreError};
use uuid::Uuid;

use super::fixtures::*;

pub async fn events_paging(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let step_a = Uuid::new_v4();
    let plan_id = Uuid::new_v4();
    let mut expected = Vec::new();
    for i in 0..7 {
        let id = format!("s-{i}");
        let mut x = session(tenant, &id, sid, 1, step_a);
        x.pending_migration = Some(pending(plan_id, step_a));
        s.put_session(&x).await.expect("put");
        // Out of order on purpose: listing is by event time.
        let at = t0() + Duration::seconds((7 - i) * 10);
        let scenario = [
            MigrationScenario::CleanGraft,
            MigrationScenario::GapFill,
            MigrationScenario::ReRoute,
        ][i as usize % 3];
        let e = event(tenant, plan_id, &id, at, scenario, i == 3);
        expected.push(e.clone());
        let change = SessionChange {
            tenant,
            session_id: id,
            expect: SessionExpectation::FlaggedBy(plan_id),
            expected_revision: 0,
            new_position: None,
            pin_version: None,
            clear_flag: true,
            set_variables: BTreeMap::new(),
            at,
            applied: Some(AppliedMigration {
                event: e,
                was_flagged: true,
            }),
            require_applying: Vec::new(),
            expect_head: None,
        };
        assert!(s.apply_session_change(&change).await.expect("apply"));
    }
    expected.sort_by_key(|e| e.at);
    let mut q = EventQuery {
        tenant,
        plan_id,
        limit: 3,
        next_token: None,
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = s.list_events(&q).await.expect("events");
        sizes.push(page.events.len());
        seen.extend(page.events);
        match page.next_token {
            Some(t) => q.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, expected, "oldest first");
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(stats.migrations_applied, 7);
    assert_eq!(stats.flagged_applied, 7);
    assert_eq!(
        (stats.clean_graft, stats.gap_fill, stats.re_route),
        (3, 2, 2)
    );
    assert_eq!(stats.checkpoint_blocks, 1);
    assert_eq!(stats.last_migration_at, Some(t0() + Duration::seconds(70)));
    let mut other = q.clone();
    other.plan_id = Uuid::new_v4();
    other.next_token = s
        .list_events(&EventQuery {
            next_token: None,
            ..q.clone()
        })
        .await
        .expect("events")
        .next_token;
    assert!(matches!(
        s.list_events(&other).await,
        Err(StoreError::InvalidToken)
    ));
    assert!(
        s.list_events(&EventQuery {
            tenant: Uuid::new_v4(),
            plan_id,
            limit: 10,
            next_token: None
        })
        .await
        .expect("events")
        .events
        .is_empty()
    );
}
