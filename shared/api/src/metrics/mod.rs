//! The product's metrics: the one list of what is measured ([`METRICS`]), the
//! helpers the code calls (one line at each instrumentation point), and the two
//! exporters — CloudWatch Embedded Metric Format lines on Lambda ([`emf`]) and
//! Prometheus text at `GET /metrics` of `migrations serve` ([`prometheus`],
//! feature `local`, never in a Lambda). docs/observability.md describes them.
//!
//! The `metrics` crate is the facade: with no recorder installed (unit tests,
//! tools) every call here is a no-op. No label carries tenant data: labels are
//! the reconcile action and migration scenario, a marking page's outcome, the
//! HTTP route *template*, method and status class — a bounded set of values.
//!
//! A leaf: it uses `planning`'s types and axum's, no other module of this crate.

pub mod emf;
pub mod http;
#[cfg(feature = "local")]
pub mod prometheus;

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::Unit;
use planning::{MigrationScenario, ReconciliationAction, ReconciliationResult};

/// The CloudWatch namespace of the EMF lines.
pub const NAMESPACE: &str = "FocalMigrations";
/// What the Prometheus exporter puts before every name (`focal_migrations_reconciles_total`).
pub const PROMETHEUS_PREFIX: &str = "focal_migrations_";

/// Reconciles answered (dry runs excluded), by `action` and `scenario`.
pub const RECONCILES: &str = "reconciles";
/// Seconds a reconcile took in its handler (the service call), dry runs excluded.
pub const RECONCILE_DURATION: &str = "reconcile_duration";
/// Reconciles that left a session where it was because a checkpoint forbade moving it back.
pub const CHECKPOINT_BLOCKS: &str = "checkpoint_blocks";
/// Sessions flagged `pending_migration`, counted when their page is recorded in the ledger.
pub const SESSIONS_MARKED: &str = "sessions_marked";
/// Marking pages by `outcome`: `recorded` (in the ledger, once per page),
/// `failed` (its last delivery failed), `resumed` (a stalled chain taken over at its page).
pub const MARKING_PAGES: &str = "marking_pages";
/// The values of [`MARKING_PAGES`]'s `outcome` label.
pub const PAGE_OUTCOMES: [&str; 3] = [PAGE_RECORDED, PAGE_FAILED, PAGE_RESUMED];
const PAGE_RECORDED: &str = "recorded";
const PAGE_FAILED: &str = "failed";
const PAGE_RESUMED: &str = "resumed";
/// Flags withdrawn from sessions by a withdrawal walk, counted when their page is recorded.
pub const FLAGS_WITHDRAWN: &str = "flags_withdrawn";
/// Rollouts halted by their guard: one per halt (the one conditional write that
/// stops the plan), whatever the number of reconciles or reports that crossed it.
pub const ROLLOUTS_HALTED: &str = "rollouts_halted";
/// Seconds plan generation took (diff, plan, counts, store), successful plans only.
pub const PLAN_GENERATION_DURATION: &str = "plan_generation_duration";
/// Lifecycle events by `outcome`: `sent` (accepted by the bus) or `failed` (a
/// pass that could not send a plan's events; the next sweep sends them).
pub const LIFECYCLE_EVENTS: &str = "lifecycle_events";
/// The values of [`LIFECYCLE_EVENTS`]'s `outcome` label.
pub const LIFECYCLE_OUTCOMES: [&str; 2] = [EVENTS_SENT, EVENTS_FAILED];
const EVENTS_SENT: &str = "sent";
const EVENTS_FAILED: &str = "failed";
/// HTTP responses by `route` (the matched template), `method` and `status` (2xx, 4xx, 5xx…).
pub const HTTP_RESPONSES: &str = "http_responses";
/// Seconds between a sessions-table change and the session counts taking it in
/// (the last record of each stream batch the count-sessions function applies).
pub const STREAM_LAG: &str = "session_count_stream_lag";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
}

/// One metric: its name (without the Prometheus prefix and suffixes), kind,
/// unit, label names and the Prometheus buckets of a histogram.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub buckets: &'static [f64],
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const PLAN_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const LAG_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        unit: Unit::Count,
        labels,
        help,
        buckets: &[],
    }
}

const fn seconds(name: &'static str, help: &'static str, buckets: &'static [f64]) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        labels: &[],
        help,
        buckets,
    }
}

/// Everything the code emits. The template test compares the dashboard and the
/// alarms of `infra/template.yaml` with these names; docs/observability.md lists them.
pub const METRICS: &[Metric] = &[
    counter(
        RECONCILES,
        &["action", "scenario"],
        "Reconciles answered (dry runs excluded), by action and migration scenario",
    ),
    seconds(
        RECONCILE_DURATION,
        "Seconds a reconcile took (dry runs excluded)",
        LATENCY_BUCKETS,
    ),
    counter(CHECKPOINT_BLOCKS, &[], "Reconciles blocked by a checkpoint"),
    counter(
        SESSIONS_MARKED,
        &[],
        "Sessions flagged for migration (counted with their recorded page)",
    ),
    counter(
        MARKING_PAGES,
        &["outcome"],
        "Marking pages: recorded, failed (last delivery), resumed (stalled chain taken over)",
    ),
    counter(
        FLAGS_WITHDRAWN,
        &[],
        "Migration flags withdrawn from sessions",
    ),
    counter(
        ROLLOUTS_HALTED,
        &[],
        "Rollouts halted by their guard (one per halt)",
    ),
    seconds(
        PLAN_GENERATION_DURATION,
        "Seconds plan generation took (successful plans)",
        PLAN_BUCKETS,
    ),
    counter(
        LIFECYCLE_EVENTS,
        &["outcome"],
        "Lifecycle events: sent (accepted by the bus), failed (a plan's events left for the next sweep)",
    ),
    counter(
        HTTP_RESPONSES,
        &["route", "method", "status"],
        "HTTP responses by route template, method and status class",
    ),
    seconds(
        STREAM_LAG,
        "Seconds from a sessions-table change to its session count (last record of each stream batch)",
        LAG_BUCKETS,
    ),
];

/// Units and help texts, for the recorder installed in this thread or process
/// (the EMF lines carry the unit; the Prometheus text the `# HELP` line).
pub fn describe() {
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

fn action_label(action: ReconciliationAction) -> &'static str {
    match action {
        ReconciliationAction::Continue => "continue",
        ReconciliationAction::Teleport => "teleport",
        ReconciliationAction::Collect => "collect",
        ReconciliationAction::ExecuteAction => "execute_action",
        ReconciliationAction::ExitScenario => "exit_scenario",
    }
}

fn scenario_label(scenario: Option<MigrationScenario>) -> &'static str {
    // `none`: no migration applied (nothing pending, out of scope, paused…).
    scenario.map_or("none", MigrationScenario::as_str)
}

/// Times one reconcile in its handler: [`ReconcileTimer::finish`] with the
/// answer counts it by action and scenario; a dry run (a preview) counts nothing.
#[derive(Debug)]
pub struct ReconcileTimer {
    started: Instant,
    dry_run: bool,
}

impl ReconcileTimer {
    pub fn start(dry_run: bool) -> Self {
        ReconcileTimer {
            started: Instant::now(),
            dry_run,
        }
    }

    pub fn finish(self, result: &ReconciliationResult) {
        if !self.dry_run {
            reconciled(result, self.started.elapsed());
        }
    }
}

/// One reconcile answered `result` after `took`.
pub fn reconciled(result: &ReconciliationResult, took: Duration) {
    metrics::counter!(
        RECONCILES,
        "action" => action_label(result.action),
        "scenario" => scenario_label(result.migration_scenario),
    )
    .increment(1);
    metrics::histogram!(RECONCILE_DURATION).record(took.as_secs_f64());
    if result.blocked_by_checkpoint {
        metrics::counter!(CHECKPOINT_BLOCKS).increment(1);
    }
}

/// Awaits a plan generation and records its time when it succeeded (a refused
/// request says nothing about how long planning takes).
pub async fn plan_generation<T, E>(generate: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let generated = generate.await;
    if generated.is_ok() {
        metrics::histogram!(PLAN_GENERATION_DURATION).record(started.elapsed().as_secs_f64());
    }
    generated
}

/// A page of a marking or withdrawal walk recorded in the ledger (exactly once
/// per page, however many deliveries walked it), with the sessions it flagged
/// and the flags it withdrew.
pub fn page_recorded(sessions_marked: u64, flags_withdrawn: u64) {
    metrics::counter!(MARKING_PAGES, "outcome" => PAGE_RECORDED).increment(1);
    metrics::counter!(SESSIONS_MARKED).increment(sessions_marked);
    if flags_withdrawn > 0 {
        self::flags_withdrawn(flags_withdrawn);
    }
}

/// A marking page whose last allowed delivery failed (it goes to the dead-letter queue).
pub fn page_failed() {
    metrics::counter!(MARKING_PAGES, "outcome" => PAGE_FAILED).increment(1);
}

/// A stalled marking chain taken over at its next page (by a deploy call or the sweep).
pub fn page_resumed() {
    metrics::counter!(MARKING_PAGES, "outcome" => PAGE_RESUMED).increment(1);
}

/// `n` migration flags withdrawn from sessions (the ledger calls it for each
/// recorded withdrawal page; a second call for the same page would count twice).
pub fn flags_withdrawn(n: u64) {
    metrics::counter!(FLAGS_WITHDRAWN).increment(n);
}

/// A rollout halted by its guard (called by the one write that halted it).
pub fn rollout_halted() {
    metrics::counter!(ROLLOUTS_HALTED).increment(1);
}

/// `n` lifecycle events the bus accepted.
pub fn lifecycle_events_sent(n: u64) {
    metrics::counter!(LIFECYCLE_EVENTS, "outcome" => EVENTS_SENT).increment(n);
}

/// A pass that could not send a plan's events (counted once per plan and pass).
pub fn lifecycle_events_failed() {
    metrics::counter!(LIFECYCLE_EVENTS, "outcome" => EVENTS_FAILED).increment(1);
}

/// How far behind the sessions table the session counts are: `seconds` between
/// a stream record's (approximate) creation and its batch being applied.
pub fn stream_lag(seconds: f64) {
    metrics::histogram!(STREAM_LAG).record(seconds.max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit_both_exporters() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a name is listed twice");
        for m in METRICS {
            // Prometheus: [a-z_]; CloudWatch: at most 255 characters.
            assert!(
                m.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                m.name
            );
            assert!(PROMETHEUS_PREFIX.len() + m.name.len() + "_seconds_bucket".len() <= 255);
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        }
    }

    #[test]
    fn every_action_and_scenario_has_its_wire_name() {
        // The labels read like the API's JSON (`"action": "execute_action"`).
        for action in [
            ReconciliationAction::Continue,
            ReconciliationAction::Teleport,
            ReconciliationAction::Collect,
            ReconciliationAction::ExecuteAction,
            ReconciliationAction::ExitScenario,
        ] {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action_label(action))
            );
        }
        assert_eq!(scenario_label(Some(MigrationScenario::GapFill)), "gap_fill");
        assert_eq!(scenario_label(None), "none");
    }
}
