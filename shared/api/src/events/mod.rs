//! Lifecycle events: sending what the outbox says is still to be sent.
//!
//! Every plan change writes its plan's outbox entry in the same atomic write
//! as the change (the store's contract), and the plan's own history holds what
//! happened. Sending is therefore a separate, repeatable step: read the entry,
//! read the plan's header, send the events after the entry's `published`
//! revision ([`planning::events::unpublished`]), then settle the entry. A
//! process that dies anywhere in between leaves the entry, and the next pass
//! sends again — at least once; consumers drop repeats by `event_id`.
//!
//! Two passes run it: right after whoever changed a plan — an operator's call,
//! a reconcile or outcome report that made a guard halt, the marking worker
//! whose page ended a walk ([`announce`], bounded in time, never failing the
//! call) — and the periodic sweep ([`publish_pending`]) for everything else:
//! the drains, the changes no one announces, and whatever a failed send left.

#[cfg(feature = "eventbridge")]
pub mod eventbridge;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use planning::PlanStatus;
use planning::events::{EventCounters, LifecycleEvent, drained, has_drained, unpublished};
use store::{OutboxEntry, Store, StoreError};
use uuid::Uuid;

/// Events per send: EventBridge takes at most ten entries per `PutEvents`.
pub const EVENTS_PER_SEND: usize = 10;
/// How long an operator's call waits for its plan's events before answering
/// anyway (the sweep sends what did not go).
pub const ANNOUNCE_BUDGET: Duration = Duration::from_secs(2);
/// Outbox entries one sweep reads (ids and two numbers each).
pub const OUTBOX_READ_LIMIT: usize = 10_000;
/// Deployed plans waiting for their drain that one sweep checks (their header
/// and counters), in a window that moves on each sweep: every one is checked
/// within `waiting / DRAIN_CHECKS_PER_SWEEP` sweeps, and they never hold up
/// the plans with events owed.
pub const DRAIN_CHECKS_PER_SWEEP: usize = 200;

/// Where events go: EventBridge on AWS and in `migrations serve` when a bus is
/// configured; a recording sink in tests.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Send `events` (at most [`EVENTS_PER_SEND`], in order). `Ok` only when
    /// every one was accepted; on an error any of them may have been.
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), SendError>;
}

#[derive(Debug, thiserror::Error)]
#[error("lifecycle events not sent: {0}")]
pub struct SendError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PublishReport {
    pub events_sent: u64,
    /// Entries settled as finished: everything of the plan sent and nothing to
    /// wait for (removed unless the plan changed meanwhile).
    pub entries_settled: u64,
    /// Entries whose events could not be sent now (left for the next pass).
    pub entries_failed: u64,
}

/// The events of one plan's changes, right after whoever made them:
/// at most [`ANNOUNCE_BUDGET`], and a failure is logged, never returned — the
/// change is stored and the sweep sends what did not go.
pub async fn announce(
    store: &dyn Store,
    sink: Option<&dyn EventSink>,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
) {
    let Some(sink) = sink else { return };
    let pass = async {
        match store.get_outbox(tenant, plan_id).await? {
            Some(entry) => publish_entry(store, sink, &entry, now).await.map(Some),
            None => Ok(None),
        }
    };
    match tokio::time::timeout(ANNOUNCE_BUDGET, pass).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            crate::metrics::lifecycle_events_failed();
            tracing::warn!(%error, %plan_id, "lifecycle events left for the sweep");
        }
        Err(_) => {
            crate::metrics::lifecycle_events_failed();
            tracing::warn!(%plan_id, "lifecycle events not sent in time; left for the sweep");
        }
    }
}

/// One pass over the outbox, for the periodic sweep. Without a sink (no bus
/// configured) the entries are settled unsent, so that they do not pile up.
pub async fn publish_pending(
    store: &dyn Store,
    sink: Option<&dyn EventSink>,
    now: DateTime<Utc>,
) -> Result<PublishReport, StoreError> {
    let mut report = PublishReport::default();
    let entries = store.list_outbox(OUTBOX_READ_LIMIT).await?;
    let (owed, waiting): (Vec<OutboxEntry>, Vec<OutboxEntry>) =
        entries.into_iter().partition(|e| e.revision > e.published);
    let checked = drain_window(&waiting, now);
    for entry in owed.iter().chain(checked) {
        let Some(sink) = sink else {
            store.settle_outbox(entry, entry.revision, true).await?;
            report.entries_settled += 1;
            continue;
        };
        match publish_entry(store, sink, entry, now).await {
            Ok(done) => {
                report.events_sent += done.events_sent;
                report.entries_settled += done.entries_settled;
            }
            Err(error) => {
                crate::metrics::lifecycle_events_failed();
                report.entries_failed += 1;
                tracing::warn!(%error, plan_id = %entry.plan_id, "lifecycle events not sent; retried next sweep");
            }
        }
    }
    Ok(report)
}

/// The waiting entries this sweep checks: [`DRAIN_CHECKS_PER_SWEEP`] of them
/// from an offset that moves with the minute, wrapping around.
fn drain_window(waiting: &[OutboxEntry], now: DateTime<Utc>) -> impl Iterator<Item = &OutboxEntry> {
    let take = waiting.len().min(DRAIN_CHECKS_PER_SWEEP);
    let minute = usize::try_from(now.timestamp().div_euclid(60)).unwrap_or_default();
    let start = if waiting.is_empty() {
        0
    } else {
        minute.wrapping_mul(DRAIN_CHECKS_PER_SWEEP) % waiting.len()
    };
    waiting.iter().cycle().skip(start).take(take)
}

/// Send what `entry`'s plan has not sent yet, then settle the entry: removed
/// unless the plan is deployed with sessions still to migrate (its drain is
/// still to come) or changed since `entry` was read.
async fn publish_entry(
    store: &dyn Store,
    sink: &dyn EventSink,
    entry: &OutboxEntry,
    now: DateTime<Utc>,
) -> Result<PublishReport, PublishError> {
    let Some(plan) = store.get_plan_header(entry.tenant, entry.plan_id).await? else {
        // Its retention ran out: nothing left to say.
        store.settle_outbox(entry, entry.revision, true).await?;
        return Ok(PublishReport {
            entries_settled: 1,
            ..PublishReport::default()
        });
    };
    let stats = store.get_plan_counters(entry.tenant, entry.plan_id).await?;
    let counters = EventCounters {
        sessions_marked: stats.sessions_marked,
        migrations_applied: stats.flagged_applied,
        migrations_pending: stats.migrations_pending(),
        flags_withdrawn: stats.flags_withdrawn,
    };
    let mut events = unpublished(&plan, entry.published, counters);
    let drained_now = has_drained(&plan, counters);
    if drained_now {
        events.push(drained(&plan, counters, now));
    }
    for batch in events.chunks(EVENTS_PER_SEND) {
        sink.send(batch).await?;
        crate::metrics::lifecycle_events_sent(batch.len() as u64);
    }
    // A deployed plan waits for its drain; anything else has said all it will
    // until its next change, which writes a new entry.
    let waits_for_drain = plan.status == PlanStatus::Deployed && !drained_now;
    store
        .settle_outbox(entry, plan.revision.max(entry.revision), !waits_for_drain)
        .await?;
    Ok(PublishReport {
        events_sent: events.len() as u64,
        entries_settled: u64::from(!waits_for_drain),
        entries_failed: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(n: u128) -> Vec<OutboxEntry> {
        (0..n)
            .map(|i| OutboxEntry {
                tenant: Uuid::from_u128(1),
                plan_id: Uuid::from_u128(i),
                revision: 4,
                published: 4,
            })
            .collect()
    }

    fn checked(entries: &[OutboxEntry], minute: i64) -> Vec<u128> {
        let now = DateTime::from_timestamp(minute * 60, 0).unwrap();
        drain_window(entries, now)
            .map(|e| e.plan_id.as_u128())
            .collect()
    }

    #[test]
    fn every_waiting_plan_is_checked_within_a_few_sweeps_and_none_twice_in_one() {
        let entries = waiting(450);
        let mut seen = std::collections::BTreeSet::new();
        for minute in 1_000..1_003 {
            let window = checked(&entries, minute);
            assert_eq!(window.len(), DRAIN_CHECKS_PER_SWEEP);
            let distinct: std::collections::BTreeSet<u128> = window.iter().copied().collect();
            assert_eq!(distinct.len(), window.len(), "no plan twice in one sweep");
            seen.extend(window);
        }
        assert_eq!(seen.len(), 450, "three sweeps of 200 cover 450");
        // Fewer than a window: all of them, each once.
        assert_eq!(checked(&waiting(3), 7).len(), 3);
        assert!(checked(&[], 7).is_empty());
    }
}
