//! Each function binary, invoked with the sample events of `infra/events/` through
//! the Lambda Runtime API — served here by a minimal stand-in of that API on
//! loopback, the way the Lambda service (or `cargo lambda watch`) drives a function.
//! The functions talk to DynamoDB Local, on fresh tables.
//!
//! The binaries are built by `tests/run.sh` before the test suite runs
//! (`cargo build` of the five function packages).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// The stand-in runtime API: hands out one event, then waits; reports what the function answered.
#[derive(Clone)]
struct RuntimeApi {
    event: Arc<Mutex<Option<Value>>>,
    answers: mpsc::UnboundedSender<(String, Value)>,
    /// When the function first asked for an event: its cold start was over.
    first_poll: Arc<std::sync::Mutex<Option<Instant>>>,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    api.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let event = api.event.lock().await.take();
    let Some(event) = event else {
        // Only one invocation per test: park the runtime's long poll.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(120))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".parse().unwrap(),
    );
    (headers, event.to_string())
}

async fn invocation_answer(
    State(api): State<RuntimeApi>,
    Path((_id, kind)): Path<(String, String)>,
    body: String,
) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.answers.send((kind, value));
    "{}"
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> &'static str {
    let _ = api.answers.send(("init_error".into(), Value::String(body)));
    "{}"
}

fn binary(name: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref() == Ok("1") {
        panic!(
            "{} is missing: tests/run.sh builds the function binaries first",
            path.display()
        );
    }
    eprintln!("skipping: {} not built", path.display());
    None
}

fn sample_event(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/events")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event"))
        .expect("json event")
}

/// Invoke `function` once with `event`; returns ("response" | "error" | "init_error", payload).
async fn invoke(function: &str, event: Value) -> Option<(String, Value)> {
    let (kind, payload, _) = invoke_logged(function, event).await?;
    Some((kind, payload))
}

/// [`invoke`], with what the function wrote to stdout by the time it answered:
/// its JSON log lines and its metrics as EMF lines.
async fn invoke_logged(function: &str, event: Value) -> Option<(String, Value, String)> {
    if !store::testing::dynamo_configured() {
        return None;
    }
    let exe = binary(function)?;
    let fresh = store::testing::fresh_dynamo_tables("invoke").await?;
    // The tables go once the function has answered, also when it has not.
    let invocation = run(&exe, function, event, &fresh);
    Some(fresh.drop_after(invocation).await)
}

/// Start `function` on `fresh`'s tables, hand it `event` and wait for its answer.
async fn run(
    exe: &std::path::Path,
    function: &str,
    event: Value,
    fresh: &store::testing::FreshTables,
) -> (String, Value, String) {
    let (answers, mut received) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        event: Arc::new(Mutex::new(Some(event))),
        answers,
        first_poll: Arc::default(),
    };
    let (address, server) = serve_runtime_api(api).await;

    let mut child = function_process(exe, function, address)
        .envs(fresh.process_env())
        .stderr(Stdio::inherit())
        // One invocation's logs: far below a pipe's buffer, read once it answered.
        .stdout(Stdio::piped())
        .spawn()
        .expect("start function binary");
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("the function answered within 60 s")
        .expect("answer channel open");
    let _ = child.kill().await;
    server.abort();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut out, &mut stdout).await;
    }
    (kind, payload, stdout)
}

/// The EMF documents among a function's stdout lines (its logs are JSON too).
fn emf_documents(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect()
}

/// A function process with the variables the Lambda service sets, no queue.
fn function_process(
    exe: &std::path::Path,
    function: &str,
    runtime_api: SocketAddr,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .env_remove("MARKING_QUEUE_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn serve_runtime_api(api: RuntimeApi) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/{kind}",
            post(invocation_answer),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, server)
}

async fn assert_http_answer(function: &str, event_file: &str, status: u64) -> Option<Value> {
    let (kind, payload) = invoke(function, sample_event(event_file)).await?;
    assert_eq!(kind, "response", "{function}: {payload}");
    assert_eq!(payload["statusCode"], status, "{function}: {payload}");
    let body: Value =
        serde_json::from_str(payload["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    Some(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_function_answers_the_sample_request() {
    // A fresh table has no such scenario: the function routes, parses the tenant and answers 404.
    if let Some(body) = assert_http_answer("scenarios", "scenarios-get.json", 404).await {
        assert_eq!(
            body["detail"],
            "Scenario 00000000-0000-4000-8000-0000000000aa not found"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_function_answers_the_sample_request() {
    if let Some(body) = assert_http_answer("sessions", "sessions-get.json", 404).await {
        assert_eq!(
            body["detail"],
            "Session 22222222-2222-4222-8222-222222222222 not found"
        );
    }
}

/// After the invocation the function has written its metrics as EMF lines: the
/// sample's 404 under its route template and status class, no id of the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_function_writes_its_metrics_as_emf_lines() {
    let Some((kind, payload, stdout)) =
        invoke_logged("sessions", sample_event("sessions-get.json")).await
    else {
        return;
    };
    assert_eq!(kind, "response", "{payload}");
    let docs = emf_documents(&stdout);
    let http = docs
        .iter()
        .find(|d| d.get("http_responses").is_some())
        .unwrap_or_else(|| panic!("no EMF line for http_responses in:\n{stdout}"));
    let directive = &http["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "FocalMigrations");
    assert_eq!(directive["Metrics"][0]["Unit"], "Count");
    assert_eq!(http["route"], "/sessions/{session_id}");
    assert_eq!(http["method"], "GET");
    assert_eq!(http["status"], "4xx");
    assert_eq!(http["http_responses"], 1);
    let metrics_text = serde_json::to_string(&docs).unwrap();
    assert!(!metrics_text.contains("22222222-2222-4222-8222-222222222222"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_function_answers_the_sample_request() {
    if let Some(body) = assert_http_answer("plans", "plans-list.json", 200).await {
        assert_eq!(body["total"], 0);
        assert!(body["plans"].as_array().is_some_and(|p| p.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_function_answers_the_sample_request() {
    if let Some(body) = assert_http_answer("deployments", "deployments-status.json", 404).await {
        assert_eq!(
            body["detail"],
            "Migration plan 33333333-3333-4333-8333-333333333333 not found"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_sessions_counts_the_sample_stream_batch() {
    // A windowed DynamoDB stream event (the shard id keys the checkpoint): the
    // function parses it, applies it to the counters in DynamoDB Local and
    // answers with an empty window state (an error would come back as "error").
    let Some((kind, payload, stdout)) =
        invoke_logged("count-sessions", sample_event("count-sessions-stream.json")).await
    else {
        return;
    };
    assert_eq!(kind, "response", "{payload}");
    assert_eq!(payload["state"], serde_json::json!({}), "{payload}");
    assert_eq!(
        payload["batchItemFailures"],
        serde_json::json!([]),
        "{payload}"
    );
    // The batch's lag went out as an EMF line: one value, in seconds, positive
    // (the sample's records were created long ago).
    let docs = emf_documents(&stdout);
    let lag = docs
        .iter()
        .find(|d| d.get("session_count_stream_lag").is_some())
        .unwrap_or_else(|| panic!("no EMF line for the stream lag in:\n{stdout}"));
    let values = lag["session_count_stream_lag"].as_array().expect("values");
    assert_eq!(values.len(), 1, "{lag}");
    assert!(values[0].as_f64().unwrap() > 0.0, "{lag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_sessions_drops_the_sample_message_naming_a_missing_plan() {
    let event = sample_event("mark-sessions-sqs.json");
    let Some((kind, payload)) = invoke("mark-sessions", event).await else {
        return;
    };
    assert_eq!(kind, "response", "{payload}");
    // The sample names a plan that does not exist in the fresh table: a
    // permanent failure (`api::worker::classify`), so the message is not reported for
    // redelivery — SQS deletes it after this one receive instead of cycling it
    // to the dead-letter queue — and the batch itself does not fail.
    assert_eq!(
        payload["batchItemFailures"],
        serde_json::json!([]),
        "{payload}"
    );
}

/// With `WARM_UP` on, the function reaches DynamoDB during its cold start, before
/// it asks for its first event; off, it does not. The endpoint here accepts and
/// never answers, so the warm-up also shows that it gives up (`WARM_UP_LIMIT`)
/// rather than hang the cold start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_connects_during_init_and_never_hangs_it() {
    let Some(exe) = binary("scenarios") else {
        return;
    };
    for warm_up in [true, false] {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_address = silent.local_addr().unwrap();
        let first_accept: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let accepts = {
            let first_accept = first_accept.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = silent.accept().await {
                    first_accept
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                    held.push(socket);
                }
            })
        };
        let (answers, _received) = mpsc::unbounded_channel();
        let api = RuntimeApi {
            event: Arc::new(Mutex::new(None)),
            answers,
            first_poll: Arc::default(),
        };
        let first_poll = api.first_poll.clone();
        let (address, server) = serve_runtime_api(api).await;
        let mut child = function_process(&exe, "scenarios", address)
            .env(
                "AWS_ENDPOINT_URL_DYNAMODB",
                format!("http://{silent_address}"),
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("WARM_UP", warm_up.to_string())
            .stderr(Stdio::null())
            .spawn()
            .expect("start function binary");
        // Generous: the bound under test is the warm-up's own 2 s limit.
        let deadline = Instant::now() + Duration::from_secs(60);
        let polled = loop {
            if let Some(at) = *first_poll.lock().unwrap() {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "warm_up={warm_up}: the cold start never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let accepted = *first_accept.lock().unwrap();
        if warm_up {
            let accepted = accepted.expect("the warm-up connected to DynamoDB during init");
            assert!(accepted < polled, "connected before the first event poll");
        } else {
            assert_eq!(
                accepted, None,
                "no DynamoDB connection before the first event"
            );
        }
        let _ = child.kill().await;
        server.abort();
        accepts.abort();
    }
}
