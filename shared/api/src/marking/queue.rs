//! Where fan-out marking messages go (SQS on AWS, an in-process queue locally),
//! and how sending them fails.

use async_trait::async_trait;

use super::MarkMessage;

/// Why a marking message could not be queued. The SDK's error stays the
/// `source`, so a log line shows the whole chain; callers decide on
/// [`QueueError::is_retryable`], never on the text.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue asked us to slow down; sending again later is safe.
    #[error("the marking queue throttled the send")]
    Throttled(#[source] BoxError),
    /// The queue could not be reached or failed (network, timeout, a 5xx).
    #[error("the marking queue is unavailable")]
    Unavailable(#[source] BoxError),
    /// The queue accepted the batch but refused some of its entries.
    #[error("the marking queue refused {refused} of the messages")]
    Refused { refused: usize },
    /// The queue rejected the request itself (missing queue, bad credentials,
    /// an invalid request): sending again does not help.
    #[error("the marking queue rejected the send")]
    Rejected(#[source] BoxError),
    /// A message that cannot be encoded (a bug).
    #[error("could not encode a marking message")]
    Encode(#[source] serde_json::Error),
    /// The in-process queue's worker is gone (the process is shutting down).
    #[error("the marking worker stopped")]
    Stopped,
    /// A continuation was due but this process has no queue configured.
    #[error("no marking queue is configured for continuations")]
    NotConfigured,
}

/// An SDK or transport error kept as the source of a [`QueueError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl QueueError {
    /// Whether the same send may succeed later: throttling, an outage, refused
    /// entries (SQS refuses entries for transient reasons) and a stopping worker.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Throttled(_)
                | QueueError::Unavailable(_)
                | QueueError::Refused { .. }
                | QueueError::Stopped
        )
    }
}

pub type QueueResult<T> = Result<T, QueueError>;

/// Where fan-out messages go: SQS on AWS, an in-process queue locally.
#[async_trait]
pub trait MarkingQueue: Send + Sync {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> QueueResult<()>;
}
