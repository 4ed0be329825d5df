//! The deployment status's drain, end to end on both stores: the last hour's
//! pace counts each flagged migration once, the ETA follows from it, and a
//! stopped rollout gives none.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::common::*;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [the_drain_counts_each_migration_once_and_extrapolates],
}

fn eta_of(status: &serde_json::Value) -> Option<DateTime<Utc>> {
    status["drain"]["eta"]
        .as_str()
        .map(|eta| eta.parse().expect("an RFC 3339 time"))
}

async fn the_drain_counts_each_migration_once_and_extrapolates(app: TestApp) {
    let ids: Vec<String> = (0..5).map(|i| format!("d-{i}")).collect();
    let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 1, scenario_v2()).await;
    let deploy = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);

    let st = deployment_status(&app, &plan_id).await;
    assert_eq!(st["migrations_pending"], 5, "{st}");
    // Written a moment ago: all five were last active today.
    assert_eq!(
        st["drain"]["pending_by_last_activity"],
        json!({"under_1d": 5, "from_1d_to_7d": 0, "from_7d_to_30d": 0, "over_30d": 0}),
        "{st}"
    );
    assert_eq!(st["drain"]["applied_last_hour"], 0, "{st}");
    assert_eq!(eta_of(&st), None, "no pace yet: no ETA");

    // Two migrate (each reconciled twice: the second answer applies nothing).
    for id in &ids[..2] {
        reconcile_now(&app, id).await;
        reconcile_now(&app, id).await;
    }
    let before = Utc::now();
    let st = deployment_status(&app, &plan_id).await;
    let after = Utc::now();
    assert_eq!(st["migrations_pending"], 3, "{st}");
    assert_eq!(
        st["drain"]["pending_by_last_activity"]["under_1d"], 3,
        "the migrated ones left the counts: {st}"
    );
    assert_eq!(st["drain"]["applied_last_hour"], 2, "{st}");
    let per_minute: u64 = st["drain"]["applied_per_minute"]
        .as_array()
        .expect("applied_per_minute")
        .iter()
        .map(|m| m["applied"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 2, "{st}");
    // 3 pending at 2 an hour: an hour and a half from the status's own now.
    let eta = eta_of(&st).expect("an ETA");
    let ahead = chrono::Duration::seconds(5400);
    assert!(
        eta >= before + ahead - chrono::Duration::seconds(1) && eta <= after + ahead,
        "{eta} not ~90 min after {before}"
    );

    // Paused: the pace stays, the ETA goes (nothing migrates until it resumes).
    let paused = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/pause"),
            Some(json!({})),
        )
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["drain"]["applied_last_hour"], 2);
    assert_eq!(eta_of(&paused.body), None, "{:?}", paused.body);
}
