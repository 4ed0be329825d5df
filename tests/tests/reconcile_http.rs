//! `POST /sessions/{id}/reconcile` end to end, on the embedded store and DynamoDB Local:
//! the migration is applied once, counted once, audited, and never moves a customer
//! back past a checkpoint.

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        gap_fill_collects_then_applies_once,
        concurrent_reconciles_apply_once,
        clean_graft_and_up_to_date,
        pinned_by_policy_stays_forever,
        checkpoint_blocks_teleport_upstream,
        deleted_step_without_anchor_exits,
        late_arrival_without_flag_migrates,
        reroute_by_cel_condition,
    ],
}

/// Create V1, record sessions, plan V2 (with optional policies), approve and deploy.
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
        assert!(
            reply.status == 201 || reply.status == 200,
            "{:?}",
            reply.body
        );
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
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
            .await
            .status,
        200
    );
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    (scenario, plan_id)
}

fn session(step_n: u32) -> Value {
    session_at(Uuid::nil(), 1, step(step_n), "whatsapp")
}

async fn reconcile(app: &TestApp, id: &str, body: Value) -> Value {
    let reply = app
        .call("POST", &format!("/sessions/{id}/reconcile"), Some(body))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

async fn status(app: &TestApp, plan_id: &str) -> Value {
    app.call(
        "GET",
        &format!("/migration-plans/{plan_id}/deployment-status"),
        None,
    )
    .await
    .body
}

async fn gap_fill_collects_then_applies_once(app: TestApp) {
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("g1", session(2))]).await;
    // No age known: ask for it, keep the flag.
    let first = reconcile(&app, "g1", json!({})).await;
    assert_eq!(first["action"], "collect", "{first}");
    assert_eq!(first["collect_fields"], json!(["age"]));
    assert_eq!(first["migration_scenario"], "gap_fill");
    let s = app.call("GET", "/sessions/g1", None).await.body;
    assert_eq!(
        s["pending_migration"]["migration_plan_id"],
        plan_id.as_str()
    );
    assert_eq!(status(&app, &plan_id).await["migrations_applied"], 0);

    // A low-confidence extraction is not used.
    let low = reconcile(
        &app,
        "g1",
        json!({"known_fields": {"age": {"value": 30, "source": "extraction", "confidence": 0.5}}}),
    )
    .await;
    assert_eq!(low["action"], "collect");

    // A confident extraction below 0.95 is used and must be confirmed.
    let applied = reconcile(
        &app,
        "g1",
        json!({"known_fields": {"age": {"value": 30, "source": "extraction", "confidence": 0.9}}}),
    )
    .await;
    assert_eq!(applied["action"], "continue", "{applied}");
    assert_eq!(applied["confirm_fields"], json!(["age"]));
    let s = app.call("GET", "/sessions/g1", None).await.body;
    assert_eq!(s["active_scenario_version"], 2);
    assert_eq!(s["active_step_id"], json!(step(2)));
    assert_eq!(s["variables"]["age"], 30);
    assert!(s.get("pending_migration").is_none_or(Value::is_null));

    // A retry does nothing more.
    let again = reconcile(&app, "g1", json!({"known_fields": {"age": 30}})).await;
    assert_eq!(again["action"], "continue");
    let st = status(&app, &plan_id).await;
    assert_eq!(st["migrations_applied"], 1, "{st}");
    assert_eq!(st["migrations_by_scenario"]["gap_fill"], 1);
    assert_eq!(st["migrations_pending"], 0);
    assert!(st["last_migration_at"].is_string());

    let events = app
        .call("GET", &format!("/migration-plans/{plan_id}/events"), None)
        .await
        .body;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["events"][0]["session_id"], "g1");
    assert_eq!(events["events"][0]["from_version"], 1);
    assert_eq!(events["events"][0]["to_version"], 2);
    assert!(events["events"][0]["fields_filled"]["age"].is_string());
}

async fn concurrent_reconciles_apply_once(app: TestApp) {
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("c1", session(2))]).await;
    let calls = (0..10).map(|_| reconcile(&app, "c1", json!({"known_fields": {"age": 41}})));
    let results = futures::future::join_all(calls).await;
    let applied = results
        .iter()
        .filter(|r| r["reason"] != "already migrated")
        .count();
    assert!(applied >= 1, "{results:?}");
    assert!(
        results.iter().all(|r| r["action"] == "continue"),
        "{results:?}"
    );
    let st = status(&app, &plan_id).await;
    assert_eq!(st["migrations_applied"], 1, "{st}");
    assert_eq!(st["migrations_by_scenario"]["gap_fill"], 1);
    let events = app
        .call("GET", &format!("/migration-plans/{plan_id}/events"), None)
        .await
        .body;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
}

async fn clean_graft_and_up_to_date(app: TestApp) {
    // Welcome (1) sits upstream of the change only: a clean graft.
    let (_, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[("d1", session(1))]).await;
    let result = reconcile(&app, "d1", json!({})).await;
    assert_eq!(result["migration_scenario"], "clean_graft", "{result}");
    assert!(result["action"] == "continue" || result["action"] == "teleport");
    let s = app.call("GET", "/sessions/d1", None).await.body;
    assert_eq!(s["active_scenario_version"], 2);
    let again = reconcile(&app, "d1", json!({})).await;
    assert_eq!(again["action"], "continue");
    assert_eq!(
        status(&app, &plan_id).await["migrations_by_scenario"]["clean_graft"],
        1
    );
    // Unknown session: 404.
    assert_eq!(
        app.call("POST", "/sessions/nobody/reconcile", Some(json!({})))
            .await
            .status,
        404
    );
    // Unknown field in the body: 422.
    assert_eq!(
        app.call(
            "POST",
            "/sessions/d1/reconcile",
            Some(json!({"surprise": true}))
        )
        .await
        .status,
        422
    );
}

async fn pinned_by_policy_stays_forever(app: TestApp) {
    let scenario = Uuid::new_v4();
    assert_eq!(
        app.call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1())
        )
        .await
        .status,
        201
    );
    let mut s = session(2);
    s["active_scenario_id"] = json!(scenario);
    app.call("PUT", "/sessions/p1", Some(s)).await;
    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await
        .body;
    let plan_id = plan["id"].as_str().unwrap();
    let anchor = plan["transformation_map"]["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["anchor_name"] == "Collect email")
        .unwrap()
        .clone();
    let hash = anchor["anchor_content_hash"].as_str().unwrap();
    let body = json!({"policies": {hash: {"anchor_content_hash": hash, "anchor_name": "Collect email", "update_downstream": false}}});
    assert_eq!(
        app.call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(body)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
            .await
            .status,
        200
    );
    let result = reconcile(&app, "p1", json!({})).await;
    assert_eq!(result["action"], "continue", "{result}");
    let stored = app.call("GET", "/sessions/p1", None).await.body;
    assert_eq!(stored["pinned_version"], 1);
    assert_eq!(stored["active_scenario_version"], 1, "stays on its version");
    assert_eq!(stored["active_step_id"], json!(step(2)), "a V1 step on V1");
    let again = reconcile(&app, "p1", json!({"known_fields": {"age": 20}})).await;
    assert_eq!(again["action"], "continue");
    assert_eq!(
        app.call("GET", "/sessions/p1", None).await.body["active_scenario_version"],
        1
    );
}

/// V1: Welcome(1) → Pay(2, checkpoint) → Ship(3). V2 moves Ship before Pay is
/// impossible to express without new ids, so instead V2 inserts a step upstream
/// of Pay that loops back: Ship(3) → Review(5) → Pay(2). A customer who paid and
/// sits at Ship must never be teleported to a step that leads back to Pay.
async fn checkpoint_blocks_teleport_upstream(app: TestApp) {
    let mut pay = step_json(2, "Pay", &[(3, "")]);
    pay["is_checkpoint"] = json!(true);
    pay["performs_action"] = json!(true);
    pay["checkpoint_description"] = json!("Payment processed");
    let v1 = json!({"name": "Shop", "version": 1, "entry_step_id": step(1), "steps": [
        step_json(1, "Welcome", &[(2, "")]), pay.clone(), step_json(3, "Ship", &[]),
    ]});
    // In V2, Ship leads back to Pay through a new Review step.
    let v2 = json!({"name": "Shop", "version": 2, "entry_step_id": step(1), "steps": [
        step_json(1, "Welcome", &[(2, "")]), pay, step_json(3, "Ship", &[(5, "")]),
        step_json(5, "Review", &[(2, "")]),
    ]});
    let mut s = session(3);
    s["step_history"] = json!([
        {"step_id": step(1), "step_name": "Welcome", "visited_at": "2026-11-01T10:00:00Z"},
        {"step_id": step(2), "step_name": "Pay", "visited_at": "2026-11-01T10:05:00Z", "is_checkpoint": true, "checkpoint_description": "Payment processed"},
        {"step_id": step(3), "step_name": "Ship", "visited_at": "2026-11-01T10:06:00Z"}
    ]);
    let (_, plan_id) = deployed(&app, v1, v2, &[("k1", s)]).await;
    let result = reconcile(&app, "k1", json!({})).await;
    assert_eq!(result["blocked_by_checkpoint"], true, "{result}");
    assert!(result["checkpoint_warning"].is_string());
    assert_ne!(result["action"], "teleport");
    let stored = app.call("GET", "/sessions/k1", None).await.body;
    assert_eq!(stored["active_step_id"], json!(step(3)), "never moved");
    assert_eq!(status(&app, &plan_id).await["checkpoint_blocks"], 1);
}

async fn deleted_step_without_anchor_exits(app: TestApp) {
    // V2 keeps nothing of V1.
    let v2 = json!({"name": "Fresh", "version": 2, "entry_step_id": step(7), "steps": [step_json(7, "Brand new", &[])]});
    let (_, _plan_id) = deployed(&app, scenario_v1(), v2, &[("x1", session(2))]).await;
    let result = reconcile(&app, "x1", json!({})).await;
    assert_eq!(result["action"], "exit_scenario", "{result}");
    assert!(result["user_message"].is_string());
    let again = reconcile(&app, "x1", json!({})).await;
    assert_eq!(again["action"], "continue");
}

async fn late_arrival_without_flag_migrates(app: TestApp) {
    let (scenario, plan_id) = deployed(&app, scenario_v1(), scenario_v2(), &[]).await;
    // Recorded after the deploy, still on V1: never marked.
    let mut s = session(1);
    s["active_scenario_id"] = json!(scenario);
    assert_eq!(app.call("PUT", "/sessions/late", Some(s)).await.status, 201);
    let result = reconcile(&app, "late", json!({})).await;
    assert_eq!(result["migration_scenario"], "clean_graft", "{result}");
    let stored = app.call("GET", "/sessions/late", None).await.body;
    assert_eq!(stored["active_scenario_version"], 2);
    let st = status(&app, &plan_id).await;
    // Counted apart from the marked sessions: applied never exceeds marked.
    assert_eq!(st["migrations_applied"], 0, "{st}");
    assert_eq!(st["migrations_applied_unflagged"], 1, "{st}");
    assert_eq!(st["sessions_marked"], 0);
    assert_eq!(st["migrations_pending"], 0);
}

/// V2 adds an age fork upstream of Collect email: minors go to a Reject step.
async fn reroute_by_cel_condition(app: TestApp) {
    let v2 = json!({"name": "Support flow", "version": 2, "entry_step_id": step(1), "steps": [
        {"id": step(1), "name": "Welcome", "transitions": [
            {"to_step_id": step(2), "condition_text": "age >= 18", "condition_fields": ["age"], "priority": 1},
            {"to_step_id": step(8), "condition_text": "age < 18", "condition_fields": ["age"], "priority": 0}
        ]},
        step_json(2, "Collect email", &[(3, "")]),
        step_json(3, "Done", &[]),
        step_json(8, "Reject minors", &[]),
    ]});
    let (_, plan_id) = deployed(
        &app,
        scenario_v1(),
        v2,
        &[("r1", session(2)), ("r2", session(2)), ("r3", session(2))],
    )
    .await;
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    let anchor = plan["transformation_map"]["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["anchor_name"] == "Collect email")
        .unwrap()
        .clone();
    assert_eq!(anchor["migration_scenario"], "re_route", "{anchor}");

    let ask = reconcile(&app, "r1", json!({})).await;
    assert_eq!(ask["action"], "collect", "{ask}");
    assert_eq!(ask["collect_fields"], json!(["age"]));
    let minor = reconcile(&app, "r1", json!({"known_fields": {"age": 15}})).await;
    assert_eq!(minor["action"], "teleport", "{minor}");
    assert_eq!(minor["target_step_id"], json!(step(8)));
    assert!(minor["user_message"].is_string());
    let adult = reconcile(&app, "r2", json!({"known_fields": {"age": 33}})).await;
    assert_ne!(adult["target_step_id"], json!(step(8)), "{adult}");
    assert_eq!(
        app.call("GET", "/sessions/r2", None).await.body["active_step_id"],
        json!(step(2))
    );
    let st = status(&app, &plan_id).await;
    assert_eq!(st["migrations_by_scenario"]["re_route"], 2, "{st}");
    assert_eq!(st["migrations_pending"], 1);
}
