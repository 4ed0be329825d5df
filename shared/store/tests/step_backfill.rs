//! The one-off migration to the sharded step index: after the backfill every
//! session is found exactly once across the shards of its step, whatever form
//! its `step_key` had (before sharding, or another shard count); running it
//! again changes nothing. DynamoDB needs `AWS_ENDPOINT_URL_DYNAMODB` (skipped
//! without it, unless `FOCAL_REQUIRE_LOCAL_AWS=1`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{TimeZone, Utc};
use planning::Session;
use store::dynamo::BackfillPage;
use store::testing::FreshTables;
use store::{StepQuery, Store};
use uuid::Uuid;

fn session(tenant: Uuid, id: &str, scenario: Uuid, step: Uuid) -> Session {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Session {
        session_id: id.to_owned(),
        tenant_id: tenant,
        channel: "web".into(),
        customer_id: None,
        active_scenario_id: scenario,
        active_scenario_version: 1,
        active_step_id: step,
        scenario_checksum: None,
        step_history: vec![],
        variables: BTreeMap::new(),
        pending_migration: None,
        pinned_version: None,
        created_at: at,
        updated_at: at,
        revision: 1,
    }
}

/// Every session id found at `step`, shard by shard, with duplicates kept;
/// each must sit in its own shard when `placed`.
async fn ids_at_step(
    s: &dyn Store,
    tenant: Uuid,
    scenario: Uuid,
    step: Uuid,
    placed: bool,
) -> Vec<String> {
    let mut ids = Vec::new();
    for shard in 0..s.step_index_shards() {
        let mut cursor = None;
        loop {
            let page = s
                .sessions_at_step(&StepQuery {
                    tenant,
                    scenario_id: scenario,
                    version: 1,
                    step_id: step,
                    shard,
                    limit: 7,
                    cursor,
                })
                .await
                .expect("page");
            for x in page.sessions {
                if placed {
                    assert_eq!(
                        store::step_shard(&x.session_id, s.step_index_shards()),
                        shard,
                        "{} in its own shard",
                        x.session_id
                    );
                }
                ids.push(x.session_id);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_rebuild_reindexes_under_the_new_shard_count() {
    let dir = std::env::temp_dir().join(format!("focal-backfill-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("migrations.redb");
    let (tenant, scenario, step) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let expected: Vec<String> = (0..40).map(|i| format!("s-{i:03}")).collect();
    {
        let eight = store::EmbeddedStore::open(&path)
            .expect("open")
            .with_step_index_shards(8);
        for id in &expected {
            eight
                .put_session(&session(tenant, id, scenario, step))
                .await
                .expect("put");
        }
    }
    // The shard count changes from 8 to 3.
    let three = store::EmbeddedStore::open(&path)
        .expect("reopen")
        .with_step_index_shards(3);
    let before = ids_at_step(&three, tenant, scenario, step, false).await;
    assert!(
        before.len() < expected.len(),
        "written under 8 shards, sessions in shards 3-7 are not where 3 shards look"
    );
    assert_eq!(three.rebuild_step_index().await.expect("rebuild"), 40);
    assert_eq!(
        ids_at_step(&three, tenant, scenario, step, true).await,
        expected
    );
    // Idempotent.
    assert_eq!(three.rebuild_step_index().await.expect("rebuild"), 40);
    assert_eq!(
        ids_at_step(&three, tenant, scenario, step, true).await,
        expected
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_backfill_rewrites_old_keys_once() {
    let Some(fresh) = store::testing::fresh_dynamo_tables("fm").await else {
        return;
    };
    fresh
        .drop_after(backfill_rewrites_old_keys_once(&fresh))
        .await;
}

async fn backfill_rewrites_old_keys_once(fresh: &FreshTables) {
    let (client, tables) = (&fresh.client, &fresh.tables);
    let shards = 8;
    let s = store::DynamoStore::new(client.clone(), tables.clone()).with_step_index_shards(shards);
    let (tenant, scenario, step) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let expected: Vec<String> = (0..60).map(|i| format!("s-{i:03}")).collect();
    for id in &expected {
        s.put_session(&session(tenant, id, scenario, step))
            .await
            .expect("put");
    }
    // Rewind items to the forms an older deployment left: a third without a
    // shard (before sharding), a third under 4 shards, a third left as is.
    let old_form = format!("{tenant}#{scenario}#1#{step}");
    let mut rewound = BTreeSet::new();
    for (i, id) in expected.iter().enumerate() {
        let key = match i % 3 {
            0 => old_form.clone(),
            1 => format!("{old_form}#{}", store::step_shard(id, 4)),
            _ => continue,
        };
        if key == format!("{old_form}#{}", store::step_shard(id, shards)) {
            continue; // the same under 4 and 8 shards
        }
        client
            .update_item()
            .table_name(&tables.sessions)
            .key("pk", Av::S(format!("{tenant}#{id}")))
            .update_expression("SET step_key = :k")
            .expression_attribute_values(":k", Av::S(key))
            .send()
            .await
            .expect("rewind");
        rewound.insert(id.clone());
    }
    // An item the runtime wrote without a position is left alone.
    client
        .put_item()
        .table_name(&tables.sessions)
        .set_item(Some(HashMap::from([(
            "pk".to_owned(),
            Av::S(format!("{tenant}#stray")),
        )])))
        .send()
        .await
        .expect("stray item");
    // Old-form items are in no shard's partition (4-shard ones may sit in the
    // wrong shard): marking would miss them.
    let found = ids_at_step(&s, tenant, scenario, step, false).await;
    assert!(found.len() < expected.len());

    // Small pages, resumed from each page's token, as an interrupted run would.
    let run = || async {
        let mut total = BackfillPage::default();
        let mut resume_after = None;
        let mut pages = 0;
        loop {
            let (page, next) =
                store::dynamo::backfill_step_keys(client, tables, shards, resume_after, 9, 4)
                    .await
                    .expect("backfill page");
            total += page;
            pages += 1;
            match next {
                Some(pk) => resume_after = Some(pk),
                None => break,
            }
        }
        assert!(pages > 1, "paged");
        total
    };
    let first = run().await;
    assert_eq!(first.scanned, 61);
    assert_eq!(first.rewritten, rewound.len() as u64);
    assert_eq!(first.unchanged, (expected.len() - rewound.len()) as u64);
    assert_eq!((first.raced, first.skipped), (0, 1));
    assert_eq!(
        ids_at_step(&s, tenant, scenario, step, true).await,
        expected
    );
    let again = run().await;
    assert_eq!(again.rewritten, 0, "a second run changes nothing");
    assert_eq!(again.unchanged, expected.len() as u64);
    assert_eq!(
        ids_at_step(&s, tenant, scenario, step, true).await,
        expected
    );
}
