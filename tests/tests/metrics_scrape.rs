//! `GET /metrics` of `migrations serve`'s router, read before and after N
//! reconciles: every counter moves by exactly what was done, and no tenant,
//! plan, scenario or session id appears anywhere in the text.
//!
//! The recorder is this test's alone: it is the *thread's* default recorder
//! (`metrics::set_default_local_recorder`), and the test runs on a
//! current-thread runtime, so the server's tasks are polled on this thread and
//! record into it, while the other tests of this binary (on other threads) do
//! not reach it.

use std::collections::BTreeMap;

use crate::common::*;
use api::AppState;
use api::metrics::prometheus::PrometheusHandle;
use serde_json::json;
use uuid::Uuid;

/// The router `migrations serve` runs (shared/cli/src/serve): the API, the
/// console and the scrape route.
fn serve_app_router(state: &AppState, scrape: PrometheusHandle) -> axum::Router {
    api::routes::app_with(state.clone(), console::openapi)
        .merge(console::router(state.clone()))
        .merge(api::metrics::prometheus::router(scrape))
}

/// The samples of a Prometheus text exposition: (name, sorted labels) → value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let mut labels: Vec<(String, String)> = inner
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        samples.insert((name, labels), value.parse().expect("a number"));
    }
    samples
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples
        .get(&(name.to_string(), labels))
        .copied()
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> (String, Samples) {
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("text");
    let samples = parse(&text);
    (text, samples)
}

const RECONCILES: &str = "focal_migrations_reconciles_total";
const LATENCY_COUNT: &str = "focal_migrations_reconcile_duration_seconds_count";
const HTTP: &str = "focal_migrations_http_responses_total";
const RECONCILE_ROUTE: &str = "/sessions/{session_id}/reconcile";

#[tokio::test]
async fn reconciles_are_counted_exactly_and_no_id_reaches_the_scrape() {
    let (recorder, handle) = api::metrics::prometheus::recorder();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    api::metrics::describe();
    let Some(app) = app_scraped_by(handle).await else {
        return;
    };
    const N: usize = 12;
    let (
        first,
        Deployed {
            scenario,
            sessions,
            plan_id,
        },
    ) = deployed(&app, N).await;
    let (_, before) = scrape(&app).await;
    let plan_count = "focal_migrations_plan_generation_duration_seconds_count";
    assert_eq!(
        sample(&before, plan_count, &[]) - sample(&first, plan_count, &[]),
        1.0
    );
    assert_eq!(
        sample(&before, "focal_migrations_sessions_marked_total", &[]),
        N as f64,
        "the inline deploy marked every session once"
    );
    assert!(
        sample(
            &before,
            "focal_migrations_marking_pages_total",
            &[("outcome", "recorded")]
        ) >= 1.0
    );

    // Half the sessions already know the age (continue), half must collect it.
    for (i, id) in sessions.iter().enumerate() {
        let body = if i % 2 == 0 {
            json!({"known_fields": {"age": 34}})
        } else {
            json!({})
        };
        let reply = app
            .call("POST", &format!("/sessions/{id}/reconcile"), Some(body))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(
            reply.body["migration_scenario"], "gap_fill",
            "{:?}",
            reply.body
        );
    }
    // A preview and an unknown session: answered, but not reconciles.
    let preview = app
        .call(
            "POST",
            &format!("/sessions/{}/reconcile", sessions[0]),
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(preview.status, 200, "{:?}", preview.body);
    let missing = app
        .call("POST", "/sessions/nobody-here/reconcile", Some(json!({})))
        .await;
    assert_eq!(missing.status, 404);
    let (text, after) = scrape(&app).await;

    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let half = (N / 2) as f64;
    let continue_gap = [("action", "continue"), ("scenario", "gap_fill")];
    let collect_gap = [("action", "collect"), ("scenario", "gap_fill")];
    assert_eq!(grew(RECONCILES, &continue_gap), half, "{text}");
    assert_eq!(grew(RECONCILES, &collect_gap), half, "{text}");
    let all_reconciles: f64 = after
        .iter()
        .filter(|((name, _), _)| name == RECONCILES)
        .map(|(_, v)| v)
        .sum::<f64>()
        - before
            .iter()
            .filter(|((name, _), _)| name == RECONCILES)
            .map(|(_, v)| v)
            .sum::<f64>();
    assert_eq!(
        all_reconciles, N as f64,
        "no other action or scenario moved"
    );
    assert_eq!(grew(LATENCY_COUNT, &[]), N as f64);
    // The +Inf bucket holds every observation, as the count does.
    assert_eq!(
        grew(
            "focal_migrations_reconcile_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        N as f64
    );
    let route = |status| {
        [
            ("route", RECONCILE_ROUTE),
            ("method", "POST"),
            ("status", status),
        ]
    };
    assert_eq!(grew(HTTP, &route("2xx")), (N + 1) as f64, "{text}");
    assert_eq!(grew(HTTP, &route("4xx")), 1.0, "{text}");
    // Only the reconcile route moved between the two scrapes.
    let moved: Vec<_> = after
        .iter()
        .filter(|((name, labels), v)| {
            name == HTTP && before.get(&(name.clone(), labels.clone())) != Some(v)
        })
        .map(|((_, labels), _)| labels.clone())
        .collect();
    assert_eq!(moved.len(), 2, "{moved:?}");
    // Earlier requests are there under their route templates.
    for (route, method, count) in [
        ("/sessions/{session_id}", "PUT", N),
        ("/scenarios/{scenario_id}", "PUT", 1),
        ("/migration-plans/{plan_id}/deploy", "POST", 1),
    ] {
        let labels = [("route", route), ("method", method), ("status", "2xx")];
        assert_eq!(sample(&after, HTTP, &labels), count as f64, "{route}");
    }

    // No tenant data anywhere in the text: ids, or anything looking like one.
    let ids: Vec<String> = [app.tenant.to_string(), scenario.to_string(), plan_id]
        .into_iter()
        .chain(sessions.iter().cloned())
        .chain((1..=4).map(|n| step(n).to_string()))
        .collect();
    for id in &ids {
        assert!(!text.contains(id.as_str()), "{id} is in the scrape");
        assert!(
            !text.contains(&id.replace('-', "")),
            "{id} is in the scrape"
        );
    }
    for (_, labels) in after.keys() {
        for (key, value) in labels {
            assert!(
                [
                    "action", "scenario", "outcome", "route", "method", "status", "le"
                ]
                .contains(&key.as_str()),
                "unexpected label {key}"
            );
            if key == "route" {
                assert!(
                    value == api::metrics::http::UNMATCHED
                        || value.split('/').all(|part| {
                            part.is_empty()
                                || part.starts_with('{')
                                || part
                                    .bytes()
                                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'.')
                        }),
                    "a route label is not a template: {value}"
                );
            }
        }
    }
}

async fn serve_router_app(
    state: &AppState,
    dir: Option<tempfile::TempDir>,
    scrape: PrometheusHandle,
) -> TestApp {
    serve_router(state.clone(), dir, serve_app_router(state, scrape)).await
}

/// The serve router on a fresh embedded store, scraped through `scrape`.
async fn app_scraped_by(scrape: PrometheusHandle) -> Option<TestApp> {
    let (store, dir, _) = fresh_store_and_tables(Backend::Embedded).await?;
    let state = api::local_queue::InProcessQueue::attach(AppState::new(store, test_config()));
    Some(serve_router_app(&state, dir, scrape).await)
}

struct Deployed {
    scenario: Uuid,
    sessions: Vec<String>,
    plan_id: String,
}

/// V1 with `n` sessions waiting at "Collect email"; V2 inserts an age check
/// before it (every session migrates by gap_fill), planned, approved and
/// deployed inline. Returns the scrape taken before the plan, too.
async fn deployed(app: &TestApp, n: usize) -> (Samples, Deployed) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let sessions: Vec<String> = (0..n)
        .map(|_| format!("s{}", Uuid::new_v4().simple()))
        .collect();
    for id in &sessions {
        let reply = app
            .call(
                "PUT",
                &format!("/sessions/{id}"),
                Some(session_at(scenario, 1, step(2), "whatsapp")),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let (_, first) = scrape(app).await;
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"created_by": "ops@example.com", "new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    for action in ["approve", "deploy"] {
        let reply = app
            .call(
                "POST",
                &format!("/migration-plans/{plan_id}/{action}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{action}: {:?}", reply.body);
    }
    let deployed = Deployed {
        scenario,
        sessions,
        plan_id,
    };
    (first, deployed)
}

/// A withdrawal clears the flags reconcile has not applied: the counter grows
/// by exactly those, as the plan's own `flags_withdrawn` says.
#[tokio::test]
async fn withdrawn_flags_are_counted_exactly() {
    let (recorder, handle) = api::metrics::prometheus::recorder();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let Some(app) = app_scraped_by(handle).await else {
        return;
    };
    const N: usize = 9;
    const RECONCILED: usize = 4;
    let (_, deployed) = deployed(&app, N).await;
    // Migrated (the age is known, so nothing is left to collect): their flags are gone.
    for id in &deployed.sessions[..RECONCILED] {
        let reply = app
            .call(
                "POST",
                &format!("/sessions/{id}/reconcile"),
                Some(json!({"known_fields": {"age": 34}})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let (_, before) = scrape(&app).await;
    let plan_id = &deployed.plan_id;
    let reply = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/withdraw"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let status = deployment_status(&app, plan_id).await;
    assert_eq!(
        status["flags_withdrawn"],
        (N - RECONCILED) as u64,
        "{status}"
    );
    let (_, after) = scrape(&app).await;
    let name = "focal_migrations_flags_withdrawn_total";
    assert_eq!(
        sample(&after, name, &[]) - sample(&before, name, &[]),
        (N - RECONCILED) as f64
    );
    // Nothing was marked by the withdrawal's pages.
    let marked = "focal_migrations_sessions_marked_total";
    assert_eq!(sample(&after, marked, &[]), sample(&before, marked, &[]));
}

/// A guard crossed by six concurrent failure reports halts the rollout once:
/// `rollouts_halted` moves by exactly one.
#[tokio::test]
async fn a_halt_is_counted_once() {
    let (recorder, handle) = api::metrics::prometheus::recorder();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let Some(app) = app_scraped_by(handle).await else {
        return;
    };
    const N: usize = 6;
    let sessions: Vec<String> = (0..N).map(|i| format!("halt-{i}")).collect();
    let (_, plan_id) = approved_plan_with_sessions(&app, &sessions, 2, scenario_v2()).await;
    let guard = json!({"guard": {"max_reported_failure_rate": 0.5, "min_sessions": N}});
    let deployed = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(guard),
        )
        .await;
    assert_eq!(deployed.status, 200, "{:?}", deployed.body);
    for id in &sessions {
        let reply = app
            .call(
                "POST",
                &format!("/sessions/{id}/reconcile"),
                Some(json!({"known_fields": {"age": 34}})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let (_, before) = scrape(&app).await;
    // Every migrated session reported failed at once: the rate crosses 0.5
    // on the fourth report, and later ones find the plan halted.
    let paths: Vec<String> = sessions
        .iter()
        .map(|id| format!("/sessions/{id}/outcome"))
        .collect();
    let reports = paths.iter().map(|path| {
        app.call(
            "POST",
            path,
            Some(json!({"ok": false, "reason": "payment declined"})),
        )
    });
    for reply in futures::future::join_all(reports).await {
        assert!(reply.status < 300, "{:?}", reply.body);
    }
    let status = deployment_status(&app, &plan_id).await;
    assert_eq!(status["status"], "halted", "{status}");
    let (_, after) = scrape(&app).await;
    let name = "focal_migrations_rollouts_halted_total";
    assert_eq!(sample(&after, name, &[]) - sample(&before, name, &[]), 1.0);
}

/// A page that fails its last allowed delivery is counted `failed` once, and
/// every stalled chain a resume takes over `resumed` once: as many as the
/// plan's own `pages_failed` and `resumptions` say.
#[tokio::test]
async fn failed_pages_and_resumed_chains_are_counted_as_the_plan_counts_them() {
    use crate::fanout::deployment::{deploy, prepare, session_id, small_population, status};
    use crate::fanout::rig::{Faults, manual_fixture};
    use api::worker::MessageOutcome;

    let (recorder, handle) = api::metrics::prometheus::recorder();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let Some(fx) = manual_fixture(Backend::Embedded, Faults::default()).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let plan_id = deployment.plan_id.as_str();
    let reply = deploy(&fx.app, plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let before = parse(&handle.render());

    // Every chain's first page, each on its last allowed delivery; the page
    // holding s1-00000 fails.
    fx.faults.set_poison(Some(&session_id(1, 0)));
    let last = fx.app.state.config().mark_max_receives;
    let mut retried = 0;
    for message in manual.take().await {
        let body = serde_json::to_string(&message).expect("message json");
        if api::worker::process_body(&fx.app.state, &body, last).await == MessageOutcome::Retry {
            retried += 1;
        }
    }
    assert_eq!(retried, 1);
    let st = status(&fx.app, plan_id).await;
    assert_eq!(st["pages_failed"], 1, "{st}");
    assert_eq!(st["resumptions"], 0, "{st}");

    // Paused while its chains wait (their next pages sit undelivered), then
    // resumed: the resume takes over every unfinished chain at once.
    for action in ["pause", "resume"] {
        let reply = fx
            .app
            .call(
                "POST",
                &format!("/migration-plans/{plan_id}/{action}"),
                Some(json!({})),
            )
            .await;
        assert!(reply.status < 300, "{action}: {:?}", reply.body);
    }
    let resumed = status(&fx.app, plan_id).await["resumptions"]
        .as_u64()
        .expect("resumptions");
    assert!(resumed >= 1, "no chain was resumed");

    let after = parse(&handle.render());
    let pages = |samples: &Samples, outcome: &str| {
        sample(
            samples,
            "focal_migrations_marking_pages_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(pages(&after, "failed") - pages(&before, "failed"), 1.0);
    assert_eq!(
        pages(&after, "resumed") - pages(&before, "resumed"),
        resumed as f64
    );
}
