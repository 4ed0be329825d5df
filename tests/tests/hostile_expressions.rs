//! Hostile policy conditions over HTTP (docs/api.md, "Hostile input"): each
//! bomb is a 422 naming the limit it breaks, the server keeps answering, and a
//! condition that passes the save but exceeds the evaluation budget is not
//! taken at reconcile, with the reason saying so.

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        hostile_conditions_are_422_and_the_server_keeps_serving,
        a_condition_over_the_budget_is_not_taken,
    ],
}

/// V1 with a session at "Collect email", and a pending plan to V2: the plan id
/// and the hash of the "Collect email" anchor.
async fn pending_plan(app: &TestApp) -> (Uuid, String, String) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let reply = app
        .call(
            "PUT",
            "/sessions/hostile-1",
            Some(session_at(scenario, 1, step(2), "web")),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    let hash = reply.body["transformation_map"]["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["anchor_name"] == "Collect email")
        .unwrap()["anchor_content_hash"]
        .as_str()
        .unwrap()
        .to_string();
    (scenario, plan_id, hash)
}

fn policies(hash: &str, conditions: &[String]) -> Value {
    json!({"policies": {hash: {
        "anchor_content_hash": hash,
        "anchor_name": "Collect email",
        "scope_filter": {"custom_conditions": conditions},
        "update_downstream": true
    }}})
}

fn numbers(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

async fn hostile_conditions_are_422_and_the_server_keeps_serving(app: TestApp) {
    let (_, plan_id, hash) = pending_plan(&app).await;
    let digits = "[0,1,2,3,4,5,6,7,8,9]";
    let mut comprehensions = "true".to_string();
    for var in ["g", "f", "e", "d", "c", "b", "a"] {
        comprehensions = format!("{digits}.all({var}, {comprehensions})");
    }
    let bombs: Vec<(String, &str, &str)> = vec![
        (
            format!("{} > 0", vec!["1"; 5_000].join("+")),
            "max expression length",
            "value_error.cel.limit",
        ),
        (
            format!("{} > 0", vec!["1"; 2_000].join("+")),
            "max expression depth",
            "value_error.cel.limit",
        ),
        (
            format!("{}true{}", "(".repeat(1_000), ")".repeat(1_000)),
            "max nesting depth",
            "value_error.cel.limit",
        ),
        (
            format!("{}true", "!".repeat(1_500)),
            "max expression depth",
            "value_error.cel.limit",
        ),
        (
            format!("{})", " ".repeat(70_000)),
            "max expression length",
            "value_error.cel.limit",
        ),
        (
            comprehensions,
            "max comprehension nesting",
            "value_error.cel.limit",
        ),
        (
            "1 + 1".to_string(),
            "not a boolean",
            "value_error.cel.not_boolean",
        ),
    ];
    for (bomb, limit, kind) in &bombs {
        let reply = app
            .call(
                "PUT",
                &format!("/migration-plans/{plan_id}/policies"),
                Some(policies(&hash, std::slice::from_ref(bomb))),
            )
            .await;
        assert_eq!(reply.status, 422, "{limit}: {:?}", reply.body);
        let problem = &reply.body["detail"][0];
        assert_eq!(
            problem["loc"],
            json!([
                "body",
                "policies",
                hash,
                "scope_filter",
                "custom_conditions",
                0
            ])
        );
        assert!(
            problem["msg"].as_str().unwrap().contains(limit),
            "{problem}"
        );
        assert_eq!(problem["type"], *kind);
        // The server still answers, and nothing was saved.
        let plan = app
            .call("GET", &format!("/migration-plans/{plan_id}"), None)
            .await;
        assert_eq!(plan.status, 200);
        assert_eq!(plan.body["revision"], 1);
    }

    // Too many conditions in one filter.
    let many = vec!["true".to_string(); 17];
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(policies(&hash, &many)),
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let msg = reply.body["detail"][0]["msg"].as_str().unwrap();
    assert!(msg.contains("max custom conditions"), "{msg}");

    // Too many characters of conditions in one request, over several policies.
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    let long = format!("session.age_days in {}", numbers(900));
    assert!(long.len() < 4_096);
    let mut all = serde_json::Map::new();
    for anchor in plan["transformation_map"]["anchors"].as_array().unwrap() {
        let h = anchor["anchor_content_hash"].as_str().unwrap();
        all.insert(
            h.to_string(),
            json!({
                "anchor_content_hash": h,
                "anchor_name": anchor["anchor_name"],
                "scope_filter": {"custom_conditions": vec![long.clone(); 16]},
            }),
        );
    }
    assert!(all.len() >= 2);
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(json!({"policies": all})),
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let msg = reply.body["detail"][0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("max condition characters per request"),
        "{msg}"
    );

    // A sound condition is still accepted afterwards.
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(policies(&hash, &["session.age_days >= 0".to_string()])),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

async fn a_condition_over_the_budget_is_not_taken(app: TestApp) {
    let (scenario, plan_id, hash) = pending_plan(&app).await;
    // Accepted when saved (two levels of comprehension), but 300 × 300
    // iterations are over the evaluation budget.
    let bomb = format!(
        "{0}.all(a, {0}.all(b, session.age_days >= 0))",
        numbers(300)
    );
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(policies(&hash, &[bomb])),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // Marking evaluates the condition: over budget, the session is left out.
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let stored = app.call("GET", "/sessions/hostile-1", None).await.body;
    assert!(stored["pending_migration"].is_null(), "{stored}");

    // Reconcile evaluates it again: not taken, and the reason says why.
    let reply = app
        .call("POST", "/sessions/hostile-1/reconcile", Some(json!({})))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reason = reply.body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("outside the scope") && reason.contains("max evaluation steps"),
        "{}",
        reply.body
    );
    let stored = app.call("GET", "/sessions/hostile-1", None).await.body;
    assert_eq!(stored["active_scenario_version"], 1);
    assert_eq!(stored["active_scenario_id"], json!(scenario));
}
