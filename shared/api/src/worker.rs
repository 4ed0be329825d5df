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
    // The queue also carries exact session recounts (crate::recount).
    if let Some(recount) = crate::recount::RecountMessage::parse(body) {
        return crate::recount::process(state, &recount, attempt).await;
    }
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

/// Pages of one batch processed at once; each page already writes with
/// `MARK_CONCURRENCY` conditional updates in flight.
pub const PAGES_IN_FLIGHT: usize = 2;

/// One delivered message of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The queue's message id (the SQS `messageId`).
    pub id: &'a str,
    pub body: &'a str,
    /// The delivery count (SQS `ApproximateReceiveCount`), 1 for the first.
    pub attempt: u32,
}

/// Process a batch, each message on its own (in a span tagged with its id), at
/// most [`PAGES_IN_FLIGHT`] at once. Returns the ids of the messages to redeliver;
/// one failing message never fails the others.
pub async fn process_batch(state: &AppState, deliveries: &[Delivery<'_>]) -> Vec<String> {
    use futures::StreamExt;
    use tracing::Instrument;
    // Built up front: a mapping closure returning borrowed futures defeats the
    // compiler's `Send` inference for the stream.
    let work: Vec<_> = deliveries
        .iter()
        .map(|d| {
            let span =
                tracing::info_span!("marking_message", message_id = %d.id, attempt = d.attempt);
            async move {
                let outcome = process_body(state, d.body, d.attempt)
                    .instrument(span)
                    .await;
                (outcome == MessageOutcome::Retry).then(|| d.id.to_owned())
            }
        })
        .collect();
    futures::stream::iter(work)
        .buffer_unordered(PAGES_IN_FLIGHT)
        .filter_map(|failed| async move { failed })
        .collect()
        .await
}

#[cfg(feature = "worker-lambda")]
pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// The SQS worker Lambda's handler: the event's records as one batch, answered
/// with `batchItemFailures` naming only the messages to redeliver (the event
/// source mapping must enable `ReportBatchItemFailures`).
#[cfg(feature = "worker-lambda")]
pub async fn handle_sqs_event(state: &AppState, event: &SqsEvent) -> SqsBatchResponse {
    let deliveries: Vec<Delivery<'_>> = event
        .records
        .iter()
        .map(|m| Delivery {
            id: m.message_id.as_deref().unwrap_or(""),
            body: m.body.as_deref().unwrap_or(""),
            attempt: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = process_batch(state, &deliveries)
        .await
        .into_iter()
        .map(|id| {
            // Non-exhaustive event types: build through the default.
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

async fn process(state: &AppState, message: &MarkMessage) -> ApiResult<()> {
    let continuation = marking::process_message(
        state.store.as_ref(),
        &state.marking_plans,
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
