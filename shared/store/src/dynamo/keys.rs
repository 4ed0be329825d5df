//! Key layout of both tables (see the module documentation of [`super`]) and
//! the opaque page tokens that carry an item key.

use std::collections::HashMap;

use planning::Session;
use uuid::Uuid;

use super::attr::{Item, bad_item, get_s, s};
use crate::codec::{decode_token, encode_token, to_json, version_key};
use crate::{StoreError, StoreResult};

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
pub(super) fn scenario_pk(t: Uuid, sid: Uuid) -> String {
    format!("{t}#SCN#{sid}")
}
pub(super) fn version_sk(v: i64) -> String {
    format!("V#{}", version_key(v))
}
pub(super) fn plan_pk(t: Uuid, pid: Uuid) -> String {
    format!("{t}#PLAN#{pid}")
}
pub(super) fn slot_pk(t: Uuid, sid: Uuid, from: i64, to: i64) -> String {
    format!("{t}#SLOT#{sid}#{}#{}", version_key(from), version_key(to))
}
pub(super) fn events_pk(t: Uuid, pid: Uuid) -> String {
    format!("{t}#EVT#{pid}")
}
/// Which plans migrated a session (sort key: the plan id), for outcome reports.
pub(super) fn migrated_by_pk(t: Uuid, session_id: &str) -> String {
    format!("{t}#MIGRATEDBY#{session_id}")
}
pub(super) fn blob_pk(t: Uuid, blob: &str) -> String {
    format!("{t}#BLOB#{blob}")
}
pub(super) fn plans_gsi_pk(t: Uuid) -> String {
    format!("{t}#PLANS")
}
pub(super) fn session_pk(t: Uuid, id: &str) -> String {
    format!("{t}#{id}")
}
/// The step index's partition key: one per (step, shard), so a popular step's
/// index writes spread over `shards` partition keys.
pub fn step_key(t: Uuid, sid: Uuid, v: i64, step: Uuid, shard: u32) -> String {
    format!("{t}#{sid}#{v}#{step}#{shard}")
}

/// The `step_key` of a session in a store with `shards` shards.
pub fn session_step_key(x: &Session, shards: u32) -> String {
    step_key(
        x.tenant_id,
        x.active_scenario_id,
        x.active_scenario_version,
        x.active_step_id,
        crate::step_shard(&x.session_id, shards),
    )
}

/// A token holding an item's key attributes.
pub(super) fn item_token(item: &Item, attrs: &[&str], query_id: &str) -> StoreResult<String> {
    let mut key = std::collections::BTreeMap::new();
    for a in attrs {
        key.insert((*a).to_owned(), get_s(item, a)?.to_owned());
    }
    let json = String::from_utf8(to_json(&key)?).map_err(|_| bad_item("key"))?;
    Ok(encode_token(&json, query_id))
}

/// The start key in a token; `check` validates it belongs to the query.
pub(super) fn token_item(
    token: &str,
    query_id: &str,
    attrs: &[&str],
    check: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) -> StoreResult<Item> {
    let json = decode_token(token, query_id)?;
    let key: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&json).map_err(|_| StoreError::InvalidToken)?;
    if key.len() != attrs.len() || attrs.iter().any(|a| !key.contains_key(*a)) || !check(&key) {
        return Err(StoreError::InvalidToken);
    }
    Ok(key.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// One page of `limit` items out of up to `limit + 1` read, converted by `f`,
/// with a token naming the last item's key when more exist.
pub(super) fn page_of<T>(
    mut items: Vec<Item>,
    limit: usize,
    key: &[&str],
    query_id: &str,
    f: impl Fn(&Item) -> StoreResult<T>,
) -> StoreResult<(Vec<T>, Option<String>)> {
    let more = items.len() > limit;
    items.truncate(limit);
    let token = match (more, items.last()) {
        (true, Some(last)) => Some(item_token(last, key, query_id)?),
        _ => None,
    };
    let values = items.iter().map(f).collect::<StoreResult<Vec<_>>>()?;
    Ok((values, token))
}

pub(super) const CHAIN_PREFIX: &str = "CHAIN#";
pub(super) const DEPLOYING_PK: &str = "DEPLOYING";
/// The lifecycle events' outbox (ids and revisions only, like `DEPLOYING`).
pub(super) const OUTBOX_PK: &str = "OUTBOX";

/// Pass 0 keeps the key chains always had; a ramp's passes add theirs.
pub(super) fn chain_sk(chain: crate::ChainKey) -> String {
    let crate::ChainKey {
        step_id,
        shard,
        pass,
    } = chain;
    match pass {
        0 => format!("{CHAIN_PREFIX}{step_id}#{shard}"),
        pass => format!("{CHAIN_PREFIX}{step_id}#{shard}#p{pass}"),
    }
}

pub(super) fn deploying_key(t: Uuid, pid: Uuid) -> Item {
    key(DEPLOYING_PK.to_owned(), &format!("{t}#{pid}"))
}

pub(super) fn outbox_key(t: Uuid, pid: Uuid) -> Item {
    key(OUTBOX_PK.to_owned(), &format!("{t}#{pid}"))
}
