//! A step edited in place (same id, new content) over HTTP, on both stores: the
//! plan reports it as edited (not deleted + new), its sessions stay on it after
//! reconcile, and an operator can choose the old behaviour per edited step.

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [an_edited_step_keeps_its_sessions],
}

/// Welcome(1) → Explain terms(2) → Sign up(3) → Done(4); `v2` adds a full stop.
fn terms(version: i64, description: &str) -> Value {
    let mut explain = step_json(2, "Explain terms", &[(3, "")]);
    explain["description"] = json!(description);
    json!({"name": "Terms", "version": version, "entry_step_id": step(1), "steps": [
        step_json(1, "Welcome", &[(2, "")]),
        explain,
        step_json(3, "Sign up", &[(4, "")]),
        step_json(4, "Done", &[]),
    ]})
}

async fn plan_with(app: &TestApp, relocate: bool) -> (String, Value) {
    let scenario = Uuid::new_v4();
    let r = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(terms(1, "Read this")),
        )
        .await;
    assert_eq!(r.status, 201);
    for id in ["waiting-1", "waiting-2"] {
        let r = app
            .call(
                "PUT",
                &format!("/sessions/{id}"),
                Some(session_at(scenario, 1, step(2), "web")),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": terms(2, "Read this.")})),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    let plan_id = plan.body["id"].as_str().expect("id").to_owned();
    let edited = &plan.body["transformation_map"]["edited_steps"];
    assert_eq!(edited.as_array().map(Vec::len), Some(1), "{edited}");
    if relocate {
        let key = edited[0]["anchor_content_hash"]
            .as_str()
            .expect("key")
            .to_owned();
        let mut policy = plan.body["anchor_policies"][&key].clone();
        policy["edited_step_behavior"] = json!("relocate_to_nearest_anchor");
        let r = app
            .call(
                "PUT",
                &format!("/migration-plans/{plan_id}/policies"),
                Some(json!({"policies": {key: policy}})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
            .await
            .status,
        200
    );
    let deployed = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deployed.status, 200, "{:?}", deployed.body);
    assert_eq!(deployed.body["sessions_marked"], 2, "{:?}", deployed.body);
    (plan_id, plan.body)
}

async fn an_edited_step_keeps_its_sessions(app: TestApp) {
    let (plan_id, plan) = plan_with(&app, false).await;
    let summary = app
        .call("GET", &format!("/migration-plans/{plan_id}/summary"), None)
        .await
        .body;
    assert_eq!(summary["nodes_deleted"], 0, "{summary}");
    assert_eq!(summary["steps_edited"], 1, "{summary}");
    let deleted_edited = plan["transformation_map"]["deleted_nodes"]
        .as_array()
        .expect("deleted")
        .iter()
        .all(|d| d["edited"] == true);
    assert!(
        deleted_edited,
        "only the edited step, flagged as edited, stays visible there"
    );
    let result = app
        .call("POST", "/sessions/waiting-1/reconcile", None)
        .await
        .body;
    assert_ne!(result["action"], "exit_scenario", "{result}");
    let after = app.call("GET", "/sessions/waiting-1", None).await.body;
    assert_eq!(after["active_scenario_version"], 2, "{after}");
    assert_eq!(
        after["active_step_id"],
        json!(step(2)),
        "still at the step it was waiting at"
    );

    // The original behaviour, chosen per edited step: relocate to the nearest anchor.
    let other = spawn_app(Backend::Embedded, test_config())
        .await
        .expect("app");
    let _ = plan_with(&other, true).await;
    other
        .call("POST", "/sessions/waiting-1/reconcile", None)
        .await;
    let moved = other.call("GET", "/sessions/waiting-1", None).await.body;
    assert_eq!(moved["active_scenario_version"], 2, "{moved}");
    assert_eq!(moved["active_step_id"], json!(step(3)), "{moved}");
}
