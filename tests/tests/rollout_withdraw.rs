//! Withdrawing a rollout end to end, on the embedded store and DynamoDB Local:
//! every flag reconcile has not applied is cleared and counted exactly, the
//! from-version is current again, migrated sessions stay, and reconciles racing
//! the withdrawal on real threads either apply (one audit event) or find no
//! flag — never both, never neither.

use crate::common::*;
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        a_withdrawal_clears_every_unapplied_flag_and_gives_the_version_back,
        reconciles_racing_a_withdrawal_apply_or_find_no_flag,
        a_partial_rollout_withdrawn_reaches_nobody,
    ],
}

/// V1 with sessions at Step 1, plan V2 approved and deployed at `percent`.
async fn deployed_at(app: &TestApp, sessions: &[String], percent: u8) -> (Uuid, String) {
    let (scenario, plan_id) = approved_plan_with_sessions(app, sessions, 1, scenario_v2()).await;
    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({ "percent": percent })),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    (scenario, plan_id)
}

async fn withdraw(app: &TestApp, plan_id: &str) -> Reply {
    app.call(
        "POST",
        &format!("/migration-plans/{plan_id}/withdraw"),
        None,
    )
    .await
}

async fn a_withdrawal_clears_every_unapplied_flag_and_gives_the_version_back(app: TestApp) {
    let ids: Vec<String> = (0..30).map(|i| format!("w-{i}")).collect();
    let (scenario, plan_id) = deployed_at(&app, &ids, 100).await;
    assert_eq!(
        app.call("GET", &format!("/scenarios/{scenario}"), None)
            .await
            .body["version"],
        2
    );
    for id in &ids[..10] {
        let answer = reconcile_now(&app, id).await;
        assert_eq!(answer["migration_scenario"], "clean_graft", "{answer}");
    }
    // The runtime moved a flagged session to another step (the flag stays with it).
    let mut moved = app.call("GET", "/sessions/w-29", None).await.body;
    moved["active_step_id"] = json!(step(3));
    let reply = app.call("PUT", "/sessions/w-29", Some(moved)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let reply = withdraw(&app, &plan_id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "withdrawn");
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (
            st["sessions_marked"].clone(),
            st["migrations_applied"].clone(),
            st["flags_withdrawn"].clone(),
            st["migrations_pending"].clone()
        ),
        (json!(30), json!(10), json!(20), json!(0)),
        "{st}"
    );
    assert_eq!(
        app.call("GET", &format!("/scenarios/{scenario}"), None)
            .await
            .body["version"],
        1
    );
    for id in &ids[10..] {
        let session = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        assert!(session["pending_migration"].is_null(), "{session}");
        assert_eq!(session["active_scenario_version"], 1);
        let answer = reconcile_now(&app, id).await;
        assert_eq!(answer["action"], "continue", "{answer}");
    }
    for id in &ids[..10] {
        let session = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        assert_eq!(
            session["active_scenario_version"], 2,
            "migrated sessions stay"
        );
    }
    assert_eq!(audit_event_count(&app, &plan_id).await, 10);
    // Nothing to take back twice; V2 is taken, V3 can be planned.
    assert_eq!(withdraw(&app, &plan_id).await.status, 409);
    let again = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    let mut v3 = scenario_v2();
    v3["version"] = json!(3);
    let next = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v3})),
        )
        .await;
    assert_eq!(next.status, 201, "{:?}", next.body);
}

/// Runtimes reconcile every session on real threads while the withdrawal
/// runs: afterwards no flag is left, and each session either migrated once
/// (one audit event, on V2) or had its flag withdrawn (no event, on V1); the
/// counters say the same.
async fn reconciles_racing_a_withdrawal_apply_or_find_no_flag(app: TestApp) {
    const SESSIONS: usize = 90;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("x-{i}")).collect();
    let (_, plan_id) = deployed_at(&app, &ids, 100).await;
    let (base, tenant) = (app.base.clone(), app.tenant);
    // The runtime writes every session under If-Match all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runtime = spawn_runtime_writers(&app, &ids, 3, stop.clone());
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
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let reply = withdraw(&app, &plan_id).await;
    assert!(
        reply.status == 200 || reply.status == 202,
        "{:?}",
        reply.body
    );
    for racer in racers {
        racer.await.expect("racer");
    }
    wait_for_plan_status(&app, &plan_id, "withdrawn").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = runtime.await.expect("runtime writers");
    assert_runtime_writes_kept(&app, &written).await;
    let events = events_per_session(&app, &plan_id).await;
    let mut migrated = 0;
    for id in &ids {
        let session = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        assert!(
            session["pending_migration"].is_null(),
            "a flag survived: {session}"
        );
        let applied = events.get(id).copied().unwrap_or(0);
        assert!(applied <= 1, "{id} migrated {applied} times");
        let version = session["active_scenario_version"].as_i64().unwrap();
        assert_eq!(
            version,
            1 + applied as i64,
            "{id}: {applied} events, version {version}"
        );
        migrated += applied;
    }
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["status"], "withdrawn", "{st}");
    assert_eq!(st["migrations_applied"], migrated as u64, "{st}");
    assert_eq!(st["flags_withdrawn"], (SESSIONS - migrated) as u64, "{st}");
    assert_eq!(st["migrations_pending"], 0, "{st}");
}

async fn a_partial_rollout_withdrawn_reaches_nobody(app: TestApp) {
    let ids: Vec<String> = (0..60).map(|i| format!("y-{i}")).collect();
    let (scenario, plan_id) = deployed_at(&app, &ids, 30).await;
    let plan = Uuid::parse_str(&plan_id).unwrap();
    let inside: Vec<&String> = ids
        .iter()
        .filter(|id| planning::cohort::in_cohort(plan, id, 30))
        .collect();
    assert!(!inside.is_empty());
    let asked = format!("/scenarios/{scenario}?session_id={}", inside[0]);
    assert_eq!(app.call("GET", &asked, None).await.body["version"], 2);
    // Paused first: a paused rollout can be withdrawn too.
    let paused = app
        .call("POST", &format!("/migration-plans/{plan_id}/pause"), None)
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    let reply = withdraw(&app, &plan_id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["flags_withdrawn"], inside.len() as u64, "{st}");
    assert_eq!(
        app.call("GET", &asked, None).await.body["version"],
        1,
        "the cohort is gone"
    );
    let answer = reconcile_now(&app, inside[0]).await;
    assert_eq!(answer["action"], "continue", "{answer}");
    assert_eq!(audit_event_count(&app, &plan_id).await, 0);
    // A plan that never deployed cannot be withdrawn.
    let mut v3 = scenario_v2();
    v3["version"] = json!(3);
    let next = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v3})),
        )
        .await;
    assert_eq!(next.status, 201, "{:?}", next.body);
    let pending = next.body["id"].as_str().unwrap();
    assert_eq!(withdraw(&app, pending).await.status, 409);
}
