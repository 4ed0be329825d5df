//! One contract suite, run against every backend: in-memory, embedded (redb)
//! and DynamoDB Local.
//!
//! DynamoDB tests need `AWS_ENDPOINT_URL_DYNAMODB` (plus `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`). Without it they are skipped, unless
//! `FOCAL_REQUIRE_LOCAL_AWS=1`, in which case they fail. Each DynamoDB test creates
//! its own uniquely named tables, so tests run in parallel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use planning::{
    AnchorMigrationPolicy, AnchorTransformation, DeletedNode, InsertedNode, MigrationPlan,
    MigrationScenario, MigrationSummary, MigrationWarning, PendingMigration, PlanStatus,
    ReconciliationAction, RegionChanges, ScenarioVersion, ScopeFilter, Session, Severity,
    StepInput, StepVisit, TransformationMap, TransitionInput,
};
use store::{
    ActivationError, AppliedMigration, AuditEvent, ChainStart, EventQuery, MarkedPage, NewPosition,
    PlanActivation, PlanQuery, PlanStats, PlanTransition, SessionChange, SessionExpectation,
    SessionMark, SessionPosition, SessionPrecondition, SessionWrite, SessionWriteError, StepQuery,
    Store, StoreError,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// harnesses
// ---------------------------------------------------------------------------

struct Harness {
    store: Arc<dyn Store>,
    _file: Option<TempFile>,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn memory() -> Option<Harness> {
    Some(Harness {
        store: Arc::new(store::MemoryStore::new()),
        _file: None,
    })
}

async fn embedded() -> Option<Harness> {
    let path = std::env::temp_dir().join(format!("focal-store-{}.redb", Uuid::new_v4()));
    let store = store::EmbeddedStore::open(&path).expect("open embedded store");
    Some(Harness {
        store: Arc::new(store),
        _file: Some(TempFile(path)),
    })
}

async fn dynamodb() -> Option<Harness> {
    let fresh = store::testing::fresh_dynamo_tables("fm").await?;
    // Idempotent: a second call must not fail.
    store::create_tables(&fresh.client, &fresh.tables)
        .await
        .expect("create DynamoDB tables twice");
    Some(Harness {
        store: Arc::new(fresh.store()),
        _file: None,
    })
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Embedded,
    Dynamo,
}

/// Run `case` on a fresh store of `backend`; skip when DynamoDB Local is absent.
async fn on_fresh_store<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let harness = match backend {
        Backend::Memory => memory().await,
        Backend::Embedded => embedded().await,
        Backend::Dynamo => dynamodb().await,
    };
    if let Some(h) = harness {
        case(h.store.clone()).await;
    }
}

store::backend_matrix! {
    run: on_fresh_store,
    backends: [
        memory => Backend::Memory,
        embedded => Backend::Embedded,
        dynamodb => Backend::Dynamo,
    ],
    tests_in: cases,
    tests: [
        retention_deletes_a_deployed_plan_after_its_period,
        runtime_write_contract,
        runtime_writes_never_lose_a_flag,
        scenario_create_conflict,
        tenant_isolation,
        plan_create_and_live_slot,
        list_plans_newest_first_with_filters_and_paging,
        policies_update_needs_pending_and_revision,
        concurrent_transitions_exactly_one_wins,
        activation_is_atomic,
        marking_is_conditional,
        mark_sessions_page,
        sessions_at_step_paging_and_count,
        record_marking_page_is_idempotent,
        apply_session_change_once_under_concurrency,
        apply_session_change_unflagged_and_pinned,
        events_paging,
        large_plan_round_trip,
    ],
}

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + Duration::nanoseconds(123_456_789)
}

fn step(id: Uuid, name: &str, to: &[Uuid]) -> StepInput {
    StepInput {
        id,
        name: name.to_owned(),
        description: Some(format!("{name} — étape")),
        transitions: to
            .iter()
            .enumerate()
            .map(|(i, t)| TransitionInput {
                to_step_id: *t,
                condition_text: if i == 0 {
                    String::new()
                } else {
                    "age >= 18".into()
                },
                priority: i as i64,
                condition_fields: vec![],
            })
            .collect(),
        rule_ids: vec![],
        collects_profile_fields: vec!["email".into()],
        is_checkpoint: false,
        checkpoint_description: None,
        is_entry: false,
        is_terminal: to.is_empty(),
        performs_action: false,
        is_required_action: false,
    }
}

/// A linear scenario of `n` steps.
fn scenario(tenant: Uuid, id: Uuid, version: i64, n: usize) -> ScenarioVersion {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let steps = (0..n)
        .map(|i| {
            let next: Vec<Uuid> = ids.get(i + 1).copied().into_iter().collect();
            step(ids[i], &format!("Step {i}"), &next)
        })
        .collect();
    ScenarioVersion {
        id,
        tenant_id: tenant,
        name: "Support flow".into(),
        description: None,
        version,
        entry_step_id: ids[0],
        steps,
        checksum: format!("{version:016x}"),
        created_at: t0(),
    }
}

fn anchor(i: usize) -> AnchorTransformation {
    AnchorTransformation {
        anchor_content_hash: format!("{i:016x}"),
        anchor_name: format!("Anchor {i}"),
        anchor_node_id_v1: Uuid::new_v4(),
        anchor_node_id_v2: Uuid::new_v4(),
        upstream_changes: RegionChanges {
            inserted_nodes: vec![InsertedNode {
                node_id: Uuid::new_v4(),
                node_name: format!("Inserted {i}"),
                collects_fields: vec!["age".into()],
                has_rules: false,
                is_required_action: false,
                is_checkpoint: false,
            }],
            removed_node_ids: vec![Uuid::new_v4()],
            new_forks: vec![],
            modified_transitions: vec![],
            edited_nodes: vec![],
        },
        downstream_changes: RegionChanges::default(),
        migration_scenario: MigrationScenario::GapFill,
    }
}

fn policy(hash: &str) -> AnchorMigrationPolicy {
    AnchorMigrationPolicy {
        anchor_content_hash: hash.to_owned(),
        anchor_name: format!("Anchor {hash}"),
        scope_filter: ScopeFilter::default(),
        update_downstream: true,
        force_scenario: None,
        edited_step_behavior: None,
    }
}

fn plan(
    tenant: Uuid,
    scenario_id: Uuid,
    from: i64,
    to: i64,
    created_at: DateTime<Utc>,
    anchors: usize,
) -> MigrationPlan {
    let anchors: Vec<AnchorTransformation> = (0..anchors).map(anchor).collect();
    let anchor_policies = anchors
        .iter()
        .map(|a| {
            (
                a.anchor_content_hash.clone(),
                policy(&a.anchor_content_hash),
            )
        })
        .collect();
    MigrationPlan {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        scenario_id,
        scenario_name: "Support flow".into(),
        from_version: from,
        to_version: to,
        scenario_checksum_v1: "aaaaaaaaaaaaaaaa".into(),
        scenario_checksum_v2: "bbbbbbbbbbbbbbbb".into(),
        summary: MigrationSummary {
            total_anchors: anchors.len() as u64,
            anchors_with_gap_fill: anchors.len() as u64,
            estimated_sessions_affected: 7,
            sessions_by_anchor: BTreeMap::from([("0000000000000000".to_owned(), 7)]),
            warnings: vec![MigrationWarning {
                severity: Severity::Warning,
                anchor_name: "Anchor 0".into(),
                message: "sessions on deleted steps".into(),
                affected_sessions_estimate: 2,
            }],
            ..MigrationSummary::default()
        },
        transformation_map: TransformationMap {
            anchors,
            deleted_nodes: vec![DeletedNode {
                node_id_v1: Uuid::new_v4(),
                node_name: "Old".into(),
                nearest_anchor_hash: None,
                nearest_anchor_id_v2: None,
                edited: false,
            }],
            new_node_ids: vec![Uuid::new_v4()],
            edited_steps: vec![],
        },
        anchor_policies,
        status: PlanStatus::Pending,
        created_at,
        created_by: Some("alice".into()),
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: Some(created_at + Duration::days(30)),
        revision: 0,
    }
}

fn session(tenant: Uuid, id: &str, scenario_id: Uuid, version: i64, at: Uuid) -> Session {
    Session {
        session_id: id.to_owned(),
        tenant_id: tenant,
        channel: "whatsapp".into(),
        customer_id: Some("cust-1".into()),
        active_scenario_id: scenario_id,
        active_scenario_version: version,
        active_step_id: at,
        scenario_checksum: Some("0fec4b11476f4c1e".into()),
        step_history: vec![StepVisit {
            step_id: at,
            step_name: "Welcome".into(),
            visited_at: t0(),
            is_checkpoint: true,
            checkpoint_description: Some("Paid".into()),
        }],
        variables: BTreeMap::from([
            ("email".to_owned(), serde_json::json!("a@b.c")),
            ("score".to_owned(), serde_json::json!(1.0)),
            (
                "nested".to_owned(),
                serde_json::json!({"a": [1, 2.5, null, true]}),
            ),
        ]),
        pending_migration: None,
        pinned_version: None,
        created_at: t0(),
        updated_at: t0(),
        revision: 0,
    }
}

fn runtime_write(session: &Session, precondition: SessionPrecondition) -> SessionWrite {
    SessionWrite {
        session: session.clone(),
        created_at: None,
        precondition,
    }
}

fn pending(plan_id: Uuid, from_step: Uuid) -> PendingMigration {
    PendingMigration {
        migration_plan_id: plan_id,
        target_version: 2,
        anchor_content_hash: "0000000000000000".into(),
        from_step_id: from_step,
        marked_at: t0() + Duration::minutes(5),
    }
}

fn transition(p: &MigrationPlan, from: PlanStatus, rev: u64, to: PlanStatus) -> PlanTransition {
    let (by, reason) = (Some("bob".to_owned()), Some("because".to_owned()));
    let stamp = match to {
        PlanStatus::Approved => planning::lifecycle::Stamp::Approved { by },
        PlanStatus::Rejected => planning::lifecycle::Stamp::Rejected { by, reason },
        PlanStatus::Deployed => planning::lifecycle::Stamp::Deployed,
        _ => planning::lifecycle::Stamp::Unstamped,
    };
    PlanTransition {
        tenant: p.tenant_id,
        plan_id: p.id,
        expected_revision: rev,
        change: planning::lifecycle::StatusChange {
            from,
            to,
            at: t0() + Duration::hours(1),
            stamp,
        },
    }
}

fn plan_query(tenant: Uuid, limit: usize) -> PlanQuery {
    PlanQuery {
        tenant,
        scenario_id: None,
        status: None,
        limit,
        next_token: None,
    }
}

fn event(
    tenant: Uuid,
    plan_id: Uuid,
    session_id: &str,
    at: DateTime<Utc>,
    scenario: MigrationScenario,
    blocked: bool,
) -> AuditEvent {
    AuditEvent {
        event_id: Uuid::new_v4(),
        tenant_id: tenant,
        plan_id,
        session_id: session_id.to_owned(),
        scenario_id: Uuid::nil(),
        from_version: 1,
        to_version: 2,
        migration_scenario: Some(scenario),
        action: ReconciliationAction::Teleport,
        step_before: Uuid::nil(),
        step_after: Uuid::nil(),
        fields_filled: BTreeMap::from([("age".to_owned(), "known_fields".to_owned())]),
        fields_asked: vec![],
        blocked_by_checkpoint: blocked,
        at,
    }
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

// ---------------------------------------------------------------------------
// cases
// ---------------------------------------------------------------------------

mod cases {
    use super::*;

    pub async fn scenario_create_conflict(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let v1 = scenario(tenant, sid, 1, 3);
        assert_eq!(s.get_current_scenario(tenant, sid).await.ok(), Some(None));
        s.create_scenario(&v1).await.expect("create");
        assert!(is_conflict(&s.create_scenario(&v1).await));
        let mut other_version = scenario(tenant, sid, 4, 2);
        other_version.name = "again".into();
        assert!(
            is_conflict(&s.create_scenario(&other_version).await),
            "any version of an existing scenario conflicts"
        );
        assert_eq!(
            s.get_current_scenario(tenant, sid).await.expect("get"),
            Some(v1.clone())
        );
        assert_eq!(
            s.get_scenario_version(tenant, sid, 1).await.expect("get"),
            Some(v1)
        );
        assert_eq!(
            s.get_scenario_version(tenant, sid, 2).await.expect("get"),
            None
        );
    }

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
            s.mark_session(b, "s-1", &pos, &pending(p.id, step_a))
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
        let activation =
            |plan: &MigrationPlan, rev: u64, target: &ScenarioVersion| PlanActivation {
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

    pub async fn marking_is_conditional(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
        let plan_id = Uuid::new_v4();
        let fresh = session(tenant, "fresh", sid, 1, step_a);
        let moved = session(tenant, "moved", sid, 1, step_b);
        let mut flagged = session(tenant, "flagged", sid, 1, step_a);
        flagged.pending_migration = Some(pending(Uuid::new_v4(), step_a));
        let mut pinned = session(tenant, "pinned", sid, 1, step_a);
        pinned.pinned_version = Some(1);
        let newer = session(tenant, "newer", sid, 2, step_a);
        for x in [&fresh, &moved, &flagged, &pinned, &newer] {
            s.put_session(x).await.expect("put");
        }
        let pos = SessionPosition {
            scenario_id: sid,
            version: 1,
            step_id: step_a,
        };
        let flag = pending(plan_id, step_a);
        let mut results = Vec::new();
        for id in ["fresh", "moved", "flagged", "pinned", "newer", "missing"] {
            results.push(s.mark_session(tenant, id, &pos, &flag).await.expect("mark"));
        }
        assert_eq!(results, vec![true, false, false, false, false, false]);
        let mut expected = fresh.clone();
        expected.pending_migration = Some(flag.clone());
        expected.revision = 1;
        assert_eq!(
            s.get_session(tenant, "fresh").await.expect("get"),
            Some(expected),
            "only pending_migration (and the revision) change"
        );
        assert!(
            !s.mark_session(tenant, "fresh", &pos, &pending(Uuid::new_v4(), step_a))
                .await
                .expect("mark"),
            "an already-flagged session is not re-marked"
        );
        for x in [&moved, &flagged, &pinned, &newer] {
            assert_eq!(
                s.get_session(tenant, &x.session_id)
                    .await
                    .expect("get")
                    .as_ref(),
                Some(x)
            );
        }
        // Another scenario at the same step/version does not match either.
        let mut other = pos.clone();
        other.scenario_id = Uuid::new_v4();
        assert!(
            !s.mark_session(tenant, "moved", &other, &flag)
                .await
                .expect("mark")
        );
    }

    pub async fn mark_sessions_page(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
        let plan_id = Uuid::new_v4();
        let mut ids = Vec::new();
        for i in 0..40 {
            let id = format!("m-{i:02}");
            let at = if i % 5 == 0 { step_b } else { step_a };
            s.put_session(&session(tenant, &id, sid, 1, at))
                .await
                .expect("put");
            ids.push(id);
        }
        ids.push("missing".into());
        let pos = SessionPosition {
            scenario_id: sid,
            version: 1,
            step_id: step_a,
        };
        let marks: Vec<SessionMark> = ids
            .iter()
            .map(|id| SessionMark {
                session_id: id.clone(),
                expected: pos.clone(),
                pending: pending(plan_id, step_a),
            })
            .collect();
        let marked = s.mark_sessions(tenant, &marks, 4).await.expect("mark page");
        let expected: Vec<bool> = (0..41).map(|i| i < 40 && i % 5 != 0).collect();
        assert_eq!(marked, expected, "one result per input, in order");
        let again = s
            .mark_sessions(tenant, &marks, 4)
            .await
            .expect("mark again");
        assert!(again.iter().all(|m| !m), "nothing is marked twice");
        let x = s
            .get_session(tenant, "m-01")
            .await
            .expect("get")
            .expect("s");
        let mut want = session(tenant, "m-01", sid, 1, step_a);
        want.pending_migration = Some(pending(plan_id, step_a));
        want.revision = 1;
        assert_eq!(x, want, "only pending_migration (and the revision) change");
        assert!(
            s.get_session(tenant, "m-05")
                .await
                .expect("get")
                .is_some_and(|x| x.pending_migration.is_none())
        );
        assert_eq!(
            s.mark_sessions(tenant, &[], 4).await.expect("empty page"),
            Vec::<bool>::new()
        );
    }

    pub async fn sessions_at_step_paging_and_count(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut expected = Vec::new();
        for i in 0..25 {
            let id = format!("sess-{i:03}");
            s.put_session(&session(tenant, &id, sid, 1, step_a))
                .await
                .expect("put");
            expected.push(id);
        }
        for i in 0..3 {
            s.put_session(&session(tenant, &format!("b-{i}"), sid, 1, step_b))
                .await
                .expect("put");
        }
        for i in 0..2 {
            s.put_session(&session(tenant, &format!("v2-{i}"), sid, 2, step_a))
                .await
                .expect("put");
        }
        // All steps of a version at once: empty steps left out, other versions
        // and other steps not asked for not counted.
        let empty = Uuid::new_v4();
        assert_eq!(
            s.count_sessions_at_steps(tenant, sid, 1, &[step_a, step_b, empty], 4)
                .await
                .expect("counts"),
            BTreeMap::from([(step_a, 25), (step_b, 3)])
        );
        assert_eq!(
            s.count_sessions_at_steps(tenant, sid, 1, &[step_b], 4)
                .await
                .expect("counts"),
            BTreeMap::from([(step_b, 3)])
        );
        expected.sort();
        let shards = s.step_index_shards();
        assert!(shards > 1, "the suite runs with a sharded step index");
        let shard_of = |id: &str| store::step_shard(id, shards);
        // Every shard of the step, paged: each session in its own shard, once,
        // ordered by session id within a shard.
        let mut seen = Vec::new();
        for shard in 0..shards {
            let mut q = StepQuery {
                tenant,
                scenario_id: sid,
                version: 1,
                step_id: step_a,
                shard,
                limit: 2,
                cursor: None,
            };
            let mut in_shard = Vec::new();
            loop {
                let page = s.sessions_at_step(&q).await.expect("page");
                assert!(page.sessions.len() <= 2);
                for x in &page.sessions {
                    assert_eq!(x.active_step_id, step_a);
                    assert_eq!(x.active_scenario_version, 1);
                    assert_eq!(
                        shard_of(&x.session_id),
                        shard,
                        "{} in its shard",
                        x.session_id
                    );
                    // What marking and the scope filter read comes with the page.
                    assert_eq!(x.channel, "whatsapp");
                    assert_eq!(x.created_at, t0());
                    assert_eq!(x.variables.get("email"), Some(&serde_json::json!("a@b.c")));
                    in_shard.push(x.session_id.clone());
                }
                match page.next_cursor {
                    Some(c) => {
                        assert!(!page.sessions.is_empty(), "a cursor follows a full page");
                        q.cursor = Some(c);
                    }
                    None => break,
                }
            }
            let mut sorted = in_shard.clone();
            sorted.sort();
            assert_eq!(in_shard, sorted, "ordered by session id within a shard");
            seen.extend(in_shard);
        }
        seen.sort();
        assert_eq!(seen, expected, "across shards, each session exactly once");
        let used: std::collections::BTreeSet<u32> =
            expected.iter().map(|id| shard_of(id)).collect();
        assert!(
            used.len() > 1,
            "25 sessions spread over more than one shard"
        );
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 1, step_a).await.ok(),
            Some(25)
        );
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 1, step_b).await.ok(),
            Some(3)
        );
        // A page exactly full has no cursor.
        let b_shard = shard_of("b-0");
        let in_b_shard = (0..3)
            .filter(|i| shard_of(&format!("b-{i}")) == b_shard)
            .count();
        let mut q = StepQuery {
            tenant,
            scenario_id: sid,
            version: 1,
            step_id: step_b,
            shard: b_shard,
            limit: in_b_shard,
            cursor: None,
        };
        let page = s.sessions_at_step(&q).await.expect("page");
        assert_eq!(page.sessions.len(), in_b_shard);
        assert!(page.next_cursor.is_none());
        // Moving a session updates the index: it leaves its shard of the old
        // step and appears in the same shard of the new one.
        let moved_shard = shard_of("sess-000");
        s.put_session(&session(tenant, "sess-000", sid, 1, step_b))
            .await
            .expect("move");
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 1, step_a).await.ok(),
            Some(24)
        );
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 1, step_b).await.ok(),
            Some(4)
        );
        let ids_at = |step: Uuid| {
            let s = Arc::clone(&s);
            async move {
                s.sessions_at_step(&StepQuery {
                    tenant,
                    scenario_id: sid,
                    version: 1,
                    step_id: step,
                    shard: moved_shard,
                    limit: 100,
                    cursor: None,
                })
                .await
                .expect("page")
                .sessions
                .into_iter()
                .map(|x| x.session_id)
                .collect::<Vec<_>>()
            }
        };
        assert!(!ids_at(step_a).await.contains(&"sess-000".to_owned()));
        assert!(ids_at(step_b).await.contains(&"sess-000".to_owned()));
        // Cursors are bound to their query: its step and its shard.
        let busiest = (0..shards)
            .max_by_key(|sh| expected.iter().filter(|id| shard_of(id) == *sh).count())
            .expect("a shard");
        q.step_id = step_a;
        q.shard = busiest;
        q.limit = 1;
        let page = s.sessions_at_step(&q).await.expect("page");
        assert!(page.next_cursor.is_some());
        let mut wrong = q.clone();
        wrong.step_id = step_b;
        wrong.cursor = page.next_cursor.clone();
        assert!(matches!(
            s.sessions_at_step(&wrong).await,
            Err(StoreError::InvalidToken)
        ));
        let mut other_shard = q.clone();
        other_shard.shard = (busiest + 1) % shards;
        other_shard.cursor = page.next_cursor;
        assert!(matches!(
            s.sessions_at_step(&other_shard).await,
            Err(StoreError::InvalidToken)
        ));
    }

    pub async fn record_marking_page_is_idempotent(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let plan_id = Uuid::new_v4();
        // Two shards of one step: two chains, each with its own cursor.
        let step = Uuid::from_u128(1);
        let (chain_0, chain_1) = (0, 1);
        assert_eq!(
            s.get_plan_stats(tenant, plan_id).await.expect("stats"),
            PlanStats::default()
        );
        let started = t0();
        let chains = [
            ChainStart {
                step_id: step,
                shard: chain_0,
                shards: 2,
                anchor_content_hash: Some("h1".into()),
            },
            ChainStart {
                step_id: step,
                shard: chain_1,
                shards: 2,
                anchor_content_hash: None,
            },
        ];
        assert!(
            s.start_marking(tenant, plan_id, &chains, started)
                .await
                .expect("start")
        );
        let page = MarkedPage {
            tenant,
            plan_id,
            page_id: "anchor-0/cursor-start".into(),
            chain_step: step,
            chain_shard: chain_0,
            cursor: None,
            next_cursor: Some("abc".into()),
            sessions_marked: 3,
            by_anchor: BTreeMap::from([("h1".to_owned(), 2), ("h/2 #x".to_owned(), 1)]),
            at: started + Duration::seconds(1),
        };
        assert!(s.record_marking_page(&page).await.expect("record"));
        let after_first = s.get_plan_stats(tenant, plan_id).await.expect("stats");
        assert!(!s.record_marking_page(&page).await.expect("record again"));
        // Another walk of the same chain from the same place, under another page
        // id (its read saw other sessions): the chain has moved on, so no.
        let other_walk = MarkedPage {
            page_id: "anchor-0/another-read".into(),
            ..page.clone()
        };
        assert!(!s.record_marking_page(&other_walk).await.expect("record"));
        assert_eq!(
            s.get_plan_stats(tenant, plan_id).await.expect("stats"),
            after_first,
            "a second recording changes nothing"
        );
        let last = MarkedPage {
            page_id: "anchor-0/cursor-abc".into(),
            cursor: Some("abc".into()),
            next_cursor: None,
            sessions_marked: 4,
            by_anchor: BTreeMap::from([("h1".to_owned(), 4)]),
            ..page.clone()
        };
        assert!(s.record_marking_page(&last).await.expect("record"));
        assert!(
            !s.start_marking(tenant, plan_id, &chains[..1], t0() + Duration::days(1))
                .await
                .expect("start again"),
            "only the first start counts"
        );
        assert!(
            s.record_failed_page(tenant, plan_id, "p9")
                .await
                .expect("fail")
        );
        assert!(
            !s.record_failed_page(tenant, plan_id, "p9")
                .await
                .expect("fail")
        );
        let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
        assert_eq!(
            stats,
            PlanStats {
                sessions_marked: 7,
                sessions_by_anchor: BTreeMap::from([
                    ("h1".to_owned(), 6),
                    ("h/2 #x".to_owned(), 1)
                ]),
                chains_total: 2,
                chains_done: 1,
                pages_recorded: 2,
                pages_failed: 1,
                marking_started_at: Some(started),
                last_progress_at: Some(started + Duration::seconds(1)),
                ..PlanStats::default()
            }
        );
        let mut chains_now = s.list_chains(tenant, plan_id).await.expect("chains");
        chains_now.sort_by_key(|c| (c.step_id, c.shard));
        assert_eq!(chains_now.len(), 2);
        assert_eq!(
            chains_now
                .iter()
                .map(|c| (c.step_id, c.shard, c.shards))
                .collect::<Vec<_>>(),
            vec![(step, 0, 2), (step, 1, 2)],
            "each shard's chain registered apart, with the plan's shard count"
        );
        assert!(chains_now[0].done && chains_now[0].cursor.is_none());
        assert!(!chains_now[1].done, "the other shard's chain did not move");
        assert!(chains_now[1].cursor.is_none());
        assert_eq!(chains_now[1].anchor_content_hash, None);
        assert_eq!(chains_now[1].updated_at, started);
        // Concurrent duplicates: one recording.
        let dup = MarkedPage {
            page_id: "anchor-1/cursor-start".into(),
            chain_step: step,
            chain_shard: chain_1,
            ..page.clone()
        };
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (s, dup) = (Arc::clone(&s), dup.clone());
            tasks.push(tokio::spawn(
                async move { s.record_marking_page(&dup).await },
            ));
        }
        let mut recorded = 0;
        for task in tasks {
            if task.await.expect("join").expect("record") {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 1);
        let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
        assert_eq!(stats.sessions_marked, 10);
        assert_eq!(stats.pages_recorded, 3);
        // A stalled chain is claimed once for the same observation.
        let chain = s
            .list_chains(tenant, plan_id)
            .await
            .expect("chains")
            .into_iter()
            .find(|c| c.step_id == step && c.shard == chain_1)
            .expect("chain 1");
        let resume_at = t0() + Duration::hours(1);
        let mut claims = Vec::new();
        for _ in 0..4 {
            let s = Arc::clone(&s);
            let seen = chain.updated_at;
            claims.push(tokio::spawn(async move {
                s.claim_chain(tenant, plan_id, step, chain_1, seen, resume_at)
                    .await
            }));
        }
        let mut claimed = 0;
        for c in claims {
            if c.await.expect("join").expect("claim") {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 1, "one resumer takes a stalled chain");
        assert!(
            !s.claim_chain(tenant, plan_id, step, chain_0, started, resume_at)
                .await
                .expect("claim"),
            "a finished chain is never resumed"
        );
        let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
        assert_eq!(stats.resumptions, 1);
        // Another tenant's stats are untouched.
        assert_eq!(
            s.get_plan_stats(Uuid::new_v4(), plan_id)
                .await
                .expect("stats"),
            PlanStats::default()
        );
    }

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

    pub async fn runtime_write_contract(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let (sid, other_scenario) = (Uuid::new_v4(), Uuid::new_v4());
        let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
        let x = session(tenant, "rt", sid, 2, step_a);
        let created = s
            .write_session(&runtime_write(&x, SessionPrecondition::Absent))
            .await
            .expect("create");
        assert!(created.created);
        assert_eq!(created.session.revision, 1);
        assert!(matches!(
            s.write_session(&runtime_write(&x, SessionPrecondition::Absent))
                .await,
            Err(SessionWriteError::PreconditionFailed { current: Some(1) })
        ));
        // Marking sets the flag; the runtime's next write keeps it.
        let flag = pending(Uuid::new_v4(), step_a);
        let pos = SessionPosition {
            scenario_id: sid,
            version: 2,
            step_id: step_a,
        };
        assert!(
            s.mark_session(tenant, "rt", &pos, &flag)
                .await
                .expect("mark")
        );
        let mut moved = x.clone();
        moved.active_step_id = step_b;
        moved.variables.insert("k".into(), serde_json::json!(1));
        let written = s
            .write_session(&runtime_write(&moved, SessionPrecondition::None))
            .await
            .expect("write");
        assert!(!written.created);
        assert_eq!(written.session.revision, 3, "create, mark, write");
        assert_eq!(written.session.pending_migration, Some(flag.clone()));
        assert_eq!(
            s.get_session(tenant, "rt").await.expect("get"),
            Some(written.session.clone())
        );
        // If-Match: the revision the client read.
        assert!(matches!(
            s.write_session(&runtime_write(&moved, SessionPrecondition::Revision(2)))
                .await,
            Err(SessionWriteError::PreconditionFailed { current: Some(3) })
        ));
        let at3 = s
            .write_session(&runtime_write(&moved, SessionPrecondition::Revision(3)))
            .await
            .expect("if-match");
        assert_eq!(at3.session.revision, 4);
        assert!(matches!(
            s.write_session(&runtime_write(
                &session(tenant, "nobody", sid, 1, step_a),
                SessionPrecondition::Exists
            ))
            .await,
            Err(SessionWriteError::PreconditionFailed { current: None })
        ));
        // Never back to an older version of the same scenario; nothing written.
        let older = session(tenant, "rt", sid, 1, step_a);
        assert!(matches!(
            s.write_session(&runtime_write(&older, SessionPrecondition::None))
                .await,
            Err(SessionWriteError::VersionRegression { current: 2 })
        ));
        assert_eq!(
            s.get_session(tenant, "rt").await.expect("get"),
            Some(at3.session.clone())
        );
        // The index follows the runtime's moves.
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 2, step_b).await.ok(),
            Some(1)
        );
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 2, step_a).await.ok(),
            Some(0)
        );
        // Another scenario: the flag and the pin mean nothing there.
        let elsewhere = session(tenant, "rt", other_scenario, 1, step_a);
        let moved_away = s
            .write_session(&runtime_write(&elsewhere, SessionPrecondition::None))
            .await
            .expect("other scenario");
        assert_eq!(moved_away.session.pending_migration, None);
        assert_eq!(moved_away.session.pinned_version, None);
        assert_eq!(moved_away.session.created_at, x.created_at);
        assert_eq!(
            s.count_sessions_at_step(tenant, sid, 2, step_b).await.ok(),
            Some(0)
        );
    }

    /// The runtime keeps writing sessions while marking flags them: no flag is lost.
    pub async fn runtime_writes_never_lose_a_flag(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let step_a = Uuid::new_v4();
        let plan_id = Uuid::new_v4();
        const SESSIONS: usize = 40;
        const WRITES_PER_SESSION: usize = 6;
        let ids: Vec<String> = (0..SESSIONS).map(|i| format!("race-{i:03}")).collect();
        for id in &ids {
            s.write_session(&runtime_write(
                &session(tenant, id, sid, 1, step_a),
                SessionPrecondition::None,
            ))
            .await
            .expect("seed");
        }
        let pos = SessionPosition {
            scenario_id: sid,
            version: 1,
            step_id: step_a,
        };
        let flag = pending(plan_id, step_a);
        let mut tasks = Vec::new();
        for writer in 0..2 {
            let (s, ids) = (Arc::clone(&s), ids.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0..WRITES_PER_SESSION {
                    for id in ids.iter().skip(writer) {
                        let mut x = session(tenant, id, sid, 1, step_a);
                        x.variables.insert("round".into(), serde_json::json!(round));
                        s.write_session(&runtime_write(&x, SessionPrecondition::None))
                            .await
                            .expect("runtime write");
                    }
                }
                0usize
            }));
        }
        {
            let (s, ids, pos, flag) = (Arc::clone(&s), ids.clone(), pos.clone(), flag.clone());
            tasks.push(tokio::spawn(async move {
                let mut marked = 0;
                for id in &ids {
                    if s.mark_session(tenant, id, &pos, &flag).await.expect("mark") {
                        marked += 1;
                    }
                }
                marked
            }));
        }
        let mut marked = 0;
        for task in tasks {
            marked += task.await.expect("join");
        }
        assert_eq!(marked, SESSIONS, "every session was at the step");
        let mut lost = 0;
        for id in &ids {
            let stored = s.get_session(tenant, id).await.expect("get").expect("s");
            if stored.pending_migration.as_ref() != Some(&flag) {
                lost += 1;
            }
            let writes = WRITES_PER_SESSION * if id == &ids[0] { 1 } else { 2 };
            assert_eq!(
                stored.revision as usize,
                1 + writes + 1,
                "every write counted once: seed, runtime writes, mark"
            );
        }
        assert_eq!(lost, 0, "flags lost to runtime writes");
    }

    /// What a deployment leaves behind is deleted after its retention: by the
    /// sweep on the embedded and in-memory stores; DynamoDB's TTL does it (its
    /// `ttl` attributes are checked in `tests/tests/retention.rs`), so there the
    /// sweep deletes nothing and everything stays readable.
    pub async fn retention_deletes_a_deployed_plan_after_its_period(s: Arc<dyn Store>) {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let v1 = scenario(tenant, sid, 1, 3);
        s.create_scenario(&v1).await.expect("create");
        let v2 = scenario(tenant, sid, 2, 3);
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
        s.activate_plan(&PlanActivation {
            tenant,
            plan_id: p.id,
            expected_revision: 1,
            scenario_id: sid,
            from_version: 1,
            target: v2.clone(),
            at: t0(),
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
            &[ChainStart {
                step_id: chain,
                shard: 0,
                shards: 1,
                anchor_content_hash: None,
            }],
            t0(),
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
                cursor: None,
                next_cursor: None,
                sessions_marked: 0,
                by_anchor: BTreeMap::new(),
                at: t0(),
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
            at: t0(),
            applied: Some(AppliedMigration {
                event: event(
                    tenant,
                    p.id,
                    "kept",
                    t0(),
                    MigrationScenario::CleanGraft,
                    false,
                ),
                was_flagged: true,
            }),
        };
        assert!(s.apply_session_change(&applied).await.expect("apply"));
        s.transition_plan(&transition(
            &p,
            PlanStatus::Deploying,
            2,
            PlanStatus::Deployed,
        ))
        .await
        .expect("deployed");
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
        // Within the periods nothing goes.
        let early = s
            .sweep_expired(t0() + Duration::days(20), 10_000)
            .await
            .expect("sweep");
        assert_eq!(early, 0);
        assert!(s.get_plan(tenant, p.id).await.expect("get").is_some());
        // Past every period.
        let removed = s
            .sweep_expired(t0() + Duration::days(500), 10_000)
            .await
            .expect("sweep");
        let plan_now = s.get_plan(tenant, p.id).await.expect("get");
        let events_now = s.list_events(&events).await.expect("events").events;
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
            s.sweep_expired(t0() + Duration::days(500), 10_000)
                .await
                .expect("again"),
            0,
            "a second sweep finds nothing"
        );
    }

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
        })
        .await
        .expect("activate a large target");
        assert_eq!(
            s.get_current_scenario(tenant, sid).await.expect("get"),
            Some(target)
        );
    }
}
