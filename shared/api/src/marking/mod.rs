//! Deploy step 2–3: marking eligible sessions with `pending_migration`.
//!
//! Work is split into *chains*, one per V1 step whose sessions must be marked
//! (each anchor's V1 step and each deleted step) and shard of the step index
//! (`STEP_INDEX_SHARDS`, fixed for a deployment when its marking starts): the
//! shards of one step are walked in parallel. A chain is walked page by page
//! through the (tenant, scenario, version, step, shard) index with a cursor, so
//! no process ever holds a whole session set. Each page is recorded in the ledger
//! together with the plan counters, conditioned on the ledger entry not existing:
//! redelivery and retries re-mark nothing (the mark itself is conditional) and
//! count nothing twice.
//!
//! - [`protocol`]: chains, queue messages and page ids;
//! - [`contexts`]: the per-process cache of deploying plans and read-ahead pages;
//! - [`page`]: marking one page;
//! - [`ledger`]: recording pages and finishing the deployment;
//! - [`driver`]: one queue message end to end;
//! - [`error`]: how marking fails, permanent or retryable.

mod contexts;
mod driver;
mod error;
mod ledger;
mod page;
mod protocol;

pub(crate) use contexts::PlanContexts;
pub(crate) use driver::process_message;
pub use error::{MarkingError, MarkingResult};
pub(crate) use ledger::{finish_if_complete, record_page};
pub(crate) use page::{MarkingContext, mark_page, settle_marking_page};
pub use protocol::{Chain, MarkMessage};
pub(crate) use protocol::{PageTurn, chains_of, page_turn};

/// Kept here too: `api::marking::MarkingQueue` is where callers found it.
pub mod outcome;
pub mod queue;

pub use queue::MarkingQueue;
