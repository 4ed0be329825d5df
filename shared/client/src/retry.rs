//! The retry policy: exponential backoff with jitter (backon), bounded by a
//! deadline on the whole call, for failures that may pass (see
//! [`Error::is_retryable`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use tokio::time::Instant;

use crate::error::Error;

/// How a retried call waits and when it gives up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The first wait; each next one doubles, with full jitter.
    pub initial_delay: Duration,
    /// No single wait is longer.
    pub max_delay: Duration,
    /// The whole call — attempts and waits — ends by then. A runtime answers a
    /// customer: better a clear failure after a few seconds than a turn that hangs.
    pub deadline: Duration,
    /// Attempts at most, the first included.
    pub max_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry (within the deadline all the same).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    fn backoff(&self) -> impl BackoffBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }

    /// Run `attempt` (given the time left before the deadline) until it
    /// succeeds, fails with an error that is not retryable, runs out of
    /// attempts, or the deadline passes — then the last error, wrapped in
    /// [`Error::DeadlineExceeded`] when the deadline is what stopped it. An
    /// attempt the deadline cut before its answer came does not count as the
    /// last error when an earlier attempt got one.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        attempt: F,
    ) -> Result<T, Error>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let until = Instant::now() + self.deadline;
        let left = move || until.saturating_duration_since(Instant::now());
        // Set when the deadline, not the number of attempts, ended the retries.
        let out_of_time = AtomicBool::new(false);
        // The last error answer: when the deadline cuts an attempt still in
        // flight, that answer says more ("503: down") than "no answer".
        let last_answer: &Mutex<Option<Error>> = &Mutex::new(None);
        let attempt = &attempt;
        let result = (move || async move {
            let remaining = left();
            let outcome = match tokio::time::timeout(remaining, attempt(remaining)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Error::Unexpected {
                    operation,
                    message: format!("no answer within the deadline of {:?}", self.deadline),
                }),
            };
            match outcome {
                Err(answer) if answer.status().is_some() => {
                    *lock(last_answer) = answer.copy_of_status();
                    Err(answer)
                }
                // No answer, and no time left: the deadline cut this attempt
                // (reqwest's own timeout or ours, whichever fired first). That
                // no time is left also makes the result a deadline error below.
                Err(no_answer) if left().is_zero() => {
                    Err(lock(last_answer).take().unwrap_or(no_answer))
                }
                other => other,
            }
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &Error| e.is_retryable())
        // A server that says when to come back (429, 503) knows better than the
        // backoff; either way no wait runs past the deadline.
        .adjust(|e: &Error, planned: Option<Duration>| {
            let planned = planned?;
            let wait = e.retry_after().map_or(planned, |after| after.max(planned));
            if wait >= left() {
                out_of_time.store(true, Ordering::Relaxed);
                None
            } else {
                Some(wait)
            }
        })
        .await;
        match result {
            Err(e) if out_of_time.load(Ordering::Relaxed) || left().is_zero() => {
                Err(Error::DeadlineExceeded {
                    operation,
                    deadline: self.deadline,
                    last: Box::new(e),
                })
            }
            other => other,
        }
    }
}

/// The slot holds a plain value, so a panic elsewhere cannot leave it half-written.
fn lock<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
