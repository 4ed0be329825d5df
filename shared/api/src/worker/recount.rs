//! The exact session recount, for audits: a queue message that pages the step
//! index of one scenario version (linear in sessions — which is why it runs on
//! the worker, never inside an HTTP call) and stores the exact counts with the
//! time they were taken, next to the counters as read right after
//! (`Store::put_recount`). `migrations counts --recount` sends it; `migrations
//! counts` shows the counters and the latest recount side by side.
//!
//! The message shares the marking queue: `{"recount_sessions": {...}}`, told
//! apart from a marking page by that one key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::{Recount, Store, StoreResult};
use uuid::Uuid;

use super::MessageOutcome;
use crate::state::AppState;

/// A recount request as it travels through the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecountMessage {
    pub recount_sessions: RecountRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecountRequest {
    pub tenant_id: Uuid,
    pub scenario_id: Uuid,
    pub version: i64,
    pub requested_at: DateTime<Utc>,
}

impl RecountMessage {
    /// The message in `body`, if it is a recount request.
    pub fn parse(body: &str) -> Option<RecountMessage> {
        serde_json::from_str(body).ok()
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Count the sessions of every step of the version exactly, through the step
/// index (`count_sessions_at_steps`, `concurrency` steps at a time), and store
/// the result with the counters read right after. A version that does not
/// exist has no steps and counts nothing.
pub(crate) async fn recount(
    store: &dyn Store,
    request: &RecountRequest,
    concurrency: usize,
) -> StoreResult<Recount> {
    let (t, s, v) = (request.tenant_id, request.scenario_id, request.version);
    let steps: Vec<Uuid> = match store.get_scenario_version(t, s, v).await? {
        Some(version) => version.steps.iter().map(|step| step.id).collect(),
        None => Vec::new(),
    };
    let by_step = store
        .count_sessions_at_steps(t, s, v, &steps, concurrency)
        .await?;
    let finished_at = Utc::now();
    let counters = store.session_counts(t, s, v).await?;
    let result = Recount {
        tenant: t,
        scenario_id: s,
        version: v,
        by_step,
        requested_at: request.requested_at,
        finished_at,
        counters,
    };
    store.put_recount(&result).await?;
    Ok(result)
}

/// The worker's handling of a recount message: retried through the queue on a
/// store failure, like a marking page.
pub(crate) async fn process(
    state: &AppState,
    message: &RecountMessage,
    attempt: u32,
) -> MessageOutcome {
    let request = &message.recount_sessions;
    match recount(state.store(), request, state.config().count_concurrency).await {
        Ok(result) => {
            tracing::info!(
                scenario_id = %request.scenario_id,
                version = request.version,
                sessions = result.by_step.values().sum::<u64>(),
                counted = result.counters.total(),
                "session recount stored"
            );
            MessageOutcome::Done
        }
        Err(error) => {
            tracing::warn!(%error, scenario_id = %request.scenario_id, attempt, "session recount failed");
            MessageOutcome::Retry
        }
    }
}
