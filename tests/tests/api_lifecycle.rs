//! The seed's migration API end to end over HTTP, on the embedded store and on DynamoDB Local.

use crate::common::*;
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        full_lifecycle,
        bad_input_is_422_and_changes_nothing,
        other_tenants_see_404,
        concurrent_approvals_have_one_winner,
        lifecycle_conflicts,
        deploy_supersedes_sibling_plans,
    ],
}

async fn create_scenario(app: &TestApp) -> Uuid {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    scenario
}

async fn create_plan(app: &TestApp, scenario: Uuid) -> serde_json::Value {
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2(), "created_by": "ops@example.com"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body
}

async fn full_lifecycle(app: TestApp) {
    let scenario = create_scenario(&app).await;
    assert_eq!(
        app.call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1())
        )
        .await
        .status,
        409
    );

    // Three sessions at "Collect email", one at "Done" on another channel, one elsewhere in time.
    for (i, (step_n, channel)) in [(2, "whatsapp"), (2, "whatsapp"), (2, "web"), (3, "web")]
        .iter()
        .enumerate()
    {
        let reply = app
            .call(
                "PUT",
                &format!("/sessions/s{i}"),
                Some(session_at(scenario, 1, step(*step_n), channel)),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let reply = app.call("GET", "/sessions/s0", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["active_step_id"], json!(step(2)));

    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(plan["status"], "pending");
    assert_eq!(plan["from_version"], 1);
    assert_eq!(plan["to_version"], 2);
    assert_eq!(plan["scenario_name"], "Support flow");
    assert_eq!(plan["revision"], 1);
    let anchors = plan["transformation_map"]["anchors"].as_array().unwrap();
    let collect_email = anchors
        .iter()
        .find(|a| a["anchor_name"] == "Collect email")
        .unwrap();
    assert_eq!(collect_email["migration_scenario"], "gap_fill");
    let email_hash = collect_email["anchor_content_hash"]
        .as_str()
        .unwrap()
        .to_string();

    // Real session counts in the summary.
    let summary = app
        .call("GET", &format!("/migration-plans/{plan_id}/summary"), None)
        .await;
    assert_eq!(summary.status, 200);
    assert_eq!(summary.body["sessions_by_anchor"][&email_hash], 3);
    assert_eq!(summary.body["estimated_sessions_affected"], 4);

    let list = app
        .call(
            "GET",
            &format!("/migration-plans?scenario_id={scenario}"),
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["plans"][0]["id"], plan_id.as_str());
    assert_eq!(list.body["plans"][0]["total_anchors"], 3);

    // Only WhatsApp sessions at Collect email migrate.
    let policies = json!({"policies": {email_hash.clone(): {
        "anchor_content_hash": email_hash,
        "anchor_name": "Collect email",
        "scope_filter": {"include_channels": ["whatsapp"], "custom_conditions": ["session.age_days >= 0"]},
        "update_downstream": true
    }}});
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(policies),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["revision"], 2);
    assert_eq!(
        reply.body["anchor_policies"][&email_hash]["scope_filter"]["include_channels"],
        json!(["whatsapp"])
    );

    let reply = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/approve"),
            Some(json!({"approved_by": "lead"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "approved");
    assert_eq!(reply.body["approved_by"], "lead");

    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "deployed");
    assert_eq!(
        reply.body["sessions_marked"], 3,
        "2 whatsapp at Collect email + 1 at Done"
    );
    assert_eq!(reply.body["sessions_by_anchor"][&email_hash], 2);
    assert!(reply.body["deployed_at"].is_string());

    let status = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["sessions_marked"], 3);
    assert_eq!(status.body["migrations_pending"], 3);
    assert_eq!(status.body["migrations_applied"], 0);
    assert_eq!(status.body["status"], "deployed");

    // Marking touched nothing but the flag; the web session was left alone.
    let s0 = app.call("GET", "/sessions/s0", None).await.body;
    assert_eq!(
        s0["pending_migration"]["migration_plan_id"],
        plan_id.as_str()
    );
    assert_eq!(s0["pending_migration"]["target_version"], 2);
    assert_eq!(s0["active_scenario_version"], 1);
    let s2 = app.call("GET", "/sessions/s2", None).await.body;
    assert!(s2.get("pending_migration").is_none_or(|v| v.is_null()));

    // The scenario moved to V2; V1 stays readable.
    let current = app
        .call("GET", &format!("/scenarios/{scenario}"), None)
        .await;
    assert_eq!(current.body["version"], 2);
    let v1 = app
        .call("GET", &format!("/scenarios/{scenario}/versions/1"), None)
        .await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body["steps"].as_array().unwrap().len(), 3);

    // Deploying again is a conflict.
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
            .await
            .status,
        409
    );
}

async fn bad_input_is_422_and_changes_nothing(app: TestApp) {
    let scenario = create_scenario(&app).await;
    let url = |p: &str| format!("{}{}", app.base, p);

    // Missing and malformed tenant header.
    let reply = app.raw(app.client.get(url("/migration-plans"))).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.body["detail"][0]["loc"],
        json!(["header", "X-Tenant-ID"])
    );
    let reply = app
        .raw(
            app.client
                .get(url("/migration-plans"))
                .header("X-Tenant-ID", "nope"),
        )
        .await;
    assert_eq!(reply.status, 422);

    // Bad UUID in the path.
    let reply = app.call("GET", "/migration-plans/not-a-uuid", None).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["path", "plan_id"]));

    // Malformed JSON and unknown fields.
    let reply = app
        .raw(
            app.client
                .post(url(&format!("/scenarios/{scenario}/migration-plan")))
                .header("X-Tenant-ID", app.tenant.to_string())
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(reply.status, 422);
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2(), "surprise": 1})),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "extra_forbidden");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "surprise"]));

    // Out-of-range limit and unknown status.
    assert_eq!(
        app.call("GET", "/migration-plans?limit=0", None)
            .await
            .status,
        422
    );
    assert_eq!(
        app.call("GET", "/migration-plans?limit=101", None)
            .await
            .status,
        422
    );
    assert_eq!(
        app.call("GET", "/migration-plans?plan_status=bogus", None)
            .await
            .status,
        422
    );

    // An invalid scenario lists every problem with its location.
    let mut bad = scenario_v2();
    bad["steps"][0]["name"] = json!("");
    bad["steps"][1]["transitions"][0]["to_step_id"] = json!(Uuid::new_v4());
    bad["entry_step_id"] = json!(Uuid::new_v4());
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": bad})),
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let problems = reply.body["detail"].as_array().unwrap();
    assert!(problems.len() >= 3, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p["loc"][0] == "body" && p["loc"][1] == "new_scenario")
    );

    // A version that is not greater than the current one.
    let mut same = scenario_v2();
    same["version"] = json!(1);
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": same})),
        )
        .await;
    assert_eq!(reply.status, 409);

    // Over 6 MB.
    let huge = "x".repeat(6 * 1024 * 1024 + 10);
    let reply = app
        .raw(
            app.client
                .post(url(&format!("/scenarios/{scenario}/migration-plan")))
                .header("X-Tenant-ID", app.tenant.to_string())
                .header("content-type", "application/json")
                .body(format!("{{\"created_by\": \"{huge}\"}}")),
        )
        .await;
    assert_eq!(reply.status, 413);
    assert!(reply.body["detail"].is_string());

    // Policies: unknown hash, invalid CEL, unknown force_scenario.
    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap();
    let hash = plan["transformation_map"]["anchors"][0]["anchor_content_hash"]
        .as_str()
        .unwrap();
    let policy = |extra: serde_json::Value| {
        let mut p = json!({"anchor_content_hash": hash, "anchor_name": "x"});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let reply = app
        .call("PUT", &format!("/migration-plans/{plan_id}/policies"), Some(json!({"policies": {"0000000000000000": policy(json!({"anchor_content_hash": "0000000000000000"}))}})))
        .await;
    assert_eq!(reply.status, 422);
    let reply = app
        .call("PUT", &format!("/migration-plans/{plan_id}/policies"), Some(json!({"policies": {hash: policy(json!({"scope_filter": {"custom_conditions": ["this is (( not cel"]}}))}})))
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "value_error.cel");
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(
                json!({"policies": {hash: policy(json!({"force_scenario": "teleport_everyone"}))}}),
            ),
        )
        .await;
    assert_eq!(reply.status, 422);

    // Nothing changed: still pending at revision 1.
    let reply = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(reply.body["revision"], 1);
    assert_eq!(reply.body["status"], "pending");
    // Unknown route is a JSON 404.
    let reply = app.call("GET", "/nowhere", None).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body["detail"].is_string());
}

async fn other_tenants_see_404(app: TestApp) {
    let scenario = create_scenario(&app).await;
    app.call(
        "PUT",
        "/sessions/private",
        Some(session_at(scenario, 1, step(2), "web")),
    )
    .await;
    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap();
    let other = Uuid::new_v4();
    for path in [
        format!("/scenarios/{scenario}"),
        format!("/scenarios/{scenario}/versions/1"),
        "/sessions/private".to_string(),
        format!("/migration-plans/{plan_id}"),
        format!("/migration-plans/{plan_id}/summary"),
        format!("/migration-plans/{plan_id}/deployment-status"),
    ] {
        let reply = app.call_as(other, "GET", &path, None).await;
        assert_eq!(reply.status, 404, "{path}: {:?}", reply.body);
    }
    let reply = app
        .call_as(
            other,
            "POST",
            &format!("/migration-plans/{plan_id}/approve"),
            None,
        )
        .await;
    assert_eq!(reply.status, 404);
    let reply = app
        .call_as(
            other,
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 404);
    let list = app.call_as(other, "GET", "/migration-plans", None).await;
    assert_eq!(list.body["total"], 0);
    // The owner still sees a pending plan.
    assert_eq!(
        app.call("GET", &format!("/migration-plans/{plan_id}"), None)
            .await
            .body["status"],
        "pending"
    );
}

async fn concurrent_approvals_have_one_winner(app: TestApp) {
    let scenario = create_scenario(&app).await;
    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let calls = (0..10).map(|i| {
        let path = format!(
            "/migration-plans/{plan_id}/{}",
            if i % 3 == 0 { "reject" } else { "approve" }
        );
        let app = &app;
        async move { app.call("POST", &path, None).await.status }
    });
    let statuses = futures::future::join_all(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    assert_eq!(plan["revision"], 2);

    // Concurrent deploys of an approved plan: one 200, the rest 409 or 202 progress.
    let scenario = create_scenario(&app).await;
    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
            .await
            .status,
        200
    );
    let calls = (0..6).map(|_| {
        let path = format!("/migration-plans/{plan_id}/deploy");
        let app = &app;
        async move { app.call("POST", &path, None).await.status }
    });
    let statuses = futures::future::join_all(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 202, 409].contains(s)),
        "{statuses:?}"
    );
}

async fn lifecycle_conflicts(app: TestApp) {
    let scenario = create_scenario(&app).await;
    let plan = create_plan(&app, scenario).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    // A second live plan for the same version pair.
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 409);
    // Deploy before approval.
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
            .await
            .status,
        409
    );
    let reply = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/reject"),
            Some(json!({"rejected_by": "lead", "reason": "not now"})),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "rejected");
    assert_eq!(reply.body["rejection_reason"], "not now");
    // Rejected is final.
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
            .await
            .status,
        409
    );
    let policies = json!({"policies": {}});
    assert_eq!(
        app.call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(policies)
        )
        .await
        .status,
        409
    );
    // The slot is free again.
    let again = create_plan(&app, scenario).await;
    assert_ne!(again["id"], plan["id"]);
    let list = app
        .call(
            "GET",
            &format!("/migration-plans?status=rejected&scenario_id={scenario}"),
            None,
        )
        .await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["plans"][0]["id"], plan_id.as_str());
}

async fn deploy_supersedes_sibling_plans(app: TestApp) {
    let scenario = create_scenario(&app).await;
    let first = create_plan(&app, scenario).await;
    let mut v3 = scenario_v2();
    v3["version"] = json!(3);
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v3})),
        )
        .await;
    assert_eq!(reply.status, 201);
    let second = reply.body;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    for id in [first_id, second_id] {
        assert_eq!(
            app.call("POST", &format!("/migration-plans/{id}/approve"), None)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.call(
            "POST",
            &format!("/migration-plans/{second_id}/deploy"),
            None
        )
        .await
        .status,
        200
    );
    let first_now = app
        .call("GET", &format!("/migration-plans/{first_id}"), None)
        .await
        .body;
    assert_eq!(first_now["status"], "superseded");
    assert_eq!(
        app.call("POST", &format!("/migration-plans/{first_id}/deploy"), None)
            .await
            .status,
        409
    );
    assert_eq!(
        app.call("GET", &format!("/scenarios/{scenario}"), None)
            .await
            .body["version"],
        3
    );
    // Newest first.
    let list = app.call("GET", "/migration-plans", None).await.body;
    assert_eq!(list["plans"][0]["id"], second_id);
    assert_eq!(list["plans"][1]["id"], first_id);
}
