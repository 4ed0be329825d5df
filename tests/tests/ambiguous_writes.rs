//! Exactness when the network loses answers: a fault-injecting HTTP proxy sits
//! between the service and DynamoDB Local / the local SQS and, per request,
//! drops the connection before forwarding, forwards and then drops the answer
//! (the write is applied, the caller never hears), answers "throttled", or
//! delays. Meanwhile a fan-out deployment runs over SQS, reconciling clients
//! call on every session, and runtime writers write with `If-Match`. Afterwards
//! the deployment status must be exact: every session migrated once, one audit
//! event each, `applied + applied_unflagged == sessions`, `applied ==
//! sessions_marked`, nothing pending — and no 5xx left once clients retry,
//! no panic, no runtime write answered 412 although it was applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use api::marking::MarkingQueue;
use api::{AppState, Config};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use uuid::Uuid;

/// Sessions in flight at the anchor when the deployment starts.
const SESSIONS: usize = 1_500;
/// How long the faults stay on at least (and at most, while the deployment runs).
const FAULT_WINDOW: Duration = Duration::from_secs(30);
const FAULT_WINDOW_MAX: Duration = Duration::from_secs(300);
/// The proxy's dice are seeded: a failing run can be replayed with its seed.
const SEED: u64 = 0x5eed_f00d_2026_1206;

// ----- the proxy -------------------------------------------------------------------

/// Per-request fault rates, in percent (the rest are forwarded untouched).
#[derive(Clone, Copy)]
struct FaultRates {
    drop_before: u64,
    drop_answer: u64,
    throttle: u64,
    delay: u64,
}

const RATES: FaultRates = FaultRates {
    drop_before: 2,
    drop_answer: 3,
    throttle: 2,
    delay: 5,
};

#[derive(Default)]
struct FaultCounts {
    requests: AtomicU64,
    dropped_before: AtomicU64,
    dropped_answer: AtomicU64,
    throttled: AtomicU64,
    delayed: AtomicU64,
}

impl FaultCounts {
    fn faults(&self) -> u64 {
        self.dropped_before.load(Ordering::Relaxed)
            + self.dropped_answer.load(Ordering::Relaxed)
            + self.throttled.load(Ordering::Relaxed)
            + self.delayed.load(Ordering::Relaxed)
    }

    fn report(&self) -> String {
        format!(
            "{} requests: {} dropped before forwarding, {} applied with the answer dropped, \
             {} throttled, {} delayed",
            self.requests.load(Ordering::Relaxed),
            self.dropped_before.load(Ordering::Relaxed),
            self.dropped_answer.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
            self.delayed.load(Ordering::Relaxed),
        )
    }
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    on: Arc<AtomicBool>,
    dice: AtomicU64,
    counts: Arc<FaultCounts>,
}

/// splitmix64: the next value of a seeded sequence shared by all connections.
fn roll(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The error that makes hyper close the connection without an answer.
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

impl Proxy {
    async fn handle(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, Dropped> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
        let dynamodb = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("DynamoDB_"));
        let dice = roll(&self.dice) % 100;
        let delay_ms = 20 + roll(&self.dice) % 180;
        let rates = RATES;
        let faulty = self.on.load(Ordering::Relaxed);
        let mut drop_answer = false;
        if faulty {
            let mut edge = rates.drop_before;
            if dice < edge {
                self.counts.dropped_before.fetch_add(1, Ordering::Relaxed);
                return Err(Dropped);
            }
            edge += rates.drop_answer;
            if dice < edge {
                drop_answer = true;
            } else if dice < edge + rates.throttle {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
                return Ok(throttled(dynamodb));
            } else if dice < edge + rates.throttle + rates.delay {
                self.counts.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut forward = self
            .client
            .request(parts.method.clone(), format!("{}{}", self.upstream, path))
            .body(body);
        for (name, value) in &parts.headers {
            if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                forward = forward.header(name, value);
            }
        }
        let answer = forward.send().await.map_err(|_| Dropped)?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.map_err(|_| Dropped)?;
        if drop_answer {
            // Applied upstream; the caller never hears of it.
            self.counts.dropped_answer.fetch_add(1, Ordering::Relaxed);
            return Err(Dropped);
        }
        let mut response = http::Response::new(Full::new(bytes));
        *response.status_mut() = status;
        for (name, value) in &headers {
            if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
                response.headers_mut().insert(name, value.clone());
            }
        }
        Ok(response)
    }
}

fn throttled(dynamodb: bool) -> http::Response<Full<Bytes>> {
    let (status, body) = if dynamodb {
        (
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        )
    } else {
        (503, "{}")
    };
    let mut response = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

/// Start a proxy to `upstream` on a free loopback port; returns its URL.
async fn start_proxy(
    upstream: String,
    on: Arc<AtomicBool>,
    seed: u64,
    counts: Arc<FaultCounts>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
        on,
        dice: AtomicU64::new(seed),
        counts,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let proxy = proxy.clone();
                    async move { proxy.handle(request).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}")
}

// ----- the clients -----------------------------------------------------------------

#[derive(Default)]
struct ClientCounts {
    calls: AtomicU64,
    retried_5xx: AtomicU64,
    if_match_writes: AtomicU64,
    if_match_412: AtomicU64,
}

/// Call until the answer is not a 5xx (a runtime retries those); panics on a
/// 5xx that persists.
async fn call_retrying(
    app: &TestApp,
    counts: &ClientCounts,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    for _ in 0..30 {
        counts.calls.fetch_add(1, Ordering::Relaxed);
        let reply = app.call(method, path, body.clone()).await;
        if reply.status < 500 {
            return reply;
        }
        counts.retried_5xx.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{method} {path}: 5xx after 30 attempts");
}

fn session_id(i: usize) -> String {
    format!("ambiguous-{i:05}")
}

/// One runtime write guarded by `If-Match`: a fresh nonce in the variables. A
/// 412 on the first attempt must mean the write did not apply.
async fn etag_write(app: &TestApp, counts: &ClientCounts, id: &str) {
    let read = call_retrying(app, counts, "GET", &format!("/sessions/{id}"), None).await;
    assert_eq!(read.status, 200, "{id}: {:?}", read.body);
    let revision = read.body["revision"].as_u64().expect("revision");
    let nonce = Uuid::new_v4().to_string();
    let body = json!({
        "channel": read.body["channel"],
        "active_scenario_id": read.body["active_scenario_id"],
        "active_scenario_version": read.body["active_scenario_version"],
        "active_step_id": read.body["active_step_id"],
        "step_history": read.body["step_history"],
        "variables": {"nonce": nonce},
    });
    let mut first = true;
    loop {
        counts.calls.fetch_add(1, Ordering::Relaxed);
        let reply = app
            .raw(
                app.client
                    .put(format!("{}/sessions/{id}", app.base))
                    .header("X-Tenant-ID", app.tenant.to_string())
                    .header("If-Match", format!("\"{revision}\""))
                    .json(&body),
            )
            .await;
        match reply.status {
            200 => {
                counts.if_match_writes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            412 | 409 => {
                counts.if_match_412.fetch_add(1, Ordering::Relaxed);
                if first && reply.status == 412 {
                    let now =
                        call_retrying(app, counts, "GET", &format!("/sessions/{id}"), None).await;
                    assert_ne!(
                        now.body["variables"]["nonce"],
                        json!(nonce),
                        "{id}: the write was applied but answered 412"
                    );
                }
                return;
            }
            s if s >= 500 => {
                // The write may or may not have applied: a 412 after this is ambiguous.
                counts.retried_5xx.fetch_add(1, Ordering::Relaxed);
                first = false;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{id}: If-Match write answered {other}: {:?}", reply.body),
        }
    }
}

async fn reconcile(app: &TestApp, counts: &ClientCounts, id: &str) -> Value {
    let reply = call_retrying(
        app,
        counts,
        "POST",
        &format!("/sessions/{id}/reconcile"),
        Some(json!({"known_fields": {"age": 40}})),
    )
    .await;
    assert_eq!(reply.status, 200, "{id}: {:?}", reply.body);
    reply.body
}

async fn status(app: &TestApp, counts: &ClientCounts, plan_id: &str) -> Value {
    let reply = call_retrying(
        app,
        counts,
        "GET",
        &format!("/migration-plans/{plan_id}/deployment-status"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

// ----- the test --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_stays_exact_when_the_network_loses_answers() {
    if !store::testing::dynamo_configured() || !store::testing::sqs_configured() {
        return;
    }
    // With RUST_LOG set, the product's logs (a failed page, a throttled call)
    // go to the test's output; the suite runs without them.
    if std::env::var_os("RUST_LOG").is_some() {
        api::telemetry::init(false);
    }
    let panics = Arc::new(AtomicU64::new(0));
    {
        let panics = panics.clone();
        let default_hook = std::panic::take_hook();
        // The suite is one binary: count only panics in the product's code, not
        // a failing assertion of another test running beside this one.
        std::panic::set_hook(Box::new(move |info| {
            let in_product = info.location().is_some_and(|l| {
                l.file().starts_with("shared/") || l.file().starts_with("functions/")
            });
            if in_product {
                panics.fetch_add(1, Ordering::Relaxed);
            }
            default_hook(info);
        }));
    }

    // The emulators, reached only through the proxies.
    let on = Arc::new(AtomicBool::new(false));
    let faults = Arc::new(FaultCounts::default());
    let ddb_upstream = std::env::var(store::testing::DYNAMODB_ENDPOINT).expect("DynamoDB Local");
    let sqs_upstream = std::env::var(store::testing::SQS_ENDPOINT).expect("local SQS");
    let ddb_proxy = start_proxy(ddb_upstream, on.clone(), SEED, faults.clone()).await;
    let sqs_proxy = start_proxy(sqs_upstream, on.clone(), SEED ^ 0xa5a5, faults.clone()).await;

    let fresh = store::testing::fresh_dynamo_tables("ambiguous")
        .await
        .expect("DynamoDB Local");
    // The tables go when the test ends, also when it fails.
    let _tables = DropTablesOnDrop(fresh.clone());
    let through_proxy = aws_sdk_dynamodb::config::Builder::from(&fresh.sdk)
        .endpoint_url(&ddb_proxy)
        .build();
    let store = store::DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(through_proxy),
        fresh.tables.clone(),
    )
    .with_counts_catch_up(store::dynamo::stream::SharedPoller::new(
        store::dynamo::stream::StreamPoller::new(
            fresh.client.clone(),
            store::dynamo::stream::streams_client(&fresh.sdk),
            &fresh.tables,
        ),
    ));
    let (_, url) = fresh_sqs_queue(50).await.expect("local SQS");
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&fresh.sdk)
            .endpoint_url(&sqs_proxy)
            .build(),
    );
    let config = Config {
        inline_mark_threshold: 0,
        mark_page_size: 50,
        mark_concurrency: 8,
        mark_max_receives: 50,
        // Pages go back through the queue often (more SQS traffic under faults).
        mark_chain_budget_ms: 200,
        step_index_shards: 4,
        marking_queue_url: Some(url.clone()),
        ..Config::default()
    };
    let store = store.with_step_index_shards(config.step_index_shards);
    let queue: Arc<dyn MarkingQueue> = Arc::new(api::aws::SqsQueue::new(sqs.clone(), url.clone()));
    let state = AppState::new(Arc::new(store), config).with_queue(queue);
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(api::aws::poll_queue(
                state.clone(),
                sqs.clone(),
                url.clone(),
            ))
        })
        .collect();
    let app = Arc::new(serve_state(state, None).await);
    let counts = Arc::new(ClientCounts::default());

    // Scenario, sessions at "Collect email", a plan V1 → V2, approved: no faults yet.
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    seed_like_first(
        &app,
        &session_id(0),
        session_at(scenario, 1, step(2), "web"),
        (1..SESSIONS).map(|i| json!({"session_id": session_id(i)})),
    )
    .await;
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().expect("plan id").to_owned();

    // Faults on: approve and deploy (retrying 5xx as an operator would), while
    // reconcilers and If-Match writers work on random sessions.
    on.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let approve = call_retrying(
        &app,
        &counts,
        "POST",
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await;
    assert_eq!(approve.status, 200, "{:?}", approve.body);
    let deploy = call_retrying(
        &app,
        &counts,
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        None,
    )
    .await;
    assert!(
        deploy.status == 200 || deploy.status == 202,
        "{:?}",
        deploy.body
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..7u64 {
        let (app, counts, stop) = (app.clone(), counts.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let dice = AtomicU64::new(SEED ^ (worker + 1));
            while !stop.load(Ordering::Relaxed) {
                let id = session_id((roll(&dice) % SESSIONS as u64) as usize);
                if worker < 4 {
                    reconcile(&app, &counts, &id).await;
                } else {
                    etag_write(&app, &counts, &id).await;
                }
            }
        }));
    }
    let deployed = loop {
        let current = status(&app, &counts, &plan_id).await;
        let elapsed = started.elapsed();
        if current["status"] == "deployed" && elapsed >= FAULT_WINDOW {
            break current;
        }
        assert!(
            elapsed < FAULT_WINDOW_MAX,
            "not deployed within {FAULT_WINDOW_MAX:?} under faults: {current}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    on.store(false, Ordering::Relaxed);
    eprintln!(
        "fault window {:?}: {}; clients: {} calls, {} 5xx retried, {} If-Match writes, {} 412/409",
        started.elapsed(),
        faults.report(),
        counts.calls.load(Ordering::Relaxed),
        counts.retried_5xx.load(Ordering::Relaxed),
        counts.if_match_writes.load(Ordering::Relaxed),
        counts.if_match_412.load(Ordering::Relaxed),
    );
    assert!(
        faults.dropped_answer.load(Ordering::Relaxed) >= 50,
        "too few lost answers to prove anything: {}",
        faults.report()
    );
    assert!(faults.faults() >= 200, "{}", faults.report());
    assert_eq!(deployed["pages_failed"], 0, "{deployed}");

    // Every session reconciled once more, without faults: all migrate.
    futures::stream::iter((0..SESSIONS).map(|i| {
        let (app, counts) = (app.clone(), counts.clone());
        async move { reconcile(&app, &counts, &session_id(i)).await }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;

    let final_status = status(&app, &counts, &plan_id).await;
    let marked = final_status["sessions_marked"].as_u64().expect("marked");
    let applied = final_status["migrations_applied"]
        .as_u64()
        .expect("applied");
    let unflagged = final_status["migrations_applied_unflagged"]
        .as_u64()
        .expect("unflagged");
    assert_eq!(
        applied + unflagged,
        SESSIONS as u64,
        "every session migrated exactly once: {final_status}"
    );
    assert_eq!(
        applied, marked,
        "applied == sessions_marked: {final_status}"
    );
    assert_eq!(final_status["migrations_pending"], 0, "{final_status}");
    assert_eq!(final_status["pages_failed"], 0, "{final_status}");

    let events = events_per_session(&app, &plan_id).await;
    assert_eq!(events.len(), SESSIONS, "one event per session");
    let doubles: Vec<_> = events.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubles.is_empty(),
        "sessions with more than one event: {doubles:?}"
    );
    futures::stream::iter((0..SESSIONS).map(|i| {
        let app = app.clone();
        async move {
            let id = session_id(i);
            let s = app.call("GET", &format!("/sessions/{id}"), None).await.body;
            assert_eq!(s["active_scenario_version"], 2, "{id}: {s}");
            assert!(s.get("pending_migration").is_none(), "{id}: {s}");
        }
    }))
    .buffer_unordered(16)
    .collect::<()>()
    .await;
    assert_eq!(panics.load(Ordering::Relaxed), 0, "a task panicked");
    for poller in pollers {
        poller.abort();
    }
    eprintln!("final status: {final_status}");
}
