//! One contract suite, run against every backend: in-memory, embedded (redb)
//! and DynamoDB Local.
//!
//! DynamoDB tests need `AWS_ENDPOINT_URL_DYNAMODB` (plus `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`). Without it they are skipped, unless
//! `FOCAL_REQUIRE_LOCAL_AWS=1`, in which case they fail. Each DynamoDB test creates
//! its own uniquely named tables, so tests run in parallel, and deletes them when
//! it is done, so the emulator does not fill up with the suite's tables.
//!
//! This file holds the harness and the backend matrix; the cases live in one
//! module per aggregate, built from [`fixtures`].

mod events;
mod fixtures;
mod lifecycle;
mod marking;
mod outbox;
mod plans;
mod reconcile;
mod retention;
mod rollout;
mod scenarios;
mod sessions;
mod tenancy;

use std::path::PathBuf;
use std::sync::Arc;

use store::Store;
use store::testing::FreshTables;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// harnesses
// ---------------------------------------------------------------------------

struct Harness {
    store: Arc<dyn Store>,
    _file: Option<TempFile>,
    /// DynamoDB's tables, deleted once the case is done.
    tables: Option<FreshTables>,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn memory() -> Option<Harness> {
    Some(Harness {
        store: Arc::new(store::MemoryStore::new()),
        _file: None,
        tables: None,
    })
}

async fn embedded() -> Option<Harness> {
    let path = std::env::temp_dir().join(format!("focal-store-{}.redb", Uuid::new_v4()));
    let store = store::EmbeddedStore::open(&path).expect("open embedded store");
    Some(Harness {
        store: Arc::new(store),
        _file: Some(TempFile(path)),
        tables: None,
    })
}

async fn dynamodb() -> Option<Harness> {
    let fresh = store::testing::fresh_dynamo_tables("fm").await?;
    // Idempotent: a second call must not fail.
    store::create_tables(&fresh.client, &fresh.tables)
        .await
        .expect("create DynamoDB tables twice");
    Some(Harness {
        store: Arc::new(fresh.store()),
        _file: None,
        tables: Some(fresh),
    })
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Embedded,
    Dynamo,
}

/// Run `case` on a fresh store of `backend`; skip when DynamoDB Local is absent.
/// DynamoDB's tables are deleted afterwards, whether the case passed or failed.
async fn on_fresh_store<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let harness = match backend {
        Backend::Memory => memory().await,
        Backend::Embedded => embedded().await,
        Backend::Dynamo => dynamodb().await,
    };
    if let Some(h) = harness {
        match &h.tables {
            Some(tables) => tables.drop_after(case(h.store.clone())).await,
            None => case(h.store.clone()).await,
        }
    }
}

/// Every case, where the backend matrix looks for it.
mod cases {
    pub(super) use super::events::*;
    pub(super) use super::lifecycle::*;
    pub(super) use super::marking::*;
    pub(super) use super::outbox::*;
    pub(super) use super::plans::*;
    pub(super) use super::reconcile::*;
    pub(super) use super::retention::*;
    pub(super) use super::rollout::*;
    pub(super) use super::scenarios::*;
    pub(super) use super::sessions::*;
    pub(super) use super::tenancy::*;
}

store::backend_matrix! {
    run: on_fresh_store,
    backends: [
        memory => Backend::Memory,
        embedded => Backend::Embedded,
        dynamodb => Backend::Dynamo,
    ],
    tests_in: cases,
    tests: [
        retention_deletes_a_deployed_plan_after_its_period,
        runtime_write_contract,
        runtime_writes_never_lose_a_flag,
        scenario_create_conflict,
        tenant_isolation,
        plan_create_and_live_slot,
        list_plans_newest_first_with_filters_and_paging,
        policies_update_needs_pending_and_revision,
        concurrent_transitions_exactly_one_wins,
        a_paused_plan_applies_nothing,
        a_guard_is_stored_and_a_halt_says_why,
        a_partial_rollout_keeps_the_version_until_it_ramps_to_100,
        each_marking_pass_has_its_own_chains,
        outcome_reports_count_once_against_the_migrating_plan,
        withdrawn_flags_clear_once,
        a_page_never_flags_again_what_a_withdrawal_cleared,
        a_finished_withdrawal_gives_the_version_back,
        the_history_keeps_each_change_and_who_asked,
        the_outbox_holds_each_change_until_its_events_are_settled,
        activation_and_its_failures_and_the_outbox,
        activation_is_atomic,
        marking_is_conditional,
        mark_sessions_page,
        a_mark_recognises_its_own_flag,
        the_first_claim_of_a_page_holds,
        sessions_at_step_paging_and_count,
        whole_sessions_and_reads_by_id,
        record_marking_page_is_idempotent,
        apply_session_change_once_under_concurrency,
        apply_session_change_unflagged_and_pinned,
        applied_per_minute_counts_flagged_migrations_by_minute,
        events_paging,
        large_plan_round_trip,
    ],
}
