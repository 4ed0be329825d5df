//! The marking worker: one queue message = one page of one chain, and — for a
//! batch from SQS — the pages after it while the batch's time budget lasts
//! (`MARK_CHAIN_BUDGET_MS`, [`process_batch`]), so a long chain does not pay a
//! queue hop per page. Shared by the SQS Lambda, `migrations serve --queue sqs`
//! and the in-process queue (one page per message: it interleaves chains).
//!
//! Each failure is classified ([`classify`]): a retryable one (throttling, a
//! store or queue outage, a lost conditional write) leaves the message for
//! redelivery; a permanent one (the plan is gone, the message is malformed) is
//! logged with its ids, counted and deleted, so it never cycles to the
//! dead-letter queue.

pub mod recount;

pub use crate::marking::outcome::{MessageOutcome, WorkerCounters, WorkerCounts};

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::marking::queue::QueueError;
use crate::marking::{self, MarkMessage, MarkingError, MarkingResult};
use crate::state::AppState;

/// What the worker does with a failed message: the classification table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Leave it for redelivery (and the dead-letter queue after `MARK_MAX_RECEIVES`).
    Retry,
    /// Delete it: no delivery can ever succeed.
    Drop,
    /// Delete it: the plan no longer deploys, so there is nothing left to do.
    Finished,
}

/// | failure                                   | disposition |
/// |-------------------------------------------|-------------|
/// | plan gone (deleted, never existed)        | Drop        |
/// | cursor this store never issued            | Drop        |
/// | plan no longer deploying                  | Finished    |
/// | store throttled / failed / write conflict | Retry       |
/// | queue throttled / unavailable / refused   | Retry       |
/// | the plan's from-version missing (lost data) | Retry (→ DLQ, `pages_failed`) |
pub fn classify(error: &MarkingError) -> Disposition {
    match error {
        MarkingError::PlanNotDeploying { .. } => Disposition::Finished,
        e if e.is_permanent() => Disposition::Drop,
        _ => Disposition::Retry,
    }
}

/// Process one message body. `attempt` is the delivery count (1 for the first);
/// on the last allowed attempt a failure is recorded against the plan so that it
/// shows in `deployment-status` while the message moves to the dead-letter queue.
/// One page: its continuation goes to the queue.
pub async fn process_body(state: &AppState, body: &str, attempt: u32) -> MessageOutcome {
    process_body_until(state, body, attempt, Instant::now()).await
}

/// Like [`process_body`], walking the message's chain on in process, page after
/// page, until `deadline`; only then does the next page go to the queue.
pub async fn process_body_until(
    state: &AppState,
    body: &str,
    attempt: u32,
    deadline: Instant,
) -> MessageOutcome {
    let outcome = handle_body(state, body, attempt, deadline).await;
    state.worker_counters().count(&outcome);
    outcome
}

async fn handle_body(
    state: &AppState,
    body: &str,
    attempt: u32,
    deadline: Instant,
) -> MessageOutcome {
    // The queue also carries exact session recounts (see `recount`).
    if let Some(recount) = recount::RecountMessage::parse(body) {
        return recount::process(state, &recount, attempt).await;
    }
    let message = match MarkMessage::parse(body) {
        Ok(m) => m,
        Err(_) => {
            tracing::warn!(
                body_len = body.len(),
                attempt,
                "dropping a message that is not a marking message"
            );
            return MessageOutcome::Malformed;
        }
    };
    let Err(error) = process(state, &message, deadline).await else {
        return MessageOutcome::Done;
    };
    let ids = (message.tenant_id, message.plan_id, message.page_id());
    match classify(&error) {
        Disposition::Finished => {
            tracing::info!(
                tenant = %ids.0, plan_id = %ids.1, page = %ids.2, attempt, %error,
                "plan no longer deploying; message deleted"
            );
            state
                .worker_counters()
                .finished
                .fetch_add(1, Ordering::Relaxed);
            MessageOutcome::Done
        }
        Disposition::Drop => {
            tracing::warn!(
                tenant = %ids.0, plan_id = %ids.1, page = %ids.2, attempt, %error,
                "permanent marking failure; message dropped"
            );
            MessageOutcome::Dropped
        }
        Disposition::Retry => {
            let error = crate::error::with_sources(&error);
            tracing::warn!(
                tenant = %ids.0, plan_id = %ids.1, page = %ids.2, attempt, %error,
                "marking page failed; left for redelivery"
            );
            if attempt >= state.config().mark_max_receives {
                crate::metrics::page_failed();
                let recorded = state
                    .store()
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

/// Pages of one batch processed at once when each message is one page
/// (`MARK_CHAIN_BUDGET_MS` = 0); each page already writes with
/// `MARK_CONCURRENCY` conditional updates in flight. With a chain budget every
/// message of the batch walks at once instead: a message waiting behind
/// another's walk would hold its chain still for the whole budget. (The
/// template's event source mapping and `aws::poll_queue` deliver one message
/// per batch, so that chains spread over workers; a larger batch still works.)
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

/// Process a batch, each message on its own (in a span tagged with its id): all
/// at once, each walking its chain until the batch's budget is spent, or
/// [`PAGES_IN_FLIGHT`] at a time without a budget. Returns the ids of the messages to redeliver;
/// one failing message never fails the others. One log line per batch says what
/// became of its messages.
pub async fn process_batch(state: &AppState, deliveries: &[Delivery<'_>]) -> Vec<String> {
    use futures::StreamExt;
    use tracing::Instrument;
    // One budget for the whole batch, from its start: a batch ends within the
    // budget plus the page each walk is in.
    let budget = state.config().mark_chain_budget_ms;
    let deadline = Instant::now() + Duration::from_millis(budget);
    let in_flight = if budget > 0 {
        deliveries.len().max(1)
    } else {
        PAGES_IN_FLIGHT
    };
    // Built up front: a mapping closure returning borrowed futures defeats the
    // compiler's `Send` inference for the stream.
    let work: Vec<_> = deliveries
        .iter()
        .map(|d| {
            let span =
                tracing::info_span!("marking_message", message_id = %d.id, attempt = d.attempt);
            async move {
                let outcome = process_body_until(state, d.body, d.attempt, deadline)
                    .instrument(span)
                    .await;
                (d.id, outcome)
            }
        })
        .collect();
    let outcomes: Vec<(&str, MessageOutcome)> = futures::stream::iter(work)
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let tally = |wanted: MessageOutcome| outcomes.iter().filter(|(_, o)| *o == wanted).count();
    let totals = state.worker_counters().snapshot();
    tracing::info!(
        messages = outcomes.len(),
        done = tally(MessageOutcome::Done),
        dropped = tally(MessageOutcome::Dropped),
        malformed = tally(MessageOutcome::Malformed),
        retry = tally(MessageOutcome::Retry),
        dropped_total = totals.dropped + totals.malformed,
        "marking batch"
    );
    outcomes
        .into_iter()
        .filter(|(_, outcome)| *outcome == MessageOutcome::Retry)
        .map(|(id, _)| id.to_owned())
        .collect()
}

#[cfg(feature = "worker-lambda")]
pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// The SQS worker Lambda's handler: the event's records as one batch, answered
/// with `batchItemFailures` naming only the messages to redeliver (the event
/// source mapping must enable `ReportBatchItemFailures`); dropped messages are
/// not named, so SQS deletes them.
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

/// Mark the message's page and, while `deadline` is ahead, the pages after it
/// (each read ahead while the one before is written); then hand the chain's next
/// page to the queue. Every page is recorded in the ledger before the next is
/// taken, exactly as if each had come as its own message.
async fn process(state: &AppState, message: &MarkMessage, deadline: Instant) -> MarkingResult<()> {
    let mut next = mark_page(state, message).await?;
    while let Some(page) = next {
        if Instant::now() >= deadline {
            return hand_to_queue(state, page).await;
        }
        next = match mark_page(state, &page).await {
            Ok(after) => after,
            // This message's own page is recorded: redelivering it would only
            // find it recorded and end the walk. The page that failed goes back
            // to the queue as its own message, with the queue's retries (and
            // dead-letter accounting) from its first attempt.
            Err(error) if classify(&error) == Disposition::Retry => {
                tracing::warn!(
                    tenant = %page.tenant_id, plan_id = %page.plan_id, page = %page.page_id(), %error,
                    "marking page failed while walking its chain; handed to the queue"
                );
                return hand_to_queue(state, page).await;
            }
            Err(error) => return Err(error),
        };
    }
    Ok(())
}

async fn mark_page(state: &AppState, message: &MarkMessage) -> MarkingResult<Option<MarkMessage>> {
    let config = state.config();
    let next = marking::process_message(
        state.store(),
        state.marking_plans(),
        message,
        config.mark_page_size,
        config.mark_concurrency,
        Utc::now(),
    )
    .await?;
    if next.is_none() {
        // A chain ended, perhaps the plan's last: its `deployed` (or
        // `withdrawn`) is announced now rather than by the next sweep. One read
        // per chain when nothing is owed.
        state.announce(message.tenant_id, message.plan_id).await;
    }
    Ok(next)
}

async fn hand_to_queue(state: &AppState, next: MarkMessage) -> MarkingResult<()> {
    let queue = state.queue().ok_or(QueueError::NotConfigured)?;
    queue.enqueue(vec![next]).await?;
    Ok(())
}
