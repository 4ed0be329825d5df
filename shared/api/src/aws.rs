//! AWS wiring: SDK clients built once per cold start, the DynamoDB store and the SQS queue.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use store::dynamo::{DynamoStore, TableNames};

use crate::config::Config;
use crate::marking::MarkMessage;
use crate::marking::queue::{MarkingQueue, QueueError, QueueResult};
use crate::state::AppState;

/// The shared SDK configuration. Endpoints come from the SDK's own
/// `AWS_ENDPOINT_URL*` variables, so DynamoDB Local and a local SQS need no code.
pub async fn sdk_config() -> aws_config::SdkConfig {
    store::sdk::load_sdk_config().await
}

pub fn table_names(config: &Config) -> TableNames {
    TableNames {
        main: config.main_table.clone(),
        sessions: config.sessions_table.clone(),
    }
}

/// The state every Lambda uses: DynamoDB store, SQS queue when configured
/// (the template gives the queue only to the functions that send to it).
pub async fn lambda_state(config: Config) -> AppState {
    let sdk = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = config
        .marking_queue_url
        .clone()
        .map(|url| (aws_sdk_sqs::Client::new(&sdk), url));
    if config.warm_up {
        let queue = sqs.as_ref().map(|(client, url)| (client, url.as_str()));
        warm_up(&dynamo, &config.main_table, queue).await;
    }
    let store = DynamoStore::new(dynamo, table_names(&config))
        .with_retention(config.retention())
        .with_step_index_shards(config.step_index_shards);
    let events = event_sink(&sdk, &config);
    let mut state = AppState::new(Arc::new(store), config);
    if let Some(sink) = events {
        state = state.with_events(sink);
    }
    match sqs {
        Some((client, url)) => state.with_queue(Arc::new(SqsQueue::new(client, url))),
        None => state,
    }
}

/// The EventBridge sink when `EVENT_BUS_NAME` is set and this build sends
/// events (feature `eventbridge`); `None` otherwise.
pub fn event_sink(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Option<Arc<dyn crate::events::EventSink>> {
    #[cfg(feature = "eventbridge")]
    if let Some(bus) = &config.event_bus_name {
        let client = aws_sdk_eventbridge::Client::new(sdk);
        return Some(Arc::new(crate::events::eventbridge::EventBridgeSink::new(
            client, bus,
        )));
    }
    let _ = (sdk, config);
    None
}

/// One cheap request per client, in parallel, during the cold start: it opens the
/// pooled connection (TCP + TLS handshake) and resolves credentials, which the
/// first API request would otherwise pay for (docs/benchmarks.md, "Cold start",
/// has the measurement). The outcome does not matter — a failure is logged and the
/// request path connects on its own — and it gives up after [`WARM_UP_LIMIT`], so
/// an unreachable endpoint delays the cold start by that much at most.
pub async fn warm_up(
    dynamo: &aws_sdk_dynamodb::Client,
    main_table: &str,
    queue: Option<(&aws_sdk_sqs::Client, &str)>,
) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_sqs::types::QueueAttributeName;
    // A key no item has: every function's role may read the main table.
    let key = AttributeValue::S("warm-up".to_owned());
    let read = async {
        let read = dynamo
            .get_item()
            .table_name(main_table)
            .key("pk", key.clone())
            .key("sk", key)
            .projection_expression("pk")
            .send()
            .await;
        if let Err(e) = read {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "DynamoDB warm-up failed");
        }
    };
    let describe_queue = async {
        let Some((client, url)) = queue else { return };
        let described = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await;
        if let Err(e) = described {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS warm-up failed");
        }
    };
    let both = async { tokio::join!(read, describe_queue) };
    if tokio::time::timeout(WARM_UP_LIMIT, both).await.is_err() {
        tracing::warn!(limit = ?WARM_UP_LIMIT, "warm-up gave up; the first request connects instead");
    }
}

/// How long the cold start waits for the warm-up (a handshake takes tens of ms).
pub const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Marking messages on SQS, sent in batches of ten (the SQS maximum).
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        SqsQueue { client, url }
    }
}

#[async_trait]
impl MarkingQueue for SqsQueue {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> QueueResult<()> {
        for batch in messages.chunks(10) {
            let mut entries = Vec::with_capacity(batch.len());
            for (index, message) in batch.iter().enumerate() {
                let body = serde_json::to_string(message).map_err(QueueError::Encode)?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| QueueError::Rejected(Box::new(e)))?;
                entries.push(entry);
            }
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error)?;
            if !output.failed().is_empty() {
                return Err(QueueError::Refused {
                    refused: output.failed().len(),
                });
            }
        }
        Ok(())
    }
}

/// An SQS failure as a [`QueueError`], told apart by what the SDK reports (the
/// kind of failure, the service's error code, the HTTP status), never by its text.
fn sqs_error<E>(error: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // SQS's throttling codes: `RequestThrottled`, `ThrottlingException`, `KmsThrottled`.
    let throttled = error.code().is_some_and(|code| code.contains("Throttl"));
    let server_side = error
        .raw_response()
        .is_some_and(|r| r.status().is_server_error());
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            QueueError::Unavailable(Box::new(error))
        }
        SdkError::ServiceError(_) if throttled => QueueError::Throttled(Box::new(error)),
        SdkError::ServiceError(_) if server_side => QueueError::Unavailable(Box::new(error)),
        _ => QueueError::Rejected(Box::new(error)),
    }
}

#[cfg(feature = "local")]
/// Poll SQS and run the worker the way the template's event source mapping does
/// (`BatchSize` 1; `migrations serve --queue sqs`): each message is a batch of its
/// own, walking its chain for `MARK_CHAIN_BUDGET_MS`, and at most
/// `MARK_WORKER_MESSAGES` are held at once. The poller asks SQS only for as many
/// messages as it has room for: had it taken ten, the chains of a deployment
/// would all land on the first process to poll while the others idled.
/// Runs until the task is dropped, and its messages' tasks with it (their
/// messages come back after the visibility timeout).
pub async fn poll_queue(state: AppState, client: aws_sdk_sqs::Client, url: String) {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let slots = state.config().mark_worker_messages.max(1);
    let mut running = tokio::task::JoinSet::new();
    loop {
        while let Some(ended) = running.try_join_next() {
            log_panicked(ended);
        }
        if running.len() >= slots {
            if let Some(ended) = running.join_next().await {
                log_panicked(ended);
            }
            continue;
        }
        // SQS returns at most 10 per receive.
        let room = i32::try_from((slots - running.len()).min(10)).unwrap_or(10);
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(room)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS receive failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            let (state, client, url) = (state.clone(), client.clone(), url.clone());
            running.spawn(async move { handle_message(&state, &client, &url, message).await });
        }
    }
}

#[cfg(feature = "local")]
/// A message whose task panicked was neither deleted nor retried early: the
/// visibility timeout brings it back, as it would for a crashed Lambda.
fn log_panicked(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        tracing::error!(error = %e, "marking message task failed; the queue redelivers it");
    }
}

#[cfg(feature = "local")]
/// One message, one batch: the event source mapping's contract — a message
/// reported as failed stays on the queue (here it comes back after a backoff),
/// the rest are deleted. A delete that fails only means a redelivery, which the
/// ledger makes harmless.
async fn handle_message(
    state: &AppState,
    client: &aws_sdk_sqs::Client,
    url: &str,
    message: aws_sdk_sqs::types::Message,
) {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let attempt = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let delivery = crate::worker::Delivery {
        id: message.message_id().unwrap_or(""),
        body: message.body().unwrap_or(""),
        attempt,
    };
    let failed = crate::worker::process_batch(state, std::slice::from_ref(&delivery)).await;
    let Some(handle) = message.receipt_handle() else {
        return;
    };
    if failed.is_empty() {
        let deleted = client
            .delete_message()
            .queue_url(url)
            .receipt_handle(handle)
            .send()
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS delete failed");
        }
    } else {
        retry_later(client, url, handle, attempt).await;
    }
}

#[cfg(feature = "local")]
/// A failed message comes back after an exponential backoff (1 s, 2 s, 4 s, … up
/// to 60 s) instead of the queue's whole visibility timeout. Best effort: if this
/// fails, the visibility timeout still brings it back.
async fn retry_later(client: &aws_sdk_sqs::Client, url: &str, receipt_handle: &str, attempt: u32) {
    let backoff = 1i32 << attempt.saturating_sub(1).min(6);
    let changed = client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(backoff.min(60))
        .send()
        .await;
    if let Err(e) = changed {
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS visibility change failed");
    }
}

#[cfg(feature = "local")]
/// Create the marking queue (and its dead-letter queue) if missing; returns its URL.
/// For local SQS servers (`migrations serve --init`).
pub async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: u32,
) -> QueueResult<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(sqs_error)?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_string();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_error)?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(sqs_error)?;
    Ok(queue.queue_url().unwrap_or_default().to_string())
}
