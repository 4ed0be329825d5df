//! The rigs the fan-out tests run on: the faults injected on the marking path
//! (hooks of `store::testing::FaultyStore`), queues the test drives or
//! duplicates, and the fixtures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::*;
use api::marking::{MarkMessage, MarkingQueue};
use api::queue::QueueResult;
use api::{AppState, Config};
use async_trait::async_trait;
use store::testing::{FaultyStore, StoreFaults, StoreOp};
use store::{SessionMark, Store, StoreError};
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
    /// The next this many `mark_sessions` calls wait for a permit of
    /// `released` first: a delivery stopped between its claim and its marks.
    pub(crate) hold_marks: AtomicU32,
    pub(crate) released: Semaphore,
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
            hold_marks: AtomicU32::new(0),
            released: Semaphore::new(0),
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

/// The faults act on the store under test through [`FaultyStore`], which
/// forwards everything else to the store it wraps.
#[async_trait]
impl StoreFaults for Faults {
    async fn before(&self, op: StoreOp<'_>, inner: &dyn Store) -> Option<StoreError> {
        match op {
            // The worker dies after marking its page, before the ledger knows.
            StoreOp::RecordMarkingPage(_) if fire(&self.record_failures) => Some(
                StoreError::Unexpected("injected: crash before recording".into()),
            ),
            StoreOp::MarkSessions {
                tenant,
                marks,
                concurrency,
            } => self.before_marking(inner, tenant, marks, concurrency).await,
            _ => None,
        }
    }

    fn after(&self, op: StoreOp<'_>) {
        if let StoreOp::MarkSessions { .. } = op {
            self.marking_now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Faults {
    /// What every `mark_sessions` call goes through first: the in-flight count,
    /// the delay, the gate, the rendezvous, then the faults that fail it — a
    /// poison page outright; the k-th call and a throttle after writing the
    /// first half of the page.
    async fn before_marking(
        &self,
        inner: &dyn Store,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> Option<StoreError> {
        let now = self.marking_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.marking_peak.fetch_max(now, Ordering::SeqCst);
        if fire(&self.hold_marks) {
            match self.released.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Some(StoreError::Unexpected("released closed".into())),
            }
        }
        tokio::time::sleep(self.mark_delay).await;
        match self.gate.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Some(StoreError::Unexpected("gate closed".into())),
        }
        if let Some(rendezvous) = &self.rendezvous {
            rendezvous.wait().await;
        }
        let poison = self.poison.lock().expect("poison lock").clone();
        if let Some(poison) = poison
            && marks.iter().any(|m| m.session_id == poison)
        {
            return Some(StoreError::Unexpected("injected: poison page".into()));
        }
        let nth = self
            .fail_nth_mark
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        let error = if nth == Ok(1) {
            StoreError::Unexpected("injected: the store failed mid-page".into())
        } else if fire(&self.throttles) {
            // Part of the page is written, then the backend pushes back.
            StoreError::Throttled("injected: slow down".into())
        } else {
            return None;
        };
        let half = &marks[..marks.len() / 2];
        let written = inner.mark_sessions(tenant, half, concurrency).await;
        Some(written.err().unwrap_or(error))
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
    /// The DynamoDB rig's tables, dropped with the fixture (after the poller
    /// stopped), also when the test failed.
    pub(crate) _tables: Option<DropTablesOnDrop>,
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
pub(crate) async fn fixture(
    rig: Rig,
    config: Config,
    faults: Faults,
    duplicate: bool,
) -> Option<Fixture> {
    let faults = Arc::new(faults);
    match rig {
        Rig::Embedded => {
            let (inner, dir, fresh) = fresh_store_and_tables(Backend::Embedded).await?;
            let tables = fresh.map(DropTablesOnDrop);
            let store = Arc::new(FaultyStore::new(inner, faults.clone()));
            let state = api::local_queue::InProcessQueue::attach(AppState::new(store, config));
            assert!(!duplicate, "the in-process rig has no duplicating queue");
            Some(Fixture {
                app: serve_state(state, dir).await,
                faults,
                manual: None,
                sqs: None,
                poller: None,
                _tables: tables,
            })
        }
        Rig::DynamoSqs => {
            let (inner, dir, fresh) = fresh_store_and_tables(Backend::Dynamo).await?;
            let tables = fresh.map(DropTablesOnDrop);
            let (client, url) = fresh_sqs_queue(config.mark_max_receives).await?;
            let store = Arc::new(FaultyStore::new(inner, faults.clone()));
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
                _tables: tables,
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
    let (inner, dir, fresh) = fresh_store_and_tables(backend).await?;
    let tables = fresh.map(DropTablesOnDrop);
    let store = Arc::new(FaultyStore::new(inner, faults.clone()));
    let manual = Arc::new(ManualQueue::default());
    let state = AppState::new(store, config).with_queue(manual.clone());
    Some(Fixture {
        app: serve_state(state, dir).await,
        faults,
        manual: Some(manual),
        sqs: None,
        poller: None,
        _tables: tables,
    })
}
