//! Marking over a write-sharded step index, end to end on every store
//! (in-memory, embedded, DynamoDB Local): with one shard and with several, inline
//! and fanned out through the in-process queue, every session at a marked step
//! is flagged exactly once, the counts are exact, and the deployment registers
//! one chain per (step, shard) that holds sessions, each with the plan's
//! shard count.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use api::{AppState, Config};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

/// A fresh store of `backend` writing its step index over `shards` shards, with
/// the temp dir that must outlive it and the DynamoDB tables to drop when the
/// test is done.
async fn sharded_store(
    backend: Backend,
    shards: u32,
) -> Option<(
    Arc<dyn store::Store>,
    Option<tempfile::TempDir>,
    Option<store::testing::FreshTables>,
)> {
    match backend {
        Backend::Memory => Some((
            Arc::new(store::MemoryStore::new().with_step_index_shards(shards)),
            None,
            None,
        )),
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store::EmbeddedStore::open(dir.path().join("migrations.redb"))
                .expect("open embedded store")
                .with_step_index_shards(shards);
            Some((Arc::new(store), Some(dir), None))
        }
        Backend::Dynamo => {
            let fresh = store::testing::fresh_dynamo_tables("shard").await?;
            let store = fresh.store().with_step_index_shards(shards);
            Some((Arc::new(store), None, Some(fresh)))
        }
    }
}

const AT_WELCOME: usize = 40;
const AT_COLLECT: usize = 260;

fn session_id(n: u32, i: usize) -> String {
    format!("sess-{n}-{i:04}")
}

/// Deploy a plan over `AT_WELCOME` + `AT_COLLECT` sessions and check the outcome;
/// the DynamoDB tables go when it ends, also when it fails.
async fn marks_every_session_once(backend: Backend, shards: u32, fan_out: bool) {
    let Some((store, dir, tables)) = sharded_store(backend, shards).await else {
        return;
    };
    let test = deploy_and_check(backend, store, dir, shards, fan_out);
    drop_tables_after(tables, test).await;
}

async fn deploy_and_check(
    backend: Backend,
    store: Arc<dyn store::Store>,
    dir: Option<tempfile::TempDir>,
    shards: u32,
    fan_out: bool,
) {
    assert_eq!(store.step_index_shards(), shards);
    let config = Config {
        // Fan out: far below the population; inline: above it.
        inline_mark_threshold: if fan_out { 10 } else { 10_000 },
        mark_page_size: 25,
        mark_concurrency: 4,
        ..Config::default()
    };
    let state = api::local_queue::InProcessQueue::attach(AppState::new(store.clone(), config));
    let app = serve_state(state, dir).await;

    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let population: Vec<(u32, String)> = (0..AT_WELCOME)
        .map(|i| (1, session_id(1, i)))
        .chain((0..AT_COLLECT).map(|i| (2, session_id(2, i))))
        .collect();
    // Through the runtime's own write (`PUT /sessions`): it sets the shard.
    let app_ref = &app;
    futures::stream::iter(population.iter().map(|(n, id)| async move {
        let reply = app_ref
            .call(
                "PUT",
                &format!("/sessions/{id}"),
                Some(session_at(scenario, 1, step(*n), "web")),
            )
            .await;
        assert_eq!(reply.status, 201, "{id}: {:?}", reply.body);
    }))
    .buffer_unordered(16)
    .collect::<()>()
    .await;

    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().expect("plan id").to_owned();
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    // On DynamoDB the inline/fan-out decision reads counts fed by the table's
    // change stream, which may not have seen every write yet: either way every
    // session must end up marked once, which is what this test is about.
    let expected = if fan_out { 202 } else { 200 };
    assert!(
        reply.status == expected || (matches!(backend, Backend::Dynamo) && reply.status == 200),
        "{}: {:?}",
        reply.status,
        reply.body
    );

    let current = wait_deployed(&app, &plan_id).await;
    let total = (AT_WELCOME + AT_COLLECT) as u64;
    assert_eq!(current["sessions_marked"], json!(total), "{current}");
    assert_eq!(current["pages_failed"], 0, "{current}");

    // One chain per (step, shard) holding sessions, all done, all recording
    // the plan's shard count.
    let plan_uuid: Uuid = plan_id.parse().expect("plan id");
    let expected_chains: BTreeSet<(Uuid, u32)> = population
        .iter()
        .map(|(n, id)| (step(*n), store::step_shard(id, shards)))
        .collect();
    let chains = store
        .list_chains(app.tenant, plan_uuid)
        .await
        .expect("chains");
    let registered: BTreeSet<(Uuid, u32)> = chains.iter().map(|c| (c.step_id, c.shard)).collect();
    assert_eq!(registered, expected_chains);
    assert_eq!(chains.len(), expected_chains.len(), "each chain once");
    assert!(chains.iter().all(|c| c.done && c.shards == shards));
    let stats = store
        .get_plan_stats(app.tenant, plan_uuid)
        .await
        .expect("stats");
    assert_eq!(stats.chains_total, expected_chains.len() as u64);
    assert_eq!(stats.chains_done, stats.chains_total);
    assert_eq!(stats.sessions_marked, total);

    // Every session flagged by this plan, and marked once: one revision up.
    let flags: Vec<Value> = futures::stream::iter(population.iter().map(|(_, id)| {
        let app = &app;
        async move {
            let reply = app.call("GET", &format!("/sessions/{id}"), None).await;
            assert_eq!(reply.status, 200, "{id}: {:?}", reply.body);
            reply.body
        }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    for session in &flags {
        assert_eq!(
            session["pending_migration"]["migration_plan_id"],
            json!(plan_id),
            "{session}"
        );
        assert_eq!(
            session["revision"], 2,
            "written once, marked once: {session}"
        );
    }
}

async fn wait_deployed(app: &TestApp, plan_id: &str) -> Value {
    // A hang guard only; nothing here is timed.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let reply = app
            .call(
                "GET",
                &format!("/migration-plans/{plan_id}/deployment-status"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        if reply.body["status"] == "deployed" {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "never deployed: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

store::backend_matrix! {
    backends: [
        memory => Backend::Memory,
        embedded => Backend::Embedded,
        dynamodb => Backend::Dynamo,
    ],
    tests: [one_shard_fan_out, six_shards_fan_out, six_shards_inline],
}

async fn one_shard_fan_out(backend: Backend) {
    marks_every_session_once(backend, 1, true).await;
}

async fn six_shards_fan_out(backend: Backend) {
    marks_every_session_once(backend, 6, true).await;
}

async fn six_shards_inline(backend: Backend) {
    marks_every_session_once(backend, 6, false).await;
}
