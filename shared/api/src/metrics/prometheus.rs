//! `migrations serve`: the metrics as Prometheus text at `GET /metrics`, rendered
//! by `metrics-exporter-prometheus` (without its own HTTP listener: the route is
//! served by the serve router, behind its limits). Names get the
//! [`PROMETHEUS_PREFIX`](super::PROMETHEUS_PREFIX) and Prometheus's suffixes:
//! `reconciles` is `focal_migrations_reconciles_total`, `reconcile_duration`
//! (seconds) `focal_migrations_reconcile_duration_seconds_{bucket,sum,count}`.
//! Feature `local` only: no Lambda links this exporter.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
/// What renders the text (the crate's type, so that callers need not depend on it).
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use super::{Kind, METRICS, PROMETHEUS_PREFIX};

/// The route of the scrape.
pub const PATH: &str = "/metrics";

/// A recorder that puts [`PROMETHEUS_PREFIX`] before every name it is given,
/// so that the code names a metric once (`reconciles`) for both exporters.
#[derive(Debug)]
pub struct Prefixed<R>(R);

fn prefixed(name: &str) -> String {
    format!("{PROMETHEUS_PREFIX}{name}")
}

fn prefixed_key(key: &Key) -> Key {
    Key::from_parts(
        prefixed(key.name()),
        key.labels().cloned().collect::<Vec<_>>(),
    )
}

impl<R: Recorder> Recorder for Prefixed<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .describe_counter(prefixed(key.as_str()).into(), unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .describe_gauge(prefixed(key.as_str()).into(), unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .describe_histogram(prefixed(key.as_str()).into(), unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(&prefixed_key(key), metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(&prefixed_key(key), metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(&prefixed_key(key), metadata)
    }
}

/// A recorder and the handle that renders what it holds, not installed: tests
/// make it their thread's recorder (`metrics::set_default_local_recorder`).
pub fn recorder() -> (Prefixed<PrometheusRecorder>, PrometheusHandle) {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for m in METRICS.iter().filter(|m| m.kind == Kind::Histogram) {
        // Histograms with buckets (not summaries): quantiles can then be taken
        // across processes, and rendering needs no upkeep task.
        builder = builder
            .set_buckets_for_metric(Matcher::Full(prefixed(m.name)), m.buckets)
            .expect("the buckets of METRICS are not empty");
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    (Prefixed(recorder), handle)
}

/// Install the Prometheus recorder as this process's recorder, with the units
/// and help texts; `Err` when the process already has one.
pub fn install() -> Result<PrometheusHandle, String> {
    let (recorder, handle) = recorder();
    metrics::set_global_recorder(recorder)
        .map_err(|_| "a metrics recorder is already installed".to_string())?;
    super::describe();
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text exposition. Needs no tenant and is not
/// part of the tenant API's OpenAPI document: it is the process's own state.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        PATH,
        get(move || {
            let text = handle.render();
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response() }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_suffixed() {
        let (recorder, handle) = recorder();
        metrics::with_local_recorder(&recorder, || {
            super::super::describe();
            super::super::page_recorded(3, 0);
            super::super::stream_lag(2.0);
        });
        let text = handle.render();
        assert!(
            text.contains("focal_migrations_marking_pages_total{outcome=\"recorded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("focal_migrations_sessions_marked_total 3"),
            "{text}"
        );
        assert!(
            text.contains("focal_migrations_session_count_stream_lag_seconds_bucket{le=\"2.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# HELP focal_migrations_sessions_marked_total "),
            "{text}"
        );
    }
}
