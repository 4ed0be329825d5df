//! What every handler shares: the store, the configuration, the marking queue.

use std::sync::Arc;

use store::Store;

use crate::config::Config;
use crate::marking::PlanContexts;
use crate::marking::outcome::{WorkerCounters, WorkerCounts};
use crate::marking::queue::MarkingQueue;
use crate::services::Deps;
use crate::services::forecast::ForecastCache;
use crate::services::reconcile::PlanCache;

#[derive(Clone)]
pub struct AppState {
    /// The store, the configuration and the queue: what the services take.
    deps: Deps,
    plan_cache: Arc<PlanCache>,
    /// The deploying plans the marking worker serves, with their read-ahead pages.
    marking_plans: Arc<PlanContexts>,
    /// Plan computations running at once (`PLAN_CONCURRENCY`): a 10,000-step diff
    /// holds hundreds of MB while it runs.
    plan_permits: Arc<tokio::sync::Semaphore>,
    /// Forecasts running at once (`FORECAST_CONCURRENCY`): each reads up to
    /// `FORECAST_EXACT_LIMIT` sessions.
    forecast_permits: Arc<tokio::sync::Semaphore>,
    forecast_cache: Arc<ForecastCache>,
    /// What the marking worker of this process did with its messages.
    worker_counters: Arc<WorkerCounters>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        AppState {
            plan_permits: Arc::new(tokio::sync::Semaphore::new(config.plan_concurrency.max(1))),
            forecast_permits: Arc::new(tokio::sync::Semaphore::new(
                config.forecast_concurrency.max(1),
            )),
            forecast_cache: Arc::default(),
            deps: Deps::new(store, config),
            plan_cache: Arc::default(),
            marking_plans: Arc::default(),
            worker_counters: Arc::default(),
        }
    }

    pub fn with_queue(mut self, queue: Arc<dyn MarkingQueue>) -> Self {
        self.deps.set_queue(queue);
        self
    }

    /// Send lifecycle events to `sink` (none are sent without one).
    pub fn with_events(mut self, sink: Arc<dyn crate::events::EventSink>) -> Self {
        self.deps.set_events(sink);
        self
    }

    /// The events of an operator's change to a plan, sent before the call
    /// answers (bounded; what does not go is sent by the sweep).
    pub(crate) async fn announce(&self, tenant: uuid::Uuid, plan_id: uuid::Uuid) {
        crate::events::announce(
            self.store(),
            self.deps.events(),
            tenant,
            plan_id,
            chrono::Utc::now(),
        )
        .await;
    }

    /// What the services take.
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    pub fn store(&self) -> &dyn Store {
        self.deps.store()
    }

    pub fn config(&self) -> &Config {
        self.deps.config()
    }

    pub(crate) fn queue(&self) -> Option<&Arc<dyn MarkingQueue>> {
        self.deps.queue()
    }

    pub(crate) fn plan_cache(&self) -> &PlanCache {
        &self.plan_cache
    }

    pub(crate) fn marking_plans(&self) -> &PlanContexts {
        &self.marking_plans
    }

    pub(crate) fn plan_permits(&self) -> &tokio::sync::Semaphore {
        &self.plan_permits
    }

    pub(crate) fn forecast_permits(&self) -> &tokio::sync::Semaphore {
        &self.forecast_permits
    }

    pub(crate) fn forecast_cache(&self) -> &ForecastCache {
        &self.forecast_cache
    }

    /// What this process's marking worker did so far (messages done, dropped, retried).
    pub fn worker_counts(&self) -> WorkerCounts {
        self.worker_counters.snapshot()
    }

    pub(crate) fn worker_counters(&self) -> &WorkerCounters {
        &self.worker_counters
    }
}
