//! Sessions as the conversation runtime records them.

use chrono::{DateTime, Utc};
use planning::{Session, SessionInput};
use store::{SessionPrecondition, SessionWrite, Store, WrittenSession};
use uuid::Uuid;

use crate::services::error::{ServiceError, ServiceResult};

/// Record where a session is (`PUT /sessions/{id}`), under the session
/// concurrency contract (`store::Store::write_session`): the runtime's fields are
/// written, migration bookkeeping (`pending_migration`, `pinned_version`) is kept
/// atomically — never read here and written back — and `precondition` carries the
/// client's `If-Match` / `If-None-Match`. Returns the stored session and whether
/// it was created.
pub async fn record(
    store: &dyn Store,
    tenant: Uuid,
    session_id: String,
    input: SessionInput,
    precondition: SessionPrecondition,
    now: DateTime<Utc>,
) -> ServiceResult<WrittenSession> {
    if input.channel.trim().is_empty() {
        return Err(ServiceError::invalid_document(
            &["channel"],
            "must not be empty",
            "string_too_short",
        ));
    }
    // The representation GET returns may come back; its identity must be this one.
    if input
        .session_id
        .as_ref()
        .is_some_and(|id| *id != session_id)
    {
        return Err(ServiceError::invalid_document(
            &["session_id"],
            "does not match the session id in the path",
            "value_error.mismatch",
        ));
    }
    if input.tenant_id.is_some_and(|t| t != tenant) {
        return Err(ServiceError::invalid_document(
            &["tenant_id"],
            "does not match the X-Tenant-ID header",
            "value_error.mismatch",
        ));
    }
    let scenario = store
        .get_scenario_version(
            tenant,
            input.active_scenario_id,
            input.active_scenario_version,
        )
        .await?;
    let Some(scenario) = scenario else {
        return Err(ServiceError::invalid_document(
            &["active_scenario_version"],
            "unknown scenario version for this tenant",
            "value_error.unknown_version",
        ));
    };
    if !scenario.steps.iter().any(|s| s.id == input.active_step_id) {
        return Err(ServiceError::invalid_document(
            &["active_step_id"],
            "step does not exist in that scenario version",
            "value_error.unknown_step",
        ));
    }
    let session = Session {
        session_id,
        tenant_id: tenant,
        channel: input.channel,
        customer_id: input.customer_id,
        active_scenario_id: input.active_scenario_id,
        active_scenario_version: input.active_scenario_version,
        active_step_id: input.active_step_id,
        scenario_checksum: input.scenario_checksum.or(Some(scenario.checksum)),
        step_history: input.step_history,
        variables: input.variables,
        // Decided by the store against what is stored.
        pending_migration: None,
        pinned_version: None,
        created_at: now,
        updated_at: now,
        revision: 0,
    };
    Ok(store
        .write_session(&SessionWrite {
            session,
            created_at: input.created_at,
            precondition,
        })
        .await?)
}

pub async fn get(store: &dyn Store, tenant: Uuid, session_id: &str) -> ServiceResult<Session> {
    store
        .get_session(tenant, session_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Session", session_id))
}

/// The body of `POST /sessions/{id}/outcome`: how the session fared after
/// its last migration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// `false`: the migrated session failed (the runtime's judgement: an error,
    /// an abandoned conversation, a complaint).
    pub ok: bool,
    /// Why, for the runtime's own logs (at most 500 characters; not stored).
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an outcome report did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OutcomeAnswer {
    pub session_id: String,
    /// Whether this report was counted now (`false`: counted before, or no
    /// migration of the session within the outcome window).
    pub counted: bool,
    /// The plan whose migration of the session the report is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<Uuid>,
    pub detail: String,
    /// Whether this report made the plan's rollout guard halt it (for the
    /// handler, which announces the halt; not part of the answer).
    #[serde(skip)]
    pub halted: bool,
}

/// Longest `reason` accepted.
const MAX_REASON_CHARS: usize = 500;

/// `POST /sessions/{id}/outcome`: count the runtime's report against the plan
/// that last migrated the session (once per session and plan, within
/// `window_hours` of the migration), then let that plan's guard halt the
/// rollout if the reported failures cross its threshold.
pub async fn report_outcome(
    store: &dyn Store,
    tenant: Uuid,
    session_id: &str,
    request: OutcomeRequest,
    window_hours: i64,
    now: DateTime<Utc>,
) -> ServiceResult<OutcomeAnswer> {
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ServiceError::invalid_document(
            &["reason"],
            "at most 500 characters",
            "string_too_long",
        ));
    }
    store
        .get_session(tenant, session_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Session", session_id))?;
    let report = store::OutcomeReport {
        tenant,
        session_id: session_id.to_owned(),
        ok: request.ok,
        window_start: now - chrono::Duration::hours(window_hours),
        at: now,
    };
    let answer = |counted, plan_id, detail: &str| OutcomeAnswer {
        session_id: session_id.to_owned(),
        counted,
        plan_id,
        detail: detail.to_owned(),
        halted: false,
    };
    match store.report_outcome(&report).await? {
        store::OutcomeRecorded::Counted { plan_id } => {
            let halted = !request.ok
                && crate::services::deployments::enforce_guard_of(store, tenant, plan_id, now)
                    .await;
            Ok(OutcomeAnswer {
                halted,
                ..answer(true, Some(plan_id), "counted")
            })
        }
        store::OutcomeRecorded::AlreadyReported { plan_id } => Ok(answer(
            false,
            Some(plan_id),
            "this session's outcome after this migration was reported before",
        )),
        store::OutcomeRecorded::NoRecentMigration => Ok(answer(
            false,
            None,
            "no migration was applied to this session within the outcome window",
        )),
    }
}
