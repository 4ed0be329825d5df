//! What a client of the original FastAPI service relies on (docs/api.md), over HTTP
//! on the embedded store and on DynamoDB Local: unknown query parameters are
//! ignored (unknown body fields stay 422); the summary lists every anchor; a 404
//! names the id; 422 errors carry pydantic v2 types with integer list indices.
//! Plus `GET /openapi.json` and `GET /health` without a tenant.

use crate::common::*;
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        unknown_query_parameters_are_ignored,
        summary_lists_every_anchor,
        not_found_names_the_id,
        validation_errors_use_pydantic_v2_types,
        openapi_and_health_need_no_tenant,
    ],
}

async fn scenario_with_plan(app: &TestApp) -> (Uuid, serde_json::Value) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    // One session at "Collect email" (step 2); none at "Welcome" or "Done".
    let reply = app
        .call(
            "PUT",
            "/sessions/compat-1",
            Some(session_at(scenario, 1, step(2), "whatsapp")),
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
    (scenario, reply.body)
}

async fn unknown_query_parameters_are_ignored(app: TestApp) {
    let (scenario, plan) = scenario_with_plan(&app).await;
    let plan_id = plan["id"].as_str().unwrap();
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans?scenario_id={scenario}&utm_source=x&limit=10&page=3"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["total"], 1);
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/anchors?expand=all&limit=1"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["anchors"].as_array().unwrap().len(), 1);
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/events?cursor=abc"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // A known parameter with a bad value is still a located 422.
    let reply = app.call("GET", "/migration-plans?limit=abc", None).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["query", "limit"]));
    assert_eq!(reply.body["detail"][0]["type"], "int_parsing");
    let reply = app
        .call("GET", "/migration-plans?scenario_id=nope", None)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "uuid_parsing");
    let reply = app.call("GET", "/migration-plans?limit=0", None).await;
    assert_eq!(reply.body["detail"][0]["type"], "greater_than_equal");
    let reply = app
        .call("GET", "/migration-plans?plan_status=bogus", None)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "enum");
    // Unknown *body* fields stay 422: request models reject unknown fields
    // (docs/api.md).
    let reply = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/approve"),
            Some(json!({"approved_by": "lead", "note": "x"})),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "extra_forbidden");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "note"]));
}

async fn summary_lists_every_anchor(app: TestApp) {
    let (_, plan) = scenario_with_plan(&app).await;
    let plan_id = plan["id"].as_str().unwrap();
    let reply = app
        .call("GET", &format!("/migration-plans/{plan_id}/summary"), None)
        .await;
    assert_eq!(reply.status, 200);
    let by_anchor = reply.body["sessions_by_anchor"].as_object().unwrap();
    let anchors = plan["transformation_map"]["anchors"].as_array().unwrap();
    assert_eq!(anchors.len(), 3, "Welcome, Collect email, Done");
    assert_eq!(by_anchor.len(), anchors.len(), "{by_anchor:?}");
    for anchor in anchors {
        let expected = if anchor["anchor_name"] == "Collect email" {
            1
        } else {
            0
        };
        assert_eq!(
            by_anchor[anchor["anchor_content_hash"].as_str().unwrap()],
            expected,
            "{}",
            anchor["anchor_name"]
        );
    }
}

async fn not_found_names_the_id(app: TestApp) {
    let id = Uuid::new_v4();
    for (path, detail) in [
        (
            format!("/migration-plans/{id}"),
            format!("Migration plan {id} not found"),
        ),
        (
            format!("/migration-plans/{id}/summary"),
            format!("Migration plan {id} not found"),
        ),
        (
            format!("/migration-plans/{id}/deployment-status"),
            format!("Migration plan {id} not found"),
        ),
        (
            format!("/scenarios/{id}"),
            format!("Scenario {id} not found"),
        ),
        (
            format!("/scenarios/{id}/versions/3"),
            format!("Scenario {id} version 3 not found"),
        ),
        (
            "/sessions/wa-404".to_string(),
            "Session wa-404 not found".to_string(),
        ),
    ] {
        let reply = app.call("GET", &path, None).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.body["detail"], detail, "{path}");
    }
    let reply = app
        .call("POST", &format!("/migration-plans/{id}/deploy"), None)
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body["detail"],
        format!("Migration plan {id} not found")
    );
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{id}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["detail"], format!("Scenario {id} not found"));
}

async fn validation_errors_use_pydantic_v2_types(app: TestApp) {
    let url = |p: &str| format!("{}{}", app.base, p);
    // Header missing / not a UUID.
    let reply = app.raw(app.client.get(url("/migration-plans"))).await;
    assert_eq!(reply.body["detail"][0]["type"], "missing");
    let reply = app
        .raw(
            app.client
                .get(url("/migration-plans"))
                .header("X-Tenant-ID", "nope"),
        )
        .await;
    assert_eq!(reply.body["detail"][0]["type"], "uuid_parsing");
    // Path parameters.
    let reply = app.call("GET", "/migration-plans/not-a-uuid", None).await;
    assert_eq!(reply.body["detail"][0]["type"], "uuid_parsing");
    let reply = app
        .call(
            "GET",
            &format!("/scenarios/{}/versions/x", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(reply.body["detail"][0]["type"], "int_parsing");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["path", "version"]));
    // Malformed JSON.
    let scenario = Uuid::new_v4();
    let reply = app
        .raw(
            app.client
                .put(url(&format!("/scenarios/{scenario}")))
                .header("X-Tenant-ID", app.tenant.to_string())
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "json_invalid");
    // A missing field, located at the field.
    let mut input = scenario_v1();
    input.as_object_mut().unwrap().remove("entry_step_id");
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(input))
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "missing");
    assert_eq!(
        reply.body["detail"][0]["loc"],
        json!(["body", "entry_step_id"])
    );
    // A bad UUID inside a list: the index is an integer.
    let mut input = scenario_v1();
    input["steps"][1]["transitions"][0]["to_step_id"] = json!("nope");
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(input))
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "uuid_parsing");
    assert_eq!(
        reply.body["detail"][0]["loc"],
        json!(["body", "steps", 1, "transitions", 0, "to_step_id"])
    );
    // A string where an integer belongs, and an object given as a list.
    let mut input = scenario_v1();
    input["version"] = json!("one");
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(input))
        .await;
    assert_eq!(reply.body["detail"][0]["type"], "int_parsing");
    let reply = app
        .call(
            "POST",
            &format!("/migration-plans/{}/approve", Uuid::new_v4()),
            Some(json!(["lead"])),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "model_type");
    // Scenario validation: pydantic's types where pydantic has one, located with integers.
    let mut input = scenario_v1();
    input["version"] = json!(0);
    input["steps"][2]["name"] = json!("");
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(input))
        .await;
    assert_eq!(reply.status, 422);
    let problems = reply.body["detail"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["type"] == "greater_than_equal" && p["loc"] == json!(["body", "version"])),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["type"] == "string_too_short"
                && p["loc"] == json!(["body", "steps", 2, "name"])),
        "{problems:?}"
    );
    // Nothing was created by any of these.
    let reply = app
        .call("GET", &format!("/scenarios/{scenario}"), None)
        .await;
    assert_eq!(reply.status, 404);
}

async fn openapi_and_health_need_no_tenant(app: TestApp) {
    let reply = app
        .raw(app.client.get(format!("{}/openapi.json", app.base)))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["openapi"], "3.1.0");
    assert!(
        reply.body["paths"]["/migration-plans/{plan_id}/deploy"]["post"]["responses"]["202"]
            .is_object()
    );
    let reply = app
        .raw(app.client.get(format!("{}/health", app.base)))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"status": "ok"}));
}
