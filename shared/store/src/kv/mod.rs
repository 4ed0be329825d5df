//! The store's semantics, written once over an ordered key-value transaction.
//!
//! [`KvStore`] implements [`Store`](crate::Store) for any [`KvBackend`]: the in-memory map
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
//! | `EXPIRE/{at}/{key}` | `key` is deleted by [`Store::sweep_expired`](crate::Store::sweep_expired) once `at` has passed (retention) |
//! | `DEPLOYING/{t}/{plan}` | registry of deploying plans for the sweep (the one key not under a tenant: an operational index of ids only) |
//! | `OUTBOX/{t}/{plan}` | the plan's latest revision and the revision its lifecycle events were sent up to (written with every plan change; ids only, like `DEPLOYING/`) |
//! | `{t}/EVT/{plan}/{at}/{event}` | `AuditEvent` |
//! | `{t}/APM/{plan}/{minute}` | `AppliedInMinute`: the plan's flagged migrations applied in that minute (kept a day) |
//! | `{t}/SESS/{session}` | `Session` |
//! | `{t}/COUNT/{scenario}/{v}/{step}` | sessions at that step (decimal text), moved in the transaction of every session write (`counts`) |
//! | `{t}/ACT/{plan}/{day}` | the plan's flagged sessions last active on that UTC day (decimal text), moved in the transaction of every session write (`counts`) |
//! | `COUNTS/FLAGS_READY` | every flagged session is counted by day (set on open; older files are counted once first) |
//! | `COUNTS/READY` | every stored session is counted (set on open; older files are counted once first) |
//! | `{t}/RECOUNT/{scenario}/{v}` | the latest exact recount ([`crate::Recount`]) |
//! | `{t}/STEP/{scenario}/{v}/{step}/{shard}/{session}` | index entry (empty value); `{shard}` = [`crate::step_shard`] of the session id (decimal) |

pub(crate) mod counts;
mod keys;
mod marking;
mod outbox;
mod plans;
mod rebuild;
mod retention;
mod sessions;
mod store;
mod values;

use std::future::Future;
use std::sync::Arc;

use crate::{Retention, StoreError, StoreResult};

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

/// The [`Store`](crate::Store) over a key-value backend.
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
