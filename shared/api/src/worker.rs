//! The marking worker: one queue message = one page of one chain.
//! Shared by the SQS Lambda, `migrations serve --queue sqs` and the in-process queue.

use chrono::Utc;

use crate::error::{ApiError, ApiResult};
use crate::extract::parse_json;
use crate::marking::{self, MarkMessage};
use crate::state::AppState;

/// What happened to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Marked and recorded (or already recorded); delete the message.
    Done,
    /// Not a marking message at all: retrying cannot help, so it is dropped
    /// (and logged) instead of cycling to the dead-letter queue.
    Malformed,
    /// Failed; the queue should redeliver it.
    Retry,
}

/// Process one message body. `attempt` is the delivery count (1 for the first);
/// on the last allowed attempt a failure is recorded against the plan so that it
/// shows in `deployment-status` while the message moves to the dead-letter queue.
pub async fn process_body(state: &AppState, body: &str, attempt: u32) -> MessageOutcome {
    let message: MarkMessage = match parse_json(body.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            tracing::error!(
                body_len = body.len(),
                "dropping a message that is not a marking message"
            );
            return MessageOutcome::Malformed;
        }
    };
    match process(state, &message).await {
        Ok(()) => MessageOutcome::Done,
        Err(error) => {
            tracing::warn!(%error, plan_id = %message.plan_id, page = %message.page_id(), attempt, "marking page failed");
            if attempt >= state.config.mark_max_receives {
                let recorded = state
                    .store
                    .record_failed_page(message.tenant_id, message.plan_id, &message.page_id())
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "could not record the failed page");
                }
            }
            MessageOutcome::Retry
        }
    }
}

async fn process(state: &AppState, message: &MarkMessage) -> ApiResult<()> {
    let continuation = marking::process_message(
        state.store.as_ref(),
        message,
        state.config.mark_page_size,
        state.config.mark_concurrency,
        Utc::now(),
    )
    .await?;
    if let Some(next) = continuation {
        let queue = state.queue.as_ref().ok_or_else(|| {
            ApiError::Unexpected("no marking queue configured for continuations".into())
        })?;
        queue.enqueue(vec![next]).await?;
    }
    Ok(())
}
