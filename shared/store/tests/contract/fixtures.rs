//! What the cases are made of: scenarios, plans, sessions, marks, transitions
//! and events, built the same way on every backend.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use planning::{
    AnchorMigrationPolicy, AnchorTransformation, DeletedNode, InsertedNode, MigrationPlan,
    MigrationScenario, MigrationSummary, MigrationWarning, PendingMigration, PlanStatus,
    ReconciliationAction, RegionChanges, ScenarioVersion, ScopeFilter, Session, Severity,
    StepInput, StepVisit, TransformationMap, TransitionInput,
};
use store::{
    AppliedMigration, AuditEvent, NewPosition, PlanQuery, PlanTransition, SessionChange,
    SessionExpectation, SessionPrecondition, SessionWrite, StoreError,
};
use uuid::Uuid;

/// The cases' reference time: the start of the hour three hours ago (the same
/// for the whole run), plus a fraction of a second that a stored time must keep.
/// Near now, not a fixed date: DynamoDB Local deletes items whose `ttl` has
/// passed whenever its background sweeper runs, so a plan deployed "in 2025"
/// (its head kept 400 days) vanished in the middle of a case, now and then.
pub(super) fn t0() -> DateTime<Utc> {
    static T0: OnceLock<DateTime<Utc>> = OnceLock::new();
    *T0.get_or_init(|| {
        let hour_start = (Utc::now() - Duration::hours(3)).timestamp() / 3600 * 3600;
        Utc.timestamp_opt(hour_start, 0)
            .single()
            .expect("valid time")
            + Duration::nanoseconds(123_456_789)
    })
}

pub(super) fn step(id: Uuid, name: &str, to: &[Uuid]) -> StepInput {
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
pub(super) fn scenario(tenant: Uuid, id: Uuid, version: i64, n: usize) -> ScenarioVersion {
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

pub(super) fn anchor(i: usize) -> AnchorTransformation {
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

pub(super) fn policy(hash: &str) -> AnchorMigrationPolicy {
    AnchorMigrationPolicy {
        anchor_content_hash: hash.to_owned(),
        anchor_name: format!("Anchor {hash}"),
        scope_filter: ScopeFilter::default(),
        update_downstream: true,
        force_scenario: None,
        edited_step_behavior: None,
    }
}

pub(super) fn plan(
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
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 0,
    }
}

pub(super) fn session(
    tenant: Uuid,
    id: &str,
    scenario_id: Uuid,
    version: i64,
    at: Uuid,
) -> Session {
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

pub(super) fn runtime_write(session: &Session, precondition: SessionPrecondition) -> SessionWrite {
    SessionWrite {
        session: session.clone(),
        created_at: None,
        precondition,
    }
}

pub(super) fn pending(plan_id: Uuid, from_step: Uuid) -> PendingMigration {
    PendingMigration {
        migration_plan_id: plan_id,
        target_version: 2,
        anchor_content_hash: "0000000000000000".into(),
        from_step_id: from_step,
        marked_at: t0() + Duration::minutes(5),
    }
}

pub(super) fn transition(
    p: &MigrationPlan,
    from: PlanStatus,
    rev: u64,
    to: PlanStatus,
) -> PlanTransition {
    let (by, reason) = (Some("bob".to_owned()), Some("because".to_owned()));
    let stamp = match to {
        PlanStatus::Approved => planning::lifecycle::Stamp::Approved { by: by.clone() },
        PlanStatus::Rejected => planning::lifecycle::Stamp::Rejected {
            by: by.clone(),
            reason,
        },
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
            by,
        },
        rollout: None,
    }
}

pub(super) fn plan_query(tenant: Uuid, limit: usize) -> PlanQuery {
    PlanQuery {
        tenant,
        scenario_id: None,
        status: None,
        limit,
        next_token: None,
    }
}

pub(super) fn event(
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

/// A reconcile's clean graft of `session_id` (at revision `expected_revision`)
/// to V2's `step_new` at `at`: through `plan_id`'s flag when `flagged`, else as
/// an unflagged session of V1.
pub(super) fn clean_graft_to_v2(
    tenant: Uuid,
    session_id: &str,
    plan_id: Uuid,
    flagged: bool,
    expected_revision: u64,
    step_new: Uuid,
    at: DateTime<Utc>,
) -> SessionChange {
    SessionChange {
        tenant,
        session_id: session_id.into(),
        expect: if flagged {
            SessionExpectation::FlaggedBy(plan_id)
        } else {
            SessionExpectation::UnflaggedAt { version: 1 }
        },
        expected_revision,
        new_position: Some(NewPosition {
            version: 2,
            step_id: step_new,
            checksum: "cccccccccccccccc".into(),
        }),
        pin_version: None,
        clear_flag: true,
        set_variables: BTreeMap::new(),
        at,
        applied: Some(AppliedMigration {
            event: event(
                tenant,
                plan_id,
                session_id,
                at,
                MigrationScenario::CleanGraft,
                false,
            ),
            was_flagged: flagged,
        }),
        require_applying: Vec::new(),
        expect_head: None,
    }
}

pub(super) fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}
