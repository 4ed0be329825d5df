//! Test harness: a real HTTP server per test (the same router `migrations serve`
//! runs) on a fresh store — in memory, a temp redb file, or fresh DynamoDB Local
//! tables (`store::testing`, shared with the store's own tests). Each test file
//! runs its cases once per backend with `store::backend_matrix!`, usually with
//! [`with_app`] as the runner. DynamoDB Local holds every table's items in memory
//! until it is deleted: every test drops the tables it made when it ends, also
//! when it fails ([`with_app`], [`drop_tables_after`], [`DropTablesOnDrop`]).

#![allow(dead_code)]

mod runtime_writers;
pub use runtime_writers::*;
use std::future::Future;
use std::sync::Arc;

use api::{AppState, Config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
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

pub fn test_config() -> Config {
    Config {
        inline_mark_threshold: 1_000,
        mark_page_size: 50,
        ..Config::default()
    }
}

/// A DynamoDB store whose session counts follow the sessions table's stream,
/// read up to its end before each counts read (as `migrations serve` does).
pub fn dynamo_store_counting(fresh: store::testing::FreshTables) -> store::DynamoStore {
    let poller =
        store::dynamo::stream::SharedPoller::new(store::dynamo::stream::StreamPoller::new(
            fresh.client.clone(),
            store::dynamo::stream::streams_client(&fresh.sdk),
            &fresh.tables,
        ));
    fresh.store().with_counts_catch_up(poller)
}

/// Start an app on the embedded or in-memory store; `None` when the backend is
/// not available here. Not for DynamoDB, whose tables it could not drop: cases
/// there run in [`with_app`].
pub async fn spawn_app(backend: Backend, config: Config) -> Option<TestApp> {
    assert!(
        !matches!(backend, Backend::Dynamo),
        "spawn_app would leave DynamoDB tables behind: run the case in with_app"
    );
    spawn_app_and_tables(backend, config)
        .await
        .map(|(app, _)| app)
}

/// [`spawn_app`], with the DynamoDB tables to drop when the test is done.
async fn spawn_app_and_tables(
    backend: Backend,
    config: Config,
) -> Option<(TestApp, Option<store::testing::FreshTables>)> {
    spawn_app_with(backend, config, |state| state).await
}

/// [`spawn_app_and_tables`] with the state changed by `attach` before it is
/// served (a lifecycle events sink, …).
async fn spawn_app_with(
    backend: Backend,
    config: Config,
    attach: impl FnOnce(AppState) -> AppState,
) -> Option<(TestApp, Option<store::testing::FreshTables>)> {
    let (store, dir, tables) = fresh_store_and_tables(backend).await?;
    let state = api::local_queue::InProcessQueue::attach(attach(AppState::new(store, config)));
    Some((serve_state(state, dir).await, tables))
}

/// [`with_app`] with `config` and the state changed by `attach` before it is served.
pub async fn with_app_attached<F, Fut>(
    backend: Backend,
    config: Config,
    attach: impl FnOnce(AppState) -> AppState,
    case: F,
) where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some((app, tables)) = spawn_app_with(backend, config, attach).await else {
        return;
    };
    drop_tables_after(tables, case(app)).await
}

/// The runner of most `store::backend_matrix!` tests: the case gets an app served
/// on a fresh store of `backend` ([`spawn_app`] with [`test_config`]), or is
/// skipped when the backend is not available here.
pub async fn with_app<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    // DynamoDB Local holds a table's items in memory until it is deleted: a
    // case's tables go when it ends, also when it fails.
    let Some((app, tables)) = spawn_app_and_tables(backend, test_config()).await else {
        return;
    };
    drop_tables_after(tables, case(app)).await
}

/// Await `test`, then delete `tables` if there are any — also when `test`
/// panics ([`store::testing::FreshTables::drop_after`]).
pub async fn drop_tables_after<T>(
    tables: Option<store::testing::FreshTables>,
    test: impl Future<Output = T>,
) -> T {
    match tables {
        Some(tables) => tables.drop_after(test).await,
        None => test.await,
    }
}

/// Fresh DynamoDB tables deleted when this guard is dropped, also when the test
/// panics: for tables that a fixture holds, or that a long test body owns, where
/// [`drop_tables_after`] would have to wrap it all. `Drop` cannot await, so the
/// deletion runs on a thread (and runtime) of its own while the test waits; an
/// error is only logged. The test's runtime must be multi-threaded (the
/// `store::backend_matrix!` tests are): the tables' client may reuse one of its
/// connections.
pub struct DropTablesOnDrop(pub store::testing::FreshTables);

impl Drop for DropTablesOnDrop {
    fn drop(&mut self) {
        let fresh = self.0.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(store::testing::drop_tables(&fresh.client, &fresh.tables))
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete {:?}", self.0.tables);
        }
    }
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

/// Seed a population without its route: `first_id` is written through
/// `PUT /sessions/{id}` as the runtime sends it (`first_body`); each overlay (its
/// `session_id` at least) is that session as the route answered it with the
/// overlay's fields replaced, written straight to the store, 16 at a time. A route
/// write costs several store requests (scenario version, session, conditional put)
/// against this one put: on DynamoDB Local that was most of a large population's
/// set-up. The route itself is covered by the session tests.
pub async fn seed_like_first(
    app: &TestApp,
    first_id: &str,
    first_body: Value,
    overlays: impl IntoIterator<Item = Value>,
) {
    use futures::StreamExt;
    let reply = app
        .call("PUT", &format!("/sessions/{first_id}"), Some(first_body))
        .await;
    assert_eq!(reply.status, 201, "{first_id}: {:?}", reply.body);
    let template = reply.body;
    let sessions = overlays.into_iter().map(|overlay| {
        let mut session = template.clone();
        for (field, value) in overlay.as_object().expect("an overlay object") {
            session[field] = value.clone();
        }
        serde_json::from_value::<planning::Session>(session).expect("a session")
    });
    futures::stream::iter(sessions.map(|session| async move {
        app.state
            .store()
            .put_session(&session)
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", session.session_id));
    }))
    .buffer_unordered(16)
    .collect::<()>()
    .await;
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

/// A fresh store for `backend` (in memory, a temp redb file, or fresh DynamoDB
/// Local tables), with the temp dir that must outlive it and the DynamoDB tables
/// to drop when the test is done ([`drop_tables_after`], [`DropTablesOnDrop`]);
/// `None` when unavailable.
/// Shards of the step index in the suite's stores: two, not the product's
/// eight. A deployment walks one chain per (step, shard) and most of this
/// suite's steps hold a handful of sessions, so eight shards made most chains
/// empty walks — a quarter of the suite's DynamoDB Local time — while two
/// still walk every step's shards side by side. `sharded_marking` covers one
/// and six shards, `client_direct_write` five.
pub const SUITE_STEP_INDEX_SHARDS: u32 = 2;

pub async fn fresh_store_and_tables(
    backend: Backend,
) -> Option<(
    Arc<dyn store::Store>,
    Option<tempfile::TempDir>,
    Option<store::testing::FreshTables>,
)> {
    match backend {
        Backend::Memory => Some((
            Arc::new(store::MemoryStore::new().with_step_index_shards(SUITE_STEP_INDEX_SHARDS)),
            None,
            None,
        )),
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store::EmbeddedStore::open(dir.path().join("migrations.redb"))
                .expect("open embedded store")
                .with_step_index_shards(SUITE_STEP_INDEX_SHARDS);
            Some((Arc::new(store), Some(dir), None))
        }
        Backend::Dynamo => {
            let fresh = store::testing::fresh_dynamo_tables("e2e").await?;
            let tables = fresh.clone();
            let store =
                dynamo_store_counting(fresh).with_step_index_shards(SUITE_STEP_INDEX_SHARDS);
            Some((Arc::new(store), None, Some(tables)))
        }
    }
}

/// Serve a prepared state (store, config and queue already chosen) over real
/// HTTP, like [`spawn_app`]. `dir` is kept alive with the app.
pub async fn serve_state(state: AppState, dir: Option<tempfile::TempDir>) -> TestApp {
    let app = api::app(state.clone());
    serve_router(state, dir, app).await
}

/// [`serve_state`] with the router to serve (`migrations serve`'s composition, …).
pub async fn serve_router(
    state: AppState,
    dir: Option<tempfile::TempDir>,
    app: axum::Router,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
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
    if !store::testing::sqs_configured() {
        return None;
    }
    let sdk = store::sdk::load_sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("e2e-marking-{}", Uuid::new_v4().simple());
    let url = api::aws::ensure_queue(&client, &name, max_receives)
        .await
        .expect("create SQS queue");
    Some((client, url))
}

/// How many audit events each session has in the plan (every page of `GET …/events`).
pub async fn events_per_session(app: &TestApp, plan_id: &str) -> BTreeMap<String, usize> {
    let mut per_session = BTreeMap::new();
    let mut next_token: Option<String> = None;
    loop {
        let path = match &next_token {
            Some(t) => format!("/migration-plans/{plan_id}/events?limit=100&next_token={t}"),
            None => format!("/migration-plans/{plan_id}/events?limit=100"),
        };
        let page = app.call("GET", &path, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for e in page.body["events"].as_array().expect("events") {
            *per_session
                .entry(e["session_id"].as_str().expect("id").to_owned())
                .or_default() += 1;
        }
        match page.body["next_token"].as_str() {
            Some(t) => next_token = Some(t.to_owned()),
            None => return per_session,
        }
    }
}

/// `GET …/deployment-status`, expected to answer 200.
pub async fn deployment_status(app: &TestApp, plan_id: &str) -> Value {
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// V1 with `sessions` recorded at V1's Step `at`, a plan to `v2` generated and
/// approved: what every rollout test starts from. Returns (scenario, plan id).
pub async fn approved_plan_with_sessions(
    app: &TestApp,
    sessions: &[String],
    at: u32,
    v2: Value,
) -> (Uuid, String) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    for id in sessions {
        let session = session_at(scenario, 1, step(at), "whatsapp");
        let reply = app
            .call("PUT", &format!("/sessions/{id}"), Some(session))
            .await;
        assert!(
            reply.status == 201 || reply.status == 200,
            "{:?}",
            reply.body
        );
    }
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({ "new_scenario": v2 })),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    let approve = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(approve.status, 200, "{:?}", approve.body);
    (scenario, plan_id)
}

/// `POST …/deploy` with no body, then (when it fanned out: 202) the status
/// polled until the plan is `deployed`. The deadline only guards a hang.
pub async fn deploy_until_deployed(app: &TestApp, plan_id: &str) {
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert!(
        reply.status == 200 || reply.status == 202,
        "{:?}",
        reply.body
    );
    wait_for_plan_status(app, plan_id, "deployed").await;
}

/// Poll the deployment status until the plan is `status` (a walk that fanned
/// out finishes in the queue); the deadline only guards against a hang.
pub async fn wait_for_plan_status(app: &TestApp, plan_id: &str, status: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let current = deployment_status(app, plan_id).await;
        if current["status"] == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {status}: {current}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `POST /sessions/{id}/reconcile` with no known fields, expected to answer 200.
pub async fn reconcile_now(app: &TestApp, id: &str) -> Value {
    let reply = app
        .call(
            "POST",
            &format!("/sessions/{id}/reconcile"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// The plan's audit events, all on one page (at most 100).
pub async fn audit_event_count(app: &TestApp, plan_id: &str) -> u64 {
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/events?limit=100"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.get("next_token").is_none(), "{:?}", reply.body);
    reply.body["events"].as_array().unwrap().len() as u64
}
