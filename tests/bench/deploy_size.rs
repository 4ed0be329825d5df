//! How long the deploy call takes as plans grow: chain scenarios of 100, 1,000
//! and 10,000 steps, 200 sessions on 20 of their steps, a plan that renames a
//! few steps, then `POST …/deploy` timed through the router, on DynamoDB Local
//! with the session counts following the table's stream (as `migrations serve`
//! and the count-sessions Lambda keep them).
//!
//! ```sh
//! eval "$(tests/services/start.sh)"
//! cargo run -p e2e --example deploy_size -- --steps 100,1000,10000 [--no-counts]
//! ```
//!
//! `--no-counts` leaves the counters empty (no stream reader), so deploy cannot
//! tell occupied steps from empty ones and probes every (step, shard) chain —
//! the deploy call as it was before it read the counts first: the baseline.

use std::sync::Arc;
use std::time::Instant;

use api::{AppState, Config};
use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use store::Store;
use tower::ServiceExt;
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SESSIONS: usize = 200;
const OCCUPIED_STEPS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut sizes = vec![100usize, 1_000, 10_000];
    let mut counts = true;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--steps" => {
                sizes = it
                    .next()
                    .ok_or("--steps needs a list")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--no-counts" => counts = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        return Err("run `eval \"$(tests/services/start.sh)\"` first".into());
    }
    for steps in sizes {
        let sdk = api::aws::sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let tables = store::testing::create_fresh_tables(&dynamo, "deploy-size").await?;
        let poller =
            store::dynamo::stream::SharedPoller::new(store::dynamo::stream::StreamPoller::new(
                dynamo.clone(),
                store::dynamo::stream::streams_client(&sdk),
                &tables,
            ));
        let plain = store::DynamoStore::new(dynamo.clone(), tables.clone());
        let store: Arc<dyn Store> = if counts {
            Arc::new(plain.with_counts_catch_up(poller))
        } else {
            Arc::new(plain)
        };
        let app = api::app(api::local_queue::InProcessQueue::attach(AppState::new(
            store,
            Config {
                main_table: tables.main.clone(),
                sessions_table: tables.sessions.clone(),
                ..Config::default()
            },
        )));
        let tenant = Uuid::new_v4();
        let scenario = Uuid::new_v4();
        let call = |method: &'static str, path: String, body: Option<Value>| {
            let app = app.clone();
            async move {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("x-tenant-id", tenant.to_string())
                    .header("content-type", "application/json")
                    .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
                    .expect("request");
                let response = app.oneshot(request).await.expect("infallible");
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
                Ok::<_, Error>((
                    status,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                ))
            }
        };
        let step =
            |n: usize| Uuid::from_u128(0x5000_0000_0000_4000_8000_0000_0000_0000 + n as u128);
        let chain = |version: i64| {
            let steps_json: Vec<Value> = (0..steps)
                .map(|i| {
                    let renamed = version == 2 && i % (steps / 10).max(1) == 1;
                    json!({
                        "id": step(i),
                        "name": if renamed { format!("Step {i} (renamed)") } else { format!("Step {i}") },
                        "transitions": if i + 1 < steps { json!([{"to_step_id": step(i + 1)}]) } else { json!([]) },
                        "is_terminal": i + 1 == steps,
                    })
                })
                .collect();
            json!({"name": "Chain", "version": version, "entry_step_id": step(0), "steps": steps_json})
        };
        let (status, body) = call("PUT", format!("/scenarios/{scenario}"), Some(chain(1))).await?;
        expect(status, 201, &body)?;
        for i in 0..SESSIONS {
            let at = (i % OCCUPIED_STEPS) * (steps / OCCUPIED_STEPS).max(1);
            let (status, body) = call(
                "PUT",
                format!("/sessions/s-{i}"),
                Some(json!({
                    "channel": "web", "active_scenario_id": scenario, "active_scenario_version": 1,
                    "active_step_id": step(at), "step_history": [], "variables": {}
                })),
            )
            .await?;
            expect(status, 201, &body)?;
        }
        let started = Instant::now();
        let (status, body) = call(
            "POST",
            format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": chain(2)})),
        )
        .await?;
        expect(status, 201, &body)?;
        let plan_ms = started.elapsed().as_millis();
        let plan_id = body["id"].as_str().ok_or("plan id")?.to_string();
        let (status, body) =
            call("POST", format!("/migration-plans/{plan_id}/approve"), None).await?;
        expect(status, 200, &body)?;
        let started = Instant::now();
        let (status, body) =
            call("POST", format!("/migration-plans/{plan_id}/deploy"), None).await?;
        let deploy_ms = started.elapsed().as_millis();
        println!(
            "{steps} steps, {SESSIONS} sessions on {OCCUPIED_STEPS} steps, counts {}: plan {plan_ms} ms; deploy answered {status} in {deploy_ms} ms ({} marked, status {})",
            if counts { "read" } else { "empty" },
            body["sessions_marked"],
            body["status"]
        );
        store::testing::drop_tables(&dynamo, &tables).await?;
    }
    Ok(())
}

fn expect(status: u16, want: u16, body: &Value) -> Result<(), Error> {
    if status == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {status}: {body}").into())
    }
}
