//! A fault seam for tests: [`FaultyStore`] forwards every [`Store`] method to an
//! inner store and, on the marking path, asks a [`StoreFaults`] hook first
//! whether the call should fail.
//!
//! The forwarding list lives here, once, next to the trait's only test wrapper:
//! a method added to [`Store`] fails to compile here until it is forwarded.
//! Methods with a default body are forwarded too, so that the inner store's own
//! implementation runs, not the trait's default over the wrapper.
//! A call that a test needs to fail and that [`StoreOp`] does not name yet gets a
//! variant there and a [`FaultyStore::hooked`] call in its forwarding method.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationSummary, PendingMigration, ScenarioVersion,
    Session,
};
use uuid::Uuid;

use crate::{
    ActivationError, ChainKey, ChainStart, ChainState, EventPage, EventQuery, MarkedPage,
    PageClaim, PlanActivation, PlanPage, PlanQuery, PlanStats, PlanTransition, Recount,
    ScenarioHead, SessionChange, SessionMark, SessionPage, SessionPosition, SessionWrite,
    SessionWriteError, StepCounts, StepQuery, Store, StoreError, StoreResult, WrittenSession,
};

/// A call on the marking path, with its arguments, as a [`StoreFaults`] hook sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum StoreOp<'a> {
    StartMarking {
        tenant: Uuid,
        plan_id: Uuid,
        chains: &'a [ChainStart],
        at: DateTime<Utc>,
    },
    ClaimChain {
        tenant: Uuid,
        plan_id: Uuid,
        chain: ChainKey,
    },
    RecordMarkingPage(&'a MarkedPage),
    RecordFailedPage {
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &'a str,
    },
    ClaimPage(&'a PageClaim),
    MarkSession {
        tenant: Uuid,
        session_id: &'a str,
        mark_id: &'a str,
    },
    MarkSessions {
        tenant: Uuid,
        marks: &'a [SessionMark],
        concurrency: usize,
    },
}

/// What a test injects into a [`FaultyStore`]. Both hooks default to nothing:
/// an implementation overrides what it needs and matches the ops it cares about.
#[async_trait]
pub trait StoreFaults: Send + Sync + 'static {
    /// Called before `op` reaches the inner store. `Some(error)` fails the call
    /// with it and the inner store is not called — unless the hook calls `inner`
    /// itself (a write that fails part-way: the hook writes part of the page
    /// through `inner`, then returns the error). It may also wait (hold workers
    /// back, line calls up).
    async fn before(&self, op: StoreOp<'_>, inner: &dyn Store) -> Option<StoreError> {
        let _ = (op, inner);
        None
    }

    /// Called when `op` is over, whether it succeeded, failed or was failed by
    /// [`StoreFaults::before`] (not when the caller dropped it half-way).
    fn after(&self, op: StoreOp<'_>) {
        let _ = op;
    }
}

/// The store under test, wrapped: every method forwards to `inner`; the calls
/// that [`StoreOp`] names go through `faults` first.
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    pub faults: Arc<dyn StoreFaults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, faults: Arc<dyn StoreFaults>) -> Self {
        FaultyStore { inner, faults }
    }

    /// Run `call` (the forwarded call) unless the hook fails `op` first; tell
    /// the hook when it is over.
    async fn hooked<T>(
        &self,
        op: StoreOp<'_>,
        call: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<T> {
        let result = match self.faults.before(op, &*self.inner).await {
            Some(error) => Err(error),
            None => call.await,
        };
        self.faults.after(op);
        result
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()> {
        self.inner.create_scenario(scenario).await
    }

    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        self.inner.get_current_scenario(tenant, scenario_id).await
    }

    async fn get_scenario_head(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioHead>> {
        self.inner.get_scenario_head(tenant, scenario_id).await
    }

    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>> {
        self.inner
            .get_scenario_version(tenant, scenario_id, version)
            .await
    }

    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()> {
        self.inner.create_plan(plan, target).await
    }

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>> {
        self.inner.get_plan(tenant, plan_id).await
    }

    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        self.inner.get_plan_header(tenant, plan_id).await
    }

    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationSummary>> {
        self.inner.get_plan_summary(tenant, plan_id).await
    }

    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        self.inner.get_plan_target(tenant, plan_id).await
    }

    async fn list_plans(&self, query: &PlanQuery) -> StoreResult<PlanPage> {
        self.inner.list_plans(query).await
    }

    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan> {
        self.inner
            .update_plan_policies(tenant, plan_id, expected_revision, policies)
            .await
    }

    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan> {
        self.inner.transition_plan(change).await
    }

    async fn activate_plan(
        &self,
        activation: &PlanActivation,
    ) -> Result<MigrationPlan, ActivationError> {
        self.inner.activate_plan(activation).await
    }

    async fn list_outbox(&self, limit: usize) -> StoreResult<Vec<crate::OutboxEntry>> {
        self.inner.list_outbox(limit).await
    }

    async fn get_outbox(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<crate::OutboxEntry>> {
        self.inner.get_outbox(tenant, plan_id).await
    }

    async fn settle_outbox(
        &self,
        entry: &crate::OutboxEntry,
        published: u64,
        finished: bool,
    ) -> StoreResult<()> {
        self.inner.settle_outbox(entry, published, finished).await
    }

    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.inner.get_plan_stats(tenant, plan_id).await
    }

    async fn pending_by_activity_day(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Vec<planning::PendingOnDay>> {
        self.inner.pending_by_activity_day(tenant, plan_id).await
    }

    async fn get_plan_counters(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.inner.get_plan_counters(tenant, plan_id).await
    }

    async fn applied_per_minute(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<planning::AppliedInMinute>> {
        self.inner.applied_per_minute(tenant, plan_id, since).await
    }

    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        pass: u32,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let op = StoreOp::StartMarking {
            tenant,
            plan_id,
            chains,
            at,
        };
        let call = self.inner.start_marking(tenant, plan_id, pass, chains, at);
        self.hooked(op, call).await
    }

    fn step_index_shards(&self) -> u32 {
        self.inner.step_index_shards()
    }

    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>> {
        self.inner.list_chains(tenant, plan_id).await
    }

    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chain: ChainKey,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let op = StoreOp::ClaimChain {
            tenant,
            plan_id,
            chain,
        };
        let call = self
            .inner
            .claim_chain(tenant, plan_id, chain, seen_updated_at, at);
        self.hooked(op, call).await
    }

    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        self.inner.list_deploying(limit).await
    }

    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        let call = self.inner.record_marking_page(page);
        self.hooked(StoreOp::RecordMarkingPage(page), call).await
    }

    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        let op = StoreOp::RecordFailedPage {
            tenant,
            plan_id,
            page_id,
        };
        let call = self.inner.record_failed_page(tenant, plan_id, page_id);
        self.hooked(op, call).await
    }

    async fn put_session(&self, session: &Session) -> StoreResult<()> {
        self.inner.put_session(session).await
    }

    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError> {
        self.inner.write_session(write).await
    }

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>> {
        self.inner.get_session(tenant, session_id).await
    }

    async fn get_sessions(&self, tenant: Uuid, ids: &[String]) -> StoreResult<Vec<Session>> {
        self.inner.get_sessions(tenant, ids).await
    }

    async fn sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        self.inner.sessions_at_step(query).await
    }

    async fn whole_sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        self.inner.whole_sessions_at_step(query).await
    }

    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64> {
        self.inner
            .count_sessions_at_step(tenant, scenario_id, version, step_id)
            .await
    }

    async fn count_sessions_at_steps(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        steps: &[Uuid],
        concurrency: usize,
    ) -> StoreResult<BTreeMap<Uuid, u64>> {
        self.inner
            .count_sessions_at_steps(tenant, scenario_id, version, steps, concurrency)
            .await
    }

    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<StepCounts> {
        self.inner
            .session_counts(tenant, scenario_id, version)
            .await
    }

    async fn put_recount(&self, recount: &Recount) -> StoreResult<()> {
        self.inner.put_recount(recount).await
    }

    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<Recount>> {
        self.inner.get_recount(tenant, scenario_id, version).await
    }

    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
        mark_id: &str,
    ) -> StoreResult<bool> {
        let op = StoreOp::MarkSession {
            tenant,
            session_id,
            mark_id,
        };
        let call = self
            .inner
            .mark_session(tenant, session_id, expected, pending, mark_id);
        self.hooked(op, call).await
    }

    async fn claim_page(&self, claim: &PageClaim) -> StoreResult<PageClaim> {
        let call = self.inner.claim_page(claim);
        self.hooked(StoreOp::ClaimPage(claim), call).await
    }

    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let op = StoreOp::MarkSessions {
            tenant,
            marks,
            concurrency,
        };
        let call = self.inner.mark_sessions(tenant, marks, concurrency);
        self.hooked(op, call).await
    }

    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        self.inner.apply_session_change(change).await
    }

    async fn unmark_sessions(
        &self,
        tenant: Uuid,
        unmarks: &[crate::SessionUnmark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        self.inner
            .unmark_sessions(tenant, unmarks, concurrency)
            .await
    }

    async fn report_outcome(
        &self,
        report: &crate::OutcomeReport,
    ) -> StoreResult<crate::OutcomeRecorded> {
        self.inner.report_outcome(report).await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        self.inner.list_events(query).await
    }

    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.inner.sweep_expired(now, limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::MemoryStore;

    /// Fails every `record_failed_page` and counts the calls it saw end.
    #[derive(Default)]
    struct FailRecordFailed {
        over: AtomicU32,
    }

    #[async_trait]
    impl StoreFaults for FailRecordFailed {
        async fn before(&self, op: StoreOp<'_>, _inner: &dyn Store) -> Option<StoreError> {
            matches!(op, StoreOp::RecordFailedPage { .. })
                .then(|| StoreError::Unexpected("injected".into()))
        }

        fn after(&self, _op: StoreOp<'_>) {
            self.over.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The names of the methods a trait or an impl block in `source` declares,
    /// from the block that starts at `opening`.
    fn methods(source: &str, opening: &str) -> Vec<String> {
        let start = source.find(opening).expect("the block");
        let block = &source[start..];
        let block = &block[..block.find("\n}\n").expect("the block's end")];
        let names = block.lines().filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("async fn ")
                .or(line.strip_prefix("fn "))?;
            Some(rest.split(['(', '<']).next()?.to_owned())
        });
        names.collect()
    }

    /// Every method of the trait is forwarded, those with a default body too
    /// (else the trait's default would run over the wrapper, not the inner
    /// store's own implementation).
    #[test]
    fn every_store_method_is_forwarded() {
        let declared = methods(include_str!("../lib.rs"), "pub trait Store:");
        let forwarded = methods(include_str!("faults.rs"), "impl Store for FaultyStore");
        assert!(declared.len() > 20, "{declared:?}");
        let missing: Vec<_> = declared.iter().filter(|m| !forwarded.contains(m)).collect();
        assert!(
            missing.is_empty(),
            "FaultyStore (store/src/testing/faults.rs) does not forward {missing:?}"
        );
    }

    #[tokio::test]
    async fn forwards_what_the_hook_lets_through_and_fails_what_it_fails() {
        let faults = Arc::new(FailRecordFailed::default());
        let store = FaultyStore::new(Arc::new(MemoryStore::new()), faults.clone());
        let (tenant, plan) = (Uuid::new_v4(), Uuid::new_v4());
        // Not on the marking path: forwarded, no hook.
        assert!(store.get_plan(tenant, plan).await.unwrap().is_none());
        assert_eq!(
            store.step_index_shards(),
            MemoryStore::new().step_index_shards()
        );
        assert_eq!(faults.over.load(Ordering::SeqCst), 0);
        // Hooked and let through: forwarded to the inner store.
        let started = store.start_marking(tenant, plan, 0, &[], Utc::now()).await;
        assert!(started.unwrap(), "the first start marks");
        let again = store.inner.start_marking(tenant, plan, 0, &[], Utc::now());
        assert!(!again.await.unwrap(), "the inner store saw the first");
        // Hooked and failed: the inner store never sees it.
        let failed = store.record_failed_page(tenant, plan, "p1").await;
        assert!(matches!(failed, Err(StoreError::Unexpected(_))));
        assert!(
            store
                .inner
                .record_failed_page(tenant, plan, "p1")
                .await
                .unwrap()
        );
        assert_eq!(faults.over.load(Ordering::SeqCst), 2);
    }
}
