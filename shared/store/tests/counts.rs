//! Session counts (`Store::session_counts`) on every backend: they follow
//! creates, moves and deletes. On DynamoDB Local the counts come from the
//! sessions table's stream, read by the same poller `migrations serve` runs
//! (needs the `stream-poll` feature: `cargo test -p store --features stream-poll`);
//! there the tests also write items straight into the table, as the runtime
//! does, and deliver stream batches twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use planning::Session;
use store::{
    NewPosition, SessionChange, SessionExpectation, SessionPrecondition, SessionWrite, Store,
};
use uuid::Uuid;

/// A store plus, on DynamoDB, what makes its counts catch up with the stream.
struct Harness {
    store: Arc<dyn Store>,
    #[cfg(feature = "stream-poll")]
    dynamo: Option<DynamoParts>,
    _file: Option<TempFile>,
}

#[cfg(feature = "stream-poll")]
struct DynamoParts {
    /// Deleted once the test is done.
    fresh: store::testing::FreshTables,
    poller: tokio::sync::Mutex<store::dynamo::stream::StreamPoller>,
}

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Harness {
    /// Let the counts catch up with every write made so far.
    async fn settle(&self) {
        #[cfg(feature = "stream-poll")]
        if let Some(d) = &self.dynamo {
            d.poller
                .lock()
                .await
                .poll_once()
                .await
                .expect("read the stream");
        }
    }
}

async fn memory() -> Option<Harness> {
    Some(Harness {
        store: Arc::new(store::MemoryStore::new()),
        #[cfg(feature = "stream-poll")]
        dynamo: None,
        _file: None,
    })
}

async fn embedded() -> Option<Harness> {
    let path = std::env::temp_dir().join(format!("focal-counts-{}.redb", Uuid::new_v4()));
    let store = store::EmbeddedStore::open(&path).expect("open embedded store");
    Some(Harness {
        store: Arc::new(store),
        #[cfg(feature = "stream-poll")]
        dynamo: None,
        _file: Some(TempFile(path)),
    })
}

#[cfg(feature = "stream-poll")]
async fn dynamodb() -> Option<Harness> {
    let fresh = store::testing::fresh_dynamo_tables("fm").await?;
    // DynamoDB Local serves Streams on the DynamoDB endpoint.
    let streams = store::dynamo::stream::streams_client(&fresh.sdk);
    let poller =
        store::dynamo::stream::StreamPoller::new(fresh.client.clone(), streams, &fresh.tables);
    Some(Harness {
        store: Arc::new(fresh.store()),
        dynamo: Some(DynamoParts {
            fresh,
            poller: tokio::sync::Mutex::new(poller),
        }),
        _file: None,
    })
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Embedded,
    #[cfg(feature = "stream-poll")]
    Dynamo,
}

/// Run `case` on a fresh harness of `backend`; skip when DynamoDB Local is absent.
/// DynamoDB's tables are deleted afterwards, whether the case passed or failed.
async fn on_fresh_store<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let harness = match backend {
        Backend::Memory => memory().await,
        Backend::Embedded => embedded().await,
        #[cfg(feature = "stream-poll")]
        Backend::Dynamo => dynamodb().await,
    };
    let Some(h) = harness else { return };
    #[cfg(feature = "stream-poll")]
    if let Some(fresh) = h.dynamo.as_ref().map(|d| d.fresh.clone()) {
        return fresh.drop_after(case(h)).await;
    }
    case(h).await;
}

store::backend_matrix! {
    run: on_fresh_store,
    backends: [
        memory => Backend::Memory,
        embedded => Backend::Embedded,
        #[cfg(feature = "stream-poll")]
        dynamodb => Backend::Dynamo,
    ],
    tests: [
        counts_follow_creates_and_moves,
        counts_are_per_tenant_and_version,
        flags_are_counted_by_the_day_of_last_activity,
    ],
}

fn step(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

fn session(tenant: Uuid, scenario: Uuid, id: &str, version: i64, at: Uuid) -> Session {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Session {
        session_id: id.to_owned(),
        tenant_id: tenant,
        channel: "whatsapp".into(),
        customer_id: None,
        active_scenario_id: scenario,
        active_scenario_version: version,
        active_step_id: at,
        scenario_checksum: None,
        step_history: Vec::new(),
        variables: BTreeMap::new(),
        pending_migration: None,
        pinned_version: None,
        created_at: t0,
        updated_at: t0,
        revision: 1,
    }
}

async fn counts_of(h: &Harness, tenant: Uuid, scenario: Uuid, version: i64) -> BTreeMap<Uuid, u64> {
    h.settle().await;
    let counts = h
        .store
        .session_counts(tenant, scenario, version)
        .await
        .expect("counts");
    if !counts.by_step.is_empty() {
        assert!(counts.counted_at.is_some(), "counts say how fresh they are");
    }
    counts.by_step
}

async fn counts_follow_creates_and_moves(h: Harness) {
    let h = &h;
    let (t, s) = (Uuid::new_v4(), Uuid::new_v4());
    let store = h.store.as_ref();
    assert!(counts_of(h, t, s, 1).await.is_empty());
    for i in 0..5 {
        store
            .put_session(&session(t, s, &format!("s{i}"), 1, step(1)))
            .await
            .unwrap();
    }
    // Replacing a session in place does not count it twice.
    store
        .put_session(&session(t, s, "s0", 1, step(1)))
        .await
        .unwrap();
    assert_eq!(counts_of(h, t, s, 1).await, BTreeMap::from([(step(1), 5)]));

    // The runtime's write moves s1 to step 2 and creates s9 there.
    for id in ["s1", "s9"] {
        store
            .write_session(&SessionWrite {
                session: session(t, s, id, 1, step(2)),
                created_at: None,
                precondition: SessionPrecondition::None,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        counts_of(h, t, s, 1).await,
        BTreeMap::from([(step(1), 4), (step(2), 2)])
    );

    // A reconcile moves s2 to version 2.
    let current = store.get_session(t, "s2").await.unwrap().unwrap();
    let moved = store
        .apply_session_change(&SessionChange {
            tenant: t,
            session_id: "s2".into(),
            expected_revision: current.revision,
            expect: SessionExpectation::UnflaggedAt { version: 1 },
            new_position: Some(NewPosition {
                version: 2,
                step_id: step(3),
                checksum: "c".into(),
            }),
            pin_version: None,
            clear_flag: false,
            set_variables: BTreeMap::new(),
            applied: None,
            at: Utc::now(),
            require_applying: Vec::new(),
            expect_head: None,
        })
        .await
        .unwrap();
    assert!(moved);
    assert_eq!(
        counts_of(h, t, s, 1).await,
        BTreeMap::from([(step(1), 3), (step(2), 2)])
    );
    assert_eq!(counts_of(h, t, s, 2).await, BTreeMap::from([(step(3), 1)]));

    // A change that does not hold moves nothing.
    let stale = store
        .apply_session_change(&SessionChange {
            tenant: t,
            session_id: "s3".into(),
            expected_revision: 999,
            expect: SessionExpectation::UnflaggedAt { version: 1 },
            new_position: Some(NewPosition {
                version: 2,
                step_id: step(3),
                checksum: "c".into(),
            }),
            pin_version: None,
            clear_flag: false,
            set_variables: BTreeMap::new(),
            applied: None,
            at: Utc::now(),
            require_applying: Vec::new(),
            expect_head: None,
        })
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(counts_of(h, t, s, 2).await, BTreeMap::from([(step(3), 1)]));

    // The exact recount agrees with the counters.
    let exact = store
        .count_sessions_at_steps(t, s, 1, &[step(1), step(2), step(3)], 4)
        .await
        .unwrap();
    assert_eq!(exact, counts_of(h, t, s, 1).await);
}

async fn counts_are_per_tenant_and_version(h: Harness) {
    let h = &h;
    let (t1, t2, s) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let store = h.store.as_ref();
    store
        .put_session(&session(t1, s, "a", 1, step(1)))
        .await
        .unwrap();
    store
        .put_session(&session(t1, s, "b", 2, step(1)))
        .await
        .unwrap();
    store
        .put_session(&session(t2, s, "a", 1, step(1)))
        .await
        .unwrap();
    store
        .put_session(&session(t2, s, "c", 1, step(1)))
        .await
        .unwrap();
    assert_eq!(counts_of(h, t1, s, 1).await, BTreeMap::from([(step(1), 1)]));
    assert_eq!(counts_of(h, t1, s, 2).await, BTreeMap::from([(step(1), 1)]));
    assert_eq!(counts_of(h, t2, s, 1).await, BTreeMap::from([(step(1), 2)]));
    assert!(counts_of(h, t2, s, 2).await.is_empty());
}

/// The runtime writes items straight into the sessions table (PutItem,
/// UpdateItem, DeleteItem) — no call of ours sees them — and the stream
/// consumer makes the counts right.
#[cfg(feature = "stream-poll")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_counts_items_the_runtime_writes_itself() {
    let Some(h) = dynamodb().await else { return };
    let fresh = &h.dynamo.as_ref().unwrap().fresh;
    fresh.drop_after(runtime_writes_itself(&h)).await;
}

#[cfg(feature = "stream-poll")]
async fn runtime_writes_itself(h: &Harness) {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let d = &h.dynamo.as_ref().unwrap().fresh;
    let (t, s) = (Uuid::new_v4(), Uuid::new_v4());
    let put = |id: String, step_id: Uuid| {
        d.client
            .put_item()
            .table_name(&d.tables.sessions)
            .item("pk", Av::S(format!("{t}#{id}")))
            .item("session_id", Av::S(id))
            .item("tenant_id", Av::S(t.to_string()))
            .item("active_scenario_id", Av::S(s.to_string()))
            .item("active_scenario_version", Av::N("1".into()))
            .item("active_step_id", Av::S(step_id.to_string()))
            .item("revision", Av::N("1".into()))
            .send()
    };
    for i in 0..30 {
        put(format!("rt-{i}"), step(1)).await.unwrap();
    }
    // Moved by the runtime with an UpdateItem.
    for i in 0..10 {
        d.client
            .update_item()
            .table_name(&d.tables.sessions)
            .key("pk", Av::S(format!("{t}#rt-{i}")))
            .update_expression("SET active_step_id = :s")
            .expression_attribute_values(":s", Av::S(step(2).to_string()))
            .send()
            .await
            .unwrap();
    }
    // Deleted by the runtime.
    for i in 25..30 {
        d.client
            .delete_item()
            .table_name(&d.tables.sessions)
            .key("pk", Av::S(format!("{t}#rt-{i}")))
            .send()
            .await
            .unwrap();
    }
    // An item that is not a session (no position) is not counted.
    d.client
        .put_item()
        .table_name(&d.tables.sessions)
        .item("pk", Av::S(format!("{t}#not-a-session")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        counts_of(h, t, s, 1).await,
        BTreeMap::from([(step(1), 15), (step(2), 10)])
    );
    // Reading the stream again changes nothing.
    assert_eq!(
        counts_of(h, t, s, 1).await,
        BTreeMap::from([(step(1), 15), (step(2), 10)])
    );
}

/// Batches delivered twice, and overlapping batches, count each record once;
/// a second consumer starting over from the stream's beginning (a restarted
/// `serve`) adds nothing either.
#[cfg(feature = "stream-poll")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_duplicate_deliveries_count_once() {
    let Some(h) = dynamodb().await else { return };
    let fresh = &h.dynamo.as_ref().unwrap().fresh;
    fresh.drop_after(duplicate_deliveries(&h)).await;
}

#[cfg(feature = "stream-poll")]
async fn duplicate_deliveries(h: &Harness) {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let d = &h.dynamo.as_ref().unwrap().fresh;
    let (t, s) = (Uuid::new_v4(), Uuid::new_v4());
    for i in 0..40 {
        let at = if i % 4 == 0 { step(2) } else { step(1) };
        h.store
            .put_session(&session(t, s, &format!("d{i}"), 1, at))
            .await
            .unwrap();
    }
    // Read the raw records ourselves, as Lambda would hand them over.
    // Signed as the tables' own client is: they live in its database.
    let streams = store::dynamo::stream::streams_client(&d.sdk);
    let arn = store::dynamo::counts::ensure_stream(&d.client, &d.tables.sessions)
        .await
        .unwrap();
    let description = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let mut by_shard = Vec::new();
    for shard in description.shards() {
        let id = shard.shard_id().unwrap().to_owned();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        let mut records = Vec::new();
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            records.extend(
                out.records()
                    .iter()
                    .filter_map(store::dynamo::stream::change_record),
            );
            iterator = out.next_shard_iterator;
        }
        by_shard.push((id, records));
    }
    let total: usize = by_shard.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(total, 40, "one record per session written");

    let applier =
        store::dynamo::counts::CountsApplier::new(d.client.clone(), d.tables.main.clone());
    for (shard, records) in &by_shard {
        let half = records.len() / 2;
        // First batch, then the same batch again (a retry after a timeout).
        let first = applier.apply(shard, &records[..half]).await.unwrap();
        assert_eq!(first.records, half);
        let again = applier.apply(shard, &records[..half]).await.unwrap();
        assert_eq!(again.records, 0);
        // An overlapping batch (a bisected retry, reversed): only the new records count.
        let mut overlapping = records[half / 2..].to_vec();
        overlapping.reverse();
        let rest = applier.apply(shard, &overlapping).await.unwrap();
        assert_eq!(rest.records, records.len() - half);
        // A hot step is one counter write per transaction, not one per session.
        assert!(rest.counter_writes <= 2, "{rest:?}");
    }
    let expected = BTreeMap::from([(step(1), 30), (step(2), 10)]);
    let direct = h.store.session_counts(t, s, 1).await.unwrap();
    assert_eq!(direct.by_step, expected);
    // The poller then finds everything applied already.
    assert_eq!(counts_of(h, t, s, 1).await, expected);
}

async fn quiet_days(h: &Harness, tenant: Uuid, plan: Uuid) -> BTreeMap<chrono::NaiveDate, u64> {
    h.settle().await;
    h.store
        .pending_by_activity_day(tenant, plan)
        .await
        .expect("flag counts")
        .into_iter()
        .map(|d| (d.day, d.sessions))
        .collect()
}

/// The drain's flag counters: a flag is counted on its session's day of last
/// activity, moves when the session is written again, and goes with the flag
/// (withdrawn here); marking is not activity; another plan's flags and
/// another tenant's are not counted.
async fn flags_are_counted_by_the_day_of_last_activity(h: Harness) {
    use planning::PendingMigration;
    use store::{SessionPosition, SessionUnmark};
    let (t, sc, plan, other) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap();
    let flag = |plan_id: Uuid| PendingMigration {
        migration_plan_id: plan_id,
        target_version: 2,
        anchor_content_hash: "h".into(),
        from_step_id: step(1),
        marked_at: day(30),
    };
    let at = SessionPosition {
        scenario_id: sc,
        version: 1,
        step_id: step(1),
    };
    for (id, last_active, plan_id) in [
        ("q-1", 1, plan),
        ("q-2", 1, plan),
        ("q-3", 20, plan),
        ("q-4", 29, other),
    ] {
        let mut s = session(t, sc, id, 1, step(1));
        s.updated_at = day(last_active);
        h.store.put_session(&s).await.expect("put");
        let marked = h
            .store
            .mark_session(t, id, &at, &flag(plan_id), &format!("m-{id}"))
            .await
            .expect("mark");
        assert!(marked);
    }
    let d = |n: u32| day(n).date_naive();
    assert_eq!(
        quiet_days(&h, t, plan).await,
        BTreeMap::from([(d(1), 2), (d(20), 1)])
    );
    assert_eq!(quiet_days(&h, t, other).await, BTreeMap::from([(d(29), 1)]));
    assert!(
        quiet_days(&h, Uuid::new_v4(), plan).await.is_empty(),
        "another tenant"
    );

    // q-1 comes back on the 28th: it moves, flag and all.
    let mut back = h.store.get_session(t, "q-1").await.unwrap().unwrap();
    back.updated_at = day(28);
    back.revision += 1;
    h.store.put_session(&back).await.expect("write");
    assert_eq!(
        quiet_days(&h, t, plan).await,
        BTreeMap::from([(d(1), 1), (d(20), 1), (d(28), 1)])
    );

    // q-3's flag is withdrawn: it leaves the counts.
    let cleared = h
        .store
        .unmark_sessions(
            t,
            &[SessionUnmark {
                session_id: "q-3".into(),
                plan_id: plan,
                unmark_id: "u-1".into(),
            }],
            1,
        )
        .await
        .expect("unmark");
    assert_eq!(cleared, vec![true]);
    assert_eq!(
        quiet_days(&h, t, plan).await,
        BTreeMap::from([(d(1), 1), (d(28), 1)])
    );
}
