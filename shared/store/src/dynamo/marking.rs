//! Marking: the plan counters, the chains, the ledger and the deploying registry.

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, bad_item, get_s, get_time, get_uuid, n, opt_s, s};
use super::expr::Expr;
use super::items::{ANCHOR_PREFIX, chain_from, chain_item, stats_from, ttl_av};
use super::keys::{CHAIN_PREFIX, DEPLOYING_PK, chain_sk, key, plan_pk};
use super::ops::{
    ALL_OLD_ON_FAILURE, WRITE_ID, found_item, new_write_id, own_write, retrying,
    retrying_same_write, sdk_error,
};
use super::tables::TTL;
use crate::codec::time_key;
use crate::{
    ChainKey, ChainStart, ChainState, MarkedPage, PageClaim, PlanStats, Store, StoreError,
    StoreResult,
};

pub(super) async fn get_plan_stats(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<PlanStats> {
    let mut stats = get_plan_counters(db, tenant, plan_id).await?;
    stats.last_migration_at = db.last_event_time(tenant, plan_id).await?;
    Ok(stats)
}

/// The STATS item alone (no `last_migration_at`: that is the events' query).
pub(super) async fn get_plan_counters(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<PlanStats> {
    let item = db
        .get_item(db.main(), key(plan_pk(tenant, plan_id), "STATS"))
        .await?;
    match item {
        Some(item) => stats_from(&item),
        None => Ok(PlanStats::default()),
    }
}

pub(super) async fn start_marking(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
    pass: u32,
    chains: &[ChainStart],
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let pk = plan_pk(tenant, plan_id);
    // The stats item alone: `get_plan_stats` also queries the events.
    let stats = db.get_item(db.main(), key(pk.clone(), "STATS")).await?;
    let started = |item: &Item| match pass {
        0 => item.contains_key("marking_started_at"),
        pass => stats_from(item).is_ok_and(|stats| stats.marking_pass >= pass),
    };
    if stats.as_ref().is_some_and(started) {
        return Ok(false);
    }
    // Each chain at most once: a second starter (a resume racing the first)
    // keeps the chains already registered, and their progress.
    let items = chains
        .iter()
        .map(|chain| chain_item(pk.clone(), chain, at))
        .collect::<StoreResult<Vec<_>>>()?;
    let puts: Vec<_> = items
        .into_iter()
        .map(|item| {
            let request = db
                .client
                .put_item()
                .table_name(db.main())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)");
            async move {
                match retrying(|| request.clone().send()).await.map_err(sdk_error) {
                    Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .collect();
    stream::iter(puts)
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    // The total is what is registered, whoever registered it.
    let registered = db.list_chains(tenant, plan_id).await?.len() as u64;
    let write_id = new_write_id();
    // Pass 0 starts marking; a ramp's pass only moves `marking_pass` on (the
    // chains of earlier passes, all done, stay in the total).
    let (update, condition) = match pass {
        0 => (
            "SET chains_total = :n, marking_started_at = :at, last_progress_at = :at, #w = :w",
            "attribute_not_exists(marking_started_at)",
        ),
        _ => (
            "SET chains_total = :n, marking_pass = :p, last_progress_at = :at, #w = :w",
            "attribute_not_exists(marking_pass) OR marking_pass < :p",
        ),
    };
    let mut request = db
        .client
        .update_item()
        .table_name(db.main())
        .set_key(Some(key(pk, "STATS")))
        .update_expression(update)
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE)
        .expression_attribute_names("#w", WRITE_ID)
        .expression_attribute_values(":w", s(write_id.clone()))
        .expression_attribute_values(":n", n(registered))
        .expression_attribute_values(":at", s(time_key(&at)));
    if pass > 0 {
        request = request.expression_attribute_values(":p", n(pass));
    }
    match retrying(|| request.clone().send()).await {
        Ok(_) => Ok(true),
        // Our own start, applied with its answer lost: this call started marking
        // and must hand out the chains (else they wait for the sweep's lease).
        Err(e) if own_write(&e, &write_id).is_some() => Ok(true),
        Err(e) => match sdk_error(e) {
            StoreError::Conflict(_) => Ok(false),
            e => Err(e),
        },
    }
}

pub(super) async fn list_chains(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Vec<ChainState>> {
    let query = db
        .client
        .query()
        .table_name(db.main())
        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
        .expression_attribute_values(":pk", s(plan_pk(tenant, plan_id)))
        .expression_attribute_values(":c", s(CHAIN_PREFIX))
        .consistent_read(true);
    db.query_all(query).await?.iter().map(chain_from).collect()
}

pub(super) async fn claim_chain(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
    which: ChainKey,
    seen_updated_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let pk = plan_pk(tenant, plan_id);
    let mut chain = Expr::default();
    let write_id = new_write_id();
    chain.set(WRITE_ID, s(write_id.clone()));
    chain.set("updated_at", s(time_key(&at)));
    chain.add("resumptions", 1);
    let (done, updated) = (chain.name("done"), chain.name("updated_at"));
    let (no, seen) = (
        chain.value(Av::Bool(false)),
        chain.value(s(time_key(&seen_updated_at))),
    );
    let condition = format!("{done} = {no} AND {updated} = {seen}");
    let mut stats = Expr::default();
    stats.add("resumptions", 1);
    stats.set("last_progress_at", s(time_key(&at)));
    let items = vec![
        db.tx_update(
            db.main(),
            key(pk.clone(), &chain_sk(which)),
            &chain,
            Some(condition),
        )?,
        db.tx_update(db.main(), key(pk, "STATS"), &stats, None)?,
    ];
    match db.transact(items).await {
        Ok(()) => Ok(true),
        Err(e) if e.own_write_at(0, &write_id) => Ok(true),
        Err(e) if e.failed_at(0) => Ok(false),
        Err(e) => Err(e.into_store("claim chain")),
    }
}

pub(super) async fn list_deploying(
    db: &DynamoStore,
    limit: usize,
) -> StoreResult<Vec<(Uuid, Uuid)>> {
    let query = db
        .client
        .query()
        .table_name(db.main())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(DEPLOYING_PK))
        .limit(i32::try_from(limit).unwrap_or(i32::MAX));
    let items = db.query_some(query, None, limit).await?;
    items
        .iter()
        .map(|item| Ok((get_uuid(item, "tenant_id")?, get_uuid(item, "plan_id")?)))
        .collect()
}

pub(super) async fn record_marking_page(db: &DynamoStore, page: &MarkedPage) -> StoreResult<bool> {
    let pk = plan_pk(page.tenant, page.plan_id);
    let mut ledger = key(pk.clone(), &format!("LEDGER#{}", page.page_id));
    ledger.insert(TTL.into(), ttl_av(page.at, db.retention.ledger_days));
    let write_id = new_write_id();
    ledger.insert(WRITE_ID.into(), s(write_id.clone()));
    let mut chain = Expr::default();
    chain.set_or_remove("cursor", page.next_cursor.clone().map(s));
    chain.set("done", Av::Bool(page.completes_chain()));
    chain.set("updated_at", s(time_key(&page.at)));
    let (done, cursor) = (chain.name("done"), chain.name("cursor"));
    let no = chain.value(Av::Bool(false));
    let at_cursor = match &page.cursor {
        Some(c) => {
            let v = chain.value(s(c.clone()));
            format!("{cursor} = {v}")
        }
        None => format!("attribute_not_exists({cursor})"),
    };
    let chain_condition = format!("attribute_exists(pk) AND {done} = {no} AND {at_cursor}");
    let mut expr = Expr::default();
    expr.add("sessions_marked", page.sessions_marked);
    if page.flags_withdrawn > 0 {
        expr.add("flags_withdrawn", page.flags_withdrawn);
    }
    expr.add("pages_recorded", 1);
    if page.completes_chain() {
        expr.add("chains_done", 1);
    }
    for (hash, count) in &page.by_anchor {
        expr.add(&format!("{ANCHOR_PREFIX}{hash}"), *count);
    }
    expr.set("last_progress_at", s(time_key(&page.at)));
    let items = vec![
        db.tx_put(db.main(), ledger, Some("attribute_not_exists(pk)"))?,
        db.tx_update(
            db.main(),
            key(
                pk.clone(),
                &chain_sk(ChainKey {
                    step_id: page.chain_step,
                    shard: page.chain_shard,
                    pass: page.chain_pass,
                }),
            ),
            &chain,
            Some(chain_condition),
        )?,
        db.tx_update(db.main(), key(pk, "STATS"), &expr, None)?,
    ];
    match db.transact_same_write(items).await {
        Ok(()) => Ok(true),
        // Recorded by this very call on an attempt whose answer was lost: the
        // caller goes on with the chain (else it would stall until its lease ran out).
        Err(e) if e.own_write_at(0, &write_id) => Ok(true),
        Err(e) if e.failed_at(0) || e.failed_at(1) => Ok(false),
        Err(e) => Err(e.into_store("record page")),
    }
}

pub(super) async fn record_failed_page(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
    page_id: &str,
) -> StoreResult<bool> {
    let pk = plan_pk(tenant, plan_id);
    let mut expr = Expr::default();
    expr.add("pages_failed", 1);
    let write_id = new_write_id();
    let mut failed = key(pk.clone(), &format!("FAILED#{page_id}"));
    failed.insert(WRITE_ID.into(), s(write_id.clone()));
    let items = vec![
        db.tx_put(db.main(), failed, Some("attribute_not_exists(pk)"))?,
        db.tx_update(db.main(), key(pk, "STATS"), &expr, None)?,
    ];
    match db.transact(items).await {
        Ok(()) => Ok(true),
        Err(e) if e.own_write_at(0, &write_id) => Ok(true),
        Err(e) if e.failed_at(0) => Ok(false),
        Err(e) => Err(e.into_store("record failed page")),
    }
}

pub(super) async fn claim_page(db: &DynamoStore, claim: &PageClaim) -> StoreResult<PageClaim> {
    let pk = plan_pk(claim.tenant, claim.plan_id);
    let mut item = key(pk, &format!("CLAIM#{}", claim.page_id));
    let ids = serde_json::to_string(&claim.session_ids)
        .map_err(|e| StoreError::Unexpected(format!("page claim: {e}")))?;
    item.insert("session_ids".into(), s(ids));
    if let Some(cursor) = &claim.next_cursor {
        item.insert("next_cursor".into(), s(cursor.clone()));
    }
    item.insert("at".into(), s(time_key(&claim.at)));
    item.insert(TTL.into(), ttl_av(claim.at, db.retention.ledger_days));
    let request = db
        .client
        .put_item()
        .table_name(db.main())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE);
    // A replay of this very put finds its own claim: the same answer.
    match retrying_same_write(|| request.clone().send()).await {
        Ok(_) => Ok(claim.clone()),
        Err(e) => match found_item(&e) {
            Some(stored) => claim_from(claim, stored),
            None => Err(sdk_error(e)),
        },
    }
}

fn claim_from(asked: &PageClaim, item: &Item) -> StoreResult<PageClaim> {
    let ids = get_s(item, "session_ids")?;
    let session_ids: Vec<String> =
        serde_json::from_str(ids).map_err(|_| bad_item("page claim session_ids"))?;
    Ok(PageClaim {
        tenant: asked.tenant,
        plan_id: asked.plan_id,
        page_id: asked.page_id.clone(),
        session_ids,
        next_cursor: opt_s(item, "next_cursor")?.map(str::to_owned),
        at: get_time(item, "at")?,
    })
}
