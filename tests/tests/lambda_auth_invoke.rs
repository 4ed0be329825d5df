//! The function binaries as deployed read `AUTH_MODE`, `TENANT_CLAIM` and
//! `IAM_TENANT_BINDINGS` at cold start and bind tenants to identities (docs/security.md):
//! each binary is invoked once through a stand-in of the Lambda Runtime API on
//! loopback with the sample events of `infra/events/` (IAM, JWT and no
//! authorizer), against fresh DynamoDB Local tables.
//!
//! The binaries are built by `tests/run.sh` before the test suite runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// The tenant of the sample events.
const TENANT: &str = "11111111-1111-4111-8111-111111111111";
const OTHER: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
/// The role of `sessions-get-iam.json`'s assumed-role caller.
const RUNTIME_ROLE: &str = "arn:aws:iam::123456789012:role/runtime";

#[derive(Clone)]
struct RuntimeApi {
    event: Arc<Mutex<Option<Value>>>,
    answers: mpsc::UnboundedSender<(String, Value)>,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let Some(event) = api.event.lock().await.take() else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    let mut headers = HeaderMap::new();
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(120))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", "req-1".to_string()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:test".to_string(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".to_string(),
        ),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
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

/// Invoke `function` once with `event` and these extra variables; returns
/// ("response" | "error" | "init_error", payload), or ("exit", exit code).
async fn invoke(function: &str, event: Value, env: &[(&str, &str)]) -> Option<(String, Value)> {
    if !store::testing::dynamo_configured() {
        return None;
    }
    let exe = binary(function)?;
    let fresh = store::testing::fresh_dynamo_tables("auth").await?;
    // The tables go once the function has answered or exited, also when it has not.
    let invocation = run(&exe, function, event, env, &fresh);
    Some(fresh.drop_after(invocation).await)
}

/// Start `function` on `fresh`'s tables with `env`, hand it `event` and wait for its
/// answer or its exit.
async fn run(
    exe: &std::path::Path,
    function: &str,
    event: Value,
    env: &[(&str, &str)],
    fresh: &store::testing::FreshTables,
) -> (String, Value) {
    let (answers, mut received) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        event: Arc::new(Mutex::new(Some(event))),
        answers,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/{kind}",
            post(invocation_answer),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut command = tokio::process::Command::new(exe);
    command
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .envs(fresh.process_env())
        .env_remove("MARKING_QUEUE_URL")
        .env_remove("AUTH_MODE")
        .env_remove("TENANT_CLAIM")
        .env_remove("IAM_TENANT_BINDINGS")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start function binary");
    // The function's answer, or its exit (a configuration error ends the cold start
    // before the runtime loop).
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::select! {
            answer = received.recv() => answer.expect("answer channel open"),
            status = child.wait() => ("exit".to_string(), json!(status.ok().and_then(|s| s.code()))),
        }
    })
    .await
    .expect("the function answered or exited within 60 s");
    let _ = child.kill().await;
    server.abort();
    answer
}

/// The HTTP status the function answered, with its body.
async fn status(function: &str, event: &str, env: &[(&str, &str)]) -> Option<(u64, Value)> {
    let (kind, payload) = invoke(function, sample_event(event), env).await?;
    assert_eq!(kind, "response", "{function} {event}: {payload}");
    let body =
        serde_json::from_str(payload["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    Some((payload["statusCode"].as_u64().expect("statusCode"), body))
}

fn bindings(tenant: &str) -> String {
    json!({ RUNTIME_ROLE: [tenant] }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_mode_serves_bound_callers_only() {
    let bound = bindings(TENANT);
    let iam = [
        ("AUTH_MODE", "iam"),
        ("IAM_TENANT_BINDINGS", bound.as_str()),
    ];
    // The role's session, for its tenant: authorised, then the session is not there.
    let Some((code, body)) = status("sessions", "sessions-get-iam.json", &iam).await else {
        return;
    };
    assert_eq!(code, 404, "{body}");
    // No signature: never the header's word.
    let (code, body) = status("sessions", "sessions-get.json", &iam).await.unwrap();
    assert_eq!(code, 403, "{body}");
    // The role bound to another tenant only.
    let other = bindings(OTHER);
    let env = [
        ("AUTH_MODE", "iam"),
        ("IAM_TENANT_BINDINGS", other.as_str()),
    ];
    let (code, body) = status("sessions", "sessions-get-iam.json", &env)
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["detail"], "Caller is not authorized for this tenant");
    // The deployments function's HTTP path too.
    let (code, body) = status("deployments", "deployments-status.json", &iam)
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_mode_reads_the_configured_claim() {
    let Some((code, body)) =
        status("sessions", "sessions-get-jwt.json", &[("AUTH_MODE", "jwt")]).await
    else {
        return;
    };
    assert_eq!(code, 404, "{body}");
    let (code, body) = status(
        "sessions",
        "sessions-get-jwt.json",
        &[("AUTH_MODE", "jwt"), ("TENANT_CLAIM", "custom:tenant_id")],
    )
    .await
    .unwrap();
    assert_eq!(code, 403, "{body}");
    let (code, body) = status("sessions", "sessions-get.json", &[("AUTH_MODE", "jwt")])
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_mode_is_the_default_and_a_bad_mode_fails_the_cold_start() {
    // `cargo lambda watch`: no AUTH_MODE, the sample event without an authorizer.
    let Some((code, body)) = status("sessions", "sessions-get.json", &[]).await else {
        return;
    };
    assert_eq!(code, 404, "{body}");
    let (kind, payload) = invoke(
        "sessions",
        sample_event("sessions-get.json"),
        &[("AUTH_MODE", "anonymous")],
    )
    .await
    .unwrap();
    assert_eq!(kind, "exit", "{payload}");
    assert_ne!(
        payload,
        json!(0),
        "a bad AUTH_MODE must fail the cold start"
    );
}
