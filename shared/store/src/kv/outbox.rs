//! The lifecycle events' outbox: `OUTBOX/{tenant}/{plan}` → the plan's latest
//! revision and the revision its events were sent up to. Written in the same
//! write transaction as every plan change ([`record_change`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{OUTBOX_PREFIX, outbox_key, prefix_end};
use super::values::{load, save};
use super::{KvRead, KvWrite};
use crate::{OutboxEntry, StoreError, StoreResult};

#[derive(Debug, Serialize, Deserialize)]
struct OutboxValue {
    revision: u64,
    published: u64,
}

/// The plan changed to `revision`: its events are to be sent. What was sent
/// before stays recorded; a plan without an entry had everything before this
/// change sent (an entry is removed only then), or, at its creation, nothing.
pub(super) fn record_change(
    kv: &mut dyn KvWrite,
    tenant: Uuid,
    plan_id: Uuid,
    revision: u64,
    created: bool,
) -> StoreResult<()> {
    let key = outbox_key(tenant, plan_id);
    let mut value = load(kv, &key)?.unwrap_or(OutboxValue {
        revision,
        published: if created {
            0
        } else {
            revision.saturating_sub(1)
        },
    });
    value.revision = revision;
    save(kv, &key, &value)
}

pub(super) fn list_outbox(kv: &dyn KvRead, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
    kv.range(OUTBOX_PREFIX, &prefix_end(OUTBOX_PREFIX), false, limit)?
        .into_iter()
        .map(|(key, bytes)| {
            let (tenant, plan_id) = parse_key(&key)?;
            let value: OutboxValue = super::values::decode_value(&bytes)?;
            Ok(entry(tenant, plan_id, value))
        })
        .collect()
}

pub(super) fn get_outbox(
    kv: &dyn KvRead,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<OutboxEntry>> {
    Ok(load::<OutboxValue>(kv, &outbox_key(tenant, plan_id))?
        .map(|value| entry(tenant, plan_id, value)))
}

pub(super) fn settle_outbox(
    kv: &mut dyn KvWrite,
    read: &OutboxEntry,
    published: u64,
    finished: bool,
) -> StoreResult<()> {
    let key = outbox_key(read.tenant, read.plan_id);
    // Gone: another sender settled it first.
    let Some(mut value) = load::<OutboxValue>(kv, &key)? else {
        return Ok(());
    };
    if finished && value.revision == read.revision {
        return kv.delete(&key);
    }
    if published > value.published {
        value.published = published;
        save(kv, &key, &value)?;
    }
    Ok(())
}

fn entry(tenant: Uuid, plan_id: Uuid, value: OutboxValue) -> OutboxEntry {
    OutboxEntry {
        tenant,
        plan_id,
        revision: value.revision,
        published: value.published,
    }
}

fn parse_key(key: &str) -> StoreResult<(Uuid, Uuid)> {
    let malformed = || StoreError::Unexpected(format!("malformed outbox key {key}"));
    let (t, p) = key[OUTBOX_PREFIX.len()..]
        .split_once('/')
        .ok_or_else(malformed)?;
    Ok((
        Uuid::parse_str(t).map_err(|_| malformed())?,
        Uuid::parse_str(p).map_err(|_| malformed())?,
    ))
}
