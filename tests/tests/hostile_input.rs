//! Hostile and careless input over HTTP, on the embedded store and DynamoDB Local:
//! for every route, wrong-shape, malformed, oversized, deeply nested and boundary
//! requests each get a 4xx JSON answer, the server keeps serving, and nothing
//! observable changes (everything is read before and after).

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [every_route_refuses_bad_input_and_changes_nothing],
}

struct World {
    scenario: Uuid,
    plan_id: String,
    anchor: String,
}

async fn world(app: &TestApp) -> World {
    let scenario = Uuid::new_v4();
    let r = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .call(
            "PUT",
            "/sessions/s-1",
            Some(session_at(scenario, 1, step(2), "web")),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(r.status, 201);
    let plan_id = r.body["id"].as_str().expect("id").to_owned();
    let anchor = r.body["transformation_map"]["anchors"][0]["anchor_content_hash"]
        .as_str()
        .expect("anchor")
        .to_owned();
    World {
        scenario,
        plan_id,
        anchor,
    }
}

/// Everything a client can read about the world.
async fn snapshot(app: &TestApp, w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/scenarios/{}", w.scenario),
        "/sessions/s-1".to_owned(),
        format!("/migration-plans/{}", w.plan_id),
        format!("/migration-plans/{}/deployment-status", w.plan_id),
        format!("/migration-plans?scenario_id={}", w.scenario),
    ] {
        let r = app.call("GET", &path, None).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        out.push(r.body);
    }
    out
}

/// Send raw bytes (not necessarily JSON) with the tenant header.
async fn send(app: &TestApp, method: &str, path: &str, body: Option<Vec<u8>>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    // A body refused before it is read (413) ends its connection: send such
    // bodies on a connection of their own, so no later request meets it pooled.
    let oversized = body.as_ref().is_some_and(|b| b.len() > 1024 * 1024);
    let client = if oversized {
        reqwest::Client::new()
    } else {
        app.client.clone()
    };
    let mut request = client
        .request(method, format!("{}{}", app.base, path))
        .header("X-Tenant-ID", app.tenant.to_string())
        .header("Content-Type", "application/json");
    if let Some(body) = body {
        request = request.body(body);
    }
    app.raw(request).await
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

async fn every_route_refuses_bad_input_and_changes_nothing(app: TestApp) {
    let w = world(&app).await;
    let before = snapshot(&app, &w).await;
    let (sid, pid, hash) = (w.scenario, w.plan_id.clone(), w.anchor.clone());
    let j = |v: Value| Some(v.to_string().into_bytes());
    let b = |s: &str| Some(s.as_bytes().to_vec());
    let policy = |filter: Value| {
        json!({"policies": {hash.clone(): {"anchor_content_hash": hash, "anchor_name": "x",
            "scope_filter": filter}}})
    };
    let other_scenario = Uuid::new_v4();
    let cases: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        // Sequences where objects belong (serde's sequence form of structs).
        (
            "POST",
            format!("/migration-plans/{pid}/approve"),
            j(json!(["mallory"])),
        ),
        (
            "POST",
            format!("/migration-plans/{pid}/approve"),
            j(json!([])),
        ),
        (
            "POST",
            format!("/migration-plans/{pid}/reject"),
            j(json!(["m", "because"])),
        ),
        (
            "PUT",
            format!("/scenarios/{other_scenario}"),
            j(json!(["Support flow", 1])),
        ),
        (
            "PUT",
            "/sessions/s-2".into(),
            j(json!(["web", null, sid, 1, step(2)])),
        ),
        (
            "POST",
            format!("/scenarios/{sid}/migration-plan"),
            j(json!([scenario_v2()])),
        ),
        (
            "POST",
            format!("/scenarios/{sid}/migration-plan"),
            j(json!({"new_scenario": ["x", null, 2]})),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(json!([])),
        ),
        ("POST", "/sessions/s-1/reconcile".into(), j(json!([{}]))),
        // Malformed JSON, trailing garbage, not UTF-8, deeply nested.
        (
            "POST",
            format!("/migration-plans/{pid}/approve"),
            b("{\"approved_by\": "),
        ),
        (
            "POST",
            format!("/migration-plans/{pid}/approve"),
            b("{} {}"),
        ),
        (
            "POST",
            format!("/migration-plans/{pid}/reject"),
            Some(vec![0x7b, 0xff, 0xfe, 0x7d]),
        ),
        (
            "PUT",
            "/sessions/s-1".into(),
            b(&format!("{{\"variables\": {}}}", nested(5_000))),
        ),
        (
            "POST",
            "/sessions/s-1/reconcile".into(),
            b(&format!(
                "{{\"known_fields\": {{\"a\": {}}}}}",
                nested(100_000)
            )),
        ),
        // Ids that are not canonical, or not allowed.
        (
            "PUT",
            format!("/scenarios/{{{other_scenario}}}"),
            j(scenario_v1()),
        ),
        (
            "PUT",
            format!("/scenarios/{}", other_scenario.simple()),
            j(scenario_v1()),
        ),
        (
            "PUT",
            format!("/scenarios/urn:uuid:{other_scenario}"),
            j(scenario_v1()),
        ),
        (
            "GET",
            format!("/migration-plans/{}", pid.to_uppercase().replace('-', "")),
            None,
        ),
        (
            "PUT",
            "/sessions/%ZZ".into(),
            j(session_at(sid, 1, step(2), "web")),
        ),
        (
            "PUT",
            "/sessions/a%20b".into(),
            j(session_at(sid, 1, step(2), "web")),
        ),
        (
            "PUT",
            format!("/sessions/{}", "x".repeat(257)),
            j(session_at(sid, 1, step(2), "web")),
        ),
        ("GET", "/sessions/%00".into(), None),
        // Queries that conflict or are out of range.
        (
            "GET",
            "/migration-plans?status=pending&plan_status=approved".into(),
            None,
        ),
        ("GET", "/migration-plans?limit=0".into(), None),
        ("GET", "/migration-plans?limit=101".into(), None),
        ("GET", "/migration-plans?limit=abc".into(), None),
        ("GET", "/migration-plans?next_token=garbage".into(), None),
        (
            "GET",
            format!("/migration-plans/{pid}/anchors?limit=100000"),
            None,
        ),
        // Policies at and past their bounds.
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(json!({"min_session_age_days": -1}))),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(json!({"max_session_age_days": i64::MAX}))),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(
                json!({"min_session_age_days": 10, "max_session_age_days": 3}),
            )),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(json!({"custom_conditions": ["1 + 1"]}))),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(
                json!({"custom_conditions": [format!("{} > 0", vec!["1"; 5_000].join("+"))]}),
            )),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(
                json!({"policies": {"0000000000000000": {"anchor_content_hash": "0000000000000000", "anchor_name": "x", "scope_filter": {}}}}),
            ),
        ),
        (
            "PUT",
            format!("/migration-plans/{pid}/policies"),
            j(policy(json!({"force_scenario": "teleport"}))),
        ),
        // Reconcile candidates that are not candidates.
        (
            "POST",
            "/sessions/s-1/reconcile".into(),
            j(json!({"known_fields": {"age": {"value": 3, "confidence": "hi"}}})),
        ),
        (
            "POST",
            "/sessions/s-1/reconcile".into(),
            j(json!({"known_fields": {"age": {"value": 3, "confidence": 1.5}}})),
        ),
        (
            "POST",
            "/sessions/s-1/reconcile".into(),
            j(json!({"known_fields": {"age": {"value": 3, "confidence": -0.1}}})),
        ),
        // Sessions that point nowhere, or do not match their path.
        (
            "PUT",
            "/sessions/s-1".into(),
            j(
                json!({"channel": "web", "active_scenario_id": sid, "active_scenario_version": 9, "active_step_id": step(2)}),
            ),
        ),
        (
            "PUT",
            "/sessions/s-1".into(),
            j(
                json!({"session_id": "s-2", "channel": "web", "active_scenario_id": sid, "active_scenario_version": 1, "active_step_id": step(2)}),
            ),
        ),
        (
            "PUT",
            "/sessions/s-1".into(),
            j(
                json!({"channel": "", "active_scenario_id": sid, "active_scenario_version": 1, "active_step_id": step(2)}),
            ),
        ),
        // Scenarios that do not validate, plan versions that cannot be.
        (
            "PUT",
            format!("/scenarios/{other_scenario}"),
            j(json!({"name": "", "version": 0, "entry_step_id": step(9), "steps": []})),
        ),
        (
            "POST",
            format!("/scenarios/{sid}/migration-plan"),
            j(json!({"new_scenario": scenario_v1()})),
        ),
        (
            "POST",
            format!("/scenarios/{sid}/migration-plan"),
            j(json!({"new_scenario": scenario_v2(), "extra": 1})),
        ),
        // Lifecycle out of order.
        ("POST", format!("/migration-plans/{pid}/deploy"), None),
        (
            "GET",
            format!("/migration-plans/{}/summary", Uuid::new_v4()),
            None,
        ),
        // Too large.
        (
            "PUT",
            format!("/scenarios/{other_scenario}"),
            Some(vec![b' '; 7 * 1024 * 1024]),
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in &cases {
        let r = send(&app, method, path, body.clone()).await;
        let json_detail = r.body.get("detail").is_some();
        if !(400..500).contains(&r.status) || !json_detail {
            failures.push(format!(
                "{method} {}: {} {:?}",
                &path[..path.len().min(120)],
                r.status,
                r.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases: {failures:#?}",
        failures.len(),
        cases.len()
    );
    // Headers: missing, not a UUID, not canonical.
    for tenant in [
        None,
        Some("acme"),
        Some("{6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c}"),
    ] {
        // A fresh connection: the 7 MB body above is refused before it is read, and
        // the server closes that connection, which a pooled client may try to reuse.
        let mut request = reqwest::Client::new().get(format!("{}/migration-plans", app.base));
        if let Some(t) = tenant {
            request = request.header("X-Tenant-ID", t);
        }
        let r = app.raw(request).await;
        assert_eq!(r.status, 422, "{tenant:?}: {:?}", r.body);
    }
    // Still serving, and nothing changed anywhere.
    assert_eq!(snapshot(&app, &w).await, before);
    let r = app
        .call("GET", &format!("/scenarios/{other_scenario}"), None)
        .await;
    assert_eq!(r.status, 404, "no scenario was created by a bad request");
    assert_eq!(app.call("GET", "/sessions/s-2", None).await.status, 404);
}
