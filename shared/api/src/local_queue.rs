//! The in-process marking queue of `migrations serve`: at-least-once delivery
//! with retries, the same worker code as the SQS Lambda.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::marking::MarkMessage;
use crate::marking::queue::{MarkingQueue, QueueError, QueueResult};
use crate::state::AppState;
use crate::worker::{self, MessageOutcome};

struct Delivery {
    body: String,
    attempt: u32,
}

pub struct InProcessQueue {
    sender: mpsc::UnboundedSender<Delivery>,
}

impl InProcessQueue {
    /// Attach a queue to `state` and start its worker task. The worker holds the
    /// state weakly so dropping the app stops it.
    pub fn attach(state: AppState) -> AppState {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = Arc::new(InProcessQueue { sender });
        let state = state.with_queue(queue.clone());
        tokio::spawn(run_worker(Arc::downgrade(&queue), state.clone(), receiver));
        state
    }
}

async fn run_worker(
    queue: Weak<InProcessQueue>,
    state: AppState,
    mut receiver: mpsc::UnboundedReceiver<Delivery>,
) {
    while let Some(delivery) = receiver.recv().await {
        let outcome = worker::process_body(&state, &delivery.body, delivery.attempt).await;
        if outcome != MessageOutcome::Retry || delivery.attempt >= state.config().mark_max_receives
        {
            continue;
        }
        let Some(queue) = queue.upgrade() else { return };
        // Redeliver later, like a visibility timeout, without blocking other pages.
        let backoff = Duration::from_millis(50 * 2u64.pow(delivery.attempt.min(6)));
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            let _ = queue.sender.send(Delivery {
                body: delivery.body,
                attempt: delivery.attempt + 1,
            });
        });
    }
}

#[async_trait]
impl MarkingQueue for InProcessQueue {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> QueueResult<()> {
        for message in messages {
            let body = serde_json::to_string(&message).map_err(QueueError::Encode)?;
            self.sender
                .send(Delivery { body, attempt: 1 })
                .map_err(|_| QueueError::Stopped)?;
        }
        Ok(())
    }
}
