//! A panicking handler answers 500 and the server goes on serving (docs/api.md,
//! "Hostile input").
//!
//! The routers under test are wrapped with `api::routes::catch_panics`, the
//! function `routes::finish` applies to every endpoint group (local server and
//! Lambdas alike).

use crate::logs::capture_logs;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

async fn boom() -> &'static str {
    panic!("internal detail: connection string postgres://admin:hunter2@db")
}

async fn fine() -> &'static str {
    "still here"
}

fn app() -> Router {
    api::routes::catch_panics(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(fine)),
    )
}

#[tokio::test]
async fn a_panicking_handler_answers_500_without_internals_and_is_logged_with_the_request_id() {
    let logs = capture_logs();

    let app = app();
    let response = app
        .clone()
        .oneshot(
            Request::get("/boom")
                .header("x-request-id", "req-42")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).expect("JSON"),
        serde_json::json!({"detail": "Internal Server Error"})
    );
    assert!(!String::from_utf8_lossy(&body).contains("hunter2"));

    let logged = logs.text();
    // The other test's panics log too (one subscriber per binary): this
    // request's line is the one naming its id.
    let line = logged
        .lines()
        .find(|l| l.contains("a handler panicked") && l.contains("req-42"))
        .unwrap_or_else(|| panic!("no panic log with the request id in {logged:?}"));
    assert!(line.contains("ERROR"), "{line}");

    // The same service answers the next request.
    let response = app
        .oneshot(Request::get("/fine").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    // No usable id sent: one is made up.
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"still here");
}

/// One HTTP/1.1 exchange over a new connection: the status code and the body.
async fn exchange(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_keeps_serving_after_panics() {
    // The subscriber is set before any call site is reached (tracing caches
    // per call site whether anyone listens: a span first reached with no
    // subscriber could stay disabled for the other test).
    let _ = capture_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });

    for _ in 0..3 {
        let (status, body) = exchange(addr, "/boom").await;
        assert_eq!(status, 500);
        assert_eq!(body, r#"{"detail":"Internal Server Error"}"#);
    }
    let (status, body) = exchange(addr, "/fine").await;
    assert_eq!((status, body.as_str()), (200, "still here"));
    assert!(!server.is_finished());
    server.abort();
}
