//! Pausing and resuming a rollout end to end, on the embedded store and
//! DynamoDB Local: while paused nothing is applied (also by reconciles racing
//! the pause on real threads), flags stay, and a resume applies exactly once.

use crate::common::*;
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        a_paused_rollout_applies_nothing_and_resumes,
        no_migration_lands_after_the_pause_answers,
        only_activated_plans_pause_and_only_paused_ones_resume,
        the_history_names_who_paused_and_a_bad_name_changes_nothing,
    ],
}

/// V1 and its sessions at Step 1 (upstream of V2's change: a clean graft each),
/// then plan V2, approve and deploy. Returns the plan id.
async fn deployed_with(app: &TestApp, sessions: &[String]) -> String {
    let (_, plan_id) = approved_plan_with_sessions(app, sessions, 1, scenario_v2()).await;
    let deploy = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    assert_eq!(deploy.body["sessions_marked"], sessions.len() as u64);
    plan_id
}

async fn a_paused_rollout_applies_nothing_and_resumes(app: TestApp) {
    let ids: Vec<String> = (0..3).map(|i| format!("p-{i}")).collect();
    let plan_id = deployed_with(&app, &ids).await;

    let paused = app
        .call("POST", &format!("/migration-plans/{plan_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    assert_eq!(paused.body["sessions_marked"], 3);
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(plan.body["status"], "paused");
    assert_eq!(plan.body["paused_from"], "deployed");

    // Flagged sessions stay where they are, flag kept, nothing counted.
    let before = app.call("GET", "/sessions/p-0", None).await.body;
    let answer = reconcile_now(&app, "p-0").await;
    assert_eq!(answer["action"], "continue", "{answer}");
    assert_eq!(answer["reason"], "rollout paused", "{answer}");
    let after = app.call("GET", "/sessions/p-0", None).await.body;
    assert_eq!(after, before, "a paused rollout wrote the session");
    assert_eq!(
        after["pending_migration"]["migration_plan_id"],
        plan_id.as_str()
    );
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (
            st["migrations_applied"].clone(),
            st["migrations_pending"].clone()
        ),
        (json!(0), json!(3)),
        "{st}"
    );
    assert_eq!(audit_event_count(&app, &plan_id).await, 0);
    // A second pause is refused: the plan is not deploying or deployed.
    let again = app
        .call("POST", &format!("/migration-plans/{plan_id}/pause"), None)
        .await;
    assert_eq!(again.status, 409, "{:?}", again.body);

    let resumed = app
        .call("POST", &format!("/migration-plans/{plan_id}/resume"), None)
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    assert_eq!(resumed.body["status"], "deployed");
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert!(plan.body["paused_from"].is_null(), "{:?}", plan.body);
    // The process that saw the pause trusts it for up to 2 s; then it writes.
    let mut answer = reconcile_now(&app, "p-0").await;
    for _ in 0..40 {
        if answer["reason"] != "rollout paused" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = reconcile_now(&app, "p-0").await;
    }
    assert_eq!(answer["migration_scenario"], "clean_graft", "{answer}");
    for id in &ids[1..] {
        reconcile_now(&app, id).await;
    }
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (
            st["migrations_applied"].clone(),
            st["migrations_pending"].clone()
        ),
        (json!(3), json!(0)),
        "{st}"
    );
    assert_eq!(audit_event_count(&app, &plan_id).await, 3);
}

/// Reconciles on real threads race the pause: every migration counted once
/// the pause has answered was applied before it (the count never moves after),
/// and the counters match the audit events.
async fn no_migration_lands_after_the_pause_answers(app: TestApp) {
    const SESSIONS: usize = 60;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("r-{i}")).collect();
    let plan_id = deployed_with(&app, &ids).await;
    let (base, tenant) = (app.base.clone(), app.tenant);
    let mut racers = Vec::new();
    for chunk in ids.chunks(SESSIONS / 6) {
        let (client, base, chunk) = (app.client.clone(), base.clone(), chunk.to_vec());
        racers.push(tokio::spawn(async move {
            for id in chunk {
                let reply = client
                    .post(format!("{base}/sessions/{id}/reconcile"))
                    .header("X-Tenant-ID", tenant.to_string())
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("reconcile");
                assert_eq!(reply.status().as_u16(), 200);
            }
        }));
    }
    // Let some land first, then pause in the middle of the stream.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let paused = app
        .call("POST", &format!("/migration-plans/{plan_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    let at_pause = deployment_status(&app, &plan_id).await["migrations_applied"]
        .as_u64()
        .unwrap();
    for racer in racers {
        racer.await.expect("racer");
    }
    let after = deployment_status(&app, &plan_id).await;
    assert_eq!(
        after["migrations_applied"], at_pause,
        "applied after the pause answered: {after}"
    );
    assert_eq!(audit_event_count(&app, &plan_id).await, at_pause);
    assert_eq!(after["migrations_pending"], SESSIONS as u64 - at_pause);
}

async fn only_activated_plans_pause_and_only_paused_ones_resume(app: TestApp) {
    let scenario = Uuid::new_v4();
    app.call(
        "PUT",
        &format!("/scenarios/{scenario}"),
        Some(scenario_v1()),
    )
    .await;
    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    let plan_id = plan.body["id"].as_str().unwrap().to_string();
    for route in ["pause", "resume"] {
        let reply = app
            .call("POST", &format!("/migration-plans/{plan_id}/{route}"), None)
            .await;
        assert_eq!(reply.status, 409, "{route}: {:?}", reply.body);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("pending"),
            "{:?}",
            reply.body
        );
    }
    let unknown = Uuid::new_v4();
    let reply = app
        .call("POST", &format!("/migration-plans/{unknown}/pause"), None)
        .await;
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    // Another tenant's plan does not exist for this one.
    let reply = app
        .call_as(
            Uuid::new_v4(),
            "POST",
            &format!("/migration-plans/{plan_id}/pause"),
            None,
        )
        .await;
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(plan.body["status"], "pending");
}

/// A pause names who asked for it in the plan's history; a `by` the history
/// could not keep as given is a 422 that changes nothing.
async fn the_history_names_who_paused_and_a_bad_name_changes_nothing(app: TestApp) {
    let plan_id = deployed_with(&app, &["h-0".to_string()]).await;
    let pause = format!("/migration-plans/{plan_id}/pause");
    let before = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    for bad in [
        json!({"by": "x".repeat(201)}),
        json!({"by": 7}),
        json!({"who": "ana"}),
    ] {
        let reply = app.call("POST", &pause, Some(bad.clone())).await;
        assert_eq!(reply.status, 422, "{bad}: {:?}", reply.body);
        assert!(reply.body["detail"].is_array(), "{:?}", reply.body);
    }
    let after = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    assert_eq!(after, before, "a refused pause changed the plan");

    // 200 characters is the most a name may have (counted in characters).
    let longest = "é".repeat(200);
    let paused = app.call("POST", &pause, Some(json!({"by": longest}))).await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    let resumed = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/resume"),
            Some(json!({})),
        )
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    let history = plan["transitions"].as_array().expect("transitions");
    let steps: Vec<(&str, &str, Option<&str>)> = history
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap(),
                r["to"].as_str().unwrap(),
                r["by"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("pending", "approved", None),
            ("approved", "deploying", None),
            ("deploying", "deployed", None),
            ("deployed", "paused", Some(longest.as_str())),
            ("paused", "deployed", None),
        ]
    );
    let last = history.last().unwrap();
    assert_eq!(last["revision"], plan["revision"]);
    assert_eq!(history[1]["percent"], 100);
}
