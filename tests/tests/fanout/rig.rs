//! The rigs the fan-out tests run on: a store decorator that injects faults on
//! the marking path, queues the test drives or duplicates, and the fixtures.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::*;
use api::marking::{MarkMessage, MarkingQueue};
use api::queue::QueueResult;
use api::{AppState, Config};
use async_trait::async_trait;
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, ScenarioVersion, Session};
use store::{
    ActivationError, ChainStart, ChainState, EventPage, EventQuery, MarkedPage, PlanActivation,
    PlanPage, PlanQuery, PlanStats, PlanTransition, SessionChange, SessionMark, SessionPage,
    SessionPosition, SessionWrite, SessionWriteError, StepQuery, Store, StoreError, StoreResult,
    WrittenSession,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

// ----- the rigs ----------------------------------------------------------------

/// Where a test runs: the local runner's pair, or the AWS pair on local emulators.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rig {
    /// Embedded store, in-process queue.
    Embedded,
    /// DynamoDB Local, SQS on moto, `api::aws::poll_queue` as the worker.
    DynamoSqs,
}

pub(crate) fn fan_out_config() -> Config {
    Config {
        inline_mark_threshold: 100,
        mark_page_size: 100,
        mark_concurrency: 8,
        mark_max_receives: 3,
        ..Config::default()
    }
}

/// Injected faults; all off by default.
pub(crate) struct Faults {
    /// `record_marking_page` fails this many more times — after its page was marked.
    pub(crate) record_failures: AtomicU32,
    /// `mark_sessions` writes the first half of its page, then fails as
    /// throttled, this many more times.
    pub(crate) throttles: AtomicU32,
    /// While set, `mark_sessions` fails for any page that contains this session.
    pub(crate) poison: std::sync::Mutex<Option<String>>,
    /// Every `mark_sessions` call takes a permit first (holds the workers back).
    pub(crate) gate: Semaphore,
    /// When set, `mark_sessions` calls go through in pairs: two deliveries of a
    /// page both read it before either one writes.
    pub(crate) rendezvous: Option<tokio::sync::Barrier>,
    /// Counts down on every `mark_sessions` call; the call that takes it from 1
    /// to 0 writes half its page and fails (the k-th write of a deploy fails).
    pub(crate) fail_nth_mark: AtomicU32,
    /// Every `mark_sessions` call takes this long more (walks overlap visibly).
    pub(crate) mark_delay: Duration,
    /// `mark_sessions` calls in progress, and the most there ever were at once.
    pub(crate) marking_now: AtomicU32,
    pub(crate) marking_peak: AtomicU32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            record_failures: AtomicU32::new(0),
            throttles: AtomicU32::new(0),
            poison: std::sync::Mutex::new(None),
            gate: Semaphore::new(Semaphore::MAX_PERMITS / 2),
            rendezvous: None,
            fail_nth_mark: AtomicU32::new(0),
            mark_delay: Duration::ZERO,
            marking_now: AtomicU32::new(0),
            marking_peak: AtomicU32::new(0),
        }
    }
}

impl Faults {
    pub(crate) fn gated(permits: usize) -> Self {
        Faults {
            gate: Semaphore::new(permits),
            ..Faults::default()
        }
    }

    pub(crate) fn open_gate(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 4);
    }

    pub(crate) fn set_poison(&self, session: Option<&str>) {
        *self.poison.lock().expect("poison lock") = session.map(str::to_owned);
    }
}

/// Take one unit of a fault budget; true when the fault fires.
pub(crate) fn fire(budget: &AtomicU32) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The store under test, with faults on the marking path. Everything else delegates.
pub(crate) struct FaultyStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) faults: Arc<Faults>,
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
    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.inner.get_plan_stats(tenant, plan_id).await
    }
    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.inner.start_marking(tenant, plan_id, chains, at).await
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
        step_id: Uuid,
        shard: u32,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.inner
            .claim_chain(tenant, plan_id, step_id, shard, seen_updated_at, at)
            .await
    }
    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        self.inner.list_deploying(limit).await
    }
    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        if fire(&self.faults.record_failures) {
            // The worker dies after marking its page, before the ledger knows.
            return Err(StoreError::Unexpected(
                "injected: crash before recording".into(),
            ));
        }
        self.inner.record_marking_page(page).await
    }
    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        self.inner
            .record_failed_page(tenant, plan_id, page_id)
            .await
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
    async fn sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        self.inner.sessions_at_step(query).await
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
    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<store::StepCounts> {
        self.inner
            .session_counts(tenant, scenario_id, version)
            .await
    }
    async fn put_recount(&self, recount: &store::Recount) -> StoreResult<()> {
        self.inner.put_recount(recount).await
    }
    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<store::Recount>> {
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
        self.inner
            .mark_session(tenant, session_id, expected, pending, mark_id)
            .await
    }
    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let now = self.faults.marking_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.faults.marking_peak.fetch_max(now, Ordering::SeqCst);
        let marked = self.faulty_mark_sessions(tenant, marks, concurrency).await;
        self.faults.marking_now.fetch_sub(1, Ordering::SeqCst);
        marked
    }
    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        self.inner.apply_session_change(change).await
    }
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        self.inner.list_events(query).await
    }
    async fn claim_page(&self, claim: &store::PageClaim) -> StoreResult<store::PageClaim> {
        self.inner.claim_page(claim).await
    }
    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.inner.sweep_expired(now, limit).await
    }
}

impl FaultyStore {
    pub(crate) async fn faulty_mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        tokio::time::sleep(self.faults.mark_delay).await;
        self.faults
            .gate
            .acquire()
            .await
            .map_err(|_| StoreError::Unexpected("gate closed".into()))?
            .forget();
        if let Some(rendezvous) = &self.faults.rendezvous {
            rendezvous.wait().await;
        }
        let poison = self.faults.poison.lock().expect("poison lock").clone();
        if let Some(poison) = poison
            && marks.iter().any(|m| m.session_id == poison)
        {
            return Err(StoreError::Unexpected("injected: poison page".into()));
        }
        let nth = self
            .faults
            .fail_nth_mark
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if nth == Ok(1) {
            let half = marks.len() / 2;
            self.inner
                .mark_sessions(tenant, &marks[..half], concurrency)
                .await?;
            return Err(StoreError::Unexpected(
                "injected: the store failed mid-page".into(),
            ));
        }
        if fire(&self.faults.throttles) {
            // Part of the page is written, then the backend pushes back.
            let half = marks.len() / 2;
            self.inner
                .mark_sessions(tenant, &marks[..half], concurrency)
                .await?;
            return Err(StoreError::Throttled("injected: slow down".into()));
        }
        self.inner.mark_sessions(tenant, marks, concurrency).await
    }
}

/// A queue the test drives by hand: it only collects what is enqueued.
#[derive(Default)]
pub(crate) struct ManualQueue {
    pub(crate) messages: tokio::sync::Mutex<Vec<MarkMessage>>,
}

impl ManualQueue {
    pub(crate) async fn take(&self) -> Vec<MarkMessage> {
        std::mem::take(&mut *self.messages.lock().await)
    }
}

#[async_trait]
impl MarkingQueue for ManualQueue {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> QueueResult<()> {
        self.messages.lock().await.extend(messages);
        Ok(())
    }
}

/// Sends every chain's first page twice, as an at-least-once queue may deliver it.
pub(crate) struct DuplicateFirstPages(Arc<dyn MarkingQueue>);

#[async_trait]
impl MarkingQueue for DuplicateFirstPages {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> QueueResult<()> {
        let firsts: Vec<_> = messages
            .iter()
            .filter(|m| m.cursor.is_none())
            .cloned()
            .collect();
        self.0.enqueue(messages).await?;
        self.0.enqueue(firsts).await
    }
}

pub(crate) struct Fixture {
    pub(crate) app: TestApp,
    pub(crate) faults: Arc<Faults>,
    /// Set for [`manual_fixture`]: the test is the worker.
    pub(crate) manual: Option<Arc<ManualQueue>>,
    /// Client and queue URL on the local SQS, for the DynamoDB rig.
    pub(crate) sqs: Option<(aws_sdk_sqs::Client, String)>,
    pub(crate) poller: Option<tokio::task::JoinHandle<()>>,
    /// The DynamoDB rig's tables, dropped with the fixture.
    pub(crate) tables: Option<store::testing::FreshTables>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
        // DynamoDB Local slows down as tables pile up: drop this test's, also when
        // it failed. Drop cannot await, so a thread of its own runs the deletion
        // (on its own runtime) and the test waits for it; an error is only logged.
        if let Some(fresh) = self.tables.take() {
            let deleted = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(store::testing::drop_tables(&fresh.client, &fresh.tables))
            })
            .join();
            if !matches!(deleted, Ok(Ok(()))) {
                eprintln!("could not delete this test's DynamoDB tables");
            }
        }
    }
}

/// A served app on `rig`, its store wrapped with `faults`; `None` when the rig's
/// local services are not configured here.
pub(crate) async fn fixture(
    rig: Rig,
    config: Config,
    faults: Faults,
    duplicate: bool,
) -> Option<Fixture> {
    let faults = Arc::new(faults);
    match rig {
        Rig::Embedded => {
            let (inner, dir, tables) = fresh_store_and_tables(Backend::Embedded).await?;
            let store = Arc::new(FaultyStore {
                inner,
                faults: faults.clone(),
            });
            let state = api::local_queue::InProcessQueue::attach(AppState::new(store, config));
            assert!(!duplicate, "the in-process rig has no duplicating queue");
            Some(Fixture {
                app: serve_state(state, dir).await,
                faults,
                manual: None,
                sqs: None,
                poller: None,
                tables,
            })
        }
        Rig::DynamoSqs => {
            let (inner, dir, tables) = fresh_store_and_tables(Backend::Dynamo).await?;
            let (client, url) = fresh_sqs_queue(config.mark_max_receives).await?;
            let store = Arc::new(FaultyStore {
                inner,
                faults: faults.clone(),
            });
            let sqs: Arc<dyn MarkingQueue> =
                Arc::new(api::aws::SqsQueue::new(client.clone(), url.clone()));
            let queue: Arc<dyn MarkingQueue> = if duplicate {
                Arc::new(DuplicateFirstPages(sqs))
            } else {
                sqs
            };
            let config = Config {
                marking_queue_url: Some(url.clone()),
                ..config
            };
            let state = AppState::new(store, config).with_queue(queue);
            let poller = tokio::spawn(api::aws::poll_queue(
                state.clone(),
                client.clone(),
                url.clone(),
            ));
            Some(Fixture {
                app: serve_state(state, dir).await,
                faults,
                manual: None,
                sqs: Some((client, url)),
                poller: Some(poller),
                tables,
            })
        }
    }
}

/// A served app whose marking queue only collects messages: the test delivers them.
pub(crate) async fn manual_fixture(backend: Backend, faults: Faults) -> Option<Fixture> {
    manual_fixture_with(backend, faults, fan_out_config()).await
}

pub(crate) async fn manual_fixture_with(
    backend: Backend,
    faults: Faults,
    config: Config,
) -> Option<Fixture> {
    let faults = Arc::new(faults);
    let (inner, dir, tables) = fresh_store_and_tables(backend).await?;
    let store = Arc::new(FaultyStore {
        inner,
        faults: faults.clone(),
    });
    let manual = Arc::new(ManualQueue::default());
    let state = AppState::new(store, config).with_queue(manual.clone());
    Some(Fixture {
        app: serve_state(state, dir).await,
        faults,
        manual: Some(manual),
        sqs: None,
        poller: None,
        tables,
    })
}
