//! What happened to one queue message, and what this process's worker did
//! with all of its messages. A leaf: the worker, the recounts and the shared
//! state all use it, and it uses none of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Marked and recorded (or already recorded, or its plan has finished
    /// deploying meanwhile): delete the message.
    Done,
    /// Not a marking message at all: retrying cannot help, so it is dropped
    /// (and logged) instead of cycling to the dead-letter queue.
    Malformed,
    /// A permanent failure (its plan is gone, its cursor was never issued):
    /// dropped (logged, counted), not redelivered.
    Dropped,
    /// Failed; the queue should redeliver it.
    Retry,
}

/// What this process's worker did with the messages it handled, for the
/// batch log line and for tests.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    done: AtomicU64,
    malformed: AtomicU64,
    dropped: AtomicU64,
    pub(crate) finished: AtomicU64,
    retried: AtomicU64,
}

/// A snapshot of [`WorkerCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Marked and recorded (or already recorded).
    pub done: u64,
    /// Not a marking or recount message: deleted.
    pub malformed: u64,
    /// A permanent failure: deleted.
    pub dropped: u64,
    /// The plan no longer deploys: deleted (included in `done`).
    pub finished: u64,
    /// Left for redelivery.
    pub retried: u64,
}

impl WorkerCounters {
    pub(crate) fn count(&self, outcome: &MessageOutcome) {
        let counter = match outcome {
            MessageOutcome::Done => &self.done,
            MessageOutcome::Malformed => &self.malformed,
            MessageOutcome::Dropped => &self.dropped,
            MessageOutcome::Retry => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WorkerCounts {
        WorkerCounts {
            done: self.done.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}
