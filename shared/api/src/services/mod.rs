//! Use cases over the store. Handlers parse and call these; these never see HTTP.

pub mod deployments;
pub mod error;
pub mod forecast;
pub mod plans;
pub(crate) mod reconcile;
pub(crate) mod scenarios;
pub(crate) mod sessions;

use std::sync::Arc;

use store::Store;

use crate::config::Config;
use crate::events::EventSink;
use crate::marking::MarkingQueue;

/// What the services need of the process: the store, the configuration, the
/// marking queue and the lifecycle events' sink — nothing of HTTP, of the caches or of the worker, so
/// that a service can be called (and tested) from anywhere.
#[derive(Clone)]
pub struct Deps {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// Where fan-out marking messages go; `None` marks every deployment inline.
    queue: Option<Arc<dyn MarkingQueue>>,
    /// Where lifecycle events go; `None` sends none (the outbox is cleared unsent).
    events: Option<Arc<dyn EventSink>>,
}

impl Deps {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        Deps {
            store,
            config: Arc::new(config),
            queue: None,
            events: None,
        }
    }

    pub(crate) fn set_queue(&mut self, queue: Arc<dyn MarkingQueue>) {
        self.queue = Some(queue);
    }

    pub(crate) fn set_events(&mut self, sink: Arc<dyn EventSink>) {
        self.events = Some(sink);
    }

    pub fn events(&self) -> Option<&dyn EventSink> {
        self.events.as_deref()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn queue(&self) -> Option<&Arc<dyn MarkingQueue>> {
        self.queue.as_ref()
    }
}
