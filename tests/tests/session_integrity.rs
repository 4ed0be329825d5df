//! The session concurrency contract over HTTP, on the embedded store and DynamoDB
//! Local: revisions and `ETag`/`If-Match`, the round trip of what `GET` returns,
//! no move back to an older version, flags cleared across scenarios — and races of
//! the runtime's writes against marking and reconcile, with real concurrent clients.

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        round_trip_revisions_and_preconditions,
        never_back_to_an_older_version,
        another_scenario_clears_the_flag,
        runtime_writes_during_inline_marking_lose_no_flag,
        reconcile_racing_stale_writes_applies_once,
        concurrent_if_match_writers_exactly_one_wins,
    ],
}

async fn put_session(
    app: &TestApp,
    id: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (Reply, Option<String>) {
    let mut request = app
        .client
        .put(format!("{}/sessions/{id}", app.base))
        .header("X-Tenant-ID", app.tenant.to_string())
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (Reply { status, body }, etag)
}

async fn new_scenario(app: &TestApp) -> Uuid {
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

/// Plan V1 → V2, approve, deploy; returns the plan id.
async fn deploy_v2(app: &TestApp, scenario: Uuid) -> String {
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().expect("id").to_owned();
    let approve = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(approve.status, 200, "{:?}", approve.body);
    let deploy = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    plan_id
}

async fn round_trip_revisions_and_preconditions(app: TestApp) {
    let scenario = new_scenario(&app).await;
    let body = session_at(scenario, 1, step(2), "whatsapp");
    let (created, etag) = put_session(&app, "rt-1", &body, &[("If-None-Match", "*")]).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["revision"], 1);
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let (again, _) = put_session(&app, "rt-1", &body, &[("If-None-Match", "*")]).await;
    assert_eq!(again.status, 412, "create-only on an existing session");

    // What GET returns goes back as it is.
    let got = app.call("GET", "/sessions/rt-1", None).await;
    assert_eq!(got.status, 200);
    let mut read = got.body.clone();
    read["variables"] = json!({"name": "Ana"});
    let (written, etag) = put_session(&app, "rt-1", &read, &[("If-Match", "\"1\"")]).await;
    assert_eq!(written.status, 200, "{:?}", written.body);
    assert_eq!(written.body["revision"], 2);
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(written.body["variables"]["name"], "Ana");

    // A stale If-Match: 412 naming the current revision, nothing written.
    let (stale, _) = put_session(&app, "rt-1", &body, &[("If-Match", "\"1\"")]).await;
    assert_eq!(stale.status, 412);
    assert!(
        stale.body["detail"].as_str().unwrap_or("").contains('2'),
        "{:?}",
        stale.body
    );
    let (garbage, _) = put_session(&app, "rt-1", &body, &[("If-Match", "yesterday")]).await;
    assert_eq!(garbage.status, 422);
    let now = app.call("GET", "/sessions/rt-1", None).await;
    assert_eq!(now.body["revision"], 2);
    assert_eq!(now.body["variables"]["name"], "Ana");

    // Identity in the body must match the path and the tenant.
    let mut other_id = read.clone();
    other_id["session_id"] = json!("rt-2");
    assert_eq!(
        put_session(&app, "rt-1", &other_id, &[]).await.0.status,
        422
    );
    let mut other_tenant = read.clone();
    other_tenant["tenant_id"] = json!(Uuid::new_v4());
    assert_eq!(
        put_session(&app, "rt-1", &other_tenant, &[]).await.0.status,
        422
    );
    assert_eq!(
        app.call("GET", "/sessions/rt-1", None).await.body["revision"],
        2
    );
}

async fn never_back_to_an_older_version(app: TestApp) {
    let scenario = new_scenario(&app).await;
    let v1_position = session_at(scenario, 1, step(2), "web");
    assert_eq!(
        put_session(&app, "old", &v1_position, &[]).await.0.status,
        201
    );
    deploy_v2(&app, scenario).await;
    let reconciled = app
        .call(
            "POST",
            "/sessions/old/reconcile",
            Some(json!({"known_fields": {"age": 30}})),
        )
        .await;
    assert_eq!(reconciled.status, 200, "{:?}", reconciled.body);
    let migrated = app.call("GET", "/sessions/old", None).await.body;
    assert_eq!(migrated["active_scenario_version"], 2);
    // A late write of the V1 position must not undo the migration.
    let (stale, _) = put_session(&app, "old", &v1_position, &[]).await;
    assert_eq!(stale.status, 409, "{:?}", stale.body);
    let after = app.call("GET", "/sessions/old", None).await.body;
    assert_eq!(after, migrated, "nothing written");
    // And nothing to reconcile a second time.
    let again = app.call("POST", "/sessions/old/reconcile", None).await;
    assert_eq!(again.body["action"], "continue");
}

async fn another_scenario_clears_the_flag(app: TestApp) {
    let (x, y) = (new_scenario(&app).await, new_scenario(&app).await);
    assert_eq!(
        put_session(&app, "hop", &session_at(x, 1, step(2), "web"), &[])
            .await
            .0
            .status,
        201
    );
    let plan_id = deploy_v2(&app, x).await;
    let flagged = app.call("GET", "/sessions/hop", None).await.body;
    assert_eq!(
        flagged["pending_migration"]["migration_plan_id"],
        json!(plan_id)
    );
    // The runtime moves the session to scenario Y.
    let (moved, _) = put_session(&app, "hop", &session_at(y, 1, step(2), "web"), &[]).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert!(
        moved.body.get("pending_migration").is_none(),
        "{:?}",
        moved.body
    );
    let reconciled = app.call("POST", "/sessions/hop/reconcile", None).await;
    assert_eq!(
        reconciled.body["action"], "continue",
        "{:?}",
        reconciled.body
    );
    let after = app.call("GET", "/sessions/hop", None).await.body;
    assert_eq!(after["active_scenario_id"], json!(y));
    assert_eq!(after["active_step_id"], json!(step(2)));
    let status = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await
        .body;
    assert_eq!(
        status["migrations_applied"], 0,
        "X's plan never touched a Y session"
    );
}

/// 300 sessions at an anchor; while deploy marks them inline, two runtime
/// clients keep writing every one of them at the same position.
async fn runtime_writes_during_inline_marking_lose_no_flag(app: TestApp) {
    const SESSIONS: usize = 300;
    let scenario = new_scenario(&app).await;
    let body = session_at(scenario, 1, step(2), "web");
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("busy-{i:04}")).collect();
    for id in &ids {
        assert_eq!(put_session(&app, id, &body, &[]).await.0.status, 201);
    }
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    let plan_id = reply.body["id"].as_str().expect("id").to_owned();
    app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = std::sync::Arc::new(app);
    let mut writers = Vec::new();
    for w in 0..2 {
        let (app, ids, body, stop) = (app.clone(), ids.clone(), body.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut writes = 0u64;
            // Until the deploy answers, checked before every write: a sweep over
            // all the sessions takes longer than the deploy on DynamoDB Local.
            for id in ids.iter().skip(w).step_by(2).cycle() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let mut b = body.clone();
                b["variables"] = json!({"turn": writes});
                let (r, _) = put_session(&app, id, &b, &[]).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                writes += 1;
            }
            writes
        }));
    }
    let deployed = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.expect("writer");
    }
    assert_eq!(deployed.status, 200, "{:?}", deployed.body);
    assert!(writes > 0, "the runtime wrote during the deploy");
    let mut flagged = 0;
    for id in &ids {
        let s = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        if s["pending_migration"]["migration_plan_id"] == json!(plan_id) {
            flagged += 1;
        }
    }
    assert_eq!(deployed.body["sessions_marked"], SESSIONS);
    assert_eq!(flagged, SESSIONS, "lost flags: {}", SESSIONS - flagged);
}

/// Each flagged session is reconciled while the runtime writes its old (V1)
/// position at the same moment: the migration is applied once per session.
async fn reconcile_racing_stale_writes_applies_once(app: TestApp) {
    const SESSIONS: usize = 50;
    let scenario = new_scenario(&app).await;
    let v1_position = session_at(scenario, 1, step(2), "web");
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("race-{i:03}")).collect();
    for id in &ids {
        assert_eq!(put_session(&app, id, &v1_position, &[]).await.0.status, 201);
    }
    let plan_id = deploy_v2(&app, scenario).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for id in &ids {
        let (app, id, body) = (app.clone(), id.clone(), v1_position.clone());
        tasks.push(tokio::spawn(async move {
            let path = format!("/sessions/{id}/reconcile");
            let reconcile = app.call("POST", &path, Some(json!({"known_fields": {"age": 40}})));
            let write = put_session(&app, &id, &body, &[]);
            let (reconciled, (written, _)) = tokio::join!(reconcile, write);
            assert_eq!(reconciled.status, 200, "{:?}", reconciled.body);
            assert!(
                written.status == 200 || written.status == 409,
                "{:?}",
                written.body
            );
            // A second call after the race: nothing left to apply.
            app.call(
                "POST",
                &format!("/sessions/{id}/reconcile"),
                Some(json!({"known_fields": {"age": 40}})),
            )
            .await
        }));
    }
    for task in tasks {
        let again = task.await.expect("task");
        assert_eq!(again.status, 200);
    }
    let per_session = events_per_session(&app, &plan_id).await;
    let doubles = per_session.values().filter(|n| **n > 1).count();
    assert_eq!(doubles, 0, "sessions migrated twice: {per_session:?}");
    for id in &ids {
        let s = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        assert_eq!(s["active_scenario_version"], 2, "{id}: {s}");
        assert!(s.get("pending_migration").is_none(), "{id}: {s}");
    }
    let status = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await
        .body;
    assert_eq!(status["migrations_applied"], SESSIONS, "{status}");
    assert_eq!(per_session.len(), SESSIONS);
}

/// Runtime writers racing each other with the same `If-Match`: exactly one
/// wins each round, the others get 412, and the revision counts every write.
async fn concurrent_if_match_writers_exactly_one_wins(app: TestApp) {
    let scenario = new_scenario(&app).await;
    let body = session_at(scenario, 1, step(2), "web");
    assert_eq!(put_session(&app, "cas", &body, &[]).await.0.status, 201);
    let app = std::sync::Arc::new(app);
    const ROUNDS: u64 = 10;
    const WRITERS: usize = 4;
    for round in 0..ROUNDS {
        let revision = app.call("GET", "/sessions/cas", None).await.body["revision"]
            .as_u64()
            .expect("revision");
        assert_eq!(revision, round + 1);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (app, mut body) = (app.clone(), body.clone());
            body["variables"] = json!({"writer": w, "round": round});
            tasks.push(tokio::spawn(async move {
                let etag = format!("\"{revision}\"");
                put_session(&app, "cas", &body, &[("If-Match", etag.as_str())])
                    .await
                    .0
                    .status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.expect("writer"));
        }
        statuses.sort();
        assert_eq!(statuses, vec![200, 412, 412, 412], "round {round}");
    }
}
