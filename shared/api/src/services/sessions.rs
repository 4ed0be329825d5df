//! Sessions as the conversation runtime records them.

use chrono::{DateTime, Utc};
use planning::{Session, SessionInput};
use store::Store;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Record where a session is. Migration bookkeeping (`pending_migration`,
/// `pinned_version`) belongs to this product and survives the runtime's writes.
/// Returns the stored session and whether it was created.
pub async fn record(
    store: &dyn Store,
    tenant: Uuid,
    session_id: String,
    input: SessionInput,
    now: DateTime<Utc>,
) -> ApiResult<(Session, bool)> {
    if input.channel.trim().is_empty() {
        return Err(ApiError::validation(
            &["body", "channel"],
            "must not be empty",
            "value_error.any_str.min_length",
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
        return Err(ApiError::validation(
            &["body", "active_scenario_version"],
            "unknown scenario version for this tenant",
            "value_error.unknown_version",
        ));
    };
    if !scenario.steps.iter().any(|s| s.id == input.active_step_id) {
        return Err(ApiError::validation(
            &["body", "active_step_id"],
            "step does not exist in that scenario version",
            "value_error.unknown_step",
        ));
    }
    let existing = store.get_session(tenant, &session_id).await?;
    let created = existing.is_none();
    let (pending_migration, pinned_version, first_seen) = match existing {
        Some(s) => (s.pending_migration, s.pinned_version, s.created_at),
        None => (None, None, now),
    };
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
        pending_migration,
        pinned_version,
        created_at: input.created_at.unwrap_or(first_seen),
        updated_at: now,
    };
    store.put_session(&session).await?;
    Ok((session, created))
}

pub async fn get(store: &dyn Store, tenant: Uuid, session_id: &str) -> ApiResult<Session> {
    store
        .get_session(tenant, session_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Session"))
}
