//! Data in logs (docs/security.md): session variables, known fields and customer ids
//! never appear in the logs, nor in the `detail` of an error answer.
//!
//! Every event of this test binary is captured (at TRACE, above what a Lambda
//! logs) while the session and reconcile routes are exercised through the router
//! `migrations serve` runs — and, with the `lambda` feature, through the Lambda's
//! — with a distinctive secret in `variables`, `known_fields` and `customer_id`,
//! on the happy path and on error paths (422s whose bodies carry the secret).

use crate::logs::capture_logs;
use std::sync::Arc;

use api::{AppState, Config};
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
const SCENARIO: &str = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
const A: &str = "00000000-0000-4000-8000-00000000000a";
const B: &str = "00000000-0000-4000-8000-00000000000b";
const C: &str = "00000000-0000-4000-8000-00000000000c";
const D: &str = "00000000-0000-4000-8000-00000000000d";

/// Distinctive values that must never be logged or echoed in an error.
const VARIABLE: &str = "zq-variable-7f3a91";
const KNOWN: &str = "zq-known-field-52c8e0";
const CUSTOMER: &str = "zq-customer-id-0b6d44";
const SECRETS: [&str; 3] = [VARIABLE, KNOWN, CUSTOMER];

struct Client {
    app: axum::Router,
    /// Every `detail` of every error answer.
    details: Vec<String>,
}

impl Client {
    fn new(app: axum::Router) -> Self {
        Client {
            app,
            details: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-tenant-id", TENANT)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 400 {
            self.details.push(value["detail"].to_string());
        }
        (status, value)
    }

    async fn json(&mut self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, Some(&body.to_string())).await
    }
}

fn scenario(version: i64, with_age_check: bool) -> Value {
    let first_hop = if with_age_check { D } else { B };
    let mut steps = vec![
        json!({"id": A, "name": "Welcome", "transitions": [{"to_step_id": first_hop}]}),
        json!({"id": B, "name": "Collect email", "collects_profile_fields": ["email"],
               "transitions": [{"to_step_id": C}]}),
        json!({"id": C, "name": "Done", "is_terminal": true}),
    ];
    if with_age_check {
        steps.push(
            json!({"id": D, "name": "Check age", "collects_profile_fields": ["age"],
                          "transitions": [{"to_step_id": B}]}),
        );
    }
    json!({"name": "Support flow", "version": version, "entry_step_id": A, "steps": steps})
}

fn session(extra: Value) -> Value {
    let mut body = json!({
        "channel": "whatsapp", "customer_id": CUSTOMER,
        "active_scenario_id": SCENARIO, "active_scenario_version": 1,
        "active_step_id": B, "step_history": [],
        "variables": {"note": VARIABLE, "email": VARIABLE}
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The happy path: record, read, plan, deploy, reconcile (collect, then fill).
async fn exercise(client: &mut Client, session_id: &str) {
    let (status, body) = client
        .json("PUT", &format!("/scenarios/{SCENARIO}"), scenario(1, false))
        .await;
    assert!(status == 201 || status == 409, "{status} {body}");
    let path = format!("/sessions/{session_id}");
    let (status, body) = client.json("PUT", &path, session(json!({}))).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, body) = client.send("GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customer_id"], CUSTOMER);

    let (status, plan) = client
        .json(
            "POST",
            &format!("/scenarios/{SCENARIO}/migration-plan"),
            json!({"new_scenario": scenario(2, true), "created_by": "ops"}),
        )
        .await;
    if status == 201 {
        let id = plan["id"].as_str().unwrap().to_string();
        let (status, body) = client
            .json("POST", &format!("/migration-plans/{id}/approve"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = client
            .send("POST", &format!("/migration-plans/{id}/deploy"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let reconcile = format!("{path}/reconcile");
    // Nothing known about the age: collect it.
    let (status, body) = client
        .json(
            "POST",
            &reconcile,
            json!({"known_fields": {"nickname": KNOWN}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The age, as a low-confidence candidate and then as a plain value.
    let (status, body) = client
        .json(
            "POST",
            &reconcile,
            json!({"known_fields": {"age": {"value": KNOWN, "source": "conversation", "confidence": 0.9}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = client
        .json(
            "POST",
            &reconcile,
            json!({"known_fields": {"age": KNOWN, "nickname": KNOWN}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = client.send("GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
}

/// Bad bodies that carry a secret in a field value: each is a 422 (or 409/412).
async fn error_paths(client: &mut Client, session_id: &str) {
    let path = format!("/sessions/{session_id}");
    let reconcile = format!("{path}/reconcile");
    let bad_sessions = [
        // Malformed JSON, cut off after the secret.
        format!(
            r#"{{"channel": "whatsapp", "customer_id": "{CUSTOMER}", "variables": {{"note": "{VARIABLE}""#
        ),
        // Trailing garbage after a body with the secrets.
        format!("{} {VARIABLE}", session(json!({}))),
        // A missing required field next to the secrets.
        {
            let mut b = session(json!({}));
            b.as_object_mut().unwrap().remove("channel");
            b.to_string()
        },
        // Body ids that do not match the path / the tenant.
        session(json!({"session_id": "someone-else"})).to_string(),
        session(json!({"tenant_id": "11111111-1111-4111-8111-111111111111"})).to_string(),
        // A struct where a field holds an object with the secret inside.
        session(json!({"channel": {"name": VARIABLE}})).to_string(),
        // A step history entry in sequence form with the secret.
        session(json!({"step_history": [[VARIABLE]]})).to_string(),
    ];
    for body in &bad_sessions {
        let (status, answer) = client.send("PUT", &path, Some(body)).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    let bad_reconciles = [
        format!(r#"{{"known_fields": {{"age": "{KNOWN}""#),
        format!(r#"{{"known_fields": {{"age": {{"value": "{KNOWN}", "confidence": 7}}}}}}"#),
        format!(r#"{{"known_fields": {{"age": {{"value": "{KNOWN}", "confidence": "high"}}}}}}"#),
        format!(r#"{{"known_fields": {{"age": {{"value": "{KNOWN}", "source": 3}}}}}}"#),
        format!(r#"[{{"age": "{KNOWN}"}}]"#),
    ];
    for body in &bad_reconciles {
        let (status, answer) = client.send("POST", &reconcile, Some(body)).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    // A stale precondition and a move back to an older version.
    let request = Request::builder()
        .method("PUT")
        .uri(&path)
        .header("x-tenant-id", TENANT)
        .header("content-type", "application/json")
        .header("if-match", "\"999\"")
        .body(Body::from(session(json!({})).to_string()))
        .unwrap();
    let response = client.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 412);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    client
        .details
        .push(String::from_utf8_lossy(&bytes).into_owned());
}

/// Bad bodies whose secret sits where serde quotes the offending value in its
/// message (`invalid type: string "…", expected …`).
async fn type_errors(client: &mut Client, session_id: &str) {
    let path = format!("/sessions/{session_id}");
    for body in [
        session(json!({"variables": VARIABLE})),
        session(json!({"customer_id": [CUSTOMER]})),
        session(json!({"active_scenario_version": CUSTOMER})),
        session(json!({"channel": VARIABLE, "active_scenario_id": VARIABLE})),
    ] {
        let (status, answer) = client.json("PUT", &path, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    let reconcile = format!("{path}/reconcile");
    for body in [
        json!({"known_fields": KNOWN}),
        json!({"known_fields": {"age": {"value": 1, "confidence": KNOWN}}}),
    ] {
        let (status, answer) = client.json("POST", &reconcile, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}:\n{text}"
        );
    }
}

fn serve_app() -> axum::Router {
    let state = AppState::new(Arc::new(store::MemoryStore::new()), Config::default());
    api::app(state)
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_error_details() {
    let logs = capture_logs();
    let mut client = Client::new(serve_app());
    exercise(&mut client, "wa-1").await;
    error_paths(&mut client, "wa-1").await;
    assert!(client.details.len() >= 13, "{:?}", client.details);
    assert_clean("an error detail", &client.details.join("\n"));
    assert_clean("the logs", &logs.text());
}

/// The same through the sessions Lambda's router, with the tenant bound to an
/// IAM caller (the tenant-binding decisions are logged on every request).
#[cfg(feature = "lambda")]
#[tokio::test]
async fn secrets_stay_out_of_the_lambda_logs() {
    let logs = capture_logs();
    let bindings = json!({"arn:aws:iam::123456789012:role/runtime": ["*"]}).to_string();
    let config = Config::from_lookup(|name| match name {
        "AUTH_MODE" => Some("iam".into()),
        "IAM_TENANT_BINDINGS" => Some(bindings.clone()),
        _ => None,
    })
    .unwrap();
    let state = AppState::new(Arc::new(store::MemoryStore::new()), config);
    // Scenarios and plans through the full router, sessions through the Lambda's.
    let mut setup = Client::new(api::app(state.clone()));
    exercise(&mut setup, "wa-2").await;
    let sessions = api::lambda::http_app(api::sessions_router, state);
    let mut lambda = Client::new(sessions);
    let path = "/sessions/wa-2";
    for (method, uri, body) in [
        (
            "PUT",
            path.to_string(),
            Some(session(json!({})).to_string()),
        ),
        ("GET", path.to_string(), None),
        (
            "POST",
            format!("{path}/reconcile"),
            Some(json!({"known_fields": {"age": KNOWN}}).to_string()),
        ),
        (
            "POST",
            format!("{path}/reconcile"),
            Some(format!(r#"{{"known_fields": {{"age": "{KNOWN}""#)),
        ),
    ] {
        let event = json!({
            "version": "2.0", "routeKey": format!("{method} /sessions/{{session_id}}"),
            "rawPath": uri, "rawQueryString": "",
            "headers": {"x-tenant-id": TENANT, "content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "req", "routeKey": "r", "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": uri, "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.10", "userAgent": "t"},
                "authorizer": {"iam": {"userArn":
                    "arn:aws:sts::123456789012:assumed-role/runtime/i-0abc"}}
            },
            "body": body, "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = lambda.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(status < 500, "{status}");
        if status >= 400 {
            lambda
                .details
                .push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    assert_clean("an error detail", &lambda.details.join("\n"));
    let text = logs.text();
    assert!(text.contains("tenant access allowed"), "{text}");
    assert_clean("the logs", &text);
}

/// 422s that quote the offending value: serde's `invalid type: string "…"`
/// messages become the `msg` of the detail (`extract::json_error`).
#[tokio::test]
async fn type_errors_do_not_echo_the_offending_value() {
    let logs = capture_logs();
    let mut client = Client::new(serve_app());
    exercise(&mut client, "wa-3").await;
    type_errors(&mut client, "wa-3").await;
    assert_clean("an error detail", &client.details.join("\n"));
    assert_clean("the logs", &logs.text());
}

/// Session ids are chosen by the runtime and may be a phone number or an e-mail
/// address (a customer id): the reconcile warnings must not log them.
#[tokio::test]
async fn session_ids_stay_out_of_reconcile_logs() {
    let logs = capture_logs();
    let mut client = Client::new(serve_app());
    let session_id = format!("whatsapp:{CUSTOMER}");
    exercise(&mut client, &session_id).await;
    // A checksum that is not the version's: reconcile repositions the session and
    // logs it.
    let path = format!("/sessions/{session_id}");
    let (status, body) = client
        .json(
            "PUT",
            &path,
            session(json!({"active_scenario_version": 2, "scenario_checksum": "not-the-checksum"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = client
        .json("POST", &format!("{path}/reconcile"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = logs.text();
    assert!(
        text.contains("session checksum did not match its version"),
        "the repositioning was not logged:\n{text}"
    );
    assert_clean("the logs", &text);
}
