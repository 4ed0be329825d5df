//! DynamoDB store.
//!
//! The key design (every item and access pattern) is in docs/design.md, "The
//! storage key design".
//!
//! # Modules
//!
//! [`tables`]: the one definition of both tables and their indexes, and
//! creating them; `keys`: the key layout and page tokens; `items`: items ↔
//! domain types; `body`: compressed bodies; `expr`: update/condition
//! expressions; `ops`: error mapping, retries ([`retry_backoff`]), paging reads,
//! transactions; the [`crate::Store`] operations by aggregate in `scenarios`,
//! `plans` (with the lifecycle), `outbox` (the lifecycle events still to send), `marking`, `sessions`, `events` (with the
//! counts), delegated to from `store`; [`counts`] and `stream`: the session
//! counters fed by the sessions stream; `backfill`: the step-key migration.

mod attr;
mod backfill;
mod body;
pub mod counts;
mod events;
mod expr;
mod items;
mod keys;
mod marking;
mod ops;
mod outbox;
mod outcomes;
mod plans;
mod scenarios;
mod sessions;
mod store;
#[cfg(feature = "stream-poll")]
pub mod stream;
pub mod tables;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

use crate::{Retention, StoreResult};

pub use backfill::{BackfillPage, backfill_step_keys};
pub use keys::{session_step_key, step_key};
#[cfg(feature = "test-support")]
pub(crate) use ops::sdk_error;
pub use ops::{CONFLICT_RETRIES, retry_backoff};
#[cfg(feature = "local")]
pub use tables::create_tables;
pub use tables::{
    IndexDefinition, IndexProjection, KeyAttribute, MAIN_TABLE, SESSIONS_TABLE, STEPS_INDEX,
    TABLES, TableDefinition, TableRole,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Plans, scenarios, ledger, events, body parts.
    pub main: String,
    /// Sessions (shared with the conversation runtime).
    pub sessions: String,
}

/// The DynamoDB [`Store`](crate::Store). Cheap to clone; build it once per process.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    retention: Retention,
    step_shards: u32,
    /// Run before each session-counts read (see [`DynamoStore::with_counts_catch_up`]).
    counts_catch_up: Option<Arc<dyn CatchUp>>,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            retention: Retention::default(),
            step_shards: crate::DEFAULT_STEP_INDEX_SHARDS,
            counts_catch_up: None,
        }
    }

    /// Bring the session counters up to date with the sessions table's stream
    /// before each [`Store::session_counts`](crate::Store::session_counts) read: `migrations serve` and the
    /// tests (read-your-writes locally). The Lambdas leave it off and read what
    /// the `count-sessions` function has applied.
    pub fn with_counts_catch_up(mut self, catch_up: Arc<dyn CatchUp>) -> Self {
        self.counts_catch_up = Some(catch_up);
        self
    }

    /// Shards of the step index (`STEP_INDEX_SHARDS`; 0 counts as 1): the
    /// `{shard}` of every `step_key` this store writes, and of the chains a
    /// deployment registers. Runtimes writing into the table must use the same.
    pub fn with_step_index_shards(mut self, shards: u32) -> Self {
        self.step_shards = shards.max(1);
        self
    }

    /// How long deployed plans, ledger items and audit events are kept (their
    /// `ttl` attribute; the main table's TTL deletes them).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }
}

/// Something that applies the stream's pending records to the counters
/// ([`crate::dynamo::stream`]'s poller), run before a counts read. Declared
/// here, next to the store that holds one, rather than in [`counts`] (which
/// re-exports it): `counts` is built on the store's request helpers (`ops`),
/// so defining the store must not need `counts`.
#[async_trait::async_trait]
pub trait CatchUp: Send + Sync {
    async fn catch_up(&self) -> StoreResult<()>;
}
