//! `POST /sessions/{id}/reconcile` with `"dry_run": true` (the console's session
//! preview), on the embedded store and DynamoDB Local: it answers exactly what a
//! real reconcile then does, and writes nothing — the session, its revision, the
//! audit events and the plan counters are unchanged after any number of previews.

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        preview_of_a_gap_fill_writes_nothing_and_matches_the_real_call,
        preview_of_an_applied_migration_writes_nothing_and_matches,
        preview_of_a_checkpoint_block_is_not_counted,
        preview_of_an_unflagged_late_arrival_writes_nothing,
        preview_refuses_bad_input_and_unknown_sessions,
    ],
}

/// Create V1, record sessions, plan V2, approve and deploy.
async fn deployed(
    app: &TestApp,
    v1: Value,
    v2: Value,
    sessions: &[(&str, Value)],
) -> (Uuid, String) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(v1))
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    for (id, session) in sessions {
        let mut session = session.clone();
        session["active_scenario_id"] = json!(scenario);
        let reply = app
            .call("PUT", &format!("/sessions/{id}"), Some(session))
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v2})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    (scenario, plan_id)
}

/// Everything a reconcile can write: the session, the plan's counters, its events.
#[derive(Debug, PartialEq)]
struct Observed {
    session: Value,
    etag: Option<String>,
    status: Value,
    events: Value,
}

async fn observe(app: &TestApp, session_id: &str, plan_id: &str) -> Observed {
    let response = app
        .client
        .get(format!("{}/sessions/{session_id}", app.base))
        .header("X-Tenant-ID", app.tenant.to_string())
        .send()
        .await
        .expect("GET session");
    assert_eq!(response.status(), 200);
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let session = response.json().await.expect("session JSON");
    let mut status = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await
        .body;
    // Marking bookkeeping a sweep may touch concurrently; reconcile never writes it.
    if let Some(o) = status.as_object_mut() {
        o.remove("last_progress_at");
    }
    let events = app
        .call("GET", &format!("/migration-plans/{plan_id}/events"), None)
        .await
        .body;
    Observed {
        session,
        etag,
        status,
        events,
    }
}

/// A preview's answer and its `ETag`.
async fn preview(app: &TestApp, id: &str, mut body: Value) -> (Value, Option<String>) {
    body["dry_run"] = json!(true);
    let response = app
        .client
        .post(format!("{}/sessions/{id}/reconcile", app.base))
        .header("X-Tenant-ID", app.tenant.to_string())
        .json(&body)
        .send()
        .await
        .expect("preview");
    assert_eq!(response.status(), 200);
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (response.json().await.expect("preview JSON"), etag)
}

async fn reconcile(app: &TestApp, id: &str, body: Value) -> Value {
    let reply = app
        .call("POST", &format!("/sessions/{id}/reconcile"), Some(body))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// Preview three times; nothing observable changes; then the real call answers
/// the same thing (the console shows the preview as "what reconcile would do now").
async fn preview_then_real(
    app: &TestApp,
    session_id: &str,
    plan_id: &str,
    body: Value,
) -> (Value, Observed) {
    let before = observe(app, session_id, plan_id).await;
    let mut previews = Vec::new();
    for _ in 0..3 {
        let (answer, etag) = preview(app, session_id, body.clone()).await;
        assert_eq!(
            etag, before.etag,
            "a preview reports the unchanged revision"
        );
        previews.push(answer);
    }
    let after = observe(app, session_id, plan_id).await;
    assert_eq!(before, after, "a dry run wrote something");
    assert!(previews.windows(2).all(|w| w[0] == w[1]), "{previews:?}");
    let real = reconcile(app, session_id, body).await;
    assert_eq!(
        previews[0], real,
        "the preview differs from the real reconcile"
    );
    (real, before)
}

async fn preview_of_a_gap_fill_writes_nothing_and_matches_the_real_call(app: TestApp) {
    let s = session_at(Uuid::nil(), 1, step(2), "whatsapp");
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("g1", s)]).await;
    let (real, before) = preview_then_real(&app, "g1", &plan_id, json!({})).await;
    assert_eq!(real["action"], "collect", "{real}");
    assert_eq!(real["collect_fields"], json!(["age"]));
    assert_eq!(real["migration_scenario"], "gap_fill");
    assert_eq!(before.status["migrations_applied"], 0);
    assert_eq!(before.status["migrations_pending"], 1);
    assert!(before.session["pending_migration"].is_object());
}

async fn preview_of_an_applied_migration_writes_nothing_and_matches(app: TestApp) {
    let s = session_at(Uuid::nil(), 1, step(2), "whatsapp");
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("a1", s)]).await;
    let body = json!({"known_fields": {"age": 41}});
    let (real, before) = preview_then_real(&app, "a1", &plan_id, body).await;
    assert_eq!(real["migration_scenario"], "gap_fill", "{real}");
    assert_eq!(before.session["active_scenario_version"], 1);
    assert_eq!(before.events["events"], json!([]));
    // Only the real call moved the session, counted and audited it.
    let after = observe(&app, "a1", &plan_id).await;
    assert_eq!(after.session["active_scenario_version"], 2);
    assert_eq!(after.status["migrations_applied"], 1, "{:?}", after.status);
    assert_eq!(after.events["events"].as_array().map(Vec::len), Some(1));
    // A preview of the migrated session: nothing left to do, nothing written.
    let (again, etag) = preview(&app, "a1", json!({})).await;
    assert_eq!(again["action"], "continue", "{again}");
    assert_eq!(etag, after.etag);
    assert_eq!(observe(&app, "a1", &plan_id).await, after);
}

/// A paid customer sitting past a checkpoint: the preview says the migration is
/// blocked, without counting a checkpoint block (the real call counts one).
async fn preview_of_a_checkpoint_block_is_not_counted(app: TestApp) {
    let mut pay = step_json(2, "Pay", &[(3, "")]);
    pay["is_checkpoint"] = json!(true);
    pay["performs_action"] = json!(true);
    pay["checkpoint_description"] = json!("Payment processed");
    let v1 = json!({"name": "Shop", "version": 1, "entry_step_id": step(1), "steps": [
        step_json(1, "Welcome", &[(2, "")]), pay.clone(), step_json(3, "Ship", &[]),
    ]});
    let v2 = json!({"name": "Shop", "version": 2, "entry_step_id": step(1), "steps": [
        step_json(1, "Welcome", &[(2, "")]), pay, step_json(3, "Ship", &[(5, "")]),
        step_json(5, "Review", &[(2, "")]),
    ]});
    let mut s = session_at(Uuid::nil(), 1, step(3), "web");
    s["step_history"] = json!([
        {"step_id": step(1), "step_name": "Welcome", "visited_at": "2026-11-01T10:00:00Z"},
        {"step_id": step(2), "step_name": "Pay", "visited_at": "2026-11-01T10:05:00Z", "is_checkpoint": true, "checkpoint_description": "Payment processed"},
        {"step_id": step(3), "step_name": "Ship", "visited_at": "2026-11-01T10:06:00Z"}
    ]);
    let (_, plan_id) = deployed(&app, v1, v2, &[("k1", s)]).await;
    let (real, before) = preview_then_real(&app, "k1", &plan_id, json!({})).await;
    assert_eq!(real["blocked_by_checkpoint"], true, "{real}");
    assert!(real["checkpoint_warning"].is_string());
    assert_eq!(before.status["checkpoint_blocks"], 0);
    let after = observe(&app, "k1", &plan_id).await;
    assert_eq!(after.status["checkpoint_blocks"], 1, "{:?}", after.status);
}

/// Recorded after the deploy, never marked: a real call migrates it and counts it
/// as unflagged; the preview says so and writes nothing.
async fn preview_of_an_unflagged_late_arrival_writes_nothing(app: TestApp) {
    let (scenario, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[]).await;
    let s = session_at(scenario, 1, step(1), "sms");
    assert_eq!(app.call("PUT", "/sessions/late", Some(s)).await.status, 201);
    let (real, before) = preview_then_real(&app, "late", &plan_id, json!({})).await;
    assert_eq!(real["migration_scenario"], "clean_graft", "{real}");
    assert_eq!(before.status["migrations_applied_unflagged"], 0);
    let after = observe(&app, "late", &plan_id).await;
    assert_eq!(after.status["migrations_applied_unflagged"], 1);
    assert_eq!(after.session["active_scenario_version"], 2);
}

async fn preview_refuses_bad_input_and_unknown_sessions(app: TestApp) {
    let s = session_at(Uuid::nil(), 1, step(2), "whatsapp");
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("b1", s)]).await;
    let before = observe(&app, "b1", &plan_id).await;
    let reply = app
        .call(
            "POST",
            "/sessions/b1/reconcile",
            Some(json!({"dry_run": "yes"})),
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "dry_run"]));
    let reply = app
        .call(
            "POST",
            "/sessions/b1/reconcile",
            Some(json!({"dry_run": true, "known_fields": {"age": {"value": 3, "confidence": 7}}})),
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let reply = app
        .call(
            "POST",
            "/sessions/nobody/reconcile",
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    // Another tenant cannot preview this tenant's session.
    let reply = app
        .call_as(
            Uuid::new_v4(),
            "POST",
            "/sessions/b1/reconcile",
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    assert_eq!(observe(&app, "b1", &plan_id).await, before);
}
