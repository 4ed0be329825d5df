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
    let sink = Arc::new(RecordingSink::default());
    let attached = sink.clone();
    with_app_attached(
        backend,
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
