//! What every handler shares: the store, the configuration, the marking queue.

use std::sync::Arc;

use store::Store;

use crate::config::Config;
use crate::marking::MarkingQueue;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Where fan-out marking messages go; `None` marks every deployment inline.
    pub queue: Option<Arc<dyn MarkingQueue>>,
    pub plan_cache: Arc<crate::services::reconcile::PlanCache>,
    /// The deploying plans the marking worker serves, with their read-ahead pages.
    pub marking_plans: Arc<crate::marking::PlanContexts>,
    /// Plan computations running at once (`PLAN_CONCURRENCY`): a 10,000-step diff
    /// holds hundreds of MB while it runs.
    pub plan_permits: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        AppState {
            store,
            plan_permits: Arc::new(tokio::sync::Semaphore::new(config.plan_concurrency.max(1))),
            config: Arc::new(config),
            queue: None,
            plan_cache: Arc::default(),
            marking_plans: Arc::default(),
        }
    }

    pub fn with_queue(mut self, queue: Arc<dyn MarkingQueue>) -> Self {
        self.queue = Some(queue);
        self
    }
}
