//! A connection's clock: the phase of its request/response cycle it is in and
//! since when. The connection's watchdog reads it, and the request bounds move
//! it on (a request starts, its response ends); a leaf both use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// Past its request timeout a request is answered 408 by the request bounds;
/// the watchdog closes the connection only if even that does not happen this
/// much later (a client that does not read its response, say).
const REQUEST_SLACK: Duration = Duration::from_secs(5);

/// Where a connection is in its request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for a request head: from the accept, or from the first byte of a
    /// later request.
    Head,
    /// A request is being served (body, slot, handler, response head).
    Request,
    /// Keep-alive: the last response is out, no byte of the next request yet.
    Idle,
}

impl Limits {
    /// How long a connection may stay in `phase`.
    fn allowance(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Head => self.header,
            Phase::Request => self.request + REQUEST_SLACK,
            Phase::Idle => self.idle,
        }
    }
}

/// The phase a connection is in and since when; the watchdog's clock.
pub(super) struct Clock {
    pub(super) state: Mutex<(Phase, Instant)>,
    pub(super) changed: Notify,
    /// Set at the connection cap and at shutdown; honoured unless a request is in flight.
    pub(super) evicted: AtomicBool,
}

impl Clock {
    pub(super) fn new() -> Self {
        Clock {
            state: Mutex::new((Phase::Head, Instant::now())),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, (Phase, Instant)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn enter(&self, phase: Phase) {
        let mut state = self.state();
        if state.0 != phase {
            *state = (phase, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on an idle connection, a new request head has begun.
    pub(super) fn on_read(&self) {
        let mut state = self.state();
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Since when the connection has been waiting for a request (idle, or in the
    /// middle of a head); `None` while it serves one or once it is being evicted.
    pub(super) fn waiting_since(&self) -> Option<Instant> {
        let (phase, since) = *self.state();
        (phase != Phase::Request && !self.evicted.load(Ordering::Relaxed)).then_some(since)
    }

    pub(super) fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub(super) fn deadline(&self, limits: &Limits) -> (Phase, Instant) {
        let (phase, since) = *self.state();
        (phase, since + limits.allowance(phase))
    }
}
