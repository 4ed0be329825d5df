//! Lifecycle events through a real bus (moto's EventBridge, a rule forwarding
//! `focal.migrations` to an SQS queue the test reads), and `kill -9` of
//! `migrations serve` between a change and its event: the change is stored,
//! its event could not go (the bus unreachable), the process dies; restarted,
//! it sends every event it owed, once each.
//!
//! Needs moto (`AWS_ENDPOINT_URL_EVENTBRIDGE`, `AWS_ENDPOINT_URL_SQS`);
//! skipped without, unless `FOCAL_REQUIRE_LOCAL_AWS=1`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, call_as, serve_command, spawn};

const TENANT: &str = "0b6d7f2e-5c4a-4e3b-9a1f-2d3c4b5a6978";
const SCENARIO: &str = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

/// `migrations serve` on `data_dir`, sending events to `bus` at `endpoint`.
fn start(data_dir: &Path, bus: &str, endpoint: &str) -> Server {
    let mut command = serve_command();
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("EVENT_BUS_NAME", bus)
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint)
        .env("DEPLOY_SWEEP_SECONDS", "1")
        .env("RUST_LOG", "error");
    spawn(command)
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_as(base, TENANT, method, path, body).await
}

fn step(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn scenario(version: i64, extra_step: bool) -> Value {
    let (a, b, c) = (step(1), step(2), step(3));
    let mut steps = vec![
        json!({"id": a, "name": "Welcome", "transitions": [{"to_step_id": b}]}),
        json!({"id": b, "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": c}]}),
        json!({"id": c, "name": "Done", "is_terminal": true}),
    ];
    if extra_step {
        steps[1]["transitions"] = json!([{"to_step_id": step(4)}]);
        steps.push(json!({"id": step(4), "name": "Check age", "collects_profile_fields": ["age"], "transitions": [{"to_step_id": c}]}));
    }
    json!({"name": "Support flow", "version": version, "entry_step_id": a, "steps": steps})
}

/// A fresh bus on moto with a rule sending this product's events to a fresh
/// queue: (bus name, queue URL, SQS client).
async fn bus_to_queue() -> Option<(String, String, aws_sdk_sqs::Client)> {
    let configured = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").is_ok()
        && std::env::var("AWS_ENDPOINT_URL_SQS").is_ok();
    if !configured {
        assert!(
            std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref() != Ok("1"),
            "FOCAL_REQUIRE_LOCAL_AWS=1 but no local EventBridge and SQS"
        );
        eprintln!("skipped: no local EventBridge (tests/services/start.sh)");
        return None;
    }
    let sdk = store::sdk::load_sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let bus = format!("fm-{id}");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue = sqs
        .create_queue()
        .queue_name(format!("fm-events-{id}"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    events
        .put_rule()
        .name("to-queue")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["focal.migrations"]}).to_string())
        .send()
        .await
        .expect("put rule");
    events
        .put_targets()
        .rule("to-queue")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
    Some((bus, queue, sqs))
}

/// Every event on the queue so far, by `detail.event_id` (a repeat adds to
/// its count), reading until `want` distinct ids are there or `patience` ran out.
async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    seen: &mut BTreeMap<String, (Value, u32)>,
    want: usize,
    patience: Duration,
) {
    let deadline = Instant::now() + patience;
    while seen.len() < want && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in out.messages.unwrap_or_default() {
            let event: Value = serde_json::from_str(message.body().unwrap()).expect("json");
            let id = event["detail"]["event_id"]
                .as_str()
                .expect("event_id")
                .to_owned();
            seen.entry(id).or_insert((event, 0)).1 += 1;
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_when_serve_is_killed_before_it_could_send() {
    let Some((bus, queue, sqs)) = bus_to_queue().await else {
        return;
    };
    let data = tempfile::tempdir().expect("temp dir");
    // Nothing listens on port 9: every send fails, every change is stored.
    let unreachable = "http://127.0.0.1:9";
    let server = start(data.path(), &bus, unreachable);
    let base = server.base.clone();
    let (status, _) = call(
        &base,
        reqwest::Method::PUT,
        &format!("/scenarios/{SCENARIO}"),
        Some(scenario(1, false)),
    )
    .await;
    assert_eq!(status, 201);
    let (status, plan) = call(
        &base,
        reqwest::Method::POST,
        &format!("/scenarios/{SCENARIO}/migration-plan"),
        Some(json!({"new_scenario": scenario(2, true)})),
    )
    .await;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().expect("plan id").to_owned();
    let (status, approved) = call(
        &base,
        reqwest::Method::POST,
        &format!("/migration-plans/{plan_id}/approve"),
        Some(json!({"approved_by": "lead"})),
    )
    .await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    server.kill_9();

    let mut seen = BTreeMap::new();
    drain_queue(&sqs, &queue, &mut seen, 1, Duration::from_secs(3)).await;
    assert!(seen.is_empty(), "nothing could have been sent: {seen:?}");

    // Back, with the bus reachable: the first sweep sends what was owed.
    let endpoint = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").unwrap();
    let server = start(data.path(), &bus, &endpoint);
    drain_queue(&sqs, &queue, &mut seen, 2, Duration::from_secs(60)).await;
    // And a change made now is announced by its own call.
    let (status, body) = call(
        &server.base,
        reqwest::Method::POST,
        &format!("/migration-plans/{plan_id}/deploy"),
        Some(json!({"by": "ana"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // No session to migrate: deployed and drained at once.
    drain_queue(&sqs, &queue, &mut seen, 5, Duration::from_secs(60)).await;
    // A few more sweeps (one a second): nothing is sent twice.
    drain_queue(&sqs, &queue, &mut seen, usize::MAX, Duration::from_secs(4)).await;

    let mut by_revision: Vec<(u64, String, u32)> = seen
        .values()
        .map(|(event, count)| {
            assert_eq!(event["source"], "focal.migrations", "{event}");
            assert_eq!(event["detail"]["plan_id"], plan_id.as_str(), "{event}");
            assert_eq!(event["detail"]["tenant_id"], TENANT, "{event}");
            (
                event["detail"]["revision"].as_u64().unwrap(),
                event["detail-type"].as_str().unwrap().to_owned(),
                *count,
            )
        })
        .collect();
    by_revision.sort();
    assert_eq!(
        by_revision,
        vec![
            (1, "Plan Created".to_owned(), 1),
            (2, "Plan Approved".to_owned(), 1),
            (3, "Deploy Started".to_owned(), 1),
            (4, "Deployment Drained".to_owned(), 1),
            (4, "Marking Finished".to_owned(), 1),
        ],
        "each event once: {seen:?}"
    );
    let approved = &seen[&format!("{plan_id}:2")].0;
    assert_eq!(approved["detail"]["by"], "lead");
}
