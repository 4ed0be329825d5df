//! Session items a runtime writes straight into the sessions table with the
//! client's item format (`focal_migrations_client::dynamodb`) are the store's
//! own, on DynamoDB Local: the store reads them back as written, the stream
//! counter counts them, marking finds them through the sharded step index,
//! and reconcile migrates them. An item whose `step_key` was computed with
//! a wrong shard count may be counted but never marked — why the key matters.

use std::sync::Arc;

use api::AppState;
use focal_migrations_client::dynamodb::{DirectWriteError, DirectWriter, step_shard};
use focal_migrations_client::model::{KnownField, SessionInput, StepVisit};
use focal_migrations_client::{Client, Decision};
use serde_json::json;
use store::Store;
use uuid::Uuid;

use crate::common::*;

/// Not the default (8): the writer must use the deployment's count.
const SHARDS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_directly_are_read_counted_and_marked() {
    let Some(fresh) = store::testing::fresh_dynamo_tables("client").await else {
        eprintln!("skipping: DynamoDB Local is not configured");
        return;
    };
    let guard = DropTablesOnDrop(fresh.clone());
    let store = Arc::new(dynamo_store_counting(fresh.clone()).with_step_index_shards(SHARDS));
    let state = api::local_queue::InProcessQueue::attach(AppState::new(
        store.clone() as Arc<dyn Store>,
        test_config(),
    ));
    let app = serve_state(state, None).await;
    let tenant = app.tenant;
    let client = Client::builder(&app.base, tenant).build().expect("client");
    let scenario = Uuid::new_v4();
    let r = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let writer = DirectWriter::new(fresh.client.clone(), fresh.tables.sessions.clone(), SHARDS);
    // Sessions at "Collect email", spread over the shards, and one at "Done".
    let ids: Vec<String> = (0..12).map(|i| format!("dw-{i}")).collect();
    let shards: std::collections::BTreeSet<u32> =
        ids.iter().map(|id| step_shard(id, SHARDS)).collect();
    assert!(
        shards.len() > 2,
        "the ids land in several shards: {shards:?}"
    );
    for id in &ids {
        let mut session = SessionInput::at("web", scenario, 1, step(2));
        session
            .variables
            .insert("email".into(), json!(format!("{id}@example.com")));
        session.variables.insert("score".into(), json!(0.1));
        session.step_history.push(StepVisit {
            checkpoint_description: None,
            is_checkpoint: false,
            step_id: step(1),
            step_name: Some("Welcome".into()),
            visited_at: chrono::Utc::now(),
        });
        assert_eq!(
            writer.create(tenant, id, &session).await.expect("created"),
            1
        );
    }
    assert!(matches!(
        writer
            .create(
                tenant,
                "dw-0",
                &SessionInput::at("web", scenario, 1, step(2))
            )
            .await,
        Err(DirectWriteError::Conflict)
    ));
    // One created at Welcome and moved on to Done by an update.
    writer
        .create(
            tenant,
            "dw-moved",
            &SessionInput::at("web", scenario, 1, step(1)),
        )
        .await
        .expect("created at Welcome");
    let stored = writer
        .read(tenant, "dw-moved")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.revision, 1);
    let moved = SessionInput::at("web", scenario, 1, step(3));
    assert_eq!(
        writer
            .update(tenant, "dw-moved", &moved, &stored)
            .await
            .expect("moved"),
        2
    );
    // A write from a stale read loses.
    assert!(matches!(
        writer.update(tenant, "dw-moved", &moved, &stored).await,
        Err(DirectWriteError::Conflict)
    ));

    // An item written with a wrong shard count (16 instead of 5): an id whose
    // shard under 16 is one of those marking never reads.
    let hidden = (0..)
        .map(|i| format!("hidden-{i}"))
        .find(|id| step_shard(id, 16) >= SHARDS)
        .expect("an id");
    DirectWriter::new(fresh.client.clone(), fresh.tables.sessions.clone(), 16)
        .create(
            tenant,
            &hidden,
            &SessionInput::at("web", scenario, 1, step(2)),
        )
        .await
        .expect("created with a wrong key");

    // The store reads them as written, and keys them as the client did.
    let read = store
        .get_session(tenant, "dw-3")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(read.active_step_id, step(2));
    assert_eq!(read.revision, 1);
    assert_eq!(read.variables["email"], json!("dw-3@example.com"));
    assert_eq!(read.variables["score"], json!(0.1));
    assert_eq!(read.step_history.len(), 1);
    assert_eq!(read.step_history[0].step_name, "Welcome");
    let raw = fresh
        .client
        .get_item()
        .table_name(&fresh.tables.sessions)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{tenant}#dw-3")),
        )
        .send()
        .await
        .expect("raw item")
        .item
        .expect("the item");
    assert_eq!(
        raw["step_key"].as_s().expect("a string"),
        &store::dynamo::session_step_key(&read, SHARDS)
    );
    let via_api = client.get_session("dw-moved").await.expect("via the API");
    assert_eq!(via_api.revision, Some(2));
    assert_eq!(via_api.value.active_step_id, step(3));

    // The stream counter counts every item by its position, the hidden one too.
    let counts = store
        .session_counts(tenant, scenario, 1)
        .await
        .expect("counts");
    assert_eq!(counts.by_step.get(&step(2)), Some(&13), "{counts:?}");
    assert_eq!(counts.by_step.get(&step(3)), Some(&1), "{counts:?}");
    assert_eq!(counts.by_step.get(&step(1)), None, "{counts:?}");

    // Marking finds them through the step index: all but the hidden one.
    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    let plan_id: Uuid = plan.body["id"].as_str().expect("id").parse().expect("uuid");
    client
        .approve_plan(plan_id, &Default::default())
        .await
        .expect("approved");
    let deployed = client.deploy_plan(plan_id).await.expect("deployed");
    assert_eq!(deployed.sessions_marked, 13, "{deployed:?}");
    for id in ids.iter().chain(["dw-moved".to_string()].iter()) {
        let flagged = client.get_session(id).await.expect("read").value;
        assert!(flagged.pending_migration.is_some(), "{id} was not marked");
    }
    let unmarked = client.get_session(&hidden).await.expect("read").value;
    assert!(
        unmarked.pending_migration.is_none(),
        "a wrong step_key hides a session from marking"
    );

    // A direct write of the runtime's fields keeps the service's flag.
    let before = writer
        .read(tenant, "dw-4")
        .await
        .expect("read")
        .expect("exists");
    let mut noted = SessionInput::at("web", scenario, 1, step(2));
    noted.variables.insert("note".into(), json!("called back"));
    writer
        .update(tenant, "dw-4", &noted, &before)
        .await
        .expect("updated");
    let kept = client.get_session("dw-4").await.expect("read").value;
    assert!(kept.pending_migration.is_some(), "the flag was lost");
    assert_eq!(kept.variables["note"], json!("called back"));

    // And reconcile migrates a directly written session like any other.
    let asked = client
        .reconcile_on_message("dw-3", &Default::default())
        .await
        .expect("reconcile");
    assert!(
        matches!(asked.decision, Decision::Collect { .. }),
        "{asked:?}"
    );
    let known = [("age".to_string(), KnownField::Plain(json!(41)))].into();
    let done = client
        .reconcile_on_message("dw-3", &known)
        .await
        .expect("reconcile with the age");
    assert_eq!(done.decision, Decision::Continue);
    let migrated = client.get_session("dw-3").await.expect("read").value;
    assert_eq!(migrated.active_scenario_version, 2);
    assert_eq!(migrated.variables["age"], json!(41));

    // A direct write after the migration keeps the position's rules: the
    // runtime cannot move the session back to version 1.
    let now = writer
        .read(tenant, "dw-3")
        .await
        .expect("read")
        .expect("exists");
    assert!(matches!(
        writer
            .update(
                tenant,
                "dw-3",
                &SessionInput::at("web", scenario, 1, step(2)),
                &now
            )
            .await,
        Err(DirectWriteError::VersionRegression { current: 2 })
    ));
    drop(app);
    drop(guard);
}
