//! Tenants bound to identities on AWS (docs/security.md): API Gateway v2 events with the
//! request contexts an IAM (`requestContext.authorizer.iam`) or JWT
//! (`requestContext.authorizer.jwt`) authorizer produces, through the same router
//! and middleware the Lambdas run (`api::lambda::http_app`, and the deployments
//! function's `deployments_invocation`), on an in-memory store.

use crate::logs::capture_logs;
use std::sync::Arc;

use api::{AppState, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ACME: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
const GLOBEX: &str = "11111111-1111-4111-8111-111111111111";
const SCENARIO: &str = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
const MISSING: &str = "99999999-9999-4999-8999-999999999999";
const STEP_A: &str = "00000000-0000-4000-8000-00000000000a";
const STEP_B: &str = "00000000-0000-4000-8000-00000000000b";

const RUNTIME_ROLE: &str = "arn:aws:iam::123456789012:role/runtime";
const OPS_ACME_ROLE: &str = "arn:aws:iam::123456789012:role/teams/ops-acme";

fn bindings() -> String {
    json!({
        RUNTIME_ROLE: ["*"],
        OPS_ACME_ROLE: [ACME],
        "arn:aws:iam::123456789012:user/auditor": [],
    })
    .to_string()
}

fn config(env: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("configuration")
}

fn state(config: Config) -> AppState {
    AppState::new(Arc::new(store::MemoryStore::new()), config)
}

fn iam_state() -> AppState {
    let bindings = bindings();
    state(config(&[
        ("AUTH_MODE", "iam"),
        ("IAM_TENANT_BINDINGS", &bindings),
    ]))
}

fn jwt_state() -> AppState {
    state(config(&[
        ("AUTH_MODE", "jwt"),
        ("TENANT_CLAIM", "custom:tenant_id"),
    ]))
}

/// The authorizer part of a request context.
fn iam(user_arn: &str) -> Value {
    json!({"iam": {
        "accessKey": "ASIAEXAMPLE", "accountId": "123456789012", "callerId": "AROAEXAMPLE:session",
        "cognitoIdentity": null, "principalOrgId": null,
        "userArn": user_arn, "userId": "AROAEXAMPLE:session"
    }})
}

fn jwt(claims: Value) -> Value {
    json!({"jwt": {"claims": claims, "scopes": null}})
}

/// An API Gateway HTTP API (payload 2.0) event.
fn event(
    method: &str,
    route: &str,
    path: &str,
    tenant: Option<&str>,
    authorizer: Option<Value>,
    body: Option<Value>,
) -> Value {
    let mut headers = json!({"content-type": "application/json", "user-agent": "test"});
    if let Some(t) = tenant {
        headers["x-tenant-id"] = json!(t);
    }
    let mut context = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
        "domainPrefix": "api", "requestId": "req-1", "routeKey": format!("{method} {route}"),
        "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.10", "userAgent": "test"}
    });
    if let Some(a) = authorizer {
        context["authorizer"] = a;
    }
    json!({
        "version": "2.0", "routeKey": format!("{method} {route}"), "rawPath": path,
        "rawQueryString": "", "headers": headers, "requestContext": context,
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    })
}

async fn call(app: &axum::Router, event: &Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn scenario() -> Value {
    json!({
        "name": "Support flow", "version": 1, "entry_step_id": STEP_A,
        "steps": [
            {"id": STEP_A, "name": "Welcome", "transitions": [{"to_step_id": STEP_B}]},
            {"id": STEP_B, "name": "Done", "is_terminal": true}
        ]
    })
}

fn put_scenario(tenant: Option<&str>, authorizer: Option<Value>) -> Value {
    event(
        "PUT",
        "/scenarios/{scenario_id}",
        &format!("/scenarios/{SCENARIO}"),
        tenant,
        authorizer,
        Some(scenario()),
    )
}

fn get_scenario(id: &str, tenant: Option<&str>, authorizer: Option<Value>) -> Value {
    event(
        "GET",
        "/scenarios/{scenario_id}",
        &format!("/scenarios/{id}"),
        tenant,
        authorizer,
        None,
    )
}

fn assumed(role: &str, session: &str) -> String {
    let name = role.rsplit('/').next().unwrap();
    format!("arn:aws:sts::123456789012:assumed-role/{name}/{session}")
}

#[tokio::test]
async fn iam_callers_act_only_for_their_bound_tenants() {
    let logs = capture_logs();
    let app = api::lambda::http_app(api::scenarios_router, iam_state());
    let ops = iam(&assumed(OPS_ACME_ROLE, "jane@example.com"));

    // Allowed: the role's session, for the role's tenant.
    let (status, body) = call(&app, &put_scenario(Some(ACME), Some(ops.clone()))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(&app, &get_scenario(SCENARIO, Some(ACME), Some(ops.clone()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Support flow");

    // Another tenant: 403, the same answer whether or not the object exists there.
    let runtime = iam(&assumed(RUNTIME_ROLE, "i-0123456789"));
    let (status, _) = call(&app, &put_scenario(Some(GLOBEX), Some(runtime.clone()))).await;
    assert_eq!(status, 201);
    let existing = call(
        &app,
        &get_scenario(SCENARIO, Some(GLOBEX), Some(ops.clone())),
    )
    .await;
    let missing = call(
        &app,
        &get_scenario(MISSING, Some(GLOBEX), Some(ops.clone())),
    )
    .await;
    assert_eq!(existing.0, 403, "{}", existing.1);
    assert_eq!(existing, missing);
    assert_eq!(
        existing.1,
        json!({"detail": "Caller is not authorized for this tenant"})
    );

    // A principal without a binding, or bound to nothing.
    for stranger in [
        "arn:aws:iam::123456789012:user/mallory",
        "arn:aws:iam::999999999999:role/runtime",
        "arn:aws:iam::123456789012:user/auditor",
    ] {
        let (status, body) = call(
            &app,
            &get_scenario(SCENARIO, Some(ACME), Some(iam(stranger))),
        )
        .await;
        assert_eq!(status, 403, "{stranger}: {body}");
    }

    // The decision is logged with the principal (the role, not its session name).
    let text = logs.text();
    assert!(text.contains("tenant access denied"), "{text}");
    assert!(
        text.contains("arn:aws:iam::123456789012:role/ops-acme"),
        "{text}"
    );
    assert!(text.contains("tenant access allowed"), "{text}");
    assert!(!text.contains("jane@example.com"), "{text}");
}

#[tokio::test]
async fn the_star_binding_is_every_tenant() {
    let app = api::lambda::http_app(api::scenarios_router, iam_state());
    // A role (not a session) is accepted as it is.
    for (tenant, principal) in [
        (ACME, iam(RUNTIME_ROLE)),
        (GLOBEX, iam(&assumed(RUNTIME_ROLE, "lambda-runtime"))),
    ] {
        let (status, body) = call(&app, &put_scenario(Some(tenant), Some(principal.clone()))).await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = call(&app, &get_scenario(MISSING, Some(tenant), Some(principal))).await;
        assert_eq!(status, 404, "authorised, then not found");
    }
}

#[tokio::test]
async fn iam_mode_never_falls_back_to_the_header() {
    let app = api::lambda::http_app(api::scenarios_router, iam_state());
    let token = jwt(json!({"sub": "u-1", "tenant_id": ACME}));
    for authorizer in [None, Some(token), Some(json!({"iam": {"userArn": ""}}))] {
        let (status, body) = call(&app, &get_scenario(SCENARIO, Some(ACME), authorizer)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            body["detail"],
            "Request is not signed: this API requires IAM (SigV4) authorization"
        );
    }
    // A known caller with a missing or malformed header gets the usual 422.
    let ops = iam(OPS_ACME_ROLE);
    for header in [None, Some("acme")] {
        let (status, body) = call(&app, &get_scenario(SCENARIO, header, Some(ops.clone()))).await;
        assert_eq!(status, 422, "{body}");
    }
    // Uppercase is the same tenant.
    let upper = ACME.to_uppercase();
    let (status, _) = call(&app, &get_scenario(MISSING, Some(&upper), Some(ops))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_openapi_document_needs_no_tenant_in_any_mode() {
    // The scenarios function serves `GET /openapi.json`; it reads no
    // tenant's data, so the tenant binding lets it through (API Gateway's route
    // authorization still applies). The tenant routes stay bound.
    let token = jwt(json!({"sub": "u-1", "custom:tenant_id": ACME}));
    for (state, authorizer) in [
        (iam_state(), Some(iam(OPS_ACME_ROLE))),
        (iam_state(), None),
        (jwt_state(), Some(token)),
    ] {
        let app = api::lambda::http_app(api::scenarios_router, state);
        let request = event(
            "GET",
            "/openapi.json",
            "/openapi.json",
            None,
            authorizer.clone(),
            None,
        );
        let (status, body) = call(&app, &request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["openapi"], "3.1.0");
        let (status, _) = call(&app, &get_scenario(SCENARIO, None, authorizer)).await;
        assert!(status == 403 || status == 422, "{status}");
    }
    // The other groups do not serve it (one function per route).
    let app = api::lambda::http_app(api::plans_router, iam_state());
    let request = event("GET", "/openapi.json", "/openapi.json", None, None, None);
    assert_eq!(call(&app, &request).await.0, 404);
}

#[tokio::test]
async fn jwt_callers_act_only_for_the_tenants_in_their_claim() {
    let app = api::lambda::http_app(api::scenarios_router, jwt_state());
    let acme = jwt(json!({"sub": "user-1", "custom:tenant_id": ACME}));
    let (status, body) = call(&app, &put_scenario(Some(ACME), Some(acme.clone()))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        &app,
        &get_scenario(SCENARIO, Some(ACME), Some(acme.clone())),
    )
    .await;
    assert_eq!(status, 200);

    // Wrong tenant: 403 whether or not the object exists.
    let existing = call(
        &app,
        &get_scenario(SCENARIO, Some(GLOBEX), Some(acme.clone())),
    )
    .await;
    let missing = call(&app, &get_scenario(MISSING, Some(GLOBEX), Some(acme))).await;
    assert_eq!(existing.0, 403);
    assert_eq!(existing, missing);

    // No claim, a claim that is no tenant, no token, an IAM identity: 403.
    for authorizer in [
        Some(jwt(json!({"sub": "user-2"}))),
        Some(jwt(json!({"sub": "user-2", "custom:tenant_id": "*"}))),
        Some(jwt(json!({"sub": "user-2", "tenant_id": ACME}))),
        None,
        Some(iam(RUNTIME_ROLE)),
    ] {
        let (status, body) = call(&app, &get_scenario(SCENARIO, Some(ACME), authorizer)).await;
        assert_eq!(status, 403, "{body}");
    }

    // A claim listing several tenants (API Gateway renders an array as "[a b]").
    let both = jwt(json!({"sub": "user-3", "custom:tenant_id": format!("[{ACME} {GLOBEX}]")}));
    let (status, _) = call(
        &app,
        &get_scenario(SCENARIO, Some(ACME), Some(both.clone())),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, &get_scenario(SCENARIO, Some(GLOBEX), Some(both))).await;
    assert_eq!(
        status, 404,
        "authorised for globex, where the scenario does not exist"
    );
}

#[tokio::test]
async fn header_mode_trusts_the_header_on_loopback() {
    // `cargo lambda watch`: AUTH_MODE unset, no authorizer, a loopback caller.
    let config = config(&[]);
    assert_eq!(config.auth_mode, api::auth::AuthMode::Header);
    let app = api::lambda::http_app(api::scenarios_router, state(config));
    let mut put = put_scenario(Some(ACME), None);
    put["requestContext"]["http"]["sourceIp"] = json!("127.0.0.1");
    let (status, body) = call(&app, &put).await;
    assert_eq!(status, 201, "{body}");
    let mut get = get_scenario(SCENARIO, Some(ACME), None);
    get["requestContext"]["http"]["sourceIp"] = json!("127.0.0.1");
    let (status, _) = call(&app, &get).await;
    assert_eq!(status, 200);
    // A tenant claim, when an authorizer passes one, is still enforced.
    let (status, _) = call(
        &app,
        &get_scenario(
            SCENARIO,
            Some(ACME),
            Some(jwt(json!({"tenant_id": GLOBEX}))),
        ),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn bad_auth_configuration_fails_the_cold_start() {
    let err = Config::from_lookup(|k| (k == "AUTH_MODE").then(|| "none".to_string())).unwrap_err();
    assert_eq!(err.name, "AUTH_MODE");
    let err = Config::from_lookup(|k| {
        (k == "IAM_TENANT_BINDINGS").then(|| r#"{"arn:aws:iam::1:role/r": ["acme"]}"#.to_string())
    })
    .unwrap_err();
    assert_eq!(err.name, "IAM_TENANT_BINDINGS");
}

/// The deployments function: the same binding on its HTTP path, and the
/// EventBridge sweep still dispatched.
#[tokio::test]
async fn the_deployments_function_binds_tenants_and_still_sweeps() {
    let state = iam_state();
    let app = api::lambda::http_app(api::deployments_router, state.clone());
    let invoke = |payload: Value| {
        let (state, app) = (state.clone(), app.clone());
        async move {
            let event = lambda_http::LambdaEvent::new(payload, lambda_http::Context::default());
            api::lambda::deployments_invocation(&state, app, event)
                .await
                .expect("invocation")
        }
    };
    let status = |tenant: &str, authorizer: Option<Value>| {
        event(
            "GET",
            "/migration-plans/{plan_id}/deployment-status",
            &format!("/migration-plans/{MISSING}/deployment-status"),
            Some(tenant),
            authorizer,
            None,
        )
    };
    let ops = iam(&assumed(OPS_ACME_ROLE, "s"));
    let allowed = invoke(status(ACME, Some(ops.clone()))).await;
    assert_eq!(allowed["statusCode"], 404, "{allowed}");
    let other = invoke(status(GLOBEX, Some(ops))).await;
    assert_eq!(other["statusCode"], 403, "{other}");
    let anonymous = invoke(status(ACME, None)).await;
    assert_eq!(anonymous["statusCode"], 403, "{anonymous}");
    let deploy = invoke(event(
        "POST",
        "/migration-plans/{plan_id}/deploy",
        &format!("/migration-plans/{MISSING}/deploy"),
        Some(GLOBEX),
        Some(iam(&assumed(OPS_ACME_ROLE, "s"))),
        None,
    ))
    .await;
    assert_eq!(deploy["statusCode"], 403, "{deploy}");

    let sweep = invoke(json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {}
    }))
    .await;
    assert_eq!(sweep["plans_deploying"], 0, "{sweep}");
}
