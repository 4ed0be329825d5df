//! Deploy fan-out end to end: a deployment above the inline threshold
//! answers 202, pages of sessions travel through a queue to the marking worker,
//! and every eligible session is flagged exactly once — on the embedded store
//! with the in-process queue, and on DynamoDB Local with SQS from moto (the
//! worker polling it the way `migrations serve --queue sqs` does).
//!
//! Faults are injected by a [`Store`] decorator (no SDK mocks): duplicate
//! deliveries, a crash between marking and recording, a throttled write, and a
//! poison page that lands in the dead-letter queue and is re-driven. In every case
//! the counts are exact and nothing but `pending_migration` changes on a session.
//!
//! Waits poll the deployment status; the only deadline is a hang guard.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use api::marking::{MarkMessage, MarkingQueue};
use api::queue::QueueResult;
use api::worker::{MessageOutcome, SqsEvent};
use api::{AppState, Config};
use async_trait::async_trait;
use futures::StreamExt;
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, ScenarioVersion, Session};
use serde_json::{Value, json};
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
enum Rig {
    /// Embedded store, in-process queue.
    Embedded,
    /// DynamoDB Local, SQS on moto, `api::aws::poll_queue` as the worker.
    DynamoSqs,
}

store::backend_matrix! {
    backends: [embedded => Rig::Embedded, dynamodb_sqs => Rig::DynamoSqs],
    tests: [
        fan_out_marks_every_eligible_session_once,
        redelivered_pages_count_once,
        crash_between_marking_and_recording_is_retried_exactly,
        throttled_write_is_retried_exactly,
        poison_page_shows_in_status,
        inline_deploy_failing_mid_marking_finishes_after_resume,
    ],
}

store::backend_matrix! {
    backends: [
        embedded_manual_queue => Backend::Embedded,
        dynamodb_manual_queue => Backend::Dynamo,
    ],
    tests: [
        same_message_delivered_twice_counts_once,
        lambda_batch_reports_only_the_failing_message,
        a_batch_walks_its_chains_in_process_within_its_budget,
        a_page_failing_mid_walk_goes_back_to_the_queue_alone,
    ],
}

/// A worker polling SQS holds no more chains at once than `MARK_WORKER_MESSAGES`:
/// it asks the queue only for what it has room for, so a deployment's chains
/// spread over the workers (taking ten at a time, one poll would take them all).
/// Each chain is walked for the whole budget, so every chain in hand marks at
/// once: the peak of concurrent page writes is the number of chains held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_worker_holds_no_more_chains_than_its_slots() {
    let config = Config {
        mark_page_size: 50,
        mark_worker_messages: 2,
        mark_chain_budget_ms: 60_000,
        ..fan_out_config()
    };
    let faults = Faults {
        mark_delay: Duration::from_millis(20),
        ..Faults::default()
    };
    let Some(fx) = fixture(Rig::DynamoSqs, config, faults, false).await else {
        return;
    };
    let population = Population {
        welcome: 40,
        anchor: 200,
        confirm: 40,
        done: 20,
    };
    let deployment = prepare(&fx.app, population).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    // assert_marked_exactly checks one chain per (step, shard) with sessions.
    assert_marked_exactly(&fx.app, &deployment).await;
    let plan_uuid: Uuid = deployment.plan_id.parse().expect("plan id");
    let chains = fx
        .app
        .state
        .store()
        .get_plan_stats(fx.app.tenant, plan_uuid)
        .await
        .expect("stats")
        .chains_total;
    assert!(chains >= 4, "enough chains to exceed the slots: {chains}");
    let peak = fx.faults.marking_peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "{peak} chains marked at once by a worker with 2 slots ({chains} chains)"
    );
}

/// Deploy decides inline vs fan-out without counting every session: exactly
/// the threshold (spread over four steps and many small pages) is marked inline,
/// one more fans out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inline_threshold_is_exact() {
    for (extra, status, state) in [(0, 200, "deployed"), (1, 202, "deploying")] {
        let config = Config {
            inline_mark_threshold: 100,
            mark_page_size: 7,
            ..fan_out_config()
        };
        let Some(fx) = fixture(Rig::Embedded, config, Faults::default(), false).await else {
            return;
        };
        let population = Population {
            welcome: 40,
            anchor: 33 + extra,
            confirm: 17,
            done: 10,
        };
        let deployment = prepare(&fx.app, population).await;
        let reply = deploy(&fx.app, &deployment.plan_id).await;
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert_eq!(reply.body["status"], state, "{:?}", reply.body);
        if extra == 0 {
            assert_marked_exactly(&fx.app, &deployment).await;
        }
    }
}

fn fan_out_config() -> Config {
    Config {
        inline_mark_threshold: 100,
        mark_page_size: 100,
        mark_concurrency: 8,
        mark_max_receives: 3,
        ..Config::default()
    }
}

/// Injected faults; all off by default.
struct Faults {
    /// `record_marking_page` fails this many more times — after its page was marked.
    record_failures: AtomicU32,
    /// `mark_sessions` writes the first half of its page, then fails as
    /// throttled, this many more times.
    throttles: AtomicU32,
    /// While set, `mark_sessions` fails for any page that contains this session.
    poison: std::sync::Mutex<Option<String>>,
    /// Every `mark_sessions` call takes a permit first (holds the workers back).
    gate: Semaphore,
    /// When set, `mark_sessions` calls go through in pairs: two deliveries of a
    /// page both read it before either one writes.
    rendezvous: Option<tokio::sync::Barrier>,
    /// Counts down on every `mark_sessions` call; the call that takes it from 1
    /// to 0 writes half its page and fails (the k-th write of a deploy fails).
    fail_nth_mark: AtomicU32,
    /// Every `mark_sessions` call takes this long more (walks overlap visibly).
    mark_delay: Duration,
    /// `mark_sessions` calls in progress, and the most there ever were at once.
    marking_now: AtomicU32,
    marking_peak: AtomicU32,
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
    fn gated(permits: usize) -> Self {
        Faults {
            gate: Semaphore::new(permits),
            ..Faults::default()
        }
    }

    fn open_gate(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 4);
    }

    fn set_poison(&self, session: Option<&str>) {
        *self.poison.lock().expect("poison lock") = session.map(str::to_owned);
    }
}

/// Take one unit of a fault budget; true when the fault fires.
fn fire(budget: &AtomicU32) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The store under test, with faults on the marking path. Everything else delegates.
struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
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
    ) -> StoreResult<bool> {
        self.inner
            .mark_session(tenant, session_id, expected, pending)
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
    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.inner.sweep_expired(now, limit).await
    }
}

impl FaultyStore {
    async fn faulty_mark_sessions(
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
struct ManualQueue {
    messages: tokio::sync::Mutex<Vec<MarkMessage>>,
}

impl ManualQueue {
    async fn take(&self) -> Vec<MarkMessage> {
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
struct DuplicateFirstPages(Arc<dyn MarkingQueue>);

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

struct Fixture {
    app: TestApp,
    faults: Arc<Faults>,
    /// Set for [`manual_fixture`]: the test is the worker.
    manual: Option<Arc<ManualQueue>>,
    /// Client and queue URL on the local SQS, for the DynamoDB rig.
    sqs: Option<(aws_sdk_sqs::Client, String)>,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

/// A served app on `rig`, its store wrapped with `faults`; `None` when the rig's
/// local services are not configured here.
async fn fixture(rig: Rig, config: Config, faults: Faults, duplicate: bool) -> Option<Fixture> {
    let faults = Arc::new(faults);
    match rig {
        Rig::Embedded => {
            let (inner, dir) = fresh_store(Backend::Embedded).await?;
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
            })
        }
        Rig::DynamoSqs => {
            let (inner, dir) = fresh_store(Backend::Dynamo).await?;
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
            })
        }
    }
}

/// A served app whose marking queue only collects messages: the test delivers them.
async fn manual_fixture(backend: Backend, faults: Faults) -> Option<Fixture> {
    manual_fixture_with(backend, faults, fan_out_config()).await
}

async fn manual_fixture_with(backend: Backend, faults: Faults, config: Config) -> Option<Fixture> {
    let faults = Arc::new(faults);
    let (inner, dir) = fresh_store(backend).await?;
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
    })
}

// ----- the deployment under test ---------------------------------------------------

/// V1: Welcome(1) → Collect email(2) → Confirm(5) → Done(3).
fn v1() -> Value {
    json!({
        "name": "Signup",
        "version": 1,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(2, "")]),
            step_json(2, "Collect email", &[(5, "")]),
            step_json(5, "Confirm", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

/// V2: an age check before Collect email; Confirm is gone (its sessions go to Done).
fn v2() -> Value {
    let mut age = step_json(4, "Check age", &[(2, "")]);
    age["collects_profile_fields"] = json!(["age"]);
    json!({
        "name": "Signup",
        "version": 2,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(4, "")]),
            age,
            step_json(2, "Collect email", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

/// How many sessions sit at each V1 step. At the anchor "Collect email" every
/// eleventh session is on SMS, which the anchor's scope filter excludes.
#[derive(Debug, Clone, Copy)]
struct Population {
    welcome: usize,
    anchor: usize,
    confirm: usize,
    done: usize,
}

impl Population {
    fn per_step(&self) -> [(u32, usize); 4] {
        [
            (1, self.welcome),
            (2, self.anchor),
            (5, self.confirm),
            (3, self.done),
        ]
    }

    fn eligible(&self) -> u64 {
        let sms = self.anchor.div_ceil(11);
        (self.welcome + self.anchor - sms + self.confirm + self.done) as u64
    }
}

fn session_id(step_n: u32, i: usize) -> String {
    format!("s{step_n}-{i:05}")
}

fn channel_of(step_n: u32, i: usize) -> &'static str {
    match (step_n, i % 11, i % 2) {
        (2, 0, _) => "sms",
        (_, _, 0) => "whatsapp",
        _ => "web",
    }
}

/// A session as the runtime records it, with enough on it to notice any change.
fn session_body(scenario: Uuid, step_n: u32, i: usize) -> Value {
    json!({
        "channel": channel_of(step_n, i),
        "customer_id": format!("cust-{i}"),
        "active_scenario_id": scenario,
        "active_scenario_version": 1,
        "active_step_id": step(step_n),
        "step_history": [
            {"step_id": step(1), "step_name": "Welcome", "visited_at": "2025-03-01T10:00:00Z", "is_checkpoint": false}
        ],
        "variables": {
            "email": format!("c{i}@example.com"),
            "visits": i,
            "profile": {"tier": (["gold", "basic", "basic"][i % 3]), "tags": ["a", "b"]},
            "note": "Zoë 🚀"
        },
        "created_at": "2025-03-01T09:59:00Z"
    })
}

struct Deployment {
    plan_id: String,
    population: Population,
    /// V1 step → the anchor hash its sessions are flagged with.
    flag_hash: BTreeMap<u32, String>,
    /// Every session as read back before the deployment.
    before: BTreeMap<String, Value>,
}

impl Deployment {
    /// The flag an eligible session must carry, `None` for an excluded one.
    fn expected_flag(&self, step_n: u32, i: usize) -> Option<&str> {
        (channel_of(step_n, i) != "sms" || step_n != 2).then(|| self.flag_hash[&step_n].as_str())
    }

    fn session_ids(&self) -> impl Iterator<Item = (u32, usize, String)> + '_ {
        self.population
            .per_step()
            .into_iter()
            .flat_map(|(n, count)| (0..count).map(move |i| (n, i, session_id(n, i))))
    }

    fn eligible_by_hash(&self) -> BTreeMap<String, u64> {
        let mut by_hash = BTreeMap::new();
        for (n, i, _) in self.session_ids() {
            if let Some(hash) = self.expected_flag(n, i) {
                *by_hash.entry(hash.to_owned()).or_default() += 1;
            }
        }
        by_hash
    }
}

/// Scenario, sessions, plan with a scope filter on the anchor, approval; the
/// sessions are read back as the baseline. Stops short of deploying.
async fn prepare(app: &TestApp, population: Population) -> Deployment {
    let scenario = Uuid::new_v4();
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(v1()))
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    let puts = population.per_step().into_iter().flat_map(|(n, count)| {
        (0..count).map(move |i| {
            let path = format!("/sessions/{}", session_id(n, i));
            async move {
                let reply = app
                    .call("PUT", &path, Some(session_body(scenario, n, i)))
                    .await;
                assert_eq!(reply.status, 201, "{path}: {:?}", reply.body);
            }
        })
    });
    futures::stream::iter(puts)
        .buffer_unordered(16)
        .collect::<()>()
        .await;

    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan = reply.body;
    let plan_id = plan["id"].as_str().expect("plan id").to_owned();
    let map = &plan["transformation_map"];
    let mut flag_hash = BTreeMap::new();
    for anchor in map["anchors"].as_array().expect("anchors") {
        let n = [1, 2, 3]
            .into_iter()
            .find(|n| anchor["anchor_node_id_v1"] == json!(step(*n)))
            .expect("an anchor of V1");
        flag_hash.insert(
            n,
            anchor["anchor_content_hash"].as_str().unwrap().to_owned(),
        );
    }
    assert_eq!(flag_hash.len(), 3, "{map}");
    let deleted = &map["deleted_nodes"][0];
    assert_eq!(deleted["node_id_v1"], json!(step(5)), "{map}");
    assert_eq!(
        deleted["nearest_anchor_hash"],
        json!(flag_hash[&3]),
        "Confirm's sessions go to Done"
    );
    flag_hash.insert(5, flag_hash[&3].clone());

    let anchor_hash = flag_hash[&2].clone();
    let mut policy = plan["anchor_policies"][&anchor_hash].clone();
    policy["scope_filter"]["exclude_channels"] = json!(["sms"]);
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(json!({"policies": {anchor_hash: policy}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let mut deployment = Deployment {
        plan_id,
        population,
        flag_hash,
        before: BTreeMap::new(),
    };
    deployment.before = read_sessions(app, &deployment).await;
    assert!(
        deployment
            .before
            .values()
            .all(|s| s.get("pending_migration").is_none())
    );
    deployment
}

async fn read_sessions(app: &TestApp, deployment: &Deployment) -> BTreeMap<String, Value> {
    let ids: Vec<String> = deployment.session_ids().map(|(_, _, id)| id).collect();
    futures::stream::iter(ids.into_iter().map(|id| async move {
        let reply = app.call("GET", &format!("/sessions/{id}"), None).await;
        assert_eq!(reply.status, 200, "{id}: {:?}", reply.body);
        (id, reply.body)
    }))
    .buffer_unordered(16)
    .collect()
    .await
}

async fn deploy(app: &TestApp, plan_id: &str) -> Reply {
    app.call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await
}

async fn status(app: &TestApp, plan_id: &str) -> Value {
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// Poll the deployment status until `done` holds. The deadline only guards
/// against a hang; it asserts nothing about speed.
async fn wait_for(
    app: &TestApp,
    plan_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let current = status(app, plan_id).await;
        if done(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "never reached {what}: {current}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_deployed(app: &TestApp, plan_id: &str) -> Value {
    wait_for(app, plan_id, "deployed", |s| s["status"] == "deployed").await
}

/// The whole outcome: exact counts, every eligible session flagged by this plan
/// with its anchor, excluded ones untouched, and nothing else changed anywhere.
async fn assert_marked_exactly(app: &TestApp, deployment: &Deployment) {
    let plan_id = &deployment.plan_id;
    let current = status(app, plan_id).await;
    assert_eq!(current["status"], "deployed", "{current}");
    assert!(current["deployed_at"].is_string(), "{current}");
    assert_eq!(
        current["sessions_marked"],
        json!(deployment.population.eligible()),
        "{current}"
    );
    assert_eq!(
        current["migrations_pending"],
        json!(deployment.population.eligible())
    );
    assert_eq!(current["migrations_applied"], 0);
    assert_eq!(current["pages_failed"], 0, "{current}");

    let plan_uuid: Uuid = plan_id.parse().expect("plan id");
    let stats = app
        .state
        .store()
        .get_plan_stats(app.tenant, plan_uuid)
        .await
        .expect("stats");
    assert_eq!(stats.sessions_by_anchor, deployment.eligible_by_hash());
    assert_eq!(stats.chains_done, stats.chains_total);
    // One chain per (step, shard of the step index) that holds sessions.
    let shards = app.state.store().step_index_shards();
    assert!(shards > 1, "marking runs on a sharded step index");
    let chains: std::collections::BTreeSet<(u32, u32)> = deployment
        .session_ids()
        .map(|(n, _, id)| (n, store::step_shard(&id, shards)))
        .collect();
    assert_eq!(stats.chains_total, chains.len() as u64);
    assert!(
        stats.chains_total > 4,
        "a step's sessions are marked by several chains"
    );

    let after = read_sessions(app, deployment).await;
    for (n, i, id) in deployment.session_ids() {
        let mut now = after[&id].clone();
        let flag = now
            .as_object_mut()
            .expect("session object")
            .remove("pending_migration");
        match deployment.expected_flag(n, i) {
            Some(hash) => {
                let flag = flag.unwrap_or_else(|| panic!("{id} is eligible but not flagged"));
                assert_eq!(flag["migration_plan_id"], json!(plan_id), "{id}");
                assert_eq!(flag["target_version"], 2, "{id}");
                assert_eq!(flag["anchor_content_hash"], json!(hash), "{id}");
                assert_eq!(flag["from_step_id"], json!(step(n)), "{id}");
                assert!(flag["marked_at"].is_string(), "{id}");
            }
            None => assert!(flag.is_none(), "{id} is out of scope but flagged"),
        }
        // Marking bumps the revision with the flag, and changes nothing else.
        let mut before = deployment.before[&id].clone();
        let revision_before = before["revision"].as_u64().expect("revision");
        let flagged = deployment.expected_flag(n, i).is_some();
        assert_eq!(
            now["revision"].as_u64(),
            Some(revision_before + u64::from(flagged)),
            "{id}: one revision per write"
        );
        now.as_object_mut().expect("object").remove("revision");
        before.as_object_mut().expect("object").remove("revision");
        assert_eq!(now, before, "{id}: only the flag may change");
    }
}

// ----- tests ---------------------------------------------------------------------

async fn fan_out_marks_every_eligible_session_once(rig: Rig) {
    // Three pages get through, then the workers wait: the deployment is
    // observably in flight while we call deploy again.
    let Some(fx) = fixture(rig, fan_out_config(), Faults::gated(3), false).await else {
        return;
    };
    let population = Population {
        welcome: 130,
        anchor: 2_750,
        confirm: 60,
        done: 70,
    };
    let deployment = prepare(&fx.app, population).await;
    assert!(deployment.eligible_by_hash()[&deployment.flag_hash[&2]] >= 2_500);
    let plan_id = deployment.plan_id.as_str();

    let reply = deploy(&fx.app, plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "deploying");
    assert_eq!(reply.body["plan_id"], json!(plan_id));
    assert!(reply.body["deployed_at"].is_null());

    let progress = wait_for(&fx.app, plan_id, "first pages", |s| {
        s["sessions_marked"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(progress["status"], "deploying");
    let again = deploy(&fx.app, plan_id).await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_eq!(again.body["status"], "deploying");
    let marked = again.body["sessions_marked"].as_u64().expect("progress");
    assert!(
        marked > 0 && marked < population.eligible(),
        "{:?}",
        again.body
    );

    fx.faults.open_gate();
    let done = wait_deployed(&fx.app, plan_id).await;
    assert!(done["deployed_at"].is_string(), "{done}");
    assert_marked_exactly(&fx.app, &deployment).await;

    let late = deploy(&fx.app, plan_id).await;
    assert_eq!(late.status, 409, "{:?}", late.body);
}

fn small_population() -> Population {
    Population {
        welcome: 140,
        anchor: 330,
        confirm: 45,
        done: 25,
    }
}

async fn redelivered_pages_count_once(rig: Rig) {
    // Every chain's first page is sent twice; on SQS both copies go through the
    // worker (each enqueues the same continuation, so the whole chain runs twice).
    let duplicate = matches!(rig, Rig::DynamoSqs);
    let Some(fx) = fixture(rig, fan_out_config(), Faults::default(), duplicate).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    if !duplicate {
        // In process: deliver copies of every first page (of every shard's
        // chain) by hand, on top of the queue's own.
        let plan_id: Uuid = deployment.plan_id.parse().expect("plan id");
        let shards = fx.app.state.store().step_index_shards();
        for n in [1u32, 2, 3, 5] {
            for shard in 0..shards {
                let body = serde_json::to_string(&MarkMessage {
                    tenant_id: fx.app.tenant,
                    plan_id,
                    chain: api::marking::Chain {
                        step_id: step(n),
                        shard,
                        shards,
                        anchor_content_hash: Some(deployment.flag_hash[&n].clone()),
                    },
                    cursor: None,
                })
                .expect("message json");
                let outcome = api::worker::process_body(&fx.app.state, &body, 1).await;
                assert_eq!(outcome, MessageOutcome::Done, "{body}");
            }
        }
    }
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

async fn crash_between_marking_and_recording_is_retried_exactly(rig: Rig) {
    let faults = Faults {
        record_failures: AtomicU32::new(2),
        ..Faults::default()
    };
    let Some(fx) = fixture(rig, fan_out_config(), faults, false).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        fx.faults.record_failures.load(Ordering::SeqCst),
        0,
        "faults fired"
    );
    assert_marked_exactly(&fx.app, &deployment).await;
}

async fn throttled_write_is_retried_exactly(rig: Rig) {
    let faults = Faults {
        throttles: AtomicU32::new(2),
        ..Faults::default()
    };
    let Some(fx) = fixture(rig, fan_out_config(), faults, false).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        fx.faults.throttles.load(Ordering::SeqCst),
        0,
        "faults fired"
    );
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// A page that fails on every delivery is counted in `pages_failed` after
/// `mark_max_receives` attempts and its chain stops; the rest completes. On SQS the
/// page sits in the dead-letter queue; re-driven (once the cause is fixed) it
/// finishes the deployment with exact counts.
async fn poison_page_shows_in_status(rig: Rig) {
    let Some(fx) = fixture(rig, fan_out_config(), Faults::default(), false).await else {
        return;
    };
    let population = small_population();
    let deployment = prepare(&fx.app, population).await;
    // The first page of Welcome's chain (sessions are paged in id order).
    fx.faults.set_poison(Some(&session_id(1, 0)));
    let plan_id = deployment.plan_id.as_str();
    let reply = deploy(&fx.app, plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);

    // Welcome is marked by one chain per shard of the step index: the one
    // holding s1-00000 (a single page) stalls, every other chain finishes.
    let shards = fx.app.state.store().step_index_shards();
    let poisoned_shard = store::step_shard(&session_id(1, 0), shards);
    let in_poisoned: Vec<usize> = (0..population.welcome)
        .filter(|i| store::step_shard(&session_id(1, *i), shards) == poisoned_shard)
        .collect();
    assert!(in_poisoned.len() > 1 && in_poisoned.len() < population.welcome);
    let in_poisoned_eligible = in_poisoned
        .iter()
        .filter(|i| deployment.expected_flag(1, **i).is_some())
        .count() as u64;
    let without_poisoned = population.eligible() - in_poisoned_eligible;
    let stalled = wait_for(&fx.app, plan_id, "a failed page", |s| {
        s["pages_failed"] == 1 && s["sessions_marked"] == json!(without_poisoned)
    })
    .await;
    assert_eq!(stalled["status"], "deploying", "{stalled}");
    assert!(stalled["deployed_at"].is_null());
    let welcome = fx
        .app
        .call(
            "GET",
            &format!("/sessions/{}", session_id(1, in_poisoned[1])),
            None,
        )
        .await;
    assert!(
        welcome.body.get("pending_migration").is_none(),
        "{:?}",
        welcome.body
    );

    let Some((client, url)) = &fx.sqs else {
        // The in-process queue has no dead-letter queue to re-drive from.
        return;
    };
    // The message moves to the dead-letter queue on its next receive.
    let dlq = client
        .get_queue_url()
        .queue_name(format!("{}-dlq", url.rsplit('/').next().unwrap()))
        .send()
        .await
        .expect("DLQ url")
        .queue_url
        .expect("DLQ url");
    let deadline = Instant::now() + Duration::from_secs(600);
    let dead = loop {
        let received = client
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from DLQ");
        let messages = received.messages.unwrap_or_default();
        if !messages.is_empty() {
            break messages;
        }
        assert!(Instant::now() < deadline, "nothing reached the DLQ");
    };
    assert_eq!(dead.len(), 1);
    let body = dead[0].body().expect("body").to_owned();
    let message: MarkMessage = serde_json::from_str(&body).expect("a marking message");
    assert_eq!(message.chain.step_id, step(1));
    assert_eq!(message.chain.shard, poisoned_shard);
    assert_eq!(message.cursor, None);

    // Fix the cause, then re-drive: what `aws sqs start-message-move-task` does
    // (moto lacks it): send the body back to the source queue, delete it from the DLQ.
    fx.faults.set_poison(None);
    client
        .send_message()
        .queue_url(url)
        .message_body(&body)
        .send()
        .await
        .expect("re-drive");
    client
        .delete_message()
        .queue_url(&dlq)
        .receipt_handle(dead[0].receipt_handle().expect("handle"))
        .send()
        .await
        .expect("delete from DLQ");
    let done = wait_deployed(&fx.app, plan_id).await;
    assert_eq!(done["pages_failed"], 1, "a history count: {done}");
    let stats = fx
        .app
        .state
        .store()
        .get_plan_stats(fx.app.tenant, plan_id.parse().unwrap())
        .await
        .expect("stats");
    assert_eq!(stats.sessions_marked, population.eligible());
    assert_eq!(stats.sessions_by_anchor, deployment.eligible_by_hash());
    let after = read_sessions(&fx.app, &deployment).await;
    for (n, i, id) in deployment.session_ids() {
        let mut now = after[&id].clone();
        let flag = now.as_object_mut().unwrap().remove("pending_migration");
        assert_eq!(
            flag.is_some(),
            deployment.expected_flag(n, i).is_some(),
            "{id}"
        );
        let mut before = deployment.before[&id].clone();
        now.as_object_mut().unwrap().remove("revision");
        before.as_object_mut().unwrap().remove("revision");
        assert_eq!(now, before, "{id}");
    }
}

/// The test is the worker: every distinct message is delivered twice at once —
/// both deliveries read the page before either writes — and both must succeed
/// without marking or counting anything twice (or missing a count: one of them
/// loses every conditional write and still records the page exactly).
async fn same_message_delivered_twice_counts_once(backend: Backend) {
    let faults = Faults {
        rendezvous: Some(tokio::sync::Barrier::new(2)),
        ..Faults::default()
    };
    let Some(fx) = manual_fixture(backend, faults).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);

    let state = &fx.app.state;
    let mut deliveries = 0;
    // Deploy enqueues each chain's first page once; after that, only the
    // delivery that recorded a page enqueues its continuation, so a chain is
    // walked once however often its messages arrive.
    loop {
        let pending = manual.take().await;
        if pending.is_empty() {
            break;
        }
        let mut distinct: BTreeMap<String, usize> = BTreeMap::new();
        for message in &pending {
            *distinct
                .entry(serde_json::to_string(message).expect("message json"))
                .or_default() += 1;
        }
        assert!(distinct.values().all(|n| *n == 1), "{distinct:?}");
        for body in distinct.into_keys() {
            let (a, b) = tokio::join!(
                api::worker::process_body(state, &body, 1),
                api::worker::process_body(state, &body, 1)
            );
            assert_eq!(
                (a, b),
                (MessageOutcome::Done, MessageOutcome::Done),
                "{body}"
            );
            deliveries += 2;
        }
    }
    assert!(deliveries >= 2 * 4, "every chain was delivered");
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// The Lambda handler of `functions/mark-sessions`: a batch of a good page, a
/// malformed body and a page that fails. Only the failing one is reported in
/// `batchItemFailures`; the good page is marked and recorded, the malformed body
/// is dropped (retrying cannot help it).
async fn lambda_batch_reports_only_the_failing_message(backend: Backend) {
    let Some(fx) = manual_fixture(backend, Faults::default()).await else {
        return;
    };
    let (deployment, firsts) = deploy_to_manual_queue(&fx).await;
    // Each step is marked by one chain per shard of the step index: the first
    // page of the chain (step, shard) that holds a given session.
    let shards = fx.app.state.store().step_index_shards();
    let shard_of = |id: &str| store::step_shard(id, shards);
    let first_of = |n: u32, id: &str| {
        let message = firsts
            .iter()
            .find(|m| m.chain.step_id == step(n) && m.chain.shard == shard_of(id))
            .expect("a first page");
        serde_json::to_string(message).unwrap()
    };
    let done_shard = shard_of(&session_id(3, 0));
    let done_in_shard = (0..small_population().done)
        .filter(|i| shard_of(&session_id(3, *i)) == done_shard)
        .count();
    // Welcome's first page fails on every delivery.
    fx.faults.set_poison(Some(&session_id(1, 0)));

    let record = |id: &str, body: &str| {
        json!({
            "messageId": id,
            "receiptHandle": format!("handle-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:marking",
            "awsRegion": "us-east-1"
        })
    };
    let event: SqsEvent = serde_json::from_value(json!({
        "Records": [
            record("good", &first_of(3, &session_id(3, 0))),
            record("malformed", "{\"not\": \"a marking message\"}"),
            record("failing", &first_of(1, &session_id(1, 0))),
        ]
    }))
    .expect("an SQS event");
    let response = api::worker::handle_sqs_event(&fx.app.state, &event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["failing"]);
    let answer = serde_json::to_value(&response).expect("response json");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "failing"}]})
    );

    // The good page (the whole chain of Done's shard holding s3-00000: one
    // page) is marked and recorded.
    let current = status(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        current["sessions_marked"],
        json!(done_in_shard),
        "{current}"
    );
    assert_eq!(current["pages_failed"], 0, "not the last attempt yet");
    let done = fx
        .app
        .call("GET", &format!("/sessions/{}", session_id(3, 0)), None)
        .await;
    assert_eq!(
        done.body["pending_migration"]["anchor_content_hash"],
        json!(deployment.flag_hash[&3])
    );
    let welcome = fx
        .app
        .call("GET", &format!("/sessions/{}", session_id(1, 0)), None)
        .await;
    assert!(welcome.body.get("pending_migration").is_none());
}

/// Deploys the small population on a manual-queue fixture (fan-out, 202);
/// returns the deployment and the chains' first pages deploy enqueued.
async fn deploy_to_manual_queue(fx: &Fixture) -> (Deployment, Vec<MarkMessage>) {
    let manual = fx.manual.as_ref().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    (deployment, manual.take().await)
}

/// Delivers `messages` to the worker as one SQS batch; returns the ids
/// (`m0`, `m1`, …) of those left for redelivery.
async fn deliver_batch(state: &AppState, messages: &[MarkMessage]) -> Vec<String> {
    let bodies: Vec<(String, String)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("m{i}"), serde_json::to_string(m).expect("json")))
        .collect();
    let deliveries: Vec<api::worker::Delivery<'_>> = bodies
        .iter()
        .map(|(id, body)| api::worker::Delivery {
            id,
            body,
            attempt: 1,
        })
        .collect();
    api::worker::process_batch(state, &deliveries).await
}

/// Pages of 10, so the anchor's chains are several pages long.
fn long_chains_config(budget_ms: u64) -> Config {
    Config {
        mark_page_size: 10,
        mark_chain_budget_ms: budget_ms,
        ..fan_out_config()
    }
}

/// With a budget, one batch of the chains' first pages walks every chain to its
/// end in process: nothing goes back to the queue. With none, each batch marks
/// one page per chain and hands the next to the queue. Either way every
/// eligible session is flagged once and counted once.
async fn a_batch_walks_its_chains_in_process_within_its_budget(backend: Backend) {
    for budget_ms in [0, 600_000] {
        let Some(fx) =
            manual_fixture_with(backend, Faults::default(), long_chains_config(budget_ms)).await
        else {
            return;
        };
        let manual = fx.manual.clone().expect("manual queue");
        let (deployment, mut pending) = deploy_to_manual_queue(&fx).await;
        let chains = pending.len();
        let (mut batches, mut delivered, mut handed_back) = (0, 0, 0);
        while !pending.is_empty() {
            let failed = deliver_batch(&fx.app.state, &pending).await;
            assert!(failed.is_empty(), "budget {budget_ms}: {failed:?}");
            batches += 1;
            delivered += pending.len();
            pending = manual.take().await;
            handed_back += pending.len();
        }
        if budget_ms == 0 {
            // One page per message: every page but each chain's first came
            // back through the queue, and the chains are several pages long.
            assert_eq!(handed_back, delivered - chains);
            assert!(delivered > 2 * chains, "{delivered} pages, {chains} chains");
        } else {
            // The same chains, walked to their ends by the first batch.
            assert_eq!((batches, handed_back), (1, 0), "{chains} chains");
        }
        wait_deployed(&fx.app, &deployment.plan_id).await;
        assert_marked_exactly(&fx.app, &deployment).await;
    }
}

/// The second page of a walk fails half-written: the message that started the
/// walk is done (its page is recorded) and the failed page goes back to the
/// queue as a message of its own, which marks it exactly once.
async fn a_page_failing_mid_walk_goes_back_to_the_queue_alone(backend: Backend) {
    let faults = Faults::default();
    let Some(fx) = manual_fixture_with(backend, faults, long_chains_config(600_000)).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let (deployment, firsts) = deploy_to_manual_queue(&fx).await;
    let (walked, rest): (Vec<_>, Vec<_>) = firsts
        .into_iter()
        .partition(|m| m.chain.step_id == step(2) && m.chain.shard == 0);
    assert_eq!(walked.len(), 1, "one chain of the anchor's shard 0");

    fx.faults.fail_nth_mark.store(2, Ordering::SeqCst);
    let failed = deliver_batch(&fx.app.state, &walked).await;
    assert!(
        failed.is_empty(),
        "the walk's first page is recorded: {failed:?}"
    );
    let handed_back = manual.take().await;
    assert_eq!(handed_back.len(), 1, "{handed_back:?}");
    assert_eq!(handed_back[0].chain, walked[0].chain);
    assert!(
        handed_back[0].cursor.is_some(),
        "the second page, not the first"
    );
    // Only the first page (10 sessions, some excluded by the scope filter) is
    // recorded; the half-written second one is not counted.
    let marked = status(&fx.app, &deployment.plan_id).await["sessions_marked"]
        .as_u64()
        .expect("sessions_marked");
    assert!((1..=10).contains(&marked), "{marked}");

    let mut pending: Vec<MarkMessage> = handed_back.into_iter().chain(rest).collect();
    while !pending.is_empty() {
        let failed = deliver_batch(&fx.app.state, &pending).await;
        assert!(failed.is_empty(), "{failed:?}");
        pending = manual.take().await;
    }
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// A store error in the middle of an inline deploy (the k-th page write fails
/// half-way) leaves the plan `deploying`; with the lease run out, the sweep (or,
/// in one trial, deploying again) resumes it from the ledger and it ends
/// `deployed` with exact counts and every eligible session flagged once.
async fn inline_deploy_failing_mid_marking_finishes_after_resume(rig: Rig) {
    for (trial, k) in [1u32, 4, 9, 14].into_iter().enumerate() {
        let config = Config {
            inline_mark_threshold: 100,
            mark_page_size: 7,
            deploy_lease_seconds: 0,
            ..fan_out_config()
        };
        let faults = Faults {
            fail_nth_mark: AtomicU32::new(k),
            ..Faults::default()
        };
        let Some(fx) = fixture(rig, config, faults, false).await else {
            return;
        };
        let population = Population {
            welcome: 40,
            anchor: 33,
            confirm: 17,
            done: 10,
        };
        let deployment = prepare(&fx.app, population).await;
        let reply = deploy(&fx.app, &deployment.plan_id).await;
        assert_eq!(reply.status, 500, "trial {trial}: {:?}", reply.body);
        let stuck = status(&fx.app, &deployment.plan_id).await;
        assert_eq!(stuck["status"], "deploying", "trial {trial}");
        if trial == 0 {
            let again = deploy(&fx.app, &deployment.plan_id).await;
            assert!(matches!(again.status, 200 | 202), "{:?}", again.body);
        } else {
            let report = api::services::deployments::sweep(fx.app.state.deps(), chrono::Utc::now())
                .await
                .expect("sweep");
            assert_eq!(report.plans_deploying, 1, "trial {trial}");
        }
        let done = wait_deployed(&fx.app, &deployment.plan_id).await;
        assert!(done["resumptions"].as_u64() >= Some(1), "{done}");
        assert_marked_exactly(&fx.app, &deployment).await;
    }
}
