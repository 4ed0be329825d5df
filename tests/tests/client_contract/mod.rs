//! The runtime client (shared/client) cannot drift from the API: against the
//! router `migrations serve` runs (with the console's routes), every call of
//! the client is made once and each exchange is checked against the OpenAPI
//! document the server serves:
//!
//! - the client's operations and the document's are the same set (id, method,
//!   path template), and each call reached its operation's path with declared
//!   query parameters only;
//! - every request body the client sent validates against the operation's
//!   request schema, made strict (no property the schema does not name);
//! - every answer's status is one the document lists; its body validates
//!   against the operation's response schema, and survives a round trip
//!   through the client's type: a field the server sends that the client lost
//!   or renamed shows as missing, and a field only the client has fails the
//!   strict schema;
//! - every enum value of the document reads into the client's enum and back.

mod calls;
mod schemas;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use api::AppState;
use focal_migrations_client::model::*;
use focal_migrations_client::operations::OPERATIONS;
use focal_migrations_client::{Client, Exchange};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::*;

use calls::*;
use schemas::*;

/// The router of `migrations serve` (the API and the console) on the embedded
/// store, over HTTP on a free port: its base URL, and what must outlive it.
async fn serve_everything() -> (String, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let (store, dir, _) = fresh_store_and_tables(Backend::Embedded)
        .await
        .expect("the embedded store");
    let state = api::local_queue::InProcessQueue::attach(AppState::new(store, test_config()));
    let app = api::routes::app_with(state.clone(), console::openapi).merge(console::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, server, dir.expect("the store's folder"))
}

#[test]
fn the_round_trip_check_sees_a_renamed_field() {
    let mut out = Vec::new();
    lost(
        &json!({"session_id": "s", "revision": 3, "pending_migration": null}),
        &json!({"sessionId": "s", "revision": 3}),
        "",
        &mut out,
    );
    assert_eq!(out, vec![".session_id missing".to_string()]);
}

fn enum_round_trips<T: DeserializeOwned + Serialize>(
    schemas: &Schemas,
    document: &Value,
    name: &str,
    problems: &mut Vec<String>,
) {
    let values = document["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is an enum"));
    for value in values {
        match serde_json::from_value::<T>(value.clone()) {
            Ok(typed) => {
                let again = serde_json::to_value(&typed).expect("serializes");
                if &again != value {
                    problems.push(format!("{name}: {value} came back as {again}"));
                }
                problems.extend(schemas.named(name, &again));
            }
            Err(e) => problems.push(format!("{name}: the client does not know {value}: {e}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_the_document_agree() {
    let (base, server, _dir) = serve_everything().await;
    let exchanges: Arc<Mutex<Vec<Exchange>>> = Arc::default();
    let seen = exchanges.clone();
    let client = Client::builder(&base, Uuid::new_v4())
        .observer(move |x| seen.lock().unwrap().push(x.clone()))
        .build()
        .expect("client");
    let document = client.openapi_document().await.expect("the document");

    // The same operations on both sides.
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("path item") {
            let id = spec["operationId"]
                .as_str()
                .expect("operationId")
                .to_owned();
            documented.insert((id, method.to_ascii_uppercase(), path.clone()));
        }
    }
    let called: BTreeSet<(String, String, String)> = OPERATIONS
        .iter()
        .map(|o| (o.id.to_owned(), o.method.to_owned(), o.path.to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&called).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "operations of the document the client does not call"
    );
    assert_eq!(
        called.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "operations the client calls that the document does not have"
    );

    call_everything(&client).await;
    server.abort();

    let schemas = Schemas {
        components: strict_components(&document),
    };
    let exchanges = exchanges.lock().unwrap().clone();
    let mut problems = Vec::new();
    for x in &exchanges {
        problems.extend(check_exchange(&document, &schemas, x));
    }
    enum_round_trips::<PlanStatus>(&schemas, &document, "PlanStatus", &mut problems);
    enum_round_trips::<ReconciliationAction>(
        &schemas,
        &document,
        "ReconciliationAction",
        &mut problems,
    );
    enum_round_trips::<MigrationScenario>(&schemas, &document, "MigrationScenario", &mut problems);
    enum_round_trips::<Severity>(&schemas, &document, "Severity", &mut problems);
    enum_round_trips::<StepAttribute>(&schemas, &document, "StepAttribute", &mut problems);
    enum_round_trips::<StratumKind>(&schemas, &document, "StratumKind", &mut problems);
    enum_round_trips::<TransitionChangeType>(
        &schemas,
        &document,
        "TransitionChangeType",
        &mut problems,
    );
    enum_round_trips::<EditedStepBehavior>(
        &schemas,
        &document,
        "EditedStepBehavior",
        &mut problems,
    );
    enum_round_trips::<DiagramSide>(&schemas, &document, "DiagramSide", &mut problems);
    // A sampled forecast's counts, which a small live plan never shows.
    let sampled = serde_json::to_value(ForecastCount::Estimated(Estimate {
        estimate: 10,
        low: 5,
        high: 15,
    }))
    .expect("serializes");
    problems.extend(schemas.named("ForecastCount", &sampled));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every call was made and checked, the error answers among them.
    let exercised: BTreeSet<&str> = exchanges.iter().map(|x| x.operation.id).collect();
    let all: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.id).collect();
    assert_eq!(exercised, all);
    let statuses: BTreeSet<u16> = exchanges.iter().map(|x| x.status).collect();
    assert!(
        statuses.contains(&404) && statuses.contains(&422),
        "{statuses:?}"
    );
}

#[test]
fn a_strict_schema_refuses_a_renamed_request_field() {
    let document = json!({"components": {"schemas": {
        "Thing": {"type": "object", "properties": {"known_fields": {"type": "object"}}}
    }}});
    let schemas = Schemas {
        components: strict_components(&document),
    };
    assert!(
        schemas
            .named("Thing", &json!({"known_fields": {}}))
            .is_empty()
    );
    assert!(
        !schemas
            .named("Thing", &json!({"knownFields": {}}))
            .is_empty()
    );
}
