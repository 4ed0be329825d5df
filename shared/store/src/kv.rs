//! The store's semantics, written once over an ordered key-value transaction.
//!
//! [`KvStore`] implements [`Store`] for any [`KvBackend`]: the in-memory map
//! ([`crate::MemoryStore`]) and the redb file ([`crate::EmbeddedStore`]). Every
//! operation runs as one backend transaction — "read, check, write" — so a
//! failed check leaves nothing behind.
//!
//! Keys (all start with the tenant; `{v}` is the version as 20 sortable digits,
//! `{at}` an RFC 3339 time with nanoseconds):
//!
//! | key | value |
//! |---|---|
//! | `{t}/SCN/{scenario}/HEAD` | current version |
//! | `{t}/SCN/{scenario}/V/{v}` | `ScenarioVersion` |
//! | `{t}/PLAN/{plan}` | `MigrationPlan` |
//! | `{t}/PTGT/{plan}` | the plan's V2 `ScenarioVersion` |
//! | `{t}/PHEAD/{plan}`, `{t}/PSUM/{plan}` | the plan without its heavy parts; its summary (reads that need nothing else) |
//! | `{t}/PIDX/{created_at}/{plan}` | `MigrationPlanSummaryItem` (listing, newest first) |
//! | `{t}/SLOT/{scenario}/{from}/{to}` | id of the live plan for that version pair |
//! | `{t}/STATS/{plan}` | `PlanStats` |
//! | `{t}/LEDGER/{plan}/{page}`, `{t}/FAILED/{plan}/{page}` | marking ledger |
//! | `{t}/CHAIN/{plan}/{step}/{shard}` | `ChainState`: where a chain's marking stands |
//! | `EXPIRE/{at}/{key}` | `key` is deleted by [`Store::sweep_expired`] once `at` has passed (retention) |
//! | `DEPLOYING/{t}/{plan}` | registry of deploying plans for the sweep (the one key not under a tenant: an operational index of ids only) |
//! | `{t}/EVT/{plan}/{at}/{event}` | `AuditEvent` |
//! | `{t}/SESS/{session}` | `Session` |
//! | `{t}/COUNT/{scenario}/{v}/{step}` | sessions at that step (decimal text), moved in the transaction of every session write ([`crate::counts`]) |
//! | `COUNTS/READY` | every stored session is counted (set on open; older files are counted once first) |
//! | `{t}/RECOUNT/{scenario}/{v}` | the latest exact recount ([`crate::Recount`]) |
//! | `{t}/STEP/{scenario}/{v}/{step}/{shard}/{session}` | index entry (empty value); `{shard}` = [`crate::step_shard`] of the session id (decimal) |

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationPlanSummaryItem, MigrationScenario,
    MigrationSummary, PendingMigration, PlanStatus, ScenarioVersion, Session,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{decode_token, decompress_json, encode_token, from_json, time_key, version_key};
use chrono::{DateTime, Utc};

use crate::plan_header;
use crate::session_rules::merge_runtime_write;
use crate::{
    ActivationError, ChainStart, ChainState, EventPage, EventQuery, MarkedPage, PlanActivation,
    PlanPage, PlanQuery, PlanStats, PlanTransition, Retention, SessionChange, SessionExpectation,
    SessionMark, SessionPage, SessionPosition, SessionWrite, SessionWriteError, StepQuery, Store,
    StoreError, StoreResult, WrittenSession,
};

/// Read access to an ordered map of string keys to bytes.
pub trait KvRead {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Entries with `start <= key < end`, ascending (or descending when
    /// `rev`), at most `limit` of them.
    fn range(&self, start: &str, end: &str, rev: bool, limit: usize) -> KvEntries;
}

/// Key-value pairs read from a range.
pub type KvEntries = StoreResult<Vec<(String, Vec<u8>)>>;

/// Writes inside one atomic transaction.
pub trait KvWrite: KvRead {
    fn put(&mut self, key: &str, value: Vec<u8>) -> StoreResult<()>;
    fn delete(&mut self, key: &str) -> StoreResult<()>;
}

/// A transactional ordered key-value engine.
pub trait KvBackend: Send + Sync + 'static {
    /// Run `f` over a consistent snapshot.
    fn read<R, F>(&self, f: F) -> impl Future<Output = StoreResult<R>> + Send
    where
        R: Send + 'static,
        F: FnOnce(&dyn KvRead) -> StoreResult<R> + Send + 'static;

    /// Run `f` in one write transaction: committed when it returns `Ok`, rolled
    /// back entirely when it returns `Err`.
    fn write<R, E, F>(&self, f: F) -> impl Future<Output = Result<R, E>> + Send
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn KvWrite) -> Result<R, E> + Send + 'static;
}

/// The [`Store`] over a key-value backend.
pub struct KvStore<B> {
    backend: Arc<B>,
    retention: Retention,
    step_shards: u32,
}

impl<B> KvStore<B> {
    pub(crate) fn with_backend(backend: B) -> Self {
        KvStore {
            backend: Arc::new(backend),
            retention: Retention::default(),
            step_shards: crate::DEFAULT_STEP_INDEX_SHARDS,
        }
    }

    /// Shards of the step index (`STEP_INDEX_SHARDS`; 0 counts as 1). Entries
    /// written under another count are not found by shard: keep it fixed for a
    /// database, or rebuild the index after changing it.
    pub fn with_step_index_shards(mut self, shards: u32) -> Self {
        self.step_shards = shards.max(1);
        self
    }

    /// How long deployed plans, ledger items and audit events are kept.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

impl<B> Clone for KvStore<B> {
    fn clone(&self) -> Self {
        KvStore {
            backend: Arc::clone(&self.backend),
            retention: self.retention,
            step_shards: self.step_shards,
        }
    }
}

// ---------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------

/// The exclusive end of the range of keys starting with `prefix` (which ends in `/`).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0'); // the character after '/'
    end
}

fn scenario_head_key(t: Uuid, sid: Uuid) -> String {
    format!("{t}/SCN/{sid}/HEAD")
}
fn scenario_version_key(t: Uuid, sid: Uuid, v: i64) -> String {
    format!("{t}/SCN/{sid}/V/{}", version_key(v))
}
fn plan_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PLAN/{pid}")
}
fn plan_target_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PTGT/{pid}")
}
fn plan_header_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PHEAD/{pid}")
}
fn plan_summary_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PSUM/{pid}")
}
fn plan_index_prefix(t: Uuid) -> String {
    format!("{t}/PIDX/")
}
fn plan_index_key(plan: &MigrationPlan) -> String {
    format!(
        "{}{}/{}",
        plan_index_prefix(plan.tenant_id),
        time_key(&plan.created_at),
        plan.id
    )
}
fn slot_key(plan: &MigrationPlan) -> String {
    format!(
        "{}/SLOT/{}/{}/{}",
        plan.tenant_id,
        plan.scenario_id,
        version_key(plan.from_version),
        version_key(plan.to_version)
    )
}
fn stats_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/STATS/{pid}")
}
fn ledger_key(t: Uuid, pid: Uuid, page: &str) -> String {
    format!("{t}/LEDGER/{pid}/{page}")
}
fn failed_key(t: Uuid, pid: Uuid, page: &str) -> String {
    format!("{t}/FAILED/{pid}/{page}")
}
fn chains_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/CHAIN/{pid}/")
}
fn chain_key(t: Uuid, pid: Uuid, step: Uuid, shard: u32) -> String {
    format!("{}{step}/{shard}", chains_prefix(t, pid))
}
const DEPLOYING_PREFIX: &str = "DEPLOYING/";
const EXPIRE_PREFIX: &str = "EXPIRE/";

/// Delete `key` once `at` has passed (the next sweep after it).
fn expire_at(kv: &mut dyn KvWrite, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
    kv.put(
        &format!("{EXPIRE_PREFIX}{}/{key}", time_key(&at)),
        Vec::new(),
    )
}

/// Everything a deployed plan leaves behind, deleted after its retention.
fn expire_deployed_plan(
    kv: &mut dyn KvWrite,
    plan: &MigrationPlan,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let (t, pid) = (plan.tenant_id, plan.id);
    let mut keys = vec![
        plan_key(t, pid),
        plan_header_key(t, pid),
        plan_summary_key(t, pid),
        plan_target_key(t, pid),
        plan_index_key(plan),
        stats_key(t, pid),
        slot_key(plan),
    ];
    for prefix in [chains_prefix(t, pid), format!("{t}/FAILED/{pid}/")] {
        for (key, _) in kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)? {
            keys.push(key);
        }
    }
    for key in keys {
        expire_at(kv, &key, at)?;
    }
    Ok(())
}

fn sweep_expired(kv: &mut dyn KvWrite, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
    let end = format!("{EXPIRE_PREFIX}{}", time_key(&now));
    let due = kv.range(EXPIRE_PREFIX, &end, false, limit)?;
    for (entry, _) in &due {
        // `EXPIRE/{at}/{key}`: the time has no '/', the key may.
        if let Some((_, key)) = entry[EXPIRE_PREFIX.len()..].split_once('/') {
            kv.delete(key)?;
        }
        kv.delete(entry)?;
    }
    Ok(due.len() as u64)
}
fn deploying_key(t: Uuid, pid: Uuid) -> String {
    format!("{DEPLOYING_PREFIX}{t}/{pid}")
}
fn events_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/EVT/{pid}/")
}
fn session_key(t: Uuid, session_id: &str) -> String {
    format!("{t}/SESS/{session_id}")
}
fn step_prefix(t: Uuid, sid: Uuid, v: i64, step: Uuid) -> String {
    format!("{t}/STEP/{sid}/{}/{step}/", version_key(v))
}
/// The entries of one shard of a step.
fn step_shard_prefix(t: Uuid, sid: Uuid, v: i64, step: Uuid, shard: u32) -> String {
    format!("{}{shard}/", step_prefix(t, sid, v, step))
}
fn step_entry_key(s: &Session, shards: u32) -> String {
    format!(
        "{}{}",
        step_shard_prefix(
            s.tenant_id,
            s.active_scenario_id,
            s.active_scenario_version,
            s.active_step_id,
            crate::step_shard(&s.session_id, shards),
        ),
        s.session_id
    )
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScenarioHead {
    pub current_version: i64,
}

/// Values above this are stored zlib-compressed (plans and their V2 definitions:
/// tens of MB of JSON for a 10,000-step scenario, a few MB compressed).
const COMPRESS_ABOVE: usize = 4 * 1024;

/// A stored value: JSON, or zlib-compressed JSON (a zlib stream starts with
/// 0x78, which no JSON text does).
fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    if bytes.first() == Some(&0x78) {
        decompress_json(bytes)
    } else {
        from_json(bytes)
    }
}

/// A stored session's value (for [`crate::counts`]'s one-off rebuild).
pub(crate) fn decode_session(bytes: &[u8]) -> StoreResult<Session> {
    decode_value(bytes)
}

fn load<T: DeserializeOwned>(kv: &dyn KvRead, key: &str) -> StoreResult<Option<T>> {
    kv.get(key)?.map(|bytes| decode_value(&bytes)).transpose()
}

fn save<T: Serialize>(kv: &mut dyn KvWrite, key: &str, value: &T) -> StoreResult<()> {
    let mut out =
        std::io::BufWriter::with_capacity(64 * 1024, CompressingBuffer::Plain(Vec::new()));
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Unexpected(format!("encode: {e}")))?;
    let out = out
        .into_inner()
        .map_err(|e| StoreError::Unexpected(format!("encode: {e}")))?;
    kv.put(key, out.finish()?)
}

/// JSON as it is written (in 64 KB chunks, through a `BufWriter`: serde writes
/// tiny fragments, which deflate handles badly): plain while small,
/// zlib-compressed as soon as it passes [`COMPRESS_ABOVE`] — so a 100 MB plan is
/// never held uncompressed.
enum CompressingBuffer {
    Plain(Vec<u8>),
    Compressed(flate2::write::ZlibEncoder<Vec<u8>>),
}

impl std::io::Write for CompressingBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            CompressingBuffer::Plain(plain) => {
                plain.extend_from_slice(bytes);
                if plain.len() > COMPRESS_ABOVE {
                    let mut encoder =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(plain)?;
                    *self = CompressingBuffer::Compressed(encoder);
                }
                Ok(bytes.len())
            }
            CompressingBuffer::Compressed(encoder) => encoder.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CompressingBuffer {
    fn finish(self) -> StoreResult<Vec<u8>> {
        match self {
            CompressingBuffer::Plain(plain) => Ok(plain),
            CompressingBuffer::Compressed(encoder) => encoder
                .finish()
                .map_err(|e| StoreError::Unexpected(format!("compress: {e}"))),
        }
    }
}

fn conflict(msg: &str) -> StoreError {
    StoreError::Conflict(msg.to_owned())
}

// ---------------------------------------------------------------------------
// query fingerprints (shared with the DynamoDB backend so tokens mean the same)
// ---------------------------------------------------------------------------

pub(crate) fn plan_query_id(q: &PlanQuery) -> String {
    format!(
        "plans|{}|{}|{}",
        q.tenant,
        q.scenario_id.map(|s| s.to_string()).unwrap_or_default(),
        q.status.map(|s| s.as_str()).unwrap_or_default()
    )
}

pub(crate) fn plan_matches(q: &PlanQuery, item: &MigrationPlanSummaryItem) -> bool {
    q.scenario_id.is_none_or(|s| s == item.scenario_id) && q.status.is_none_or(|s| s == item.status)
}

pub(crate) fn step_query_id(q: &StepQuery) -> String {
    format!(
        "steps|{}|{}|{}|{}|{}",
        q.tenant, q.scenario_id, q.version, q.step_id, q.shard
    )
}

pub(crate) fn event_query_id(q: &EventQuery) -> String {
    format!("events|{}|{}", q.tenant, q.plan_id)
}

/// Apply a status transition's side fields to a plan.
pub(crate) fn apply_transition(plan: &mut MigrationPlan, change: &PlanTransition) {
    plan.status = change.to;
    plan.revision += 1;
    match change.to {
        PlanStatus::Approved => {
            plan.approved_at = Some(change.at);
            plan.approved_by = change.by.clone();
        }
        PlanStatus::Rejected => {
            plan.rejected_at = Some(change.at);
            plan.rejected_by = change.by.clone();
            plan.rejection_reason = change.reason.clone();
        }
        PlanStatus::Deployed => plan.deployed_at = Some(change.at),
        PlanStatus::Pending
        | PlanStatus::Deploying
        | PlanStatus::Superseded
        | PlanStatus::Expired => {}
    }
}

/// Add one applied migration to the counters.
pub(crate) fn count_migration(stats: &mut PlanStats, change: &crate::AppliedMigration) {
    stats.migrations_applied += 1;
    if change.was_flagged {
        stats.flagged_applied += 1;
    }
    match change.event.migration_scenario {
        Some(MigrationScenario::CleanGraft) => stats.clean_graft += 1,
        Some(MigrationScenario::GapFill) => stats.gap_fill += 1,
        Some(MigrationScenario::ReRoute) => stats.re_route += 1,
        None => {}
    }
    if change.event.blocked_by_checkpoint {
        stats.checkpoint_blocks += 1;
    }
    let at = change.event.at;
    stats.last_migration_at = Some(stats.last_migration_at.map_or(at, |last| last.max(at)));
}

/// Whether a session satisfies a reconcile write's precondition.
pub(crate) fn session_matches(session: &Session, expect: &SessionExpectation) -> bool {
    match expect {
        SessionExpectation::FlaggedBy(plan_id) => session
            .pending_migration
            .as_ref()
            .is_some_and(|p| p.migration_plan_id == *plan_id),
        SessionExpectation::UnflaggedAt { version } => {
            session.pending_migration.is_none()
                && session.pinned_version.is_none()
                && session.active_scenario_version == *version
        }
    }
}

/// Apply a reconcile write to a session (after its precondition held).
pub(crate) fn apply_session_fields(session: &mut Session, change: &SessionChange) {
    if let Some(pos) = &change.new_position {
        session.active_scenario_version = pos.version;
        session.active_step_id = pos.step_id;
        session.scenario_checksum = Some(pos.checksum.clone());
    }
    if let Some(pin) = change.pin_version {
        session.pinned_version = Some(pin);
    }
    if change.clear_flag {
        session.pending_migration = None;
    }
    for (k, v) in &change.set_variables {
        session.variables.insert(k.clone(), v.clone());
    }
    session.updated_at = change.at;
    session.revision += 1;
}

// ---------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------

fn create_scenario(kv: &mut dyn KvWrite, s: &ScenarioVersion) -> StoreResult<()> {
    let head = scenario_head_key(s.tenant_id, s.id);
    if kv.get(&head)?.is_some() {
        return Err(conflict("scenario already exists"));
    }
    save(
        kv,
        &head,
        &ScenarioHead {
            current_version: s.version,
        },
    )?;
    save(kv, &scenario_version_key(s.tenant_id, s.id, s.version), s)
}

fn get_current_scenario(
    kv: &dyn KvRead,
    t: Uuid,
    sid: Uuid,
) -> StoreResult<Option<ScenarioVersion>> {
    let Some(head) = load::<ScenarioHead>(kv, &scenario_head_key(t, sid))? else {
        return Ok(None);
    };
    load(kv, &scenario_version_key(t, sid, head.current_version))
}

fn create_plan(
    kv: &mut dyn KvWrite,
    plan: &MigrationPlan,
    target: &ScenarioVersion,
) -> StoreResult<()> {
    let t = plan.tenant_id;
    let slot = slot_key(plan);
    if kv.get(&slot)?.is_some() {
        return Err(conflict("a live plan exists for this version pair"));
    }
    if kv.get(&plan_key(t, plan.id))?.is_some() {
        return Err(conflict("plan id already exists"));
    }
    save(kv, &slot, &plan.id)?;
    save(kv, &plan_key(t, plan.id), plan)?;
    save(kv, &plan_header_key(t, plan.id), &plan_header(plan))?;
    save(kv, &plan_summary_key(t, plan.id), &plan.summary)?;
    save(kv, &plan_target_key(t, plan.id), target)?;
    save(
        kv,
        &plan_index_key(plan),
        &MigrationPlanSummaryItem::of(plan),
    )
}

/// Store a changed plan and keep its listing entry and slot in step.
fn store_plan(kv: &mut dyn KvWrite, plan: &MigrationPlan) -> StoreResult<()> {
    let registry = deploying_key(plan.tenant_id, plan.id);
    if plan.status == PlanStatus::Deploying {
        kv.put(&registry, Vec::new())?;
    } else {
        kv.delete(&registry)?;
    }
    save(kv, &plan_key(plan.tenant_id, plan.id), plan)?;
    save(
        kv,
        &plan_header_key(plan.tenant_id, plan.id),
        &plan_header(plan),
    )?;
    save(
        kv,
        &plan_index_key(plan),
        &MigrationPlanSummaryItem::of(plan),
    )?;
    if !plan.status.is_live() {
        let slot = slot_key(plan);
        if load::<Uuid>(kv, &slot)? == Some(plan.id) {
            kv.delete(&slot)?;
        }
    }
    Ok(())
}

fn list_plans(kv: &dyn KvRead, q: &PlanQuery) -> StoreResult<PlanPage> {
    let query_id = plan_query_id(q);
    let prefix = plan_index_prefix(q.tenant);
    let all_end = prefix_end(&prefix);
    let end = match &q.next_token {
        Some(token) => {
            let key = decode_token(token, &query_id)?;
            if !key.starts_with(&prefix) {
                return Err(StoreError::InvalidToken);
            }
            key
        }
        None => all_end.clone(),
    };
    let mut total = 0u64;
    for (_, bytes) in kv.range(&prefix, &all_end, true, usize::MAX)? {
        let item: MigrationPlanSummaryItem = decode_value(&bytes)?;
        if plan_matches(q, &item) {
            total += 1;
        }
    }
    let mut plans = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, bytes) in kv.range(&prefix, &end, true, usize::MAX)? {
        let item: MigrationPlanSummaryItem = decode_value(&bytes)?;
        if !plan_matches(q, &item) {
            continue;
        }
        if plans.len() == q.limit {
            more = true;
            break;
        }
        plans.push(item);
        last_key = Some(key);
    }
    let next_token = match (more, last_key) {
        (true, Some(key)) => Some(encode_token(&key, &query_id)),
        _ => None,
    };
    Ok(PlanPage {
        plans,
        total,
        next_token,
    })
}

fn update_plan_policies(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    expected_revision: u64,
    policies: &BTreeMap<String, AnchorMigrationPolicy>,
) -> StoreResult<MigrationPlan> {
    let mut plan: MigrationPlan =
        load(kv, &plan_key(t, pid))?.ok_or_else(|| conflict("plan not found"))?;
    if plan.status != PlanStatus::Pending || plan.revision != expected_revision {
        return Err(conflict("plan is not pending at the expected revision"));
    }
    plan.anchor_policies = policies.clone();
    plan.revision += 1;
    store_plan(kv, &plan)?;
    Ok(plan)
}

fn transition_plan(
    kv: &mut dyn KvWrite,
    change: &PlanTransition,
    retention: Retention,
) -> StoreResult<MigrationPlan> {
    let mut plan: MigrationPlan = load(kv, &plan_key(change.tenant, change.plan_id))?
        .ok_or_else(|| conflict("plan not found"))?;
    if plan.status != change.from || plan.revision != change.expected_revision {
        return Err(conflict("plan changed concurrently"));
    }
    apply_transition(&mut plan, change);
    store_plan(kv, &plan)?;
    if change.to == PlanStatus::Deployed {
        let until = Retention::until(change.at, retention.deployed_plan_days);
        expire_deployed_plan(kv, &plan, until)?;
    }
    Ok(plan)
}

fn activate_plan(
    kv: &mut dyn KvWrite,
    a: &PlanActivation,
) -> Result<MigrationPlan, ActivationError> {
    let t = a.tenant;
    let mut plan: MigrationPlan =
        load(kv, &plan_key(t, a.plan_id))?.ok_or(ActivationError::PlanChanged)?;
    if plan.status != PlanStatus::Approved || plan.revision != a.expected_revision {
        return Err(ActivationError::PlanChanged);
    }
    let head_key = scenario_head_key(t, a.scenario_id);
    let head: Option<ScenarioHead> = load(kv, &head_key)?;
    if head.map(|h| h.current_version) != Some(a.from_version) {
        return Err(ActivationError::ScenarioMoved);
    }
    plan.status = PlanStatus::Deploying;
    plan.revision += 1;
    store_plan(kv, &plan)?;
    save(
        kv,
        &head_key,
        &ScenarioHead {
            current_version: a.target.version,
        },
    )?;
    save(
        kv,
        &scenario_version_key(t, a.scenario_id, a.target.version),
        &a.target,
    )?;
    Ok(plan)
}

fn load_stats(kv: &dyn KvRead, t: Uuid, pid: Uuid) -> StoreResult<PlanStats> {
    Ok(load(kv, &stats_key(t, pid))?.unwrap_or_default())
}

fn start_marking(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    chains: &[ChainStart],
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let mut stats = load_stats(kv, t, pid)?;
    if stats.marking_started_at.is_some() {
        return Ok(false);
    }
    for chain in chains {
        let state = ChainState {
            step_id: chain.step_id,
            shard: chain.shard,
            shards: chain.shards,
            anchor_content_hash: chain.anchor_content_hash.clone(),
            cursor: None,
            done: false,
            updated_at: at,
            resumptions: 0,
        };
        save(kv, &chain_key(t, pid, chain.step_id, chain.shard), &state)?;
    }
    stats.chains_total = chains.len() as u64;
    stats.marking_started_at = Some(at);
    stats.last_progress_at = Some(at);
    save(kv, &stats_key(t, pid), &stats)?;
    Ok(true)
}

fn list_chains(kv: &dyn KvRead, t: Uuid, pid: Uuid) -> StoreResult<Vec<ChainState>> {
    let prefix = chains_prefix(t, pid);
    kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)?
        .iter()
        .map(|(_, bytes)| decode_value(bytes))
        .collect()
}

fn claim_chain(
    kv: &mut dyn KvWrite,
    t: Uuid,
    pid: Uuid,
    (step, shard): (Uuid, u32),
    seen: DateTime<Utc>,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let key = chain_key(t, pid, step, shard);
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

fn list_deploying(kv: &dyn KvRead, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
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

fn record_marking_page(
    kv: &mut dyn KvWrite,
    page: &MarkedPage,
    retention: Retention,
) -> StoreResult<bool> {
    let ledger = ledger_key(page.tenant, page.plan_id, &page.page_id);
    if kv.get(&ledger)?.is_some() {
        return Ok(false);
    }
    let chain_key = chain_key(page.tenant, page.plan_id, page.chain_step, page.chain_shard);
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

fn record_failed_page(kv: &mut dyn KvWrite, t: Uuid, pid: Uuid, page: &str) -> StoreResult<bool> {
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

fn put_session(kv: &mut dyn KvWrite, session: &Session, shards: u32) -> StoreResult<()> {
    let key = session_key(session.tenant_id, &session.session_id);
    let old = load::<Session>(kv, &key)?;
    if let Some(old) = &old {
        kv.delete(&step_entry_key(old, shards))?;
    }
    // Session counts move in this same transaction (crate::counts).
    crate::counts::kv_move(
        kv,
        old.as_ref().map(crate::counts::CountKey::of),
        Some(crate::counts::CountKey::of(session)),
    )?;
    save(kv, &key, session)?;
    kv.put(&step_entry_key(session, shards), Vec::new())
}

/// The runtime's write: the contract's merge, applied in this one transaction.
fn write_session(
    kv: &mut dyn KvWrite,
    write: &SessionWrite,
    shards: u32,
) -> Result<WrittenSession, SessionWriteError> {
    let key = session_key(write.session.tenant_id, &write.session.session_id);
    let stored = load::<Session>(kv, &key)?;
    let next = merge_runtime_write(stored.as_ref(), write)?;
    put_session(kv, &next, shards)?;
    Ok(WrittenSession {
        session: next,
        created: stored.is_none(),
    })
}

/// Where a forward range resumes: just after the key in `token`, which must be
/// under `prefix` and issued for `query_id`; the prefix itself without a token.
fn resume_after(token: Option<&str>, query_id: &str, prefix: &str) -> StoreResult<String> {
    match token {
        Some(token) => {
            let key = decode_token(token, query_id)?;
            if !key.starts_with(prefix) {
                return Err(StoreError::InvalidToken);
            }
            Ok(format!("{key}\u{0}"))
        }
        None => Ok(prefix.to_owned()),
    }
}

fn sessions_at_step(kv: &dyn KvRead, q: &StepQuery) -> StoreResult<SessionPage> {
    let prefix = step_shard_prefix(q.tenant, q.scenario_id, q.version, q.step_id, q.shard);
    let start = resume_after(q.cursor.as_deref(), &step_query_id(q), &prefix)?;
    let mut entries = kv.range(
        &start,
        &prefix_end(&prefix),
        false,
        q.limit.saturating_add(1),
    )?;
    let more = entries.len() > q.limit;
    entries.truncate(q.limit);
    let mut sessions = Vec::with_capacity(entries.len());
    for (key, _) in &entries {
        let session_id = &key[prefix.len()..];
        if let Some(s) = load::<Session>(kv, &session_key(q.tenant, session_id))? {
            sessions.push(s);
        }
    }
    let next_cursor = match (more, entries.last()) {
        (true, Some((key, _))) => Some(encode_token(key, &step_query_id(q))),
        _ => None,
    };
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

fn mark_session(
    kv: &mut dyn KvWrite,
    t: Uuid,
    session_id: &str,
    expected: &SessionPosition,
    pending: &PendingMigration,
) -> StoreResult<bool> {
    let key = session_key(t, session_id);
    let Some(mut session) = load::<Session>(kv, &key)? else {
        return Ok(false);
    };
    let eligible = session.active_scenario_id == expected.scenario_id
        && session.active_scenario_version == expected.version
        && session.active_step_id == expected.step_id
        && session.pending_migration.is_none()
        && session.pinned_version.is_none();
    if !eligible {
        return Ok(false);
    }
    session.pending_migration = Some(pending.clone());
    session.revision += 1;
    save(kv, &key, &session)?;
    Ok(true)
}

fn apply_session_change(
    kv: &mut dyn KvWrite,
    change: &SessionChange,
    retention: Retention,
    shards: u32,
) -> StoreResult<bool> {
    let key = session_key(change.tenant, &change.session_id);
    let Some(mut session) = load::<Session>(kv, &key)? else {
        return Ok(false);
    };
    if session.revision != change.expected_revision || !session_matches(&session, &change.expect) {
        return Ok(false);
    }
    kv.delete(&step_entry_key(&session, shards))?;
    let counted_before = crate::counts::CountKey::of(&session);
    apply_session_fields(&mut session, change);
    crate::counts::kv_move(
        kv,
        Some(counted_before),
        Some(crate::counts::CountKey::of(&session)),
    )?;
    save(kv, &key, &session)?;
    kv.put(&step_entry_key(&session, shards), Vec::new())?;
    if let Some(applied) = &change.applied {
        let e = &applied.event;
        let event_key = format!(
            "{}{}/{}",
            events_prefix(change.tenant, e.plan_id),
            time_key(&e.at),
            e.event_id
        );
        save(kv, &event_key, e)?;
        expire_at(kv, &event_key, Retention::until(e.at, retention.event_days))?;
        let mut stats = load_stats(kv, change.tenant, e.plan_id)?;
        count_migration(&mut stats, applied);
        save(kv, &stats_key(change.tenant, e.plan_id), &stats)?;
    }
    Ok(true)
}

fn list_events(kv: &dyn KvRead, q: &EventQuery) -> StoreResult<EventPage> {
    let query_id = event_query_id(q);
    let prefix = events_prefix(q.tenant, q.plan_id);
    let start = resume_after(q.next_token.as_deref(), &query_id, &prefix)?;
    let mut entries = kv.range(
        &start,
        &prefix_end(&prefix),
        false,
        q.limit.saturating_add(1),
    )?;
    let more = entries.len() > q.limit;
    entries.truncate(q.limit);
    let events = entries
        .iter()
        .map(|(_, bytes)| decode_value(bytes))
        .collect::<StoreResult<Vec<_>>>()?;
    let next_token = match (more, entries.last()) {
        (true, Some((key, _))) => Some(encode_token(key, &query_id)),
        _ => None,
    };
    Ok(EventPage { events, next_token })
}

// ---------------------------------------------------------------------------
// the Store
// ---------------------------------------------------------------------------

#[async_trait]
impl<B: KvBackend> Store for KvStore<B> {
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()> {
        let s = scenario.clone();
        self.backend.write(move |kv| create_scenario(kv, &s)).await
    }

    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        self.backend
            .read(move |kv| get_current_scenario(kv, tenant, scenario_id))
            .await
    }

    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let key = scenario_version_key(tenant, scenario_id, version);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()> {
        let (p, t) = (plan.clone(), target.clone());
        self.backend.write(move |kv| create_plan(kv, &p, &t)).await
    }

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>> {
        let key = plan_key(tenant, plan_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let key = plan_target_key(tenant, plan_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        self.backend
            .read(
                move |kv| match load(kv, &plan_header_key(tenant, plan_id))? {
                    Some(header) => Ok(Some(header)),
                    // Written before headers were kept apart.
                    None => Ok(load::<MigrationPlan>(kv, &plan_key(tenant, plan_id))?
                        .map(|plan| plan_header(&plan))),
                },
            )
            .await
    }

    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationSummary>> {
        self.backend
            .read(
                move |kv| match load(kv, &plan_summary_key(tenant, plan_id))? {
                    Some(summary) => Ok(Some(summary)),
                    None => Ok(load::<MigrationPlan>(kv, &plan_key(tenant, plan_id))?
                        .map(|plan| plan.summary)),
                },
            )
            .await
    }

    async fn list_plans(&self, query: &PlanQuery) -> StoreResult<PlanPage> {
        let q = query.clone();
        self.backend.read(move |kv| list_plans(kv, &q)).await
    }

    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan> {
        let p = policies.clone();
        self.backend
            .write(move |kv| update_plan_policies(kv, tenant, plan_id, expected_revision, &p))
            .await
    }

    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan> {
        let (c, retention) = (change.clone(), self.retention);
        self.backend
            .write(move |kv| transition_plan(kv, &c, retention))
            .await
    }

    async fn activate_plan(
        &self,
        activation: &PlanActivation,
    ) -> Result<MigrationPlan, ActivationError> {
        let a = activation.clone();
        self.backend.write(move |kv| activate_plan(kv, &a)).await
    }

    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.backend
            .read(move |kv| load_stats(kv, tenant, plan_id))
            .await
    }

    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let chains = chains.to_vec();
        self.backend
            .write(move |kv| start_marking(kv, tenant, plan_id, &chains, at))
            .await
    }

    fn step_index_shards(&self) -> u32 {
        self.step_shards
    }

    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>> {
        self.backend
            .read(move |kv| list_chains(kv, tenant, plan_id))
            .await
    }

    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        step_id: Uuid,
        shard: u32,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.backend
            .write(move |kv| {
                claim_chain(kv, tenant, plan_id, (step_id, shard), seen_updated_at, at)
            })
            .await
    }

    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        self.backend.read(move |kv| list_deploying(kv, limit)).await
    }

    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        let (p, retention) = (page.clone(), self.retention);
        self.backend
            .write(move |kv| record_marking_page(kv, &p, retention))
            .await
    }

    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        let page = page_id.to_owned();
        self.backend
            .write(move |kv| record_failed_page(kv, tenant, plan_id, &page))
            .await
    }

    async fn put_session(&self, session: &Session) -> StoreResult<()> {
        let (s, shards) = (session.clone(), self.step_shards);
        self.backend
            .write(move |kv| put_session(kv, &s, shards))
            .await
    }

    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError> {
        let (w, shards) = (write.clone(), self.step_shards);
        self.backend
            .write(move |kv| write_session(kv, &w, shards))
            .await
    }

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>> {
        let key = session_key(tenant, session_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        let q = query.clone();
        self.backend.read(move |kv| sessions_at_step(kv, &q)).await
    }

    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64> {
        let prefix = step_prefix(tenant, scenario_id, version, step_id);
        self.backend
            .read(move |kv| {
                let entries = kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)?;
                Ok(entries.len() as u64)
            })
            .await
    }

    /// One read of the version's part of the step index, whatever the number of steps.
    async fn count_sessions_at_steps(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        steps: &[Uuid],
        _concurrency: usize,
    ) -> StoreResult<BTreeMap<Uuid, u64>> {
        let wanted: std::collections::BTreeSet<Uuid> = steps.iter().copied().collect();
        let prefix = format!("{tenant}/STEP/{scenario_id}/{}/", version_key(version));
        self.backend
            .read(move |kv| {
                let mut counts = BTreeMap::new();
                for (key, _) in kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)? {
                    let step = key[prefix.len()..]
                        .split('/')
                        .next()
                        .and_then(|s| Uuid::parse_str(s).ok());
                    if let Some(step) = step.filter(|s| wanted.contains(s)) {
                        *counts.entry(step).or_insert(0u64) += 1;
                    }
                }
                Ok(counts)
            })
            .await
    }

    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
    ) -> StoreResult<bool> {
        let (id, e, p) = (session_id.to_owned(), expected.clone(), pending.clone());
        self.backend
            .write(move |kv| mark_session(kv, tenant, &id, &e, &p))
            .await
    }

    /// One transaction for the whole page: `concurrency` has nothing to bound.
    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        _concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let marks = marks.to_vec();
        self.backend
            .write(move |kv| {
                marks
                    .iter()
                    .map(|m| mark_session(kv, tenant, &m.session_id, &m.expected, &m.pending))
                    .collect()
            })
            .await
    }

    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        let (c, retention, shards) = (change.clone(), self.retention, self.step_shards);
        self.backend
            .write(move |kv| apply_session_change(kv, &c, retention, shards))
            .await
    }

    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<crate::StepCounts> {
        self.backend
            .read(move |kv| crate::counts::kv_counts(kv, tenant, scenario_id, version))
            .await
    }

    async fn put_recount(&self, recount: &crate::Recount) -> StoreResult<()> {
        let r = recount.clone();
        self.backend
            .write(move |kv| crate::counts::kv_put_recount(kv, &r))
            .await
    }

    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<crate::Recount>> {
        self.backend
            .read(move |kv| crate::counts::kv_get_recount(kv, tenant, scenario_id, version))
            .await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let q = query.clone();
        self.backend.read(move |kv| list_events(kv, &q)).await
    }

    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.backend
            .write(move |kv| sweep_expired(kv, now, limit))
            .await
    }
}

// ---------------------------------------------------------------------------
// step-index rebuild
// ---------------------------------------------------------------------------

/// Keys read per range while rebuilding (bounded memory, one transaction).
const REBUILD_CHUNK: usize = 1_000;

/// The second segment of a key (`{t}/{KIND}/…`).
fn key_kind(key: &str) -> Option<&str> {
    key.split('/').nth(1)
}

/// Every key of the database in order, `REBUILD_CHUNK` at a time, passed to `f`.
fn each_entry(
    kv: &mut dyn KvWrite,
    mut f: impl FnMut(&mut dyn KvWrite, &str, &[u8]) -> StoreResult<()>,
) -> StoreResult<()> {
    let end = char::MAX.to_string();
    let mut start = String::new();
    loop {
        let entries = kv.range(&start, &end, false, REBUILD_CHUNK)?;
        let Some((last, _)) = entries.last() else {
            return Ok(());
        };
        start = format!("{last}\u{0}");
        for (key, value) in &entries {
            f(kv, key, value)?;
        }
    }
}

impl<B: KvBackend> KvStore<B> {
    /// Rewrite the step index under this store's shard count, in one
    /// transaction: every index entry is dropped and written again from the
    /// sessions. For a database written before the index was sharded, or under
    /// another `STEP_INDEX_SHARDS` (`migrations backfill-step-keys`). Returns
    /// the sessions indexed.
    pub async fn rebuild_step_index(&self) -> StoreResult<u64> {
        let shards = self.step_shards;
        self.backend
            .write(move |kv| {
                each_entry(kv, |kv, key, _| {
                    if key_kind(key) == Some("STEP") {
                        kv.delete(key)?;
                    }
                    Ok(())
                })?;
                let mut indexed = 0u64;
                each_entry(kv, |kv, key, value| {
                    if key_kind(key) == Some("SESS") {
                        let session: Session = decode_value(value)?;
                        kv.put(&step_entry_key(&session, shards), Vec::new())?;
                        indexed += 1;
                    }
                    Ok(())
                })?;
                Ok::<_, StoreError>(indexed)
            })
            .await
    }
}
