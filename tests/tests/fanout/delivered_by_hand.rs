//! Messages the test delivers itself (a manual queue): twice, in Lambda
//! batches, walked within a chain budget, failing mid-walk.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::deployment::*;
use super::rig::*;
use crate::common::*;
use api::marking::MarkMessage;
use api::worker::{MessageOutcome, SqsEvent};
use api::{AppState, Config};
use serde_json::json;

/// The test is the worker: every distinct message is delivered twice at once —
/// both deliveries read the page before either writes — and both must succeed
/// without marking or counting anything twice (or missing a count: one of them
/// loses every conditional write and still records the page exactly).
pub(crate) async fn same_message_delivered_twice_counts_once(backend: Backend) {
    let faults = Faults {
        rendezvous: Some(tokio::sync::Barrier::new(2)),
        ..Faults::default()
    };
    let Some(fx) = manual_fixture(backend, faults).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);

    let state = &fx.app.state;
    let mut deliveries = 0;
    // Deploy enqueues each chain's first page once; after that, only the
    // delivery that recorded a page enqueues its continuation, so a chain is
    // walked once however often its messages arrive.
    loop {
        let pending = manual.take().await;
        if pending.is_empty() {
            break;
        }
        let mut distinct: BTreeMap<String, usize> = BTreeMap::new();
        for message in &pending {
            *distinct
                .entry(serde_json::to_string(message).expect("message json"))
                .or_default() += 1;
        }
        assert!(distinct.values().all(|n| *n == 1), "{distinct:?}");
        for body in distinct.into_keys() {
            let (a, b) = tokio::join!(
                api::worker::process_body(state, &body, 1),
                api::worker::process_body(state, &body, 1)
            );
            assert_eq!(
                (a, b),
                (MessageOutcome::Done, MessageOutcome::Done),
                "{body}"
            );
            deliveries += 2;
        }
    }
    assert!(deliveries >= 2 * 4, "every chain was delivered");
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// The Lambda handler of `functions/mark-sessions`: a batch of a good page, a
/// malformed body and a page that fails. Only the failing one is reported in
/// `batchItemFailures`; the good page is marked and recorded, the malformed body
/// is dropped (retrying cannot help it).
pub(crate) async fn lambda_batch_reports_only_the_failing_message(backend: Backend) {
    let Some(fx) = manual_fixture(backend, Faults::default()).await else {
        return;
    };
    let (deployment, firsts) = deploy_to_manual_queue(&fx).await;
    // Each step is marked by one chain per shard of the step index: the first
    // page of the chain (step, shard) that holds a given session.
    let shards = fx.app.state.store().step_index_shards();
    let shard_of = |id: &str| store::step_shard(id, shards);
    let first_of = |n: u32, id: &str| {
        let message = firsts
            .iter()
            .find(|m| m.chain.step_id == step(n) && m.chain.shard == shard_of(id))
            .expect("a first page");
        serde_json::to_string(message).unwrap()
    };
    let done_shard = shard_of(&session_id(3, 0));
    let done_in_shard = (0..small_population().done)
        .filter(|i| shard_of(&session_id(3, *i)) == done_shard)
        .count();
    // Welcome's first page fails on every delivery.
    fx.faults.set_poison(Some(&session_id(1, 0)));

    let record = |id: &str, body: &str| {
        json!({
            "messageId": id,
            "receiptHandle": format!("handle-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:marking",
            "awsRegion": "us-east-1"
        })
    };
    let event: SqsEvent = serde_json::from_value(json!({
        "Records": [
            record("good", &first_of(3, &session_id(3, 0))),
            record("malformed", "{\"not\": \"a marking message\"}"),
            record("failing", &first_of(1, &session_id(1, 0))),
        ]
    }))
    .expect("an SQS event");
    let response = api::worker::handle_sqs_event(&fx.app.state, &event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["failing"]);
    let answer = serde_json::to_value(&response).expect("response json");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "failing"}]})
    );

    // The good page (the whole chain of Done's shard holding s3-00000: one
    // page) is marked and recorded.
    let current = status(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        current["sessions_marked"],
        json!(done_in_shard),
        "{current}"
    );
    assert_eq!(current["pages_failed"], 0, "not the last attempt yet");
    let done = fx
        .app
        .call("GET", &format!("/sessions/{}", session_id(3, 0)), None)
        .await;
    assert_eq!(
        done.body["pending_migration"]["anchor_content_hash"],
        json!(deployment.flag_hash[&3])
    );
    let welcome = fx
        .app
        .call("GET", &format!("/sessions/{}", session_id(1, 0)), None)
        .await;
    assert!(welcome.body.get("pending_migration").is_none());
}

/// Deploys the small population on a manual-queue fixture (fan-out, 202);
/// returns the deployment and the chains' first pages deploy enqueued.
pub(crate) async fn deploy_to_manual_queue(fx: &Fixture) -> (Deployment, Vec<MarkMessage>) {
    let manual = fx.manual.as_ref().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    (deployment, manual.take().await)
}

/// Delivers `messages` to the worker as one SQS batch; returns the ids
/// (`m0`, `m1`, …) of those left for redelivery.
pub(crate) async fn deliver_batch(state: &AppState, messages: &[MarkMessage]) -> Vec<String> {
    let bodies: Vec<(String, String)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("m{i}"), serde_json::to_string(m).expect("json")))
        .collect();
    let deliveries: Vec<api::worker::Delivery<'_>> = bodies
        .iter()
        .map(|(id, body)| api::worker::Delivery {
            id,
            body,
            attempt: 1,
        })
        .collect();
    api::worker::process_batch(state, &deliveries).await
}

/// Pages of 10, so the anchor's chains are several pages long.
pub(crate) fn long_chains_config(budget_ms: u64) -> Config {
    Config {
        mark_page_size: 10,
        mark_chain_budget_ms: budget_ms,
        ..fan_out_config()
    }
}

/// With a budget, one batch of the chains' first pages walks every chain to its
/// end in process: nothing goes back to the queue. With none, each batch marks
/// one page per chain and hands the next to the queue. Either way every
/// eligible session is flagged once and counted once.
pub(crate) async fn a_batch_walks_its_chains_in_process_within_its_budget(backend: Backend) {
    for budget_ms in [0, 600_000] {
        let Some(fx) =
            manual_fixture_with(backend, Faults::default(), long_chains_config(budget_ms)).await
        else {
            return;
        };
        let manual = fx.manual.clone().expect("manual queue");
        let (deployment, mut pending) = deploy_to_manual_queue(&fx).await;
        let chains = pending.len();
        let (mut batches, mut delivered, mut handed_back) = (0, 0, 0);
        while !pending.is_empty() {
            let failed = deliver_batch(&fx.app.state, &pending).await;
            assert!(failed.is_empty(), "budget {budget_ms}: {failed:?}");
            batches += 1;
            delivered += pending.len();
            pending = manual.take().await;
            handed_back += pending.len();
        }
        if budget_ms == 0 {
            // One page per message: every page but each chain's first came
            // back through the queue, and the chains are several pages long.
            assert_eq!(handed_back, delivered - chains);
            assert!(delivered > 2 * chains, "{delivered} pages, {chains} chains");
        } else {
            // The same chains, walked to their ends by the first batch.
            assert_eq!((batches, handed_back), (1, 0), "{chains} chains");
        }
        wait_deployed(&fx.app, &deployment.plan_id).await;
        assert_marked_exactly(&fx.app, &deployment).await;
    }
}

/// The second page of a walk fails half-written: the message that started the
/// walk is done (its page is recorded) and the failed page goes back to the
/// queue as a message of its own, which marks it exactly once.
pub(crate) async fn a_page_failing_mid_walk_goes_back_to_the_queue_alone(backend: Backend) {
    let faults = Faults::default();
    let Some(fx) = manual_fixture_with(backend, faults, long_chains_config(600_000)).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let (deployment, firsts) = deploy_to_manual_queue(&fx).await;
    let (walked, rest): (Vec<_>, Vec<_>) = firsts
        .into_iter()
        .partition(|m| m.chain.step_id == step(2) && m.chain.shard == 0);
    assert_eq!(walked.len(), 1, "one chain of the anchor's shard 0");

    fx.faults.fail_nth_mark.store(2, Ordering::SeqCst);
    let failed = deliver_batch(&fx.app.state, &walked).await;
    assert!(
        failed.is_empty(),
        "the walk's first page is recorded: {failed:?}"
    );
    let handed_back = manual.take().await;
    assert_eq!(handed_back.len(), 1, "{handed_back:?}");
    assert_eq!(handed_back[0].chain, walked[0].chain);
    assert!(
        handed_back[0].cursor.is_some(),
        "the second page, not the first"
    );
    // Only the first page (10 sessions, some excluded by the scope filter) is
    // recorded; the half-written second one is not counted.
    let marked = status(&fx.app, &deployment.plan_id).await["sessions_marked"]
        .as_u64()
        .expect("sessions_marked");
    assert!((1..=10).contains(&marked), "{marked}");

    let mut pending: Vec<MarkMessage> = handed_back.into_iter().chain(rest).collect();
    while !pending.is_empty() {
        let failed = deliver_batch(&fx.app.state, &pending).await;
        assert!(failed.is_empty(), "{failed:?}");
        pending = manual.take().await;
    }
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// A withdrawal overtakes a marking page in flight: the page's delivery
/// claimed its sessions before the withdrawal began and writes its marks only
/// after the withdrawal walked past them. The delivery sees the withdrawal
/// after its marks and clears them itself; the plan stays `withdrawing` until
/// that chain is settled; in the end no session is flagged and every flag is
/// counted once, marked and withdrawn. The withdrawal's own settling message
/// for that chain, delivered last, finds the page done and changes nothing.
pub(crate) async fn a_withdrawal_overtaking_a_page_in_flight_leaves_no_flag(backend: Backend) {
    let faults = Faults {
        hold_marks: std::sync::atomic::AtomicU32::new(1),
        ..Faults::default()
    };
    let Some(fx) = manual_fixture(backend, faults).await else {
        return;
    };
    let manual = fx.manual.clone().expect("manual queue");
    let deployment = prepare(&fx.app, small_population()).await;
    let plan_id = deployment.plan_id.clone();
    let reply = deploy(&fx.app, &plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);

    // One chain's first page in flight: claimed, its marks held back.
    let mut queued = manual.take().await;
    let in_flight = queued
        .iter()
        .position(|m| m.chain.anchor_content_hash.is_some())
        .expect("a marking message");
    let in_flight = queued.remove(in_flight);
    let held = {
        let state = fx.app.state.clone();
        let body = serde_json::to_string(&in_flight).expect("message json");
        tokio::spawn(async move { api::worker::process_body(&state, &body, 1).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fx.faults.marking_now.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the page never reached its marks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let reply = fx
        .app
        .call(
            "POST",
            &format!("/migration-plans/{plan_id}/withdraw"),
            None,
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    // Everything but the settling of the held chain: the withdrawal's own
    // pages walk every step (the held page's sessions are not flagged yet),
    // the other marking chains are settled where they stood.
    let same_chain = |m: &MarkMessage| {
        !m.chain.withdraw
            && m.chain.step_id == in_flight.chain.step_id
            && m.chain.shard == in_flight.chain.shard
    };
    let mut set_aside: Vec<MarkMessage> = Vec::new();
    loop {
        queued.extend(manual.take().await);
        if queued.is_empty() {
            break;
        }
        for message in std::mem::take(&mut queued) {
            if same_chain(&message) {
                set_aside.push(message);
                continue;
            }
            let body = serde_json::to_string(&message).expect("message json");
            let outcome = api::worker::process_body(&fx.app.state, &body, 1).await;
            assert_eq!(outcome, MessageOutcome::Done, "{body}");
        }
    }
    assert!(
        !set_aside.is_empty(),
        "the withdrawal settles the held chain too"
    );
    let waiting = status(&fx.app, &plan_id).await;
    assert_eq!(waiting["status"], "withdrawing", "{waiting}");

    // The held delivery writes its marks now, after the withdrawal's walk.
    fx.faults.released.add_permits(1);
    assert_eq!(held.await.expect("held delivery"), MessageOutcome::Done);
    for message in set_aside {
        let body = serde_json::to_string(&message).expect("message json");
        let outcome = api::worker::process_body(&fx.app.state, &body, 1).await;
        assert_eq!(outcome, MessageOutcome::Done, "{body}");
    }
    assert!(manual.take().await.is_empty(), "nothing more to walk");

    let done = status(&fx.app, &plan_id).await;
    assert_eq!(done["status"], "withdrawn", "{done}");
    let marked = done["sessions_marked"].as_u64().expect("sessions_marked");
    assert!(marked > 0, "{done}");
    assert_eq!(done["flags_withdrawn"], marked, "{done}");
    assert_eq!(done["migrations_applied"], 0, "{done}");
    assert_eq!(done["migrations_pending"], 0, "{done}");
    let after = read_sessions(&fx.app, &deployment).await;
    let flagged: Vec<&String> = after
        .iter()
        .filter(|(_, s)| !s["pending_migration"].is_null())
        .map(|(id, _)| id)
        .collect();
    assert!(
        flagged.is_empty(),
        "flags left after the withdrawal: {flagged:?}"
    );
}
