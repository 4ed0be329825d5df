//! The lifecycle events' outbox: one item per plan under the `OUTBOX`
//! partition (ids and revisions only, no tenant data), written in the
//! transaction of every plan change ([`outbox_write`]) and settled by the
//! sender after it sent the plan's events.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, get_n, get_uuid, n, opt_n, s};
use super::keys::{OUTBOX_PK, outbox_key};
use super::ops::{built, retrying, sdk_error};
use crate::{OutboxEntry, StoreError, StoreResult};

/// The plan's entry at its new `revision`, for the change's transaction. It
/// leaves what was sent recorded; a new entry starts with everything before
/// this change sent (an entry is removed only then), or, for a plan's
/// creation (`created`), nothing.
pub(super) fn outbox_write(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
    revision: u64,
    created: bool,
) -> StoreResult<TransactWriteItem> {
    let published_before = if created {
        0
    } else {
        revision.saturating_sub(1)
    };
    let update = built(
        Update::builder()
            .table_name(db.main())
            .set_key(Some(outbox_key(tenant, plan_id)))
            .update_expression(
                "SET tenant_id = :t, plan_id = :p, revision = :r, \
                 published = if_not_exists(published, :before)",
            )
            .expression_attribute_values(":t", s(tenant.to_string()))
            .expression_attribute_values(":p", s(plan_id.to_string()))
            .expression_attribute_values(":r", n(revision))
            .expression_attribute_values(":before", n(published_before))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().update(update).build())
}

pub(super) async fn list_outbox(db: &DynamoStore, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
    let query = db
        .client
        .query()
        .table_name(db.main())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(OUTBOX_PK))
        .consistent_read(true)
        .limit(i32::try_from(limit).unwrap_or(i32::MAX));
    let items = db.query_some(query, None, limit).await?;
    items.iter().map(entry_from).collect()
}

pub(super) async fn get_outbox(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<OutboxEntry>> {
    db.get_item(db.main(), outbox_key(tenant, plan_id))
        .await?
        .as_ref()
        .map(entry_from)
        .transpose()
}

pub(super) async fn settle_outbox(
    db: &DynamoStore,
    read: &OutboxEntry,
    published: u64,
    finished: bool,
) -> StoreResult<()> {
    let entry_key = outbox_key(read.tenant, read.plan_id);
    if finished {
        // Only if no change was written since the entry was read.
        let request = db
            .client
            .delete_item()
            .table_name(db.main())
            .set_key(Some(entry_key.clone()))
            .condition_expression("revision = :r")
            .expression_attribute_values(":r", n(read.revision));
        match retrying(|| request.clone().send()).await.map_err(sdk_error) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // Never back, and never bring back an entry another sender removed.
    let request = db
        .client
        .update_item()
        .table_name(db.main())
        .set_key(Some(entry_key))
        .update_expression("SET published = :p")
        .condition_expression(
            "attribute_exists(pk) AND (attribute_not_exists(published) OR published < :p)",
        )
        .expression_attribute_values(":p", n(published));
    match retrying(|| request.clone().send()).await.map_err(sdk_error) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn entry_from(item: &Item) -> StoreResult<OutboxEntry> {
    Ok(OutboxEntry {
        tenant: get_uuid(item, "tenant_id")?,
        plan_id: get_uuid(item, "plan_id")?,
        revision: get_n(item, "revision")?,
        published: opt_n(item, "published")?.unwrap_or(0),
    })
}
