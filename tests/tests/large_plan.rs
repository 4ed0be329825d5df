//! A 10,000-step scenario with 10 edited steps: the plan (tens of MB of
//! transformation map) stores, reads back, and comes over HTTP in pages that
//! each stay under the 6 MB Lambda payload limit.

use crate::common::*;
use serde_json::json;
use uuid::Uuid;

const STEPS: u32 = 10_000;
const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [stores_and_pages_a_10000_step_plan],
}

async fn stores_and_pages_a_10000_step_plan(app: TestApp) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(chain_scenario(STEPS, 1, &[])),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    for (id, n) in [("early", 10), ("late", 9_990)] {
        let reply = app
            .call(
                "PUT",
                &format!("/sessions/{id}"),
                Some(session_at(scenario, 1, step(n), "web")),
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    let edited: Vec<u32> = (1..=10).map(|i| i * 997).collect();
    let request = json!({"new_scenario": chain_scenario(STEPS, 2, &edited)});
    let response = app
        .client
        .post(format!("{}/scenarios/{scenario}/migration-plan", app.base))
        .header("X-Tenant-ID", app.tenant.to_string())
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let bytes = response.bytes().await.unwrap();
    assert!(
        bytes.len() < LAMBDA_PAYLOAD_LIMIT,
        "POST answered {} bytes",
        bytes.len()
    );
    let plan: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let total_anchors = plan["summary"]["total_anchors"].as_u64().unwrap();
    assert_eq!(total_anchors, u64::from(STEPS) - 10);
    // `chain_scenario` renames steps but keeps their ids: edits, not deletions.
    assert_eq!(plan["summary"]["nodes_deleted"], 0);
    assert_eq!(plan["summary"]["steps_edited"], 10);
    assert_eq!(plan["summary"]["estimated_sessions_affected"], 2);
    let mut token = plan["anchors_next_token"].as_str().map(str::to_string);
    assert!(token.is_some(), "a plan this large is paged");
    let mut seen = plan["transformation_map"]["anchors"]
        .as_array()
        .unwrap()
        .len() as u64;

    // Read back through GET and page through the rest of the anchors.
    let got = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body["transformation_map"]["anchors"]
            .as_array()
            .unwrap()
            .len() as u64,
        seen
    );
    while let Some(next) = token {
        let response = app
            .client
            .get(format!(
                "{}/migration-plans/{plan_id}/anchors?limit=1000&next_token={next}",
                app.base
            ))
            .header("X-Tenant-ID", app.tenant.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.len() < LAMBDA_PAYLOAD_LIMIT);
        let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let anchors = page["anchors"].as_array().unwrap();
        assert!(!anchors.is_empty());
        assert_eq!(
            page["anchor_policies"].as_object().unwrap().len(),
            anchors.len()
        );
        seen += anchors.len() as u64;
        token = page["next_token"].as_str().map(str::to_string);
    }
    assert_eq!(seen, total_anchors);
    // A tampered token is a 422, not a crash.
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/anchors?next_token=garbage"),
            None,
        )
        .await;
    assert_eq!(reply.status, 422);
}
