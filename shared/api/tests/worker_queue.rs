//! The marking worker classifies failures (`api::worker::classify`): a message naming a plan
//! that is gone is dropped after one receive — deleted, never in the
//! dead-letter queue, counted — while a store outage leaves the message for
//! redelivery until it is dead-lettered. On the local SQS (moto) with the
//! worker polling it as `migrations serve --queue sqs` does; the in-process
//! checks need nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::marking::{Chain, MarkMessage};
use api::worker::{MessageOutcome, WorkerCounts, process_body};
use api::{AppState, Config};
use uuid::Uuid;

fn message_for_missing_plan() -> MarkMessage {
    MarkMessage {
        tenant_id: Uuid::new_v4(),
        plan_id: Uuid::new_v4(),
        chain: Chain {
            step_id: Uuid::new_v4(),
            shard: 0,
            shards: 1,
            anchor_content_hash: Some("a".repeat(64)),
            pass: 0,
            percent: 100,
            withdraw: false,
        },
        cursor: None,
    }
}

fn memory_state() -> AppState {
    AppState::new(Arc::new(store::MemoryStore::new()), Config::default())
}

#[tokio::test]
async fn a_missing_plan_is_dropped_and_counted_in_process() {
    let state = memory_state();
    let body = serde_json::to_string(&message_for_missing_plan()).unwrap();
    assert_eq!(
        process_body(&state, &body, 1).await,
        MessageOutcome::Dropped
    );
    assert_eq!(
        process_body(&state, "{\"not\": \"marking\"}", 1).await,
        MessageOutcome::Malformed
    );
    assert_eq!(
        state.worker_counts(),
        WorkerCounts {
            dropped: 1,
            malformed: 1,
            ..WorkerCounts::default()
        }
    );
}

/// `None` (skipped) without a local SQS; a panic when the test script requires one.
fn sqs_configured() -> bool {
    let configured = std::env::var("AWS_ENDPOINT_URL_SQS").is_ok_and(|v| !v.is_empty());
    if !configured && std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref() == Ok("1") {
        panic!("FOCAL_REQUIRE_LOCAL_AWS=1 but AWS_ENDPOINT_URL_SQS is not set");
    }
    if !configured {
        eprintln!("skipping: AWS_ENDPOINT_URL_SQS not set");
    }
    configured
}

struct Queues {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq: String,
}

async fn fresh_queues(max_receives: u32) -> Queues {
    let sdk = api::aws::sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("api-worker-{}", Uuid::new_v4().simple());
    let url = api::aws::ensure_queue(&client, &name, max_receives)
        .await
        .expect("create the queues");
    let dlq = client
        .get_queue_url()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("DLQ url")
        .queue_url
        .expect("DLQ url");
    Queues { client, url, dlq }
}

/// Messages in a queue, visible or in flight.
async fn messages_in(client: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let read = |name: A| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    read(A::ApproximateNumberOfMessages) + read(A::ApproximateNumberOfMessagesNotVisible)
}

async fn wait_for(what: &str, state: &AppState, done: impl Fn(WorkerCounts) -> bool) {
    // A hang guard only.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(state.worker_counts()) {
        assert!(
            Instant::now() < deadline,
            "never {what}: {:?}",
            state.worker_counts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_a_missing_plan_is_deleted_after_one_receive_not_dead_lettered() {
    if !sqs_configured() {
        return;
    }
    let queues = fresh_queues(3).await;
    let state = memory_state();
    let body = serde_json::to_string(&message_for_missing_plan()).unwrap();
    queues
        .client
        .send_message()
        .queue_url(&queues.url)
        .message_body(body)
        .send()
        .await
        .expect("send");
    let poller = tokio::spawn(api::aws::poll_queue(
        state.clone(),
        queues.client.clone(),
        queues.url.clone(),
    ));
    wait_for("dropped", &state, |c| c.dropped == 1).await;
    // Past the first redelivery backoff (1 s) and a few receives: had the
    // message stayed, it would have been received again or dead-lettered.
    tokio::time::sleep(Duration::from_secs(4)).await;
    poller.abort();
    assert_eq!(
        state.worker_counts(),
        WorkerCounts {
            dropped: 1,
            ..WorkerCounts::default()
        },
        "received once, dropped once, never retried"
    );
    assert_eq!(messages_in(&queues.client, &queues.url).await, 0, "deleted");
    assert_eq!(
        messages_in(&queues.client, &queues.dlq).await,
        0,
        "not dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_a_store_outage_is_retried_until_dead_lettered() {
    if !sqs_configured() || std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("skipping: needs the local SQS and DynamoDB");
        return;
    }
    let max_receives = 2;
    let queues = fresh_queues(max_receives).await;
    // Tables that do not exist: every read fails as an outage would.
    let sdk = api::aws::sdk_config().await;
    let missing = Uuid::new_v4().simple().to_string();
    let store = store::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        store::TableNames {
            main: format!("missing-main-{missing}"),
            sessions: format!("missing-sessions-{missing}"),
        },
    );
    let state = AppState::new(
        Arc::new(store),
        Config {
            mark_max_receives: max_receives,
            ..Config::default()
        },
    );
    let body = serde_json::to_string(&message_for_missing_plan()).unwrap();
    queues
        .client
        .send_message()
        .queue_url(&queues.url)
        .message_body(&body)
        .send()
        .await
        .expect("send");
    let poller = tokio::spawn(api::aws::poll_queue(
        state.clone(),
        queues.client.clone(),
        queues.url.clone(),
    ));
    wait_for("retried twice", &state, |c| {
        c.retried >= u64::from(max_receives)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while messages_in(&queues.client, &queues.dlq).await == 0 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    poller.abort();
    let counts = state.worker_counts();
    assert_eq!((counts.dropped, counts.done), (0, 0), "{counts:?}");
    assert_eq!(counts.retried, u64::from(max_receives), "{counts:?}");
}
