//! Plan generation reads the store's session counts (one read, never a page of
//! sessions) and says how fresh they are (`summary.sessions_counted_at`), on
//! both stores — on DynamoDB Local the counts come from the sessions table's
//! stream. The exact recount runs as a queue message on the worker and agrees.

use crate::common::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [plan_generation_reads_counts_and_says_when],
}

async fn plan_generation_reads_counts_and_says_when(app: TestApp) {
    let scenario = Uuid::new_v4();
    let before = Utc::now();
    let r = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(scenario_v1()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Three sessions at Collect email, one at Welcome; one of them moves on.
    for (id, at) in [("c1", 2), ("c2", 2), ("c3", 2), ("w1", 1), ("m1", 2)] {
        let r = app
            .call(
                "PUT",
                &format!("/sessions/{id}"),
                Some(session_at(scenario, 1, step(at), "web")),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = app
        .call(
            "PUT",
            "/sessions/m1",
            Some(session_at(scenario, 1, step(3), "web")),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let plan = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": scenario_v2()})),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    let summary = &plan.body["summary"];
    // Collect email (3) and Done (1) are anchors: 4 sessions; Welcome's changed.
    let by_anchor: u64 = summary["sessions_by_anchor"]
        .as_object()
        .expect("sessions_by_anchor")
        .values()
        .map(|n| n.as_u64().unwrap_or(0))
        .sum();
    assert!(by_anchor >= 4, "{summary}");
    let counted_at: DateTime<Utc> = summary["sessions_counted_at"]
        .as_str()
        .expect("sessions_counted_at")
        .parse()
        .expect("a time");
    // Counted as of the sessions' writes. On DynamoDB it is the time of the last
    // stream record applied, which DynamoDB Local rounds down to the minute (AWS:
    // to the second).
    assert!(
        counted_at >= before - chrono::Duration::seconds(60),
        "{counted_at} {before}"
    );

    // The summary route shows the same.
    let plan_id = plan.body["id"].as_str().expect("id");
    let stored = app
        .call("GET", &format!("/migration-plans/{plan_id}/summary"), None)
        .await;
    assert_eq!(stored.status, 200);
    assert_eq!(
        stored.body["sessions_counted_at"],
        summary["sessions_counted_at"]
    );

    // The exact recount, as the worker runs it from the queue.
    let message = api::recount::RecountMessage {
        recount_sessions: api::recount::RecountRequest {
            tenant_id: app.tenant,
            scenario_id: scenario,
            version: 1,
            requested_at: Utc::now(),
        },
    };
    let outcome = api::worker::process_body(&app.state, &message.body(), 1).await;
    assert_eq!(outcome, api::worker::MessageOutcome::Done);
    let recount = app
        .state
        .store()
        .get_recount(app.tenant, scenario, 1)
        .await
        .expect("read")
        .expect("a recount is stored");
    let expected = std::collections::BTreeMap::from([(step(1), 1), (step(2), 3), (step(3), 1)]);
    assert_eq!(recount.by_step, expected);
    assert_eq!(
        recount.counters.by_step, expected,
        "counters agree with the index"
    );
    assert!(recount.finished_at >= recount.requested_at);
}
