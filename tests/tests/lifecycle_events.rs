//! Lifecycle events end to end on both stores, with a sink that records what
//! it is given (and can be made to fail): each change an operator makes is
//! announced before the call answers; the drain (which the product notices
//! itself) and whatever a failed send left behind go with the next sweep;
//! no event is lost, and none changes its id when it is sent again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use api::AppState;
use api::events::{EventSink, SendError};
use async_trait::async_trait;
use planning::events::LifecycleEvent;
use serde_json::json;

use crate::common::*;

#[derive(Default)]
struct RecordingSink {
    sent: Mutex<Vec<LifecycleEvent>>,
    failing: AtomicBool,
}

#[async_trait]
impl EventSink for RecordingSink {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), SendError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SendError("the bus is down".into()));
        }
        self.sent.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl RecordingSink {
    /// (detail-type, event id) of every event sent for `plan_id`, in order.
    fn of(&self, plan_id: &str) -> Vec<(String, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.detail.plan_id.to_string() == plan_id)
            .map(|e| (e.detail_type.clone(), e.detail.event_id.clone()))
            .collect()
    }

    fn types_of(&self, plan_id: &str) -> Vec<String> {
        self.of(plan_id).into_iter().map(|(t, _)| t).collect()
    }
}

async fn with_recorded_events<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestApp, Arc<RecordingSink>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_recorded_events_and(backend, test_config(), case).await
}

async fn with_recorded_events_and<F, Fut>(backend: Backend, config: api::Config, case: F)
where
    F: FnOnce(TestApp, Arc<RecordingSink>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let sink = Arc::new(RecordingSink::default());
    let attached = sink.clone();
    with_app_attached(
        backend,
        config,
        move |state: AppState| state.with_events(attached),
        |app| case(app, sink),
    )
    .await
}

store::backend_matrix! {
    run: with_recorded_events,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        each_change_is_announced_once_and_a_failed_send_is_caught_up,
        the_drain_goes_with_the_sweep_once,
        a_guards_halt_is_announced_by_the_reconcile_that_caused_it,
        a_halt_by_a_failure_report_is_announced_by_that_report,
    ],
}

async fn sweep(app: &TestApp) -> api::services::deployments::SweepReport {
    api::services::deployments::sweep(app.state.deps(), chrono::Utc::now())
        .await
        .expect("sweep")
}

async fn each_change_is_announced_once_and_a_failed_send_is_caught_up(
    app: TestApp,
    sink: Arc<RecordingSink>,
) {
    let ids: Vec<String> = (0..3).map(|i| format!("ev-{i}")).collect();
    let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 1, scenario_v2()).await;
    // Creation and approval, each announced by its own call.
    assert_eq!(sink.types_of(&plan_id), ["Plan Created", "Plan Approved"]);

    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({"by": "ana"})),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    assert_eq!(
        sink.types_of(&plan_id)[2..],
        ["Deploy Started", "Marking Finished"]
    );
    let started = sink.sent.lock().unwrap()[2].detail.clone();
    assert_eq!(started.by.as_deref(), Some("ana"));
    assert_eq!(started.counters.sessions_marked, 3, "{started:?}");

    // The bus is down: the pause is made and answered all the same.
    sink.failing.store(true, Ordering::SeqCst);
    let paused = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/pause"),
            Some(json!({"by": "bo"})),
        )
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    assert_eq!(sink.of(&plan_id).len(), 4, "nothing got through");
    let report = sweep(&app).await;
    assert!(report.events.entries_failed >= 1, "{report:?}");

    // Back up: the next sweep sends the pause, once.
    sink.failing.store(false, Ordering::SeqCst);
    sweep(&app).await;
    sweep(&app).await;
    let sent = sink.of(&plan_id);
    assert_eq!(sent.last().unwrap().0, "Rollout Paused", "{sent:?}");
    assert_eq!(sent.len(), 5, "{sent:?}");
    let unique: std::collections::BTreeSet<&String> = sent.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), sent.len(), "every id once: {sent:?}");
    assert_eq!(
        sent[0].1,
        format!("{plan_id}:created"),
        "the creation's id is the plan's"
    );
}

async fn the_drain_goes_with_the_sweep_once(app: TestApp, sink: Arc<RecordingSink>) {
    let ids: Vec<String> = (0..4).map(|i| format!("dr-{i}")).collect();
    let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 1, scenario_v2()).await;
    let deploy = app
        .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    // Deployed with four sessions to migrate: no drain yet, however often swept.
    sweep(&app).await;
    assert!(
        !sink
            .types_of(&plan_id)
            .contains(&"Deployment Drained".to_owned())
    );

    for id in &ids {
        reconcile_now(&app, id).await;
    }
    // The last migration leaves nothing pending: the sweep announces the drain, once.
    let report = sweep(&app).await;
    assert!(report.events.events_sent >= 1, "{report:?}");
    sweep(&app).await;
    let types = sink.types_of(&plan_id);
    assert_eq!(
        types.iter().filter(|t| *t == "Deployment Drained").count(),
        1,
        "{types:?}"
    );
    let drained = sink
        .sent
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.detail_type == "Deployment Drained")
        .cloned()
        .unwrap();
    assert_eq!(drained.detail.counters.migrations_applied, 4);
    assert_eq!(drained.detail.counters.migrations_pending, 0);

    // Everything said: the plan left the outbox.
    let again = sweep(&app).await;
    assert_eq!(again.events.events_sent, 0, "{again:?}");
}

/// The halt is a change no operator asked for: the reconcile whose migration
/// crossed the guard's threshold announces it before it answers, with the
/// reason, and no sweep is needed.
async fn a_guards_halt_is_announced_by_the_reconcile_that_caused_it(
    app: TestApp,
    sink: Arc<RecordingSink>,
) {
    let ids: Vec<String> = (0..3).map(|i| format!("h-{i}")).collect();
    // V2 keeps nothing of V1: each migrated session exits.
    let v2 = json!({"name": "Fresh", "version": 2, "entry_step_id": step(7),
        "steps": [step_json(7, "Brand new", &[])]});
    let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 2, v2).await;
    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({"guard": {"max_exit_rate": 0.2, "min_sessions": 2}})),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    reconcile_now(&app, &ids[0]).await;
    assert!(
        !sink
            .types_of(&plan_id)
            .contains(&"Rollout Halted".to_owned())
    );
    // The second exit crosses 0.2 of at least 2: halted, and announced.
    assert_eq!(
        reconcile_now(&app, &ids[1]).await["action"],
        "exit_scenario"
    );
    let halts: Vec<LifecycleEvent> = sink
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.detail_type == "Rollout Halted")
        .cloned()
        .collect();
    assert_eq!(halts.len(), 1, "{:?}", sink.types_of(&plan_id));
    let reason = halts[0].detail.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("exit rate"), "{reason}");
    assert_eq!(halts[0].detail.from, Some(planning::PlanStatus::Deployed));
    // Nothing left for the sweep.
    let report = sweep(&app).await;
    assert_eq!(report.events.events_sent, 0, "{report:?}");
}

/// A walk that fans out through the queue ends in the worker, which announces
/// the plan's `deployed` itself: no sweep runs in this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_fanned_out_walk_is_announced_by_the_worker() {
    let config = api::Config {
        inline_mark_threshold: 0,
        mark_page_size: 2,
        ..test_config()
    };
    with_recorded_events_and(Backend::Embedded, config, |app, sink| async move {
        let ids: Vec<String> = (0..5).map(|i| format!("w-{i}")).collect();
        let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 1, scenario_v2()).await;
        let deploy = app
            .call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
            .await;
        assert_eq!(deploy.status, 202, "fanned out: {:?}", deploy.body);
        wait_for_plan_status(&app, &plan_id, "deployed").await;
        // The worker's announce runs right after the last page is recorded;
        // the status may be read a moment before it is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !sink
            .types_of(&plan_id)
            .contains(&"Marking Finished".to_owned())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                sink.types_of(&plan_id)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The deploy call and the worker may both send "Deploy Started" when they
        // run at once (at least once): by id, each change once, in order.
        let mut seen = std::collections::BTreeSet::new();
        let by_id: Vec<(String, String)> = sink
            .of(&plan_id)
            .into_iter()
            .filter(|(_, id)| seen.insert(id.clone()))
            .collect();
        let types: Vec<&str> = by_id.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            types,
            [
                "Plan Created",
                "Plan Approved",
                "Deploy Started",
                "Marking Finished"
            ]
        );
    })
    .await
}

async fn a_halt_by_a_failure_report_is_announced_by_that_report(
    app: TestApp,
    sink: Arc<RecordingSink>,
) {
    let ids: Vec<String> = (0..2).map(|i| format!("f-{i}")).collect();
    let (_, plan_id) = approved_plan_with_sessions(&app, &ids, 1, scenario_v2()).await;
    let deploy = app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({"guard": {"max_reported_failure_rate": 0.25, "min_sessions": 1}})),
        )
        .await;
    assert_eq!(deploy.status, 200, "{:?}", deploy.body);
    for id in &ids {
        reconcile_now(&app, id).await;
    }
    let ok = app
        .call(
            "POST",
            &format!("/sessions/{}/outcome", ids[0]),
            Some(json!({"ok": true})),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert!(
        !sink
            .types_of(&plan_id)
            .contains(&"Rollout Halted".to_owned())
    );
    // One failure of two applied: 0.5 > 0.25.
    let failed = app
        .call(
            "POST",
            &format!("/sessions/{}/outcome", ids[1]),
            Some(json!({"ok": false})),
        )
        .await;
    assert_eq!(failed.status, 200, "{:?}", failed.body);
    assert_eq!(failed.body.get("halted"), None, "not part of the answer");
    assert_eq!(deployment_status(&app, &plan_id).await["status"], "halted");
    let types = sink.types_of(&plan_id);
    assert_eq!(
        types.last().map(String::as_str),
        Some("Rollout Halted"),
        "{types:?}"
    );
}
