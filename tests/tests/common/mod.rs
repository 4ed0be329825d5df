//! Test harness: a real HTTP server per test (the same router `migrations serve`
//! runs) on a fresh store — a temp redb file, or fresh DynamoDB Local tables.

#![allow(dead_code)]

use std::sync::Arc;

use api::{AppState, Config};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Embedded,
    Dynamo,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub tenant: Uuid,
    pub state: AppState,
    _dir: Option<tempfile::TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Whether DynamoDB Local is configured; panics when the test script requires it.
pub fn dynamo_available() -> bool {
    let configured = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty());
    if !configured && std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref() == Ok("1") {
        panic!("FOCAL_REQUIRE_LOCAL_AWS=1 but AWS_ENDPOINT_URL_DYNAMODB is not set");
    }
    if !configured {
        eprintln!("skipping: AWS_ENDPOINT_URL_DYNAMODB not set");
    }
    configured
}

pub fn test_config() -> Config {
    Config {
        inline_mark_threshold: 1_000,
        mark_page_size: 50,
        ..Config::default()
    }
}

/// A DynamoDB store whose session counts follow the sessions table's stream,
/// read up to its end before each counts read (as `migrations serve` does).
pub fn dynamo_store_counting(
    sdk: &aws_config::SdkConfig,
    client: aws_sdk_dynamodb::Client,
    tables: store::dynamo::TableNames,
) -> store::dynamo::DynamoStore {
    let poller = store::dynamo_stream::SharedPoller::new(store::dynamo_stream::StreamPoller::new(
        client.clone(),
        store::dynamo_stream::streams_client(sdk),
        &tables,
    ));
    store::dynamo::DynamoStore::new(client, tables).with_counts_catch_up(poller)
}

/// Start an app; `None` when the backend is not available here.
pub async fn spawn_app(backend: Backend, config: Config) -> Option<TestApp> {
    let (store, dir): (Arc<dyn store::Store>, _) = match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store::embedded::EmbeddedStore::open(dir.path().join("migrations.redb"))
                .expect("open embedded store");
            (Arc::new(store), Some(dir))
        }
        Backend::Dynamo => {
            if !dynamo_available() {
                return None;
            }
            let sdk = api::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let suffix = Uuid::new_v4().simple().to_string();
            let tables = store::dynamo::TableNames {
                main: format!("e2e-main-{suffix}"),
                sessions: format!("e2e-sessions-{suffix}"),
            };
            store::dynamo::create_tables(&client, &tables)
                .await
                .expect("create tables");
            (Arc::new(dynamo_store_counting(&sdk, client, tables)), None)
        }
    };
    let state = api::local_queue::InProcessQueue::attach(AppState::new(store, config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = api::app(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum_serve(listener, app).await;
    });
    Some(TestApp {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        tenant: Uuid::new_v4(),
        state,
        _dir: dir,
        server,
    })
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(self.tenant, method, path, body).await
    }

    pub async fn call_as(
        &self,
        tenant: Uuid,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("X-Tenant-ID", tenant.to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    pub async fn raw(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }
}

/// Deterministic step ids: `step(n)`.
pub fn step(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).expect("uuid")
}

pub fn step_json(n: u32, name: &str, to: &[(u32, &str)]) -> Value {
    json!({
        "id": step(n),
        "name": name,
        "transitions": to.iter().map(|(t, cond)| json!({"to_step_id": step(*t), "condition_text": cond})).collect::<Vec<_>>(),
        "rule_ids": [],
        "collects_profile_fields": [],
        "is_checkpoint": false,
        "is_entry": n == 1,
        "is_terminal": to.is_empty(),
        "performs_action": false,
        "is_required_action": false
    })
}

/// V1: Welcome(1) → Collect email(2) → Done(3).
pub fn scenario_v1() -> Value {
    json!({
        "name": "Support flow",
        "version": 1,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(2, "")]),
            step_json(2, "Collect email", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

/// V2: an age check (collects `age`) inserted before Collect email, Done unchanged.
pub fn scenario_v2() -> Value {
    let mut age = step_json(4, "Check age", &[(2, "")]);
    age["collects_profile_fields"] = json!(["age"]);
    json!({
        "name": "Support flow",
        "version": 2,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(4, "")]),
            age,
            step_json(2, "Collect email", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

pub fn session_at(scenario: Uuid, version: i64, step_id: Uuid, channel: &str) -> Value {
    json!({
        "channel": channel,
        "active_scenario_id": scenario,
        "active_scenario_version": version,
        "active_step_id": step_id,
        "step_history": [],
        "variables": {}
    })
}

/// A long chain scenario: `n` steps, step i → i+1.
pub fn chain_scenario(n: u32, version: i64, renamed: &[u32]) -> Value {
    let steps: Vec<Value> = (1..=n)
        .map(|i| {
            let name = if renamed.contains(&i) {
                format!("Step {i} (edited)")
            } else {
                format!("Step {i}")
            };
            let next: Vec<(u32, &str)> = if i < n { vec![(i + 1, "")] } else { vec![] };
            step_json(i, &name, &next)
        })
        .collect();
    json!({"name": "Long flow", "version": version, "entry_step_id": step(1), "steps": steps})
}

/// Whether a local SQS (moto) is configured; panics when the test script requires it.
pub fn sqs_available() -> bool {
    let configured = std::env::var("AWS_ENDPOINT_URL_SQS").is_ok_and(|v| !v.is_empty());
    if !configured && std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref() == Ok("1") {
        panic!("FOCAL_REQUIRE_LOCAL_AWS=1 but AWS_ENDPOINT_URL_SQS is not set");
    }
    if !configured {
        eprintln!("skipping: AWS_ENDPOINT_URL_SQS not set");
    }
    configured
}

/// A fresh store for `backend` (a temp redb file, or fresh DynamoDB Local
/// tables), with the temp dir that must outlive it; `None` when unavailable.
pub async fn fresh_store(
    backend: Backend,
) -> Option<(Arc<dyn store::Store>, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store::embedded::EmbeddedStore::open(dir.path().join("migrations.redb"))
                .expect("open embedded store");
            Some((Arc::new(store), Some(dir)))
        }
        Backend::Dynamo => {
            if !dynamo_available() {
                return None;
            }
            let sdk = api::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let suffix = Uuid::new_v4().simple().to_string();
            let tables = store::dynamo::TableNames {
                main: format!("e2e-main-{suffix}"),
                sessions: format!("e2e-sessions-{suffix}"),
            };
            store::dynamo::create_tables(&client, &tables)
                .await
                .expect("create tables");
            Some((Arc::new(dynamo_store_counting(&sdk, client, tables)), None))
        }
    }
}

/// Serve a prepared state (store, config and queue already chosen) over real
/// HTTP, like [`spawn_app`]. `dir` is kept alive with the app.
pub async fn serve_state(state: AppState, dir: Option<tempfile::TempDir>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = api::app(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum_serve(listener, app).await;
    });
    TestApp {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        tenant: Uuid::new_v4(),
        state,
        _dir: dir,
        server,
    }
}

/// A fresh marking queue (and its dead-letter queue) on the local SQS, with a
/// unique name; `None` when no local SQS is configured.
pub async fn fresh_sqs_queue(max_receives: u32) -> Option<(aws_sdk_sqs::Client, String)> {
    if !sqs_available() {
        return None;
    }
    let sdk = api::aws::sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("e2e-marking-{}", Uuid::new_v4().simple());
    let url = api::aws::ensure_queue(&client, &name, max_receives)
        .await
        .expect("create SQS queue");
    Some((client, url))
}

/// Instantiate each `async fn name(app: TestApp)` of a test file once per backend:
/// `embedded::name` and `dynamodb::name` (the latter skips without DynamoDB Local).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = super::spawn_app(super::Backend::Embedded, super::test_config()).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = super::spawn_app(super::Backend::Dynamo, super::test_config()).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}
