//! The one-off rewrite of `step_key` to the sharded form (`migrations backfill-step-keys`).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use uuid::Uuid;

use super::TableNames;
use super::attr::{Item, bad_item, get_s, opt_n, opt_s, s};
use super::expr::Expr;
use super::keys::step_key;
use super::ops::{retrying, sdk_error};
use crate::{StoreError, StoreResult};

/// What [`backfill_step_keys`] did to one page of the sessions table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackfillPage {
    /// Session items read.
    pub scanned: u64,
    /// Items whose `step_key` was rewritten to the sharded form.
    pub rewritten: u64,
    /// Items already carrying the right key.
    pub unchanged: u64,
    /// Items that moved (or whose key changed) between the read and the
    /// conditional write: whoever wrote them set the key; a later run catches
    /// any an old runtime wrote in the old form.
    pub raced: u64,
    /// Items without a position (`active_scenario_id`/`_version`/`_step_id`): not sessions of ours.
    pub skipped: u64,
}

impl std::ops::AddAssign for BackfillPage {
    fn add_assign(&mut self, other: Self) {
        self.scanned += other.scanned;
        self.rewritten += other.rewritten;
        self.unchanged += other.unchanged;
        self.raced += other.raced;
        self.skipped += other.skipped;
    }
}

/// One page of the one-off migration to the sharded step index: read up to
/// `page_size` session items from `resume_after` (a `pk` this function
/// returned, or the table's start) and rewrite each `step_key` that is not
/// `{t}#{scenario}#{version}#{step}#{shard}` for `shards` shards — items from
/// before sharding (no `#{shard}`), or from another shard count — with an
/// `UpdateItem` conditioned on the key and the position read, `concurrency`
/// in flight. Returns what it did and where to resume (`None`: the table is done).
///
/// It is the one `Scan` of the product: an operator's migration tool
/// (`migrations backfill-step-keys`), never on a request path. Safe to run
/// while runtimes write, to interrupt, and to run again.
pub async fn backfill_step_keys(
    client: &Client,
    tables: &TableNames,
    shards: u32,
    resume_after: Option<String>,
    page_size: usize,
    concurrency: usize,
) -> StoreResult<(BackfillPage, Option<String>)> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let table = tables.sessions.as_str();
    let scan = client
        .scan()
        .table_name(table)
        .projection_expression(
            "pk, session_id, step_key, active_scenario_id, active_scenario_version, active_step_id",
        )
        .limit(i32::try_from(page_size.max(1)).unwrap_or(i32::MAX))
        .consistent_read(true)
        .set_exclusive_start_key(resume_after.map(|pk| HashMap::from([("pk".to_owned(), s(pk))])));
    let out = retrying(|| scan.clone().send()).await.map_err(sdk_error)?;
    let next = match out.last_evaluated_key() {
        Some(key) => Some(get_s(key, "pk")?.to_owned()),
        None => None,
    };
    let mut page = BackfillPage::default();
    let mut writes = Vec::new();
    for item in out.items() {
        page.scanned += 1;
        let Some(wanted) = sharded_step_key(item, shards) else {
            page.skipped += 1;
            continue;
        };
        let current = opt_s(item, "step_key")?;
        if current == Some(wanted.as_str()) {
            page.unchanged += 1;
            continue;
        }
        let mut expr = Expr::default();
        expr.set("step_key", s(wanted));
        let key_now = match current {
            Some(old) => {
                let (k, v) = (expr.name("step_key"), expr.value(s(old)));
                format!("{k} = {v}")
            }
            None => format!("attribute_not_exists({})", expr.name("step_key")),
        };
        let mut condition = key_now;
        for attr in [
            "active_scenario_id",
            "active_scenario_version",
            "active_step_id",
        ] {
            let value = item.get(attr).cloned().ok_or_else(|| bad_item(attr))?;
            let (k, v) = (expr.name(attr), expr.value(value));
            condition.push_str(&format!(" AND {k} = {v}"));
        }
        let pk = item.get("pk").cloned().ok_or_else(|| bad_item("pk"))?;
        let request = client
            .update_item()
            .table_name(table)
            .key("pk", pk)
            .update_expression(expr.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values());
        writes.push(async move {
            match retrying(|| request.clone().send()).await.map_err(sdk_error) {
                Ok(_) => Ok(true),
                Err(StoreError::Conflict(_)) => Ok(false),
                Err(e) => Err(e),
            }
        });
    }
    let results: Vec<bool> = stream::iter(writes)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    for written in results {
        if written {
            page.rewritten += 1;
        } else {
            page.raced += 1;
        }
    }
    Ok((page, next))
}

/// The `step_key` a session item should carry with `shards` shards; `None`
/// for an item without a position.
pub(super) fn sharded_step_key(item: &Item, shards: u32) -> Option<String> {
    let pk = opt_s(item, "pk").ok()??;
    let (tenant, from_pk) = pk.split_once('#')?;
    let tenant = Uuid::parse_str(tenant).ok()?;
    let session_id = opt_s(item, "session_id").ok()?.unwrap_or(from_pk);
    let scenario = Uuid::parse_str(opt_s(item, "active_scenario_id").ok()??).ok()?;
    let version: i64 = opt_n(item, "active_scenario_version").ok()??;
    let step = Uuid::parse_str(opt_s(item, "active_step_id").ok()??).ok()?;
    Some(step_key(
        tenant,
        scenario,
        version,
        step,
        crate::step_shard(session_id, shards),
    ))
}
