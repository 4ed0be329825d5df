//! Plans past `expires_at`, on the embedded store and DynamoDB Local: they read
//! as `expired`, cannot be approved or deployed (409), and no longer block their
//! version pair (a new plan for the pair is 201).

use crate::common::*;
use chrono::{Duration, Utc};
use planning::PlanStatus;
use serde_json::json;
use store::PlanTransition;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [expired_plans_read_as_expired_and_free_their_pair],
}

/// A copy of `plan_id` (same scenario and versions) stored directly with an
/// `expires_at` in the past and the given status.
async fn expired_copy(app: &TestApp, plan_id: Uuid, status: PlanStatus) -> Uuid {
    let store = app.state.store();
    let mut plan = store
        .get_plan(app.tenant, plan_id)
        .await
        .expect("get")
        .expect("plan");
    let target = store
        .get_plan_target(app.tenant, plan_id)
        .await
        .expect("target")
        .expect("target");
    plan.id = Uuid::new_v4();
    plan.status = PlanStatus::Pending;
    plan.revision = 1;
    plan.created_at = Utc::now() - Duration::days(40);
    plan.expires_at = Some(Utc::now() - Duration::days(10));
    store
        .create_plan(&plan, &target)
        .await
        .expect("create copy");
    if status == PlanStatus::Approved {
        store
            .transition_plan(&PlanTransition {
                tenant: app.tenant,
                plan_id: plan.id,
                expected_revision: 1,
                change: planning::lifecycle::StatusChange {
                    from: PlanStatus::Pending,
                    to: PlanStatus::Approved,
                    at: Utc::now() - Duration::days(20),
                    stamp: planning::lifecycle::Stamp::Approved {
                        by: Some("lead".into()),
                    },
                    by: Some("lead".into()),
                },
                rollout: None,
            })
            .await
            .expect("approve copy");
    }
    plan.id
}

async fn expired_plans_read_as_expired_and_free_their_pair(app: TestApp) {
    let scenario = Uuid::new_v4();
    assert_eq!(
        app.call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1())
        )
        .await
        .status,
        201
    );
    let generate = || async {
        app.call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await
    };
    let first = generate().await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let first_id: Uuid = first.body["id"].as_str().unwrap().parse().unwrap();
    // Free the pair, then store an expired pending copy that holds it.
    let rejected = app
        .call("POST", &format!("/migration-plans/{first_id}/reject"), None)
        .await;
    assert_eq!(rejected.status, 200);
    let pending = expired_copy(&app, first_id, PlanStatus::Pending).await;

    // The pair is held by a plan nobody read since it expired: still free.
    let second = generate().await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    let old = app
        .call("GET", &format!("/migration-plans/{pending}"), None)
        .await;
    assert_eq!(old.body["status"], "expired", "{:?}", old.body);
    let approve = app
        .call("POST", &format!("/migration-plans/{pending}/approve"), None)
        .await;
    assert_eq!(approve.status, 409, "{:?}", approve.body);

    // An approved plan that expired cannot be deployed, and reads as expired.
    let second_id: Uuid = second.body["id"].as_str().unwrap().parse().unwrap();
    app.call(
        "POST",
        &format!("/migration-plans/{second_id}/reject"),
        None,
    )
    .await;
    let approved = expired_copy(&app, first_id, PlanStatus::Approved).await;
    let deploy = app
        .call("POST", &format!("/migration-plans/{approved}/deploy"), None)
        .await;
    assert_eq!(deploy.status, 409, "{:?}", deploy.body);
    let listed = app
        .call(
            "GET",
            &format!("/migration-plans?scenario_id={scenario}&plan_status=expired"),
            None,
        )
        .await;
    assert_eq!(listed.body["total"], 2, "{:?}", listed.body);
    // Nothing was activated: the scenario is still on version 1.
    let current = app
        .call("GET", &format!("/scenarios/{scenario}"), None)
        .await;
    assert_eq!(current.body["version"], 1);
}
