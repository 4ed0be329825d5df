//! What a runtime's session write costs in the step index (the requirement: a
//! runtime session write costs one index write, not two item-sized ones), measured on
//! DynamoDB Local with `ReturnConsumedCapacity=INDEXES`, which applies
//! DynamoDB's rules: an index item is written only when a write changes an
//! attribute the index holds, and costs by the size of the *projected* item.
//!
//! The same writes go to the product's sessions table (`by_step_shard`,
//! projection INCLUDE of what marking reads) and to a table with the index the
//! product replaced (`by_step`: same keys, projection ALL), so the figures say
//! what the projection saves. Skips without DynamoDB Local.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, ConsumedCapacity, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, ReturnConsumedCapacity,
    ScalarAttributeType,
};
use store::dynamo::STEPS_INDEX;
use store::testing::FreshTables;

/// A long conversation: its history alone is ~6 KB, six write units per copy.
const HISTORY_BYTES: usize = 6_000;

fn history(turns: usize) -> Av {
    Av::S("h".repeat(HISTORY_BYTES + turns * 100))
}

fn step_key(step: &str) -> Av {
    let shard = store::step_shard("s-1", store::DEFAULT_STEP_INDEX_SHARDS);
    Av::S(format!("t#scenario#1#{step}#{shard}"))
}

/// The item a runtime writes (docs/runtime.md, "Writing session items straight
/// into the table"), at `step`.
fn runtime_item(step: &str, turns: usize) -> HashMap<String, Av> {
    HashMap::from([
        ("pk".to_owned(), Av::S("t#s-1".into())),
        ("session_id".to_owned(), Av::S("s-1".into())),
        ("tenant_id".to_owned(), Av::S("t".into())),
        ("channel".to_owned(), Av::S("web".into())),
        ("active_scenario_id".to_owned(), Av::S("scenario".into())),
        ("active_scenario_version".to_owned(), Av::N("1".into())),
        ("active_step_id".to_owned(), Av::S(step.into())),
        ("step_key".to_owned(), step_key(step)),
        ("step_history".to_owned(), history(turns)),
        (
            "variables".to_owned(),
            Av::M(HashMap::from([(
                "email".to_owned(),
                Av::S("\"c@example.com\"".into()),
            )])),
        ),
        (
            "created_at".to_owned(),
            Av::S("2026-01-01T00:00:00Z".into()),
        ),
        (
            "updated_at".to_owned(),
            Av::S(format!("2026-01-01T00:{turns:02}:00Z")),
        ),
        ("revision".to_owned(), Av::N(turns.to_string())),
    ])
}

/// Write units a write spent on the table and on the step index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost {
    table: f64,
    index: f64,
}

fn cost(consumed: Option<&ConsumedCapacity>, index: &str) -> Cost {
    let consumed = consumed.expect("ReturnConsumedCapacity=INDEXES answers");
    Cost {
        table: consumed
            .table()
            .and_then(|t| t.capacity_units())
            .unwrap_or(0.0),
        index: consumed
            .global_secondary_indexes()
            .and_then(|indexes| indexes.get(index))
            .and_then(|c| c.capacity_units())
            .unwrap_or(0.0),
    }
}

/// The life of one session as a runtime writes it: created at a step, a turn
/// that stays there (history, `updated_at`, `revision`), a turn that moves it.
async fn runtime_writes(client: &Client, table: &str, index: &str) -> [Cost; 3] {
    let create = client
        .put_item()
        .table_name(table)
        .set_item(Some(runtime_item("welcome", 0)))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("create");
    let stay = turn(client, table, 1, None).await;
    let moved = turn(client, table, 2, Some("collect-email")).await;
    [
        cost(create.consumed_capacity(), index),
        cost(stay.as_ref(), index),
        cost(moved.as_ref(), index),
    ]
}

/// A runtime's turn: the history grows, `updated_at` and `revision` move on and,
/// with `to_step`, the session moves (its `step_key` with it). Returns what it cost.
async fn turn(
    client: &Client,
    table: &str,
    turns: usize,
    to_step: Option<&str>,
) -> Option<ConsumedCapacity> {
    let mut update = client
        .update_item()
        .table_name(table)
        .key("pk", Av::S("t#s-1".into()))
        .expression_attribute_values(":h", history(turns))
        .expression_attribute_values(":u", Av::S(format!("2026-01-01T00:{turns:02}:00Z")))
        .expression_attribute_values(":r", Av::N(turns.to_string()))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes);
    let mut expression = "SET step_history = :h, updated_at = :u, revision = :r".to_owned();
    if let Some(step) = to_step {
        expression.push_str(", active_step_id = :s, step_key = :k");
        update = update
            .expression_attribute_values(":s", Av::S(step.into()))
            .expression_attribute_values(":k", step_key(step));
    }
    update
        .update_expression(expression)
        .send()
        .await
        .expect("a runtime's turn")
        .consumed_capacity
}

/// The sessions table with the index this product replaced: same keys,
/// projection ALL.
async fn table_with_projection_all(client: &Client, name: &str) {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("step_key"))
        .attribute_definitions(attribute("session_id"))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_step")
                .key_schema(key("step_key", KeyType::Hash))
                .key_schema(key("session_id", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index"),
        )
        .send()
        .await
        .expect("create the comparison table");
}

#[tokio::test]
async fn a_runtime_write_costs_one_small_index_write_at_most() {
    let Some(fresh) = store::testing::fresh_dynamo_tables("fm-cost").await else {
        return;
    };
    fresh.drop_after(one_small_index_write(&fresh)).await;
}

async fn one_small_index_write(fresh: &FreshTables) {
    let client = &fresh.client;
    let [create, stay, moved] = runtime_writes(client, &fresh.tables.sessions, STEPS_INDEX).await;

    let all_table = format!("{}-all", fresh.tables.sessions);
    table_with_projection_all(client, &all_table).await;
    let [all_create, all_stay, all_moved] = runtime_writes(client, &all_table, "by_step").await;
    // Measured: the comparison table goes now, the product's with the test.
    client
        .delete_table()
        .table_name(&all_table)
        .send()
        .await
        .expect("delete the comparison table");
    println!(
        "write units (table / step index), {HISTORY_BYTES}-byte history: \
         create {create:?} vs projection ALL {all_create:?}; \
         turn at the same step {stay:?} vs {all_stay:?}; \
         turn that moves {moved:?} vs {all_moved:?}"
    );

    // The base-table write is the item's size either way.
    assert!(create.table >= 6.0, "{create:?}");
    assert_eq!(create.table, all_create.table);
    // Creating the session: one index item of one unit, not another 6 KB copy.
    assert_eq!(create.index, 1.0, "{create:?}");
    assert!(all_create.index >= 6.0, "{all_create:?}");
    // The common runtime write — a turn that stays at its step — touches no
    // projected attribute: no index write at all (ALL copies the item again).
    assert_eq!(stay.index, 0.0, "{stay:?}");
    assert!(all_stay.index >= 6.0, "{all_stay:?}");
    // Moving the session deletes one index item and writes another, both small.
    assert_eq!(moved.index, 2.0, "{moved:?}");
    assert!(all_moved.index >= 12.0, "{all_moved:?}");
}
