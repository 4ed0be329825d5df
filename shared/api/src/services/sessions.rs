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
