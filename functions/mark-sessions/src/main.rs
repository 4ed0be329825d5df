//! The marking worker Lambda: each SQS message names one page of one chain.
//! Messages are handled on their own; failures are reported per message
//! (`batchItemFailures`) so one bad page never fails the batch.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::Instrument;

use api::AppState;
use api::worker::{MessageOutcome, process_body};

/// Pages of one batch processed at once; each page already writes concurrently.
const PAGES_IN_FLIGHT: usize = 2;

async fn handle_message(state: &AppState, message: &SqsMessage) -> Option<BatchItemFailure> {
    let id = message.message_id.clone().unwrap_or_default();
    let attempt = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let body = message.body.as_deref().unwrap_or("");
    let span = tracing::info_span!("marking_message", message_id = %id, attempt);
    match process_body(state, body, attempt).instrument(span).await {
        MessageOutcome::Done | MessageOutcome::Malformed => None,
        MessageOutcome::Retry => {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            Some(failure)
        }
    }
}

async fn handle_batch(
    state: &AppState,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let batch_item_failures = futures::stream::iter(event.payload.records.iter())
        .map(|message| handle_message(state, message))
        .buffer_unordered(PAGES_IN_FLIGHT)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = batch_item_failures;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    api::telemetry::init(true);
    let config = api::Config::from_env()?;
    let state = api::aws::lambda_state(config).await;
    lambda_runtime::run(service_fn(|event| handle_batch(&state, event))).await
}
