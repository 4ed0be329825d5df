//! Retention on DynamoDB: a deployed plan's items, its ledger and its audit events
//! carry the `ttl` attribute (epoch seconds) that the main table's TTL deletes them
//! by, computed from the configured periods; sessions and scenario versions never do.
//! (The embedded and in-memory stores' sweep is in the store contract suite.)

use std::collections::HashMap;

use crate::common::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use serde_json::json;
use store::Retention;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_plans_ledger_and_events_carry_their_ttl() {
    let Some(fresh) = store::testing::fresh_dynamo_tables("e2e").await else {
        return;
    };
    // The tables go when the test ends, also when it fails.
    fresh.clone().drop_after(ttl_is_set(fresh)).await;
}

async fn ttl_is_set(fresh: store::testing::FreshTables) {
    let (client, tables) = (fresh.client, fresh.tables);
    let ttl = client
        .describe_time_to_live()
        .table_name(&tables.main)
        .send()
        .await
        .expect("describe ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl"),
        "create_tables enables TTL on the main table"
    );
    let retention = Retention {
        deployed_plan_days: 90,
        ledger_days: 7,
        event_days: 365,
    };
    let store = store::DynamoStore::new(client.clone(), tables.clone()).with_retention(retention);
    let state = api::local_queue::InProcessQueue::attach(api::AppState::new(
        std::sync::Arc::new(store),
        test_config(),
    ));
    let app = serve_state(state, None).await;

    // One session, a plan V1 → V2, deployed inline, reconciled.
    let scenario = Uuid::new_v4();
    app.call(
        "PUT",
        &format!("/scenarios/{scenario}"),
        Some(scenario_v1()),
    )
    .await;
    let reply = app
        .call(
            "PUT",
            "/sessions/t-1",
            Some(session_at(scenario, 1, step(2), "web")),
        )
        .await;
    assert_eq!(reply.status, 201);
    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    let plan_id = plan.body["id"].as_str().expect("id").to_owned();
    app.call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    let deployed = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deployed.status, 200, "{:?}", deployed.body);
    let reconciled = app
        .call(
            "POST",
            "/sessions/t-1/reconcile",
            Some(json!({"known_fields": {"age": 30}})),
        )
        .await;
    assert_eq!(reconciled.status, 200);

    let items = |pk: String| {
        let (client, table) = (client.clone(), tables.main.clone());
        async move {
            client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk))
                .send()
                .await
                .expect("query")
                .items
                .unwrap_or_default()
        }
    };
    let ttl_of = |item: &HashMap<String, AttributeValue>| -> Option<i64> {
        match item.get("ttl") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        }
    };
    let now = Utc::now().timestamp();
    let days = |d: i64| Duration::days(d).num_seconds();
    let near = |ttl: Option<i64>, d: i64| ttl.is_some_and(|t| (t - (now + days(d))).abs() < 600);
    let tenant = app.tenant;
    let plan_items = items(format!("{tenant}#PLAN#{plan_id}")).await;
    let mut seen = HashMap::new();
    for item in &plan_items {
        let Some(AttributeValue::S(sk)) = item.get("sk") else {
            panic!("no sk")
        };
        let kind = sk.split('#').next().unwrap_or("").to_owned();
        *seen.entry(kind.clone()).or_insert(0) += 1;
        match kind.as_str() {
            "HEAD" | "STATS" | "CHAIN" => assert!(near(ttl_of(item), 90), "{sk}: {item:?}"),
            // A marking page's claim lives as long as its ledger entry.
            "LEDGER" | "CLAIM" => assert!(near(ttl_of(item), 7), "{sk}: {item:?}"),
            // The drain's per-minute count of applied migrations: a day.
            "APPLIED" => assert!(near(ttl_of(item), 1), "{sk}: {item:?}"),
            other => panic!("unexpected item {other}"),
        }
    }
    for kind in ["HEAD", "STATS", "CHAIN", "LEDGER", "CLAIM", "APPLIED"] {
        assert!(seen.contains_key(kind), "{kind} missing: {seen:?}");
    }
    let events = items(format!("{tenant}#EVT#{plan_id}")).await;
    assert_eq!(events.len(), 1);
    assert!(near(ttl_of(&events[0]), 365), "{:?}", events[0]);
    // Never ours to expire: the session and the scenario versions.
    let session = client
        .get_item()
        .table_name(&tables.sessions)
        .key("pk", AttributeValue::S(format!("{tenant}#t-1")))
        .send()
        .await
        .expect("get")
        .item
        .expect("session");
    assert!(ttl_of(&session).is_none());
    for item in items(format!("{tenant}#SCN#{scenario}")).await {
        assert!(ttl_of(&item).is_none(), "{item:?}");
    }
}

/// On the embedded store: once the sweep has deleted expired deployed plans, a
/// session still flagged by one of them is relocated by content hash into the
/// current version (a broken chain: the plans from its version are gone), not stranded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_plans_were_deleted_is_relocated_by_content_hash() {
    let app = spawn_app(Backend::Embedded, test_config())
        .await
        .expect("embedded app");
    let scenario = Uuid::new_v4();
    app.call(
        "PUT",
        &format!("/scenarios/{scenario}"),
        Some(scenario_v1()),
    )
    .await;
    let reply = app
        .call(
            "PUT",
            "/sessions/old",
            Some(session_at(scenario, 1, step(2), "web")),
        )
        .await;
    assert_eq!(reply.status, 201);
    let mut v3 = scenario_v2();
    v3["version"] = json!(3);
    for v in [scenario_v2(), v3] {
        let plan = app
            .call(
                "POST",
                &format!("/scenarios/{scenario}/migration-plan"),
                Some(json!({"new_scenario": v})),
            )
            .await;
        assert_eq!(plan.status, 201, "{:?}", plan.body);
        let id = plan.body["id"].as_str().expect("id").to_owned();
        app.call("POST", &format!("/migration-plans/{id}/approve"), None)
            .await;
        let deployed = app
            .call("POST", &format!("/migration-plans/{id}/deploy"), None)
            .await;
        assert_eq!(deployed.status, 200, "{:?}", deployed.body);
    }
    let flagged = app.call("GET", "/sessions/old", None).await.body;
    assert!(flagged["pending_migration"].is_object(), "{flagged}");
    // Far past every retention period: the sweep deletes both plans.
    let removed = app
        .state
        .store()
        .sweep_expired(Utc::now() + Duration::days(1_000), 10_000)
        .await
        .expect("sweep");
    assert!(removed > 0);
    let listed = app
        .call(
            "GET",
            &format!("/migration-plans?scenario_id={scenario}"),
            None,
        )
        .await;
    assert_eq!(listed.body["total"], 0, "{:?}", listed.body);
    let result = app
        .call(
            "POST",
            "/sessions/old/reconcile",
            Some(json!({"known_fields": {"age": 30}})),
        )
        .await
        .body;
    assert!(
        result["reason"]
            .as_str()
            .unwrap_or("")
            .contains("relocated by content hash"),
        "{result}"
    );
    let after = app.call("GET", "/sessions/old", None).await.body;
    assert_eq!(after["active_scenario_version"], 3, "{after}");
    assert_eq!(after["active_step_id"], json!(step(2)));
    assert!(after.get("pending_migration").is_none());
}
