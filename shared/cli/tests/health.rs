//! `GET /health`, `GET /openapi.json` and `migrations openapi` on the real
//! process.

use std::process::Command;

use crate::support::{serve_command, spawn};

fn serve(args: &[&str]) -> Command {
    let mut command = serve_command();
    command.args(args);
    command
}

#[tokio::test]
async fn health_is_ok_with_a_reachable_store_and_needs_no_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(serve(&["--data-dir", dir.path().to_str().unwrap()]));
    let reply = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn health_is_503_json_when_the_store_is_unreachable() {
    // DynamoDB at a port nothing listens on: the process is up, the store is not.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut command = serve(&["--store", "dynamodb"]);
    command
        .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("MIGRATIONS_TABLE", "health-main")
        .env("SESSIONS_TABLE", "health-sessions")
        .env_remove("AWS_PROFILE");
    let server = spawn(command);
    let reply = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 503);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    // The store's error (endpoint, tables) stays in the log.
    let detail = body["detail"].as_str().unwrap();
    assert!(!detail.contains("127.0.0.1"), "{detail}");
}

#[tokio::test]
async fn openapi_is_served_without_a_tenant_and_printed_by_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(serve(&["--data-dir", dir.path().to_str().unwrap()]));
    let reply = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(
        reply.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");

    let output = Command::new(env!("CARGO_BIN_EXE_migrations"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, served, "the command prints what the server serves");
    // Every group is in it, with the statuses docs/api.md promises.
    let paths = &printed["paths"];
    let deploy = &paths["/migration-plans/{plan_id}/deploy"]["post"]["responses"];
    for status in ["200", "202", "404", "409", "422"] {
        assert!(deploy[status].is_object(), "deploy {status}");
    }
    let session = &paths["/sessions/{session_id}"]["put"]["responses"];
    for status in ["200", "201", "409", "412", "413", "422"] {
        assert!(session[status].is_object(), "put session {status}");
    }
    assert!(session["200"]["headers"]["ETag"].is_object());
}
