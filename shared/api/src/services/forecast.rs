//! `GET /migration-plans/{plan_id}/forecast`: what reconcile will answer the
//! plan's live sessions once it is deployed, decided by the same code
//! (`planning::forecast`) over the real sessions found through the step index.
//!
//! Up to `FORECAST_EXACT_LIMIT` counted sessions every session is decided and
//! the counts are exact. Above it, each stratum (a V1 step the plan marks) is
//! sampled: the step index spreads a step's sessions over its shards by a hash
//! of the session id, so each shard holds a hash-random subset of them. Whole
//! shards, picked in random order, are paged (ids only) until
//! `FORECAST_SAMPLE_PER_STRATUM` ids were seen; a reservoir keeps that many of
//! them uniformly, and only those sessions are read whole and decided — a
//! uniform sample of the stratum that never reads the other shards
//! ([`sample_stratum`]). The sample's proportions are scaled to the stratum's
//! counted sessions, with 95% intervals (`planning::forecast::finish`). Exact
//! forecasts stream the sessions page by page into tallies; memory holds a
//! page per reader, or the sample's ids, never the population.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use planning::forecast::{Forecaster, Stratum, StratumRead, StratumTally, finish};
use planning::reconcile::{PlanLink, PreparedPlan, PreparedScenario};
use planning::{MigrationPlan, PlanForecast, PlanStatus};
use quick_cache::sync::Cache;
use store::{StepQuery, Store};
use uuid::Uuid;

use crate::config::Config;
use crate::services::error::{ServiceError, ServiceResult};
use crate::services::plans::{count_sessions, load, load_header, plans_of};

/// Forecasts a process keeps (by plan and revision); each is a few KB.
const CACHED_FORECASTS: usize = 32;
/// Sessions per index page while forecasting.
const PAGE: usize = 500;

/// Recent forecasts per (tenant, plan, plan revision): a revision is a set of
/// policies, so a policy change is a new key and never served an older answer.
pub struct ForecastCache {
    entries: Cache<(Uuid, Uuid, u64), (Instant, Arc<PlanForecast>)>,
}

impl Default for ForecastCache {
    fn default() -> Self {
        ForecastCache {
            entries: Cache::new(CACHED_FORECASTS),
        }
    }
}

/// The forecast of a plan, from the cache when one for the plan's current
/// revision is younger than `FORECAST_CACHE_SECONDS`.
pub async fn forecast(
    store: &dyn Store,
    config: &Config,
    cache: &ForecastCache,
    permits: &tokio::sync::Semaphore,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<Arc<PlanForecast>> {
    // The header names the revision: a cached forecast costs one small read,
    // never the plan's transformation map.
    let header = load_header(store, tenant, plan_id).await?;
    let key = (tenant, plan_id, header.revision);
    let max_age = Duration::from_secs(config.forecast_cache_seconds);
    if let Some((at, found)) = cache.entries.get(&key)
        && at.elapsed() < max_age
    {
        return Ok(found);
    }
    // Each forecast reads up to FORECAST_EXACT_LIMIT sessions: at most
    // FORECAST_CONCURRENCY at once per process, the others wait their turn.
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| ServiceError::Unavailable("shutting down".into()))?;
    if let Some((at, found)) = cache.entries.get(&key)
        && at.elapsed() < max_age
    {
        return Ok(found);
    }
    let plan = load(store, tenant, plan_id).await?;
    let computed = Arc::new(compute(store, config, plan, Utc::now(), random_seed()).await?);
    cache.entries.insert(
        (tenant, plan_id, computed.plan_revision),
        (Instant::now(), computed.clone()),
    );
    Ok(computed)
}

/// The forecast computed now, sampling with shards shuffled by `seed` when the
/// counted sessions exceed the exact limit.
pub async fn compute(
    store: &dyn Store,
    config: &Config,
    plan: MigrationPlan,
    now: DateTime<Utc>,
    seed: u64,
) -> ServiceResult<PlanForecast> {
    let (tenant, scenario_id) = (plan.tenant_id, plan.scenario_id);
    let definition = |version: i64| async move {
        store
            .get_scenario_version(tenant, scenario_id, version)
            .await?
            .map(|v| PreparedScenario::new(v.definition()))
            .ok_or_else(|| {
                ServiceError::Unexpected(format!("scenario version {version} of a plan is missing"))
            })
    };
    let from = definition(plan.from_version).await?;
    // Until activation the to-version is stored with the plan only.
    let to = store
        .get_plan_target(tenant, plan.id)
        .await?
        .map(|v| PreparedScenario::new(v.definition()))
        .ok_or_else(|| ServiceError::Unexpected("the plan's target version is missing".into()))?;
    let (plan_id, revision, from_version) = (plan.id, plan.revision, plan.from_version);
    let chain = earlier_chain(store, tenant, scenario_id, from_version).await?;
    // The definitions of every version the chain leaves from or lands on.
    let mut versions: BTreeMap<i64, PreparedScenario> = BTreeMap::new();
    for link in &chain {
        for version in [link.plan().from_version, link.plan().to_version] {
            if version != from_version && !versions.contains_key(&version) {
                versions.insert(version, definition(version).await?);
            }
        }
    }
    let prepared = PreparedPlan::new(plan);
    let mut forecaster = Forecaster::new(&prepared, &from, &to, now);
    let (counts, _) = count_sessions(
        store,
        tenant,
        scenario_id,
        from_version,
        forecaster.strata().iter().map(|s| s.step.step_id),
    )
    .await?;
    let mut counted_at: BTreeMap<(i64, Uuid), u64> = counts
        .into_iter()
        .map(|(step, n)| ((from_version, step), n))
        .collect();
    // Sessions on earlier versions migrate through the chain and this plan at
    // their next reconcile: only the steps the counters say have sessions.
    for (i, link) in chain.iter().enumerate() {
        let version = link.plan().from_version;
        let Some(definition) = versions.get(&version) else {
            continue;
        };
        let steps = definition.definition().steps.iter().map(|s| s.id);
        let (counts, _) = count_sessions(store, tenant, scenario_id, version, steps).await?;
        if counts.values().all(|n| *n == 0) {
            continue;
        }
        let links = chain[i..]
            .iter()
            .map(|plan| {
                let to = plan.plan().to_version;
                PlanLink {
                    plan,
                    to: versions.get(&to).unwrap_or(&from),
                }
            })
            .collect();
        forecaster = forecaster.with_earlier_version(definition, links, counts.keys().copied());
        counted_at.extend(counts.into_iter().map(|(step, n)| ((version, step), n)));
    }
    let strata = forecaster.strata();
    let counted = |s: &Stratum| {
        counted_at
            .get(&(s.version, s.step.step_id))
            .copied()
            .unwrap_or(0)
    };
    let total: u64 = strata.iter().map(counted).sum();
    let exact = total <= config.forecast_exact_limit;
    let shards = store.step_index_shards().max(1);
    let mut random = SplitMix(seed);
    // Which shards of each stratum to read, in the order they are read.
    let plans: Vec<(usize, Vec<u32>)> = strata
        .iter()
        .enumerate()
        .map(|(i, stratum)| {
            // A step the counters show empty is not read: a 10,000-step plan
            // would otherwise cost a query per step and shard for nothing.
            let mut order: Vec<u32> = if counted(stratum) == 0 {
                Vec::new()
            } else {
                (0..shards).collect()
            };
            if !exact && counted(stratum) > config.forecast_sample_per_stratum {
                random.shuffle(&mut order);
            }
            (i, order)
        })
        .collect();
    let reads = stream::iter(plans)
        .map(|(i, order)| {
            let stratum = &strata[i];
            let sample =
                (!exact && counted(stratum) > config.forecast_sample_per_stratum).then(|| {
                    (
                        config.forecast_sample_per_stratum,
                        SplitMix(seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F)),
                    )
                });
            read_stratum(
                store,
                &forecaster,
                stratum,
                StepQuery {
                    tenant,
                    scenario_id,
                    version: stratum.version,
                    step_id: stratum.step.step_id,
                    shard: 0,
                    limit: PAGE,
                    cursor: None,
                },
                order,
                sample,
                counted(stratum),
            )
        })
        .buffered(config.count_concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(finish(plan_id, revision, now, &reads))
}

/// Read one stratum: every session of every shard, or — with `sample` — a
/// uniform sample of `sample` sessions ([`sample_stratum`]).
#[allow(clippy::too_many_arguments)]
async fn read_stratum(
    store: &dyn Store,
    forecaster: &Forecaster<'_>,
    stratum: &Stratum,
    query: StepQuery,
    order: Vec<u32>,
    sample: Option<(u64, SplitMix)>,
    counted: u64,
) -> ServiceResult<StratumRead> {
    if let Some((size, random)) = sample {
        return sample_stratum(
            store, forecaster, stratum, query, order, size, random, counted,
        )
        .await;
    }
    let mut tally = StratumTally::default();
    for &shard in &order {
        let mut cursor = None;
        loop {
            let page = store
                .whole_sessions_at_step(&StepQuery {
                    shard,
                    cursor: cursor.take(),
                    ..query.clone()
                })
                .await?;
            for session in &page.sessions {
                tally.add(&forecaster.outcome(stratum, session));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(StratumRead {
        stratum: stratum.clone(),
        tally,
        complete: true,
        counted,
    })
}

/// A uniform sample of `size` sessions of a stratum. A shard is a hash-random
/// subset of the stratum, so a uniform sample of the shards read is a uniform
/// sample of the stratum: whole shards are paged in random order, ids only,
/// until at least `size` ids were seen, keeping `size` of them by reservoir
/// sampling (each id seen is kept with equal probability); then only the kept
/// sessions are read whole and decided. The other shards are never read.
#[allow(clippy::too_many_arguments)]
async fn sample_stratum(
    store: &dyn Store,
    forecaster: &Forecaster<'_>,
    stratum: &Stratum,
    query: StepQuery,
    order: Vec<u32>,
    size: u64,
    mut random: SplitMix,
    counted: u64,
) -> ServiceResult<StratumRead> {
    let capacity = usize::try_from(size).unwrap_or(usize::MAX);
    let mut kept: Vec<String> = Vec::with_capacity(capacity.min(100_000));
    let mut seen: u64 = 0;
    let mut shards_read = 0;
    for &shard in &order {
        if seen >= size {
            break;
        }
        let mut cursor = None;
        loop {
            let page = store
                .sessions_at_step(&StepQuery {
                    shard,
                    cursor: cursor.take(),
                    ..query.clone()
                })
                .await?;
            for session in page.sessions {
                seen += 1;
                if kept.len() < capacity {
                    kept.push(session.session_id);
                } else {
                    let slot = random.next() % seen;
                    if let Ok(slot) = usize::try_from(slot)
                        && slot < capacity
                    {
                        kept[slot] = session.session_id;
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        shards_read += 1;
    }
    let mut tally = StratumTally::default();
    for ids in kept.chunks(PAGE) {
        for session in store.get_sessions(query.tenant, ids).await? {
            // Moved since the index was read: no longer in this stratum.
            if query.finds(&session) {
                tally.add(&forecaster.outcome(stratum, &session));
            }
        }
    }
    Ok(StratumRead {
        stratum: stratum.clone(),
        tally,
        // Every shard read and every id kept: the stratum whole.
        complete: shards_read == order.len() && seen <= size,
        counted,
    })
}

/// The activated plans that lead to `from_version`, oldest first: the chain
/// a session on an earlier version migrates through. Stops at a gap (a
/// version no activated plan left), as reconcile's chain does.
async fn earlier_chain(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    from_version: i64,
) -> ServiceResult<Vec<PreparedPlan>> {
    let activated = plans_of(
        store,
        tenant,
        scenario_id,
        &[PlanStatus::Deployed, PlanStatus::Deploying],
    )
    .await?;
    let mut chain = Vec::new();
    let mut version = from_version;
    while let Some(item) = activated
        .iter()
        .find(|p| p.to_version == version && p.from_version < version)
    {
        let Some(plan) = store.get_plan(tenant, item.id).await? else {
            break;
        };
        version = plan.from_version;
        chain.push(PreparedPlan::new(plan));
    }
    chain.reverse();
    Ok(chain)
}

fn random_seed() -> u64 {
    // uuid's v4 draws from the operating system's generator.
    let bits = Uuid::new_v4().as_u128();
    (bits as u64) ^ ((bits >> 64) as u64)
}

/// SplitMix64: enough to shuffle a handful of shard numbers.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}
