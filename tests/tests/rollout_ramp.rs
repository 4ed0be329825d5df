//! Partial rollouts end to end, on the embedded store and DynamoDB Local: a
//! deploy at a percent marks only its cohort and keeps the scenario's version,
//! sessions outside stay, ramps 10 → 50 → 100 mark each session once (none
//! twice, also with reconciles racing the ramps on real threads), and at 100%
//! the new version is current.

use std::collections::BTreeSet;

use crate::common::*;
use planning::cohort::in_cohort;
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        ramps_mark_each_session_once_and_100_percent_moves_the_version,
        reconciles_racing_ramps_migrate_each_session_once,
        a_percent_outside_1_to_100_changes_nothing,
    ],
}

/// V1 with sessions at Step 1 (a clean graft each), plan V2 and approve it.
/// Returns (scenario, plan id).
async fn approved_with(app: &TestApp, sessions: &[String]) -> (Uuid, String) {
    approved_plan_with_sessions(app, sessions, 1, scenario_v2()).await
}

async fn deploy_at(app: &TestApp, plan_id: &str, percent: u8) -> Reply {
    app.call(
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        Some(json!({ "percent": percent })),
    )
    .await
}

fn cohort(plan_id: &str, ids: &[String], percent: u8) -> BTreeSet<String> {
    let plan = Uuid::parse_str(plan_id).unwrap();
    ids.iter()
        .filter(|id| in_cohort(plan, id, percent))
        .cloned()
        .collect()
}

async fn version_of(app: &TestApp, id: &str) -> i64 {
    let reply = app.call("GET", &format!("/sessions/{id}"), None).await;
    reply.body["active_scenario_version"].as_i64().unwrap()
}

async fn ramps_mark_each_session_once_and_100_percent_moves_the_version(app: TestApp) {
    let ids: Vec<String> = (0..120).map(|i| format!("c-{i}")).collect();
    let (scenario, plan_id) = approved_with(&app, &ids).await;
    let (at10, at50) = (cohort(&plan_id, &ids, 10), cohort(&plan_id, &ids, 50));
    assert!(!at10.is_empty() && at10.len() < at50.len() && at50.len() < ids.len());
    assert!(
        at10.is_subset(&at50),
        "a wider cohort holds the narrower one"
    );

    let deploy = deploy_at(&app, &plan_id, 10).await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    assert_eq!(deploy.body["status"], "deployed");
    assert_eq!(deploy.body["percent"], 10);
    assert_eq!(deploy.body["sessions_marked"], at10.len() as u64);
    // The scenario keeps V1; a runtime asking for a session of the cohort gets V2.
    let current = app
        .call("GET", &format!("/scenarios/{scenario}"), None)
        .await;
    assert_eq!(current.body["version"], 1, "{:?}", current.body);
    let inside = at10.iter().next().unwrap();
    let outside = ids.iter().find(|id| !at50.contains(*id)).unwrap();
    let asked = |id: &str| format!("/scenarios/{scenario}?session_id={id}");
    assert_eq!(
        app.call("GET", &asked(inside), None).await.body["version"],
        2
    );
    assert_eq!(
        app.call("GET", &asked(outside), None).await.body["version"],
        1
    );
    // No next plan while the rollout is partial.
    let mut v3 = scenario_v2();
    v3["version"] = json!(3);
    let next = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v3})),
        )
        .await;
    assert_eq!(next.status, 409, "{:?}", next.body);

    // Outside the cohort: continue, nothing written.
    let before = app
        .call("GET", &format!("/sessions/{outside}"), None)
        .await
        .body;
    let answer = reconcile_now(&app, outside).await;
    assert_eq!(answer["action"], "continue", "{answer}");
    assert_eq!(answer["reason"], "outside the rollout cohort", "{answer}");
    let after = app
        .call("GET", &format!("/sessions/{outside}"), None)
        .await
        .body;
    assert_eq!(before, after);
    // Inside: migrated.
    let answer = reconcile_now(&app, inside).await;
    assert_eq!(answer["migration_scenario"], "clean_graft", "{answer}");
    assert_eq!(version_of(&app, inside).await, 2);

    // The same or a smaller percent is refused, the plan unchanged.
    for percent in [10, 5] {
        let reply = deploy_at(&app, &plan_id, percent).await;
        assert_eq!(reply.status, 409, "{percent}: {:?}", reply.body);
    }
    let ramp = deploy_at(&app, &plan_id, 50).await;
    assert_eq!(ramp.status, 200, "{:?}", ramp.body);
    assert_eq!(
        (ramp.body["status"].clone(), ramp.body["percent"].clone()),
        (json!("deployed"), json!(50))
    );
    // Marked once each: the first slice's flags (one already applied) are not
    // counted again.
    assert_eq!(
        ramp.body["sessions_marked"],
        at50.len() as u64,
        "{:?}",
        ramp.body
    );
    assert_eq!(
        app.call("GET", &format!("/scenarios/{scenario}"), None)
            .await
            .body["version"],
        1
    );
    for id in &at50 {
        reconcile_now(&app, id).await;
    }
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["migrations_applied"], at50.len() as u64, "{st}");
    assert_eq!(st["migrations_pending"], 0, "{st}");

    let ramp = deploy_at(&app, &plan_id, 100).await;
    assert_eq!(ramp.status, 200, "{:?}", ramp.body);
    assert_eq!(ramp.body["percent"], 100);
    assert_eq!(
        ramp.body["sessions_marked"],
        ids.len() as u64,
        "{:?}",
        ramp.body
    );
    assert_eq!(
        app.call("GET", &format!("/scenarios/{scenario}"), None)
            .await
            .body["version"],
        2
    );
    assert_eq!(
        deploy_at(&app, &plan_id, 100).await.status,
        409,
        "nothing past 100%"
    );
    for id in &ids {
        reconcile_now(&app, id).await;
        assert_eq!(version_of(&app, id).await, 2, "{id}");
    }
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (
            st["sessions_marked"].clone(),
            st["migrations_applied"].clone(),
            st["migrations_pending"].clone()
        ),
        (json!(ids.len()), json!(ids.len()), json!(0)),
        "{st}"
    );
    let events = events_per_session(&app, &plan_id).await;
    assert_eq!(events.len(), ids.len());
    assert!(events.values().all(|n| *n == 1), "{events:?}");
}

/// Runtimes reconcile on real threads while the rollout ramps 10 → 60 → 100:
/// every session ends on V2 with exactly one audit event, and every flag set
/// was applied once (marked = applied with a flag; the rest migrated before
/// marking reached them, counted apart).
async fn reconciles_racing_ramps_migrate_each_session_once(app: TestApp) {
    const SESSIONS: usize = 90;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("r-{i}")).collect();
    let (_, plan_id) = approved_with(&app, &ids).await;
    assert_eq!(deploy_at(&app, &plan_id, 10).await.status, 200);
    let (base, tenant) = (app.base.clone(), app.tenant);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The runtime writes every session under If-Match all along.
    let runtime = spawn_runtime_writers(&app, &ids, 3, stop.clone());
    let mut racers = Vec::new();
    for chunk in ids.chunks(SESSIONS / 6) {
        let (client, base, chunk) = (app.client.clone(), base.clone(), chunk.to_vec());
        let stop = stop.clone();
        racers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for id in &chunk {
                    let reply = client
                        .post(format!("{base}/sessions/{id}/reconcile"))
                        .header("X-Tenant-ID", tenant.to_string())
                        .json(&json!({}))
                        .send()
                        .await
                        .expect("reconcile");
                    assert_eq!(reply.status().as_u16(), 200);
                }
            }
        }));
    }
    for percent in [60, 100] {
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        let ramp = deploy_at(&app, &plan_id, percent).await;
        assert!(ramp.status == 200 || ramp.status == 202, "{:?}", ramp.body);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for racer in racers {
        racer.await.expect("racer");
    }
    let written = runtime.await.expect("runtime writers");
    assert_runtime_writes_kept(&app, &written).await;
    for id in &ids {
        reconcile_now(&app, id).await;
        assert_eq!(version_of(&app, id).await, 2, "{id}");
    }
    let events = events_per_session(&app, &plan_id).await;
    assert_eq!(events.len(), SESSIONS, "{events:?}");
    assert!(events.values().all(|n| *n == 1), "{events:?}");
    let st = deployment_status(&app, &plan_id).await;
    let (marked, applied, unflagged) = (
        st["sessions_marked"].as_u64().unwrap(),
        st["migrations_applied"].as_u64().unwrap(),
        st["migrations_applied_unflagged"].as_u64().unwrap(),
    );
    assert_eq!(marked, applied, "every flag applied once: {st}");
    assert_eq!(applied + unflagged, SESSIONS as u64, "{st}");
    assert_eq!(st["migrations_pending"], 0, "{st}");
}

async fn a_percent_outside_1_to_100_changes_nothing(app: TestApp) {
    let ids = vec!["z-1".to_string()];
    let (scenario, plan_id) = approved_with(&app, &ids).await;
    for body in [
        json!({"percent": 0}),
        json!({"percent": 101}),
        json!({"percent": 12.5}),
        json!({"percent": "50"}),
    ] {
        let reply = app
            .call(
                "POST",
                &format!("/migration-plans/{plan_id}/deploy"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.body);
    }
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(plan.body["status"], "approved");
    let current = app
        .call("GET", &format!("/scenarios/{scenario}"), None)
        .await;
    assert_eq!(current.body["version"], 1);
}
