//! The client against a scripted HTTP server: which failures it retries, how
//! long it keeps at it, what it sends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::model::{GenerateMigrationPlanRequest, ScenarioInput};
use crate::{Auth, Client, Decision, Error, RetryPolicy};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// One scripted answer: status, extra headers, JSON body.
type Scripted = (u16, Vec<(&'static str, String)>, Value);

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    axum::extract::State(script): axum::extract::State<Script>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    script.seen.lock().unwrap().push(Seen {
        method,
        path: uri.to_string(),
        headers,
        body,
    });
    // Past the script, the last answer again (a server that stays down).
    let mut answers = script.answers.lock().unwrap();
    let (status, extra, body) = if answers.len() > 1 {
        answers.pop_front().unwrap()
    } else {
        answers.front().cloned().expect("a scripted answer")
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A server answering `answers` in order; its base URL.
async fn serve(answers: Vec<Scripted>) -> (String, Script) {
    let script = Script::default();
    script.answers.lock().unwrap().extend(answers);
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(script.clone());
    (listen(app).await, script)
}

/// `app` served on a free loopback port; its base URL.
async fn listen(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

fn quick_policy(deadline_ms: u64) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        deadline: Duration::from_millis(deadline_ms),
        max_attempts: 20,
    }
}

fn client(base: &str, deadline_ms: u64) -> Client {
    client_with(base, quick_policy(deadline_ms))
}

fn client_with(base: &str, policy: RetryPolicy) -> Client {
    Client::builder(base, Uuid::from_u128(42))
        .retry(policy)
        .build()
        .unwrap()
}

fn detail(text: &str) -> Value {
    json!({"detail": text})
}

fn collect_age() -> Value {
    json!({"action": "collect", "collect_fields": ["age"], "user_message": "How old are you?"})
}

#[tokio::test]
async fn reconcile_retries_5xx_and_429_then_decides() {
    let (base, script) = serve(vec![
        (503, vec![], detail("store unavailable")),
        (429, vec![("retry-after", "0".into())], detail("slow down")),
        (500, vec![], detail("boom")),
        (200, vec![("etag", "\"4\"".into())], collect_age()),
    ])
    .await;
    let reconciled = client(&base, 5_000)
        .reconcile_on_message("wa-1", &BTreeMap::new())
        .await
        .expect("decided after the retries");
    assert_eq!(
        reconciled.decision,
        Decision::Collect {
            fields: vec!["age".into()],
            confirm: vec![],
            user_message: Some("How old are you?".into())
        }
    );
    assert_eq!(reconciled.revision, Some(4));
    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.path == "/sessions/wa-1/reconcile")
    );
    assert!(
        seen.iter()
            .all(|s| s.headers["x-tenant-id"] == Uuid::from_u128(42).to_string())
    );
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, json!({"dry_run": false, "known_fields": {}}));
}

#[tokio::test]
async fn a_4xx_is_never_retried() {
    for status in [400u16, 403, 404, 409, 412, 422] {
        let (base, script) = serve(vec![
            (status, vec![], detail("no")),
            (200, vec![], collect_age()),
        ])
        .await;
        let error = client(&base, 5_000)
            .reconcile_on_message("wa-1", &BTreeMap::new())
            .await
            .expect_err("the 4xx comes back");
        assert_eq!(error.status(), Some(status));
        assert_eq!(error.detail(), Some("no"));
        assert!(!error.is_retryable());
        assert_eq!(script.seen().len(), 1, "{status} was sent again");
    }
}

#[tokio::test]
async fn the_deadline_bounds_the_whole_call() {
    let (base, script) = serve(vec![(503, vec![], detail("down"))]).await;
    // Attempts enough that the deadline, not their count, ends the call —
    // whether it falls in a wait or cuts an attempt in flight.
    let policy = RetryPolicy {
        max_attempts: 1_000,
        ..quick_policy(1_000)
    };
    let started = Instant::now();
    let error = client_with(&base, policy)
        .reconcile_on_message("wa-1", &BTreeMap::new())
        .await
        .expect_err("still down at the deadline");
    let took = started.elapsed();
    assert!(matches!(error, Error::DeadlineExceeded { .. }), "{error}");
    assert_eq!(error.status(), Some(503));
    assert!(took < Duration::from_millis(3_000), "{took:?}");
    assert!(script.seen().len() > 2, "retried within the deadline");
}

#[tokio::test]
async fn an_attempt_cut_by_the_deadline_reports_the_last_answer() {
    // The first request gets a 503; every later one hangs past the deadline.
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().fallback(move || {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if !first {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(detail("down")))
        }
    });
    let base = listen(app).await;
    let started = Instant::now();
    let error = client(&base, 500)
        .reconcile_on_message("wa-1", &BTreeMap::new())
        .await
        .expect_err("the second attempt never answers");
    assert!(matches!(error, Error::DeadlineExceeded { .. }), "{error}");
    assert_eq!(error.status(), Some(503), "{error}");
    assert_eq!(error.detail(), Some("down"));
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn no_connection_is_retried_until_the_deadline() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let attempts = Arc::new(Mutex::new(0usize));
    let counted = attempts.clone();
    let started = Instant::now();
    let error = Client::builder(format!("http://127.0.0.1:{port}"), Uuid::nil())
        .retry(quick_policy(300))
        .observer(move |_| *counted.lock().unwrap() += 1)
        .build()
        .unwrap()
        .health()
        .await
        .expect_err("nothing listens");
    let Error::DeadlineExceeded { last, .. } = &error else {
        panic!("{error}");
    };
    assert!(matches!(**last, Error::Transport { .. }), "{last}");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    // The observer sees only answered exchanges: none here.
    assert_eq!(*attempts.lock().unwrap(), 0);
}

#[tokio::test]
async fn creating_a_plan_is_sent_once() {
    let (base, script) = serve(vec![(503, vec![], detail("down"))]).await;
    let request = GenerateMigrationPlanRequest {
        created_by: None,
        new_scenario: ScenarioInput {
            description: None,
            entry_step_id: Uuid::nil(),
            name: "n".into(),
            steps: vec![],
            version: 2,
        },
    };
    let error = client(&base, 2_000)
        .create_plan(Uuid::nil(), &request)
        .await
        .expect_err("503");
    assert_eq!(error.status(), Some(503));
    assert_eq!(script.seen().len(), 1);
}

fn session_json(revision: u64, email: &str) -> Value {
    json!({
        "session_id": "wa-1", "tenant_id": Uuid::from_u128(42), "channel": "web",
        "active_scenario_id": Uuid::from_u128(1), "active_scenario_version": 1,
        "active_step_id": Uuid::from_u128(2), "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "revision": revision,
        "variables": {"email": email}, "step_history": []
    })
}

#[tokio::test]
async fn a_412_is_retried_by_reading_again() {
    let (base, script) = serve(vec![
        (
            200,
            vec![("etag", "\"3\"".into())],
            session_json(3, "a@b.c"),
        ),
        (412, vec![], detail("session is at revision 4")),
        (
            200,
            vec![("etag", "\"4\"".into())],
            session_json(4, "x@y.z"),
        ),
        (
            200,
            vec![("etag", "\"5\"".into())],
            session_json(5, "x@y.z"),
        ),
    ])
    .await;
    let mut seen_emails = Vec::new();
    let written = client(&base, 5_000)
        .update_session("wa-1", |session| {
            seen_emails.push(session.variables["email"].clone());
            session.variables.insert("age".into(), json!(34));
        })
        .await
        .expect("written on the second read");
    assert_eq!(written.revision, Some(5));
    // The change was applied to each session read, the newer one last.
    assert_eq!(seen_emails, vec![json!("a@b.c"), json!("x@y.z")]);
    let seen = script.seen();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        methods,
        [&Method::GET, &Method::PUT, &Method::GET, &Method::PUT]
    );
    assert_eq!(seen[1].headers["if-match"], "\"3\"");
    assert_eq!(seen[3].headers["if-match"], "\"4\"");
    let sent: Value = serde_json::from_slice(&seen[3].body).unwrap();
    assert_eq!(sent["variables"], json!({"email": "x@y.z", "age": 34}));
    // Only the runtime's fields go back: the server owns the others.
    for owned in [
        "revision",
        "pending_migration",
        "pinned_version",
        "updated_at",
    ] {
        assert!(sent.get(owned).is_none(), "{owned} was sent");
    }
}

#[tokio::test]
async fn a_session_others_keep_changing_is_given_up() {
    // Every read is beaten by another writer before the write.
    let mut answers = Vec::new();
    for revision in 3..11 {
        answers.push((
            200,
            vec![("etag", format!("\"{revision}\""))],
            session_json(revision, "a@b.c"),
        ));
        answers.push((412, vec![], detail("changed")));
    }
    answers.push((200, vec![], session_json(99, "never read")));
    let (base, script) = serve(answers).await;
    let error = client(&base, 5_000)
        .update_session("wa-1", |_| {})
        .await
        .expect_err("given up");
    assert!(
        matches!(error, Error::Contended { attempts: 8, .. }),
        "{error}"
    );
    assert_eq!(script.seen().len(), 16);
}

#[tokio::test]
async fn bearer_tokens_and_preconditions_are_sent() {
    let (base, script) = serve(vec![(
        201,
        vec![("etag", "\"1\"".into())],
        session_json(1, "a@b.c"),
    )])
    .await;
    let client = Client::builder(&base, Uuid::from_u128(42))
        .auth(Auth::Bearer("tok".into()))
        .build()
        .unwrap();
    let input = crate::model::SessionInput::at("web", Uuid::from_u128(1), 1, Uuid::from_u128(2));
    let created = client
        .create_session("wa 1", &input)
        .await
        .expect("created");
    assert_eq!(created.revision, Some(1));
    let seen = script.seen();
    assert_eq!(seen[0].path, "/sessions/wa%201");
    assert_eq!(seen[0].headers["authorization"], "Bearer tok");
    assert_eq!(seen[0].headers["if-none-match"], "*");
    assert_eq!(seen[0].headers["content-type"], "application/json");
}

#[cfg(feature = "sigv4")]
#[tokio::test]
async fn sigv4_signs_what_is_sent() {
    let (base, script) = serve(vec![(200, vec![], json!({"status": "ok"}))]).await;
    let client = Client::builder(&base, Uuid::from_u128(42))
        .auth(Auth::SigV4(crate::SigV4::with_keys(
            "AKID",
            "secret",
            None,
            "eu-west-1",
        )))
        .build()
        .unwrap();
    client.health().await.expect("health");
    let seen = script.seen();
    let authorization = seen[0].headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
        "{authorization}"
    );
    assert!(authorization.contains("/eu-west-1/execute-api/aws4_request"));
    // The host the server saw is the one signed.
    let signed_host = base.trim_start_matches("http://");
    assert_eq!(seen[0].headers["host"], signed_host);
    assert!(seen[0].headers.contains_key("x-amz-date"));
}
