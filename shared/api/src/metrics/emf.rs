//! On Lambda: the metrics as CloudWatch Embedded Metric Format (EMF) lines on
//! stdout, which CloudWatch Logs turns into metrics of the namespace
//! [`NAMESPACE`](super::NAMESPACE) — no CloudWatch API call, nothing on the
//! request's path but atomic adds. `metrics_cloudwatch_embedded` is the
//! recorder; [`flush`] runs after every invocation (HTTP: [`flush_after`];
//! the SQS and stream functions call it after their batch), so a warm function
//! never holds more than one invocation's values. Each distinct label set is one
//! JSON line whose labels are its CloudWatch dimensions.

use std::io::Write;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_cloudwatch_embedded::{Builder, Collector};

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Install the EMF recorder as this process's recorder (once per cold start;
/// a second call does nothing). A process that already has another recorder
/// keeps it, with a warning.
pub fn install() {
    if COLLECTOR.get().is_some() {
        return;
    }
    match Builder::new().cloudwatch_namespace(super::NAMESPACE).init() {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
            super::describe();
        }
        Err(error) => tracing::warn!(%error, "metrics: the EMF recorder was not installed"),
    }
}

/// What was recorded since the last flush, as EMF lines (empty when nothing was,
/// or when no EMF recorder is installed).
pub fn take_lines() -> Vec<u8> {
    let mut lines = Vec::new();
    if let Some(collector) = COLLECTOR.get()
        && let Err(error) = collector.flush(&mut lines)
    {
        tracing::warn!(%error, "metrics: EMF flush failed");
    }
    lines
}

/// Write what was recorded since the last flush to stdout, in one write so that
/// no log line lands inside a metrics document.
pub fn flush() {
    let lines = take_lines();
    if !lines.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&lines).and_then(|()| out.flush());
    }
}

/// Middleware of the HTTP functions: one invocation is one request, so the
/// metrics are flushed once its response is ready.
pub async fn flush_after(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    flush();
    response
}

/// `router` with [`flush_after`] as its outermost layer.
pub fn flush_each(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(flush_after))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use planning::{MigrationScenario, ReconciliationAction, ReconciliationResult};
    use serde_json::Value;

    /// Set in the child process that installs the recorder: the EMF recorder is
    /// process-global, so the test runs it alone in a process of its own.
    const CHILD: &str = "FOCAL_EMF_SHAPE_CHILD";
    const MARK: &str = "EMF-LINE ";

    #[test]
    fn emf_lines_carry_namespace_dimensions_units_and_values() {
        if std::env::var_os(CHILD).is_some() {
            super::install();
            let mut result = ReconciliationResult::continue_with("test");
            result.action = ReconciliationAction::Collect;
            result.migration_scenario = Some(MigrationScenario::GapFill);
            super::super::reconciled(&result, Duration::from_millis(20));
            super::super::reconciled(&result, Duration::from_millis(40));
            super::super::page_recorded(7, 0);
            let lines = String::from_utf8(super::take_lines()).unwrap();
            for line in lines.lines() {
                println!("{MARK}{line}");
            }
            // A second flush has nothing new to say.
            assert!(super::take_lines().is_empty());
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "metrics::emf::tests::emf_lines_carry_namespace_dimensions_units_and_values",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run the child test");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "child failed: {stdout}");
        let docs: Vec<Value> = stdout
            .lines()
            // libtest may print "test … ... " on the same line, before the output.
            .filter_map(|l| l.find(MARK).map(|at| &l[at + MARK.len()..]))
            .map(|l| serde_json::from_str(l).expect("each EMF line is one JSON document"))
            .collect();
        let find = |metric: &str| {
            docs.iter()
                .find(|d| d.get(metric).is_some())
                .unwrap_or_else(|| panic!("no document has {metric}: {docs:?}"))
        };

        let reconciles = find("reconciles");
        let directive = &reconciles["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "FocalMigrations");
        assert!(reconciles["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let mut dimensions: Vec<&str> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        dimensions.sort_unstable();
        assert_eq!(dimensions, ["action", "scenario"]);
        assert_eq!(reconciles["action"], "collect");
        assert_eq!(reconciles["scenario"], "gap_fill");
        assert_eq!(reconciles["reconciles"], 2);
        let units: Vec<(&str, &str)> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert_eq!(units, [("reconciles", "Count")]);

        // The histogram: every value of the invocation, in seconds, no dimension.
        let latency = find("reconcile_duration");
        assert_eq!(
            latency["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            serde_json::json!([])
        );
        let unit_of = |doc: &Value, name: &str| {
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Name"] == name)
                .map(|m| m["Unit"].clone())
        };
        assert_eq!(
            unit_of(latency, "reconcile_duration"),
            Some("Seconds".into())
        );
        assert_eq!(
            latency["reconcile_duration"],
            serde_json::json!([0.02, 0.04])
        );

        assert_eq!(find("sessions_marked")["sessions_marked"], 7);
        let pages = find("marking_pages");
        assert_eq!(pages["outcome"], "recorded");
        assert_eq!(pages["marking_pages"], 1);
        // Nothing was checkpoint-blocked: a counter never touched is not emitted.
        assert!(docs.iter().all(|d| d.get("checkpoint_blocks").is_none()));
    }
}
