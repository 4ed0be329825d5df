//! Each endpoint group's router in process (`tower::ServiceExt::oneshot`) on the
//! in-memory store: one success path and one 4xx path per group, asserting the
//! status and the whole JSON body where it is deterministic.

use std::sync::Arc;

use api::{AppState, Config};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";

fn state() -> AppState {
    AppState::new(Arc::new(store::MemoryStore::new()), Config::default())
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-tenant-id", TENANT)
        .header("content-type", "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn step(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).expect("uuid")
}

fn step_json(n: u32, name: &str, to: &[u32]) -> Value {
    json!({
        "id": step(n),
        "name": name,
        "transitions": to.iter().map(|t| json!({"to_step_id": step(*t), "condition_text": ""})).collect::<Vec<_>>(),
        "rule_ids": [],
        "collects_profile_fields": [],
        "is_checkpoint": false,
        "is_entry": n == 1,
        "is_terminal": to.is_empty(),
        "performs_action": false,
        "is_required_action": false
    })
}

/// Welcome(1) → Collect email(2) → Done(3); version 2 inserts Check age(4).
fn scenario(version: i64) -> Value {
    let steps = if version == 1 {
        vec![
            step_json(1, "Welcome", &[2]),
            step_json(2, "Collect email", &[3]),
            step_json(3, "Done", &[]),
        ]
    } else {
        vec![
            step_json(1, "Welcome", &[4]),
            step_json(4, "Check age", &[2]),
            step_json(2, "Collect email", &[3]),
            step_json(3, "Done", &[]),
        ]
    };
    json!({"name": "Support flow", "version": version, "entry_step_id": step(1), "steps": steps})
}

fn uuid_error(name: &str) -> Value {
    json!({"detail": [{"loc": ["path", name], "msg": "Input should be a valid UUID", "type": "uuid_parsing"}]})
}

#[tokio::test]
async fn health_answers_ok_and_unknown_routes_404() {
    let router = api::finish(api::health_router(), state());
    assert_eq!(
        call(&router, "GET", "/health", None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        call(&router, "GET", "/nowhere", None).await,
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
}

#[tokio::test]
async fn scenarios_router_creates_reads_and_refuses() {
    let router = api::finish(api::scenarios_router(), state());
    let id = Uuid::new_v4();
    let (status, created) = call(
        &router,
        "PUT",
        &format!("/scenarios/{id}"),
        Some(scenario(1)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["id"].clone(), created["version"].clone()),
        (json!(id), json!(1))
    );
    let (status, read) = call(&router, "GET", &format!("/scenarios/{id}/versions/1"), None).await;
    assert_eq!((status, read), (StatusCode::OK, created));

    // 4xx: a second PUT, a missing scenario, malformed path parameters.
    let (status, body) = call(
        &router,
        "PUT",
        &format!("/scenarios/{id}"),
        Some(scenario(1)),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"detail": "Scenario already exists; new versions arrive through a deployed migration plan"})
        )
    );
    let missing = Uuid::new_v4();
    assert_eq!(
        call(&router, "GET", &format!("/scenarios/{missing}"), None).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Scenario {missing} not found")})
        )
    );
    assert_eq!(
        call(&router, "GET", "/scenarios/not-a-uuid", None).await,
        (StatusCode::UNPROCESSABLE_ENTITY, uuid_error("scenario_id"))
    );
    assert_eq!(
        call(
            &router,
            "GET",
            &format!("/scenarios/{id}/versions/one"),
            None
        )
        .await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["path", "version"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})
        )
    );
    // A document problem found by the service is located in the body.
    let mut no_steps = scenario(1);
    no_steps["entry_step_id"] = json!(Uuid::new_v4());
    let (status, body) = call(
        &router,
        "PUT",
        &format!("/scenarios/{}", Uuid::new_v4()),
        Some(no_steps),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"][0], "body", "{body}");
}

#[tokio::test]
async fn sessions_router_records_reads_and_refuses() {
    let state = state();
    let scenarios = api::finish(api::scenarios_router(), state.clone());
    let router = api::finish(api::sessions_router(), state);
    let scenario_id = Uuid::new_v4();
    call(
        &scenarios,
        "PUT",
        &format!("/scenarios/{scenario_id}"),
        Some(scenario(1)),
    )
    .await;
    let session = json!({
        "channel": "web",
        "active_scenario_id": scenario_id,
        "active_scenario_version": 1,
        "active_step_id": step(2),
        "step_history": [],
        "variables": {}
    });
    let (status, written) = call(&router, "PUT", "/sessions/web:s-1", Some(session.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    assert_eq!(written["session_id"], "web:s-1");
    assert_eq!(written["active_step_id"], json!(step(2)));
    let (status, read) = call(&router, "GET", "/sessions/web:s-1", None).await;
    assert_eq!((status, read), (StatusCode::OK, written));

    // 4xx: the service's field problem is located in the body; a bad id in the path.
    let mut unknown_step = session.clone();
    unknown_step["active_step_id"] = json!(step(9));
    assert_eq!(
        call(&router, "PUT", "/sessions/web:s-2", Some(unknown_step)).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["body", "active_step_id"], "msg": "step does not exist in that scenario version", "type": "value_error.unknown_step"}]})
        )
    );
    assert_eq!(
        call(&router, "GET", "/sessions/a%20b", None).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["path", "session_id"], "msg": "String should match pattern '^[A-Za-z0-9._:@+=~|-]{1,256}$' (letters, digits and . _ - : @ + = ~ |)", "type": "string_pattern_mismatch"}]})
        )
    );
    assert_eq!(
        call(&router, "GET", "/sessions/nobody", None).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Session nobody not found"})
        )
    );
}

/// A scenario at version 1 and a pending plan to version 2, through the routers.
async fn pending_plan(state: &AppState) -> Uuid {
    let scenarios = api::finish(api::scenarios_router(), state.clone());
    let plans = api::finish(api::plans_router(), state.clone());
    let scenario_id = Uuid::new_v4();
    call(
        &scenarios,
        "PUT",
        &format!("/scenarios/{scenario_id}"),
        Some(scenario(1)),
    )
    .await;
    let (status, plan) = call(
        &plans,
        "POST",
        &format!("/scenarios/{scenario_id}/migration-plan"),
        Some(json!({"new_scenario": scenario(2)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    plan["id"].as_str().expect("plan id").parse().expect("uuid")
}

#[tokio::test]
async fn plans_router_generates_lists_approves_and_refuses() {
    let state = state();
    let router = api::finish(api::plans_router(), state.clone());
    let plan_id = pending_plan(&state).await;
    let (status, list) = call(&router, "GET", "/migration-plans", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["plans"][0]["id"], json!(plan_id));
    let (status, approved) = call(
        &router,
        "POST",
        &format!("/migration-plans/{plan_id}/approve"),
        Some(json!({"approved_by": "lead"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (approved["status"].clone(), approved["approved_by"].clone()),
        (json!("approved"), json!("lead"))
    );

    // 4xx: a listing option out of range, a lifecycle conflict, a bad plan id.
    assert_eq!(
        call(&router, "GET", "/migration-plans?limit=0", None).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"}]})
        )
    );
    assert_eq!(
        call(
            &router,
            "POST",
            &format!("/migration-plans/{plan_id}/reject"),
            None
        )
        .await,
        (
            StatusCode::CONFLICT,
            json!({"detail": "Plan is approved; only pending plans can be rejected"})
        )
    );
    assert_eq!(
        call(&router, "GET", "/migration-plans/42/summary", None).await,
        (StatusCode::UNPROCESSABLE_ENTITY, uuid_error("plan_id"))
    );
    // Policies of a plan no longer pending.
    let (status, body) = call(
        &router,
        "PUT",
        &format!("/migration-plans/{plan_id}/policies"),
        Some(json!({"policies": {}})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"detail": "Plan is approved; only pending plans can be edited"})
        )
    );
}

#[tokio::test]
async fn plans_router_locates_policy_problems_in_the_body() {
    let state = state();
    let router = api::finish(api::plans_router(), state.clone());
    let plan_id = pending_plan(&state).await;
    let policy = json!({"anchor_content_hash": "nohash", "anchor_name": "x"});
    let (status, body) = call(
        &router,
        "PUT",
        &format!("/migration-plans/{plan_id}/policies"),
        Some(json!({"policies": {"nohash": policy}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["detail"][0],
        json!({"loc": ["body", "policies", "nohash"], "msg": "unknown anchor content hash", "type": "value_error.unknown_anchor"}),
        "{body}"
    );
}

#[tokio::test]
async fn deployments_router_deploys_and_refuses() {
    let state = state();
    let plans = api::finish(api::plans_router(), state.clone());
    let router = api::finish(api::deployments_router(), state.clone());
    let plan_id = pending_plan(&state).await;

    // 4xx first: a pending plan cannot deploy; an unknown plan has no status.
    assert_eq!(
        call(
            &router,
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            None
        )
        .await,
        (
            StatusCode::CONFLICT,
            json!({"detail": "Plan is pending; only approved plans can be deployed"})
        )
    );
    let missing = Uuid::new_v4();
    assert_eq!(
        call(
            &router,
            "GET",
            &format!("/migration-plans/{missing}/deployment-status"),
            None
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Migration plan {missing} not found")})
        )
    );

    // Success: approved, then deployed inline (no sessions to mark).
    call(
        &plans,
        "POST",
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await;
    let (status, deployed) = call(
        &router,
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    assert_eq!(deployed["status"], "deployed");
    assert_eq!(deployed["sessions_marked"], 0);
    let (status, current) = call(
        &router,
        "GET",
        &format!("/migration-plans/{plan_id}/deployment-status"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{current}");
    assert_eq!(
        (current["plan_id"].clone(), current["status"].clone()),
        (json!(plan_id), json!("deployed"))
    );
}

#[tokio::test]
async fn a_plan_too_large_to_return_whole_carries_the_token_of_its_next_anchors() {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    let roomy = AppState::new(store.clone(), Config::default());
    let plan_id = pending_plan(&roomy).await;
    let path = format!("/migration-plans/{plan_id}");
    let (status, whole) = call(&api::finish(api::plans_router(), roomy), "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert!(whole.get("anchors_next_token").is_none(), "{whole}");
    let anchors = whole["transformation_map"]["anchors"]
        .as_array()
        .expect("anchors");
    assert!(anchors.len() >= 2, "{whole}");

    // The same plan through a server whose responses hold almost nothing: the
    // first anchor, the plan's other fields, and the token beside them.
    let cramped = AppState::new(
        store,
        Config {
            max_response_bytes: 1,
            ..Config::default()
        },
    );
    let plans = api::finish(api::plans_router(), cramped);
    let (status, paged) = call(&plans, "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{paged}");
    assert_eq!(paged["id"], whole["id"]);
    assert_eq!(paged["transformation_map"]["anchors"], json!([anchors[0]]));
    let token = paged["anchors_next_token"].as_str().expect("a token");
    let (status, page) = call(
        &plans,
        "GET",
        &format!("{path}/anchors?next_token={token}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["anchors"][0], anchors[1], "{page}");
}
