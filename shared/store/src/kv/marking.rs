//! Plan counters, marking chains, the ledger and the deploying registry.

use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::keys::{
    DEPLOYING_PREFIX, chain_key, chains_prefix, failed_key, ledger_key, page_claim_key, prefix_end,
    stats_key,
};
use super::retention::expire_at;
use super::values::{decode_value, load, save};
use super::{KvRead, KvWrite};
use crate::{
    ChainStart, ChainState, MarkedPage, PageClaim, PlanStats, Retention, StoreError, StoreResult,
};

pub(super) fn load_stats(kv: &dyn KvRead, t: Uuid, pid: Uuid) -> StoreResult<PlanStats> {
    Ok(load(kv, &stats_key(t, pid))?.unwrap_or_default())
}

pub(super) fn start_marking(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    pass: u32,
    chains: &[ChainStart],
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let mut stats = load_stats(kv, t, pid)?;
    let started = match pass {
        0 => stats.marking_started_at.is_some(),
        pass => stats.marking_pass >= pass,
    };
    if started {
        return Ok(false);
    }
    for chain in chains {
        let state = ChainState {
            step_id: chain.step_id,
            shard: chain.shard,
            shards: chain.shards,
            anchor_content_hash: chain.anchor_content_hash.clone(),
            pass,
            percent: chain.percent,
            cursor: None,
            done: false,
            updated_at: at,
            resumptions: 0,
        };
        save(kv, &chain_key(t, pid, state.key()), &state)?;
    }
    // Earlier passes' chains are all done (a ramp starts from `deployed`).
    stats.chains_total = list_chains(kv, t, pid)?.len() as u64;
    stats.marking_pass = pass;
    stats.marking_started_at = stats.marking_started_at.or(Some(at));
    stats.last_progress_at = Some(at);
    save(kv, &stats_key(t, pid), &stats)?;
    Ok(true)
}

pub(super) fn list_chains(kv: &dyn KvRead, t: Uuid, pid: Uuid) -> StoreResult<Vec<ChainState>> {
    let prefix = chains_prefix(t, pid);
    kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)?
        .iter()
        .map(|(_, bytes)| decode_value(bytes))
        .collect()
}

pub(super) fn claim_chain(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    which: crate::ChainKey,
    seen: DateTime<Utc>,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let key = chain_key(t, pid, which);
    let Some(mut chain) = load::<ChainState>(kv, &key)? else {
        return Ok(false);
    };
    if chain.done || chain.updated_at != seen {
        return Ok(false);
    }
    chain.updated_at = at;
    chain.resumptions += 1;
    save(kv, &key, &chain)?;
    let mut stats = load_stats(kv, t, pid)?;
    stats.resumptions += 1;
    stats.last_progress_at = Some(at);
    save(kv, &stats_key(t, pid), &stats)?;
    Ok(true)
}

pub(super) fn list_deploying(kv: &dyn KvRead, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
    let mut plans = Vec::new();
    for (key, _) in kv.range(
        DEPLOYING_PREFIX,
        &prefix_end(DEPLOYING_PREFIX),
        false,
        limit,
    )? {
        let rest = &key[DEPLOYING_PREFIX.len()..];
        let (t, p) = rest
            .split_once('/')
            .ok_or_else(|| StoreError::Unexpected(format!("malformed registry key {key}")))?;
        let parse = |v: &str| {
            Uuid::parse_str(v)
                .map_err(|_| StoreError::Unexpected(format!("malformed registry key {key}")))
        };
        plans.push((parse(t)?, parse(p)?));
    }
    Ok(plans)
}

/// The page's claim: `claim` if it is the first, else the stored one. Kept as
/// long as the ledger entry it precedes.
pub(super) fn claim_page(
    kv: &mut dyn KvWrite,
    claim: &PageClaim,
    retention: Retention,
) -> StoreResult<PageClaim> {
    let key = page_claim_key(claim.tenant, claim.plan_id, &claim.page_id);
    if let Some(stored) = load::<PageClaim>(kv, &key)? {
        return Ok(stored);
    }
    save(kv, &key, claim)?;
    expire_at(kv, &key, Retention::until(claim.at, retention.ledger_days))?;
    Ok(claim.clone())
}

pub(super) fn record_marking_page(
    kv: &mut dyn KvWrite,
    page: &MarkedPage,
    retention: Retention,
) -> StoreResult<bool> {
    let ledger = ledger_key(page.tenant, page.plan_id, &page.page_id);
    if kv.get(&ledger)?.is_some() {
        return Ok(false);
    }
    let which = crate::ChainKey {
        step_id: page.chain_step,
        shard: page.chain_shard,
        pass: page.chain_pass,
    };
    let chain_key = chain_key(page.tenant, page.plan_id, which);
    let Some(mut chain) = load::<ChainState>(kv, &chain_key)? else {
        return Ok(false);
    };
    if chain.done || chain.cursor != page.cursor {
        return Ok(false);
    }
    chain.cursor = page.next_cursor.clone();
    chain.done = page.completes_chain();
    chain.updated_at = page.at;
    save(kv, &chain_key, &chain)?;
    kv.put(&ledger, Vec::new())?;
    expire_at(
        kv,
        &ledger,
        Retention::until(page.at, retention.ledger_days),
    )?;
    let mut stats = load_stats(kv, page.tenant, page.plan_id)?;
    stats.sessions_marked += page.sessions_marked;
    stats.flags_withdrawn += page.flags_withdrawn;
    for (hash, n) in &page.by_anchor {
        *stats.sessions_by_anchor.entry(hash.clone()).or_default() += n;
    }
    stats.pages_recorded += 1;
    if page.completes_chain() {
        stats.chains_done += 1;
    }
    stats.last_progress_at = Some(stats.last_progress_at.map_or(page.at, |t| t.max(page.at)));
    save(kv, &stats_key(page.tenant, page.plan_id), &stats)?;
    Ok(true)
}

pub(super) fn record_failed_page(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    page: &str,
) -> StoreResult<bool> {
    let key = failed_key(t, pid, page);
    if kv.get(&key)?.is_some() {
        return Ok(false);
    }
    kv.put(&key, Vec::new())?;
    let mut stats = load_stats(kv, t, pid)?;
    stats.pages_failed += 1;
    save(kv, &stats_key(t, pid), &stats)?;
    Ok(true)
}
