//! The rollout guard end to end, on the embedded store and DynamoDB Local: a
//! threshold crossed halts the plan with its figures, sessions then stay where
//! they are, concurrent reconciles cannot slip past it, and a bad guard is a
//! 422 that changes nothing.

use crate::common::*;
use serde_json::{Value, json};

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        a_guard_halts_the_rollout_when_its_threshold_is_crossed,
        concurrent_reconciles_cannot_slip_past_a_halt,
        a_bad_guard_is_refused_and_changes_nothing,
        concurrent_failure_reports_halt_the_rollout_once,
    ],
}

/// V2 keeps nothing of V1: every session at Step 2 exits on its migration.
fn v2_that_exits_everyone() -> Value {
    json!({"name": "Fresh", "version": 2, "entry_step_id": step(7), "steps": [step_json(7, "Brand new", &[])]})
}

/// V1 with `sessions` at Step 2 and an approved plan to V2. Returns the plan id.
async fn approved_plan(app: &TestApp, sessions: &[String]) -> String {
    approved_plan_with_sessions(app, sessions, 2, v2_that_exits_everyone())
        .await
        .1
}

async fn deploy_guarded(app: &TestApp, plan_id: &str, min_sessions: u64) {
    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({"guard": {"max_exit_rate": 0.2, "min_sessions": min_sessions}})),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
}

async fn a_guard_halts_the_rollout_when_its_threshold_is_crossed(app: TestApp) {
    let ids: Vec<String> = (0..8).map(|i| format!("g-{i}")).collect();
    let plan_id = approved_plan(&app, &ids).await;
    deploy_guarded(&app, &plan_id, 5).await;
    // Four exits: below min_sessions, nothing is checked.
    for id in &ids[..4] {
        assert_eq!(reconcile_now(&app, id).await["action"], "exit_scenario");
    }
    assert_eq!(
        deployment_status(&app, &plan_id).await["status"],
        "deployed"
    );
    // The fifth is applied, and halts the rollout: 5 of 5 exited > 0.2.
    assert_eq!(
        reconcile_now(&app, &ids[4]).await["action"],
        "exit_scenario"
    );
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["status"], "halted", "{st}");
    assert_eq!(
        st["halt_reason"],
        "exit rate 1.000 exceeded max_exit_rate 0.2: 5 of 5 applied migrations ended the conversation"
    );
    assert_eq!(st["migrations_exited"], 5);
    assert_eq!(
        st["guard"],
        json!({"max_exit_rate": 0.2, "min_sessions": 5})
    );
    // Halted: the rest stay where they are, flag kept, nothing counted.
    let before = app
        .call("GET", &format!("/sessions/{}", ids[5]), None)
        .await
        .body;
    let answer = reconcile_now(&app, &ids[5]).await;
    assert_eq!(
        (answer["action"].clone(), answer["reason"].clone()),
        (json!("continue"), json!("rollout halted")),
        "{answer}"
    );
    assert_eq!(
        app.call("GET", &format!("/sessions/{}", ids[5]), None)
            .await
            .body,
        before
    );
    assert_eq!(
        (
            deployment_status(&app, &plan_id).await["migrations_applied"].clone(),
            audit_event_count(&app, &plan_id).await
        ),
        (json!(5), 5)
    );

    // Resume: back to deployed, reason gone; the figures still cross, so the
    // next migration halts it again.
    let resumed = app
        .call("POST", &format!("/migration-plans/{plan_id}/resume"), None)
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (st["status"].clone(), st["halt_reason"].clone()),
        (json!("deployed"), Value::Null),
        "{st}"
    );
    let mut answer = reconcile_now(&app, &ids[5]).await;
    for _ in 0..40 {
        if answer["reason"] != "rollout halted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = reconcile_now(&app, &ids[5]).await;
    }
    assert_eq!(answer["action"], "exit_scenario", "{answer}");
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["status"], "halted", "{st}");
    assert!(
        st["halt_reason"].as_str().unwrap().contains("6 of 6"),
        "{st}"
    );
    // The history keeps both halts with their figures, the guard's own changes
    // (no actor), and the resume between them.
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await
        .body;
    let halts: Vec<&Value> = plan["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter(|r| r["to"] == "halted")
        .collect();
    assert_eq!(halts.len(), 2, "{plan}");
    let last = halts[1];
    assert_eq!(last["reason"], st["halt_reason"], "{last}");
    assert!(last.get("by").is_none(), "{last}");
}

/// Reconciles on real threads race the halt: the counters, the events and the
/// halt agree, and once halted nothing more is applied.
async fn concurrent_reconciles_cannot_slip_past_a_halt(app: TestApp) {
    const SESSIONS: usize = 36;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("c-{i}")).collect();
    let plan_id = approved_plan(&app, &ids).await;
    deploy_guarded(&app, &plan_id, 5).await;
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
    for racer in racers {
        racer.await.expect("racer");
    }
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["status"], "halted", "{st}");
    let applied = st["migrations_applied"].as_u64().unwrap();
    assert!((5..SESSIONS as u64).contains(&applied), "{st}");
    assert_eq!(audit_event_count(&app, &plan_id).await, applied);
    assert_eq!(st["migrations_exited"], applied);
    assert_eq!(st["migrations_pending"], SESSIONS as u64 - applied);
    // Nothing more lands: every session still flagged answers "rollout halted".
    for id in &ids {
        let session = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        if session["pending_migration"].is_object() {
            assert_eq!(reconcile_now(&app, id).await["reason"], "rollout halted");
        }
    }
    assert_eq!(
        deployment_status(&app, &plan_id).await["migrations_applied"],
        applied
    );
}

async fn a_bad_guard_is_refused_and_changes_nothing(app: TestApp) {
    let plan_id = approved_plan(&app, &["b-1".to_string()]).await;
    for guard in [
        json!({"max_exit_rate": 1.5}),
        json!({"max_checkpoint_block_rate": -0.1}),
        json!({"min_sessions": 0}),
        json!({"max_exit_rate": "high"}),
        json!({"surprise": 1}),
    ] {
        let reply = app
            .call(
                "POST",
                &format!("/migration-plans/{plan_id}/deploy"),
                Some(json!({"guard": guard})),
            )
            .await;
        assert_eq!(reply.status, 422, "{guard}: {:?}", reply.body);
    }
    let plan = app
        .call("GET", &format!("/migration-plans/{plan_id}"), None)
        .await;
    assert_eq!(plan.body["status"], "approved");
    assert!(plan.body["guard"].is_null());
}

/// The runtime reports failures on real threads, several per session: each
/// session counts once, the guard halts the plan once its failure rate is
/// crossed, and no migration is applied after that.
async fn concurrent_failure_reports_halt_the_rollout_once(app: TestApp) {
    let ids: Vec<String> = (0..10).map(|i| format!("o-{i}")).collect();
    let plan_id = approved_plan(&app, &ids).await;
    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({"guard": {"max_reported_failure_rate": 0.25, "min_sessions": 4}})),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    for id in &ids[..8] {
        assert_eq!(reconcile_now(&app, id).await["action"], "exit_scenario");
    }
    // Never migrated: nothing to count.
    let never = app
        .call(
            "POST",
            &format!("/sessions/{}/outcome", ids[9]),
            Some(json!({"ok": false})),
        )
        .await;
    assert_eq!(never.status, 200, "{:?}", never.body);
    assert_eq!(never.body["counted"], false);
    // Three sessions reported failed, each three times at once; one ok.
    let (base, tenant) = (app.base.clone(), app.tenant);
    let mut reporters = Vec::new();
    for id in ids[..3]
        .iter()
        .cycle()
        .take(9)
        .chain(std::iter::once(&ids[3]))
    {
        let (client, base, id) = (app.client.clone(), base.clone(), id.clone());
        let ok = id == ids[3];
        reporters.push(tokio::spawn(async move {
            let reply = client
                .post(format!("{base}/sessions/{id}/outcome"))
                .header("X-Tenant-ID", tenant.to_string())
                .json(&json!({"ok": ok}))
                .send()
                .await
                .expect("report");
            assert_eq!(reply.status().as_u16(), 200);
            let body: Value = reply.json().await.expect("json");
            body["counted"].as_bool().unwrap()
        }));
    }
    let mut counted = 0;
    for reporter in reporters {
        counted += usize::from(reporter.await.expect("reporter"));
    }
    assert_eq!(counted, 4, "three failures and one ok, each once");
    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(
        (
            st["reported_outcomes"].clone(),
            st["reported_failures"].clone()
        ),
        (json!(4), json!(3)),
        "{st}"
    );
    // 3 of 8 > 0.25: halted, with the figures.
    assert_eq!(st["status"], "halted", "{st}");
    let reason = st["halt_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("reported failure rate 0.375 exceeded max_reported_failure_rate 0.25"),
        "{reason}"
    );
    let answer = reconcile_now(&app, &ids[8]).await;
    assert_eq!(answer["reason"], "rollout halted", "{answer}");
    assert_eq!(
        deployment_status(&app, &plan_id).await["migrations_applied"],
        8
    );
    // A bad report is a 422 and counts nothing.
    for body in [
        json!({}),
        json!({"ok": "no"}),
        json!({"ok": true, "extra": 1}),
        json!({"ok": false, "reason": "x".repeat(501)}),
    ] {
        let reply = app
            .call(
                "POST",
                &format!("/sessions/{}/outcome", ids[4]),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.body);
    }
    let unknown = app
        .call(
            "POST",
            "/sessions/nobody/outcome",
            Some(json!({"ok": false})),
        )
        .await;
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
    assert_eq!(
        deployment_status(&app, &plan_id).await["reported_outcomes"],
        4
    );
}
