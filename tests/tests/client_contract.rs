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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use api::AppState;
use chrono::Utc;
use focal_migrations_client::model::*;
use focal_migrations_client::operations::OPERATIONS;
use focal_migrations_client::{
    Client, Decision, DiagramQuery, ErrorBody, Exchange, ListPlans, Page, Precondition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::common::*;

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

/// The document's component schemas, strict: an object schema that does not
/// say otherwise admits only the properties it names (an `allOf` is merged
/// first, so its members do not reject each other's properties).
fn strict_components(document: &Value) -> Value {
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    let resolve = |schema: &Value| -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().expect("a schema name");
                schemas[name].clone()
            }
            None => schema.clone(),
        }
    };
    let mut strict = Map::new();
    for (name, schema) in schemas {
        let mut schema = schema.clone();
        if let Some(members) = schema.get("allOf").and_then(Value::as_array).cloned() {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for member in members.iter().map(resolve) {
                if let Some(p) = member.get("properties").and_then(Value::as_object) {
                    properties.extend(p.clone());
                }
                if let Some(r) = member.get("required").and_then(Value::as_array) {
                    required.extend(r.clone());
                }
            }
            schema = json!({"type": "object", "properties": properties, "required": required});
        }
        if schema.get("properties").is_some() && schema.get("additionalProperties").is_none() {
            schema["additionalProperties"] = json!(false);
        }
        strict.insert(name.clone(), schema);
    }
    json!({ "schemas": strict })
}

/// Checks values against one schema of the document (its `$ref`s resolved
/// against the strict components).
struct Schemas {
    components: Value,
}

impl Schemas {
    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.components.clone());
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        let validator = jsonschema::validator_for(&Value::Object(root)).expect("a valid schema");
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect()
    }

    fn named(&self, name: &str, instance: &Value) -> Vec<String> {
        self.errors(
            &json!({"$ref": format!("#/components/schemas/{name}")}),
            instance,
        )
    }
}

/// Where `original` has a value (not null) that `roundtrip` lacks or changed:
/// what a client type lost.
fn lost(original: &Value, roundtrip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, roundtrip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    _ if value.is_null() => {}
                    Some(other) => lost(value, other, &here, out),
                    None => out.push(format!("{here} missing")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
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

fn round_trip<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<Value, String> {
    let typed: T = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The body of a successful answer read into the client's type for the
/// operation and written back; `None` for an answer that is not JSON.
fn client_round_trip(operation: &str, body: &[u8]) -> Option<Result<Value, String>> {
    Some(match operation {
        "health" => round_trip::<Health>(body),
        "openapi_json" => round_trip::<Value>(body),
        "put_scenario" | "get_scenario" | "get_scenario_version" => {
            round_trip::<ScenarioVersion>(body)
        }
        "put_session" | "get_session" => round_trip::<Session>(body),
        "reconcile_session" => round_trip::<ReconciliationResult>(body),
        "report_outcome" => round_trip::<OutcomeAnswer>(body),
        "create_plan" | "get_plan" | "put_policies" | "approve_plan" | "reject_plan" => {
            round_trip::<MigrationPlan>(body)
        }
        "list_plans" => round_trip::<PlanList>(body),
        "get_summary" => round_trip::<MigrationSummary>(body),
        "get_forecast" => round_trip::<PlanForecast>(body),
        "get_anchors" => round_trip::<AnchorPage>(body),
        "get_events" => round_trip::<EventList>(body),
        "deploy_plan" => round_trip::<DeploymentResult>(body),
        "deployment_status" | "pause_plan" => round_trip::<DeploymentStatus>(body),
        "resume_plan" | "withdraw_plan" => round_trip::<DeploymentResult>(body),
        "plan_diagram" => return None,
        other => Err(format!("no client type for {other}")),
    })
}

/// `/sessions/{session_id}` matches `/sessions/wa-1`.
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Every problem one exchange has with the document.
fn check_exchange(document: &Value, schemas: &Schemas, x: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    let op = x.operation;
    let method = op.method.to_ascii_lowercase();
    let Some(spec) = document["paths"][op.path].get(&method) else {
        return vec![format!("{} {}: not in the document", op.method, op.path)];
    };
    let name = op.id;
    if !path_matches(op.path, &x.path) {
        problems.push(format!("{name}: sent to {} for {}", x.path, op.path));
    }
    let declared: BTreeSet<&str> = spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for (query, _) in &x.query {
        if !declared.contains(query) {
            problems.push(format!("{name}: query parameter {query} is not declared"));
        }
    }
    let request_schema = &spec["requestBody"]["content"]["application/json"]["schema"];
    match (&x.request_body, request_schema.is_null()) {
        (Some(body), false) => {
            for e in schemas.errors(request_schema, body) {
                problems.push(format!("{name} request: {e}"));
            }
        }
        (Some(_), true) => {
            problems.push(format!("{name}: sent a body the operation takes none of"))
        }
        (None, false) if spec["requestBody"]["required"] == true => {
            problems.push(format!("{name}: sent no body"))
        }
        (None, _) => {}
    }
    let status = x.status.to_string();
    let Some(response) = spec["responses"].get(&status) else {
        problems.push(format!("{name}: status {status} is not in the document"));
        return problems;
    };
    let Some((content_type, content)) = response["content"]
        .as_object()
        .and_then(|c| c.iter().next())
    else {
        return problems;
    };
    if !x
        .content_type
        .as_deref()
        .is_some_and(|sent| sent.starts_with(content_type.as_str()))
    {
        problems.push(format!(
            "{name}: answered {:?}, the document says {content_type}",
            x.content_type
        ));
    }
    if content_type != "application/json" {
        return problems;
    }
    let body: Value = match serde_json::from_slice(&x.response_body) {
        Ok(body) => body,
        Err(e) => return vec![format!("{name}: answer is not JSON: {e}")],
    };
    for e in schemas.errors(&content["schema"], &body) {
        problems.push(format!("{name} {status} answer: {e}"));
    }
    if (200..300).contains(&x.status) {
        match client_round_trip(name, &x.response_body) {
            Some(Ok(again)) => {
                let mut missing = Vec::new();
                lost(&body, &again, "", &mut missing);
                for m in missing {
                    problems.push(format!("{name}: the client type lost {m}"));
                }
                // What the client writes back is what the document describes.
                for e in schemas.errors(&content["schema"], &again) {
                    problems.push(format!("{name}: the client's type: {e}"));
                }
            }
            Some(Err(e)) => {
                problems.push(format!("{name}: the client cannot read the answer: {e}"))
            }
            None => {}
        }
    }
    problems
}

fn step_input(name: &str, id: Uuid, next: Option<Uuid>, collects: &[&str]) -> StepInput {
    StepInput {
        checkpoint_description: None,
        collects_profile_fields: collects.iter().map(|f| f.to_string()).collect(),
        description: Some(format!("{name}, described")),
        id,
        is_checkpoint: false,
        is_entry: false,
        is_required_action: false,
        is_terminal: next.is_none(),
        name: name.into(),
        performs_action: false,
        rule_ids: vec![],
        transitions: next
            .map(|to| TransitionInput {
                condition_fields: vec![],
                condition_text: Some(String::new()),
                priority: 0,
                to_step_id: to,
            })
            .into_iter()
            .collect(),
    }
}

/// V1: Welcome(1) → Collect email(2) → Done(3); V2 inserts Check age(4), collecting `age`.
fn flow(version: i64) -> ScenarioInput {
    let steps = if version == 1 {
        vec![
            step_input("Welcome", step(1), Some(step(2)), &[]),
            step_input("Collect email", step(2), Some(step(3)), &["email"]),
            step_input("Done", step(3), None, &[]),
        ]
    } else {
        vec![
            step_input("Welcome", step(1), Some(step(4)), &[]),
            step_input("Check age", step(4), Some(step(2)), &["age"]),
            step_input("Collect email", step(2), Some(step(3)), &["email"]),
            step_input("Done", step(3), None, &[]),
        ]
    };
    ScenarioInput {
        description: Some("the client's contract flow".into()),
        entry_step_id: step(1),
        name: "Support flow".into(),
        steps,
        version,
    }
}

/// Every call of the client, in the order a tenant's life makes them.
async fn call_everything(client: &Client) {
    let health = client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    let served = client.openapi_document().await.expect("openapi");
    assert!(served["paths"].is_object());

    let scenario = Uuid::new_v4();
    client.put_scenario(scenario, &flow(1)).await.expect("v1");
    assert_eq!(
        client
            .get_scenario(scenario)
            .await
            .expect("current")
            .version,
        1
    );
    // No partial rollout: every session starts on the current version.
    assert_eq!(
        client
            .get_scenario_for_session(scenario, "new-session")
            .await
            .expect("for a session")
            .version,
        1
    );
    let v1 = client
        .get_scenario_version(scenario, 1)
        .await
        .expect("version 1");
    assert_eq!(v1.steps.len(), 3);

    let mut waiting = SessionInput::at("whatsapp", scenario, 1, step(2));
    waiting.customer_id = Some("cust-1".into());
    waiting.variables.insert("email".into(), json!("a@b.c"));
    waiting.step_history.push(StepVisit {
        checkpoint_description: None,
        is_checkpoint: false,
        step_id: step(1),
        step_name: Some("Welcome".into()),
        visited_at: Utc::now(),
    });
    let created = client.create_session("c-1", &waiting).await.expect("c-1");
    assert_eq!(created.revision, Some(1));
    client
        .put_session(
            "c-2",
            &SessionInput::at("web", scenario, 1, step(3)),
            Precondition::None,
        )
        .await
        .expect("c-2");
    let updated = client
        .update_session("c-1", |s| {
            s.variables.insert("nickname".into(), json!("Al"));
        })
        .await
        .expect("read-modify-write");
    assert_eq!(updated.revision, Some(2));
    let read = client.get_session("c-1").await.expect("c-1 read");
    assert_eq!(read.value.variables["nickname"], json!("Al"));
    let missing = client.get_session("nobody").await.expect_err("404");
    assert!(missing.is_not_found());
    let invalid = client
        .reconcile_on_message("not a valid id!", &BTreeMap::new())
        .await
        .expect_err("422");
    assert!(
        matches!(
            invalid,
            focal_migrations_client::Error::Status {
                status: 422,
                body: ErrorBody::Validation(_),
                ..
            }
        ),
        "{invalid}"
    );

    let request = GenerateMigrationPlanRequest {
        created_by: Some("contract@example.com".into()),
        new_scenario: flow(2),
    };
    let plan = client.create_plan(scenario, &request).await.expect("plan");
    let listed = client
        .list_plans(&ListPlans {
            scenario_id: Some(scenario),
            status: Some(PlanStatus::Pending),
            limit: Some(10),
            next_token: None,
        })
        .await
        .expect("list");
    assert_eq!(listed.plans.len(), 1);
    assert_eq!(client.get_plan(plan.id).await.expect("plan").id, plan.id);
    let summary = client.get_summary(plan.id).await.expect("summary");
    assert!(summary.total_anchors >= 2);
    let forecast = client.get_forecast(plan.id).await.expect("forecast");
    assert!(forecast.exact);
    let anchors = client
        .get_anchors(
            plan.id,
            &Page {
                limit: Some(10),
                next_token: None,
            },
        )
        .await
        .expect("anchors");
    assert!(!anchors.anchors.is_empty());
    let mut policies = plan.anchor_policies.clone();
    let (_, policy) = policies.iter_mut().next().expect("a policy");
    policy.scope_filter = Some(ScopeFilter {
        include_channels: vec!["whatsapp".into(), "web".into()],
        ..ScopeFilter::default()
    });
    client
        .put_policies(plan.id, &UpdatePoliciesRequest { policies })
        .await
        .expect("policies");
    let diagram = client
        .plan_diagram(
            plan.id,
            &DiagramQuery {
                side: Some(DiagramSide::V2),
                ..DiagramQuery::default()
            },
        )
        .await
        .expect("diagram");
    assert!(diagram.contains("<svg"), "{diagram}");
    client
        .approve_plan(
            plan.id,
            &ApprovePlanRequest {
                approved_by: Some("lead".into()),
            },
        )
        .await
        .expect("approve");
    // With a guard, so that the body is checked against the document too.
    let guard = RolloutGuard {
        max_exit_rate: Some(0.5),
        max_checkpoint_block_rate: None,
        max_reported_failure_rate: None,
        min_sessions: 100,
    };
    let deployed = client
        .deploy_plan_with(
            plan.id,
            &DeployRequest {
                percent: None,
                guard: Some(guard.clone()),
            },
        )
        .await
        .expect("deploy");
    assert_eq!(deployed.sessions_marked, 2);
    let status = client
        .deployment_status(plan.id)
        .await
        .expect("deployment status");
    assert_eq!(status.status, PlanStatus::Deployed);
    assert_eq!(status.guard, Some(guard));
    let paused = client.pause_plan(plan.id).await.expect("pause");
    assert_eq!(paused.status, PlanStatus::Paused);
    let resumed = client.resume_plan(plan.id).await.expect("resume");
    assert_eq!(resumed.status, PlanStatus::Deployed);

    let preview = client
        .reconcile(
            "c-1",
            &ReconcileRequest {
                dry_run: true,
                known_fields: BTreeMap::new(),
            },
        )
        .await
        .expect("dry run");
    assert_eq!(preview.value.action, ReconciliationAction::Collect);
    let asked = client
        .reconcile_on_message("c-1", &BTreeMap::new())
        .await
        .expect("reconcile");
    assert!(matches!(asked.decision, Decision::Collect { ref fields, .. } if fields == &["age"]));
    let known = BTreeMap::from([(
        "age".to_string(),
        KnownField::Candidate {
            value: json!(34),
            source: Some("llm".into()),
            confidence: Some(0.95),
        },
    )]);
    let moved = client
        .reconcile_on_message("c-1", &known)
        .await
        .expect("reconcile with the age");
    assert_eq!(moved.decision, Decision::Continue);
    let events = client
        .get_events(plan.id, &Page::default())
        .await
        .expect("events");
    assert_eq!(events.events.len(), 1);
    // How c-1 fared after its migration: counted once on this plan.
    let failed = OutcomeRequest {
        ok: false,
        reason: Some("abandoned at the new age question".into()),
    };
    let report = client
        .report_outcome("c-1", &failed)
        .await
        .expect("outcome");
    assert!(report.counted, "{report:?}");
    assert_eq!(report.plan_id, Some(plan.id));
    let again = client
        .report_outcome("c-1", &failed)
        .await
        .expect("outcome again");
    assert!(!again.counted, "{again:?}");
    let status = client.deployment_status(plan.id).await.expect("status");
    assert_eq!((status.reported_outcomes, status.reported_failures), (1, 1));
    // Taken back: c-1 migrated and stays, c-2's flag is withdrawn.
    let withdrawn = client.withdraw_plan(plan.id).await.expect("withdraw");
    assert_eq!(withdrawn.status, PlanStatus::Withdrawn);
    let status = client.deployment_status(plan.id).await.expect("status");
    assert_eq!((status.migrations_applied, status.flags_withdrawn), (1, 1));

    // A second flow, whose plan is rejected.
    let other = Uuid::new_v4();
    client
        .put_scenario(other, &flow(1))
        .await
        .expect("other v1");
    let doomed = client
        .create_plan(other, &request)
        .await
        .expect("other plan");
    let rejected = client
        .reject_plan(
            doomed.id,
            &RejectPlanRequest {
                reason: Some("not now".into()),
                rejected_by: Some("lead".into()),
            },
        )
        .await
        .expect("reject");
    assert_eq!(rejected.status, PlanStatus::Rejected);
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
