//! `migrations serve` as a real process: it starts, prints its address, serves
//! the API on the embedded store, and keeps data across restarts.

use std::process::Command;

use serde_json::json;

use crate::support::{Server, serve_command, spawn};

fn start(data_dir: &std::path::Path) -> Server {
    let mut command = serve_command();
    command.arg("--data-dir").arg(data_dir);
    spawn(command)
}

#[tokio::test]
async fn serves_the_api_on_the_embedded_store_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
    let scenario = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
    let step = "00000000-0000-4000-8000-000000000001";
    let body = json!({"name": "Tiny", "version": 1, "entry_step_id": step,
        "steps": [{"id": step, "name": "Only", "transitions": []}]});
    let client = reqwest::Client::new();
    {
        let server = start(dir.path());
        let reply = client
            .put(format!("{}/scenarios/{scenario}", server.base))
            .header("X-Tenant-ID", tenant)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201);
        let reply = client
            .get(format!("{}/migration-plans", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 422, "missing tenant header");
    }
    // A restart on the same data folder still has the scenario.
    let server = start(dir.path());
    let reply = client
        .get(format!("{}/scenarios/{scenario}", server.base))
        .header("X-Tenant-ID", tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let got: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(got["name"], "Tiny");
}

/// `--store dynamodb --queue sqs --init` against DynamoDB Local and moto: the tables and
/// the queue are created at start, and the API serves from DynamoDB.
#[tokio::test]
async fn serves_on_dynamodb_local_with_init() {
    let dynamo = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty());
    let sqs = std::env::var("AWS_ENDPOINT_URL_SQS").is_ok_and(|v| !v.is_empty());
    if !(dynamo && sqs) {
        assert_ne!(
            std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref(),
            Ok("1"),
            "FOCAL_REQUIRE_LOCAL_AWS=1 but the local AWS endpoints are not set"
        );
        eprintln!("skipping: DynamoDB Local / SQS endpoints not set");
        return;
    }
    let suffix = format!("{}", std::process::id());
    let mut command = Command::new(env!("CARGO_BIN_EXE_migrations"));
    command
        .args([
            "serve", "--port", "0", "--store", "dynamodb", "--queue", "sqs", "--init",
        ])
        .env("MIGRATIONS_TABLE", format!("serve-main-{suffix}"))
        .env("SESSIONS_TABLE", format!("serve-sessions-{suffix}"))
        .env_remove("MARKING_QUEUE_URL");
    let server = spawn(command);
    let tenant = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
    let scenario = "5c8b6d2e-3f4a-4b5c-9d7e-8f9a0b1c2d3e";
    let step = "00000000-0000-4000-8000-000000000001";
    let body = json!({"name": "Tiny", "version": 1, "entry_step_id": step,
        "steps": [{"id": step, "name": "Only", "transitions": []}]});
    let client = reqwest::Client::new();
    let reply = client
        .put(format!("{}/scenarios/{scenario}", server.base))
        .header("X-Tenant-ID", tenant)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let reply = client
        .get(format!("{}/scenarios/{scenario}/versions/1", server.base))
        .header("X-Tenant-ID", tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
}

/// `--cache-mb` (env `EMBEDDED_CACHE_MB`) bounds the embedded store's page cache:
/// documented in `serve --help` with its default, accepted as a flag and from
/// the environment, and refused at 0.
#[tokio::test]
async fn cache_mb_is_documented_and_accepted() {
    let help = Command::new(env!("CARGO_BIN_EXE_migrations"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    // The flag's entry: from its name to the next flag's.
    let start = help
        .find("--cache-mb <CACHE_MB>")
        .expect("--cache-mb in --help");
    let entry = &help[start..];
    let entry = &entry[..entry.find("\n      --").unwrap_or(entry.len())];
    assert!(entry.contains("embedded store"), "{entry}");
    assert!(entry.contains("[env: EMBEDDED_CACHE_MB="), "{entry}");
    assert!(entry.contains("[default: 64]"), "{entry}");

    let refused = Command::new(env!("CARGO_BIN_EXE_migrations"))
        .args(["serve", "--port", "0", "--cache-mb", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--cache-mb"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut flag = Command::new(env!("CARGO_BIN_EXE_migrations"));
    flag.args(["serve", "--port", "0", "--cache-mb", "8", "--data-dir"])
        .arg(dir.path().join("flag"));
    let mut env = Command::new(env!("CARGO_BIN_EXE_migrations"));
    env.args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path().join("env"))
        .env("EMBEDDED_CACHE_MB", "8");
    for command in [flag, env] {
        let server = spawn(command);
        let reply = client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 200);
    }
}
