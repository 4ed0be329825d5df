//! Deployments through a real queue (the in-process one, or SQS on moto):
//! exact counts under duplicates, crashes, throttling, poison pages and resume.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::deployment::*;
use super::rig::*;
use crate::common::*;
use api::Config;
use api::marking::MarkMessage;
use api::worker::MessageOutcome;
use serde_json::json;
use uuid::Uuid;

/// A worker polling SQS holds no more chains at once than `MARK_WORKER_MESSAGES`:
/// it asks the queue only for what it has room for, so a deployment's chains
/// spread over the workers (taking ten at a time, one poll would take them all).
/// Each chain is walked for the whole budget, so every chain in hand marks at
/// once: the peak of concurrent page writes is the number of chains held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn an_sqs_worker_holds_no_more_chains_than_its_slots() {
    let config = Config {
        mark_page_size: 50,
        mark_worker_messages: 2,
        mark_chain_budget_ms: 60_000,
        ..fan_out_config()
    };
    let faults = Faults {
        mark_delay: Duration::from_millis(20),
        ..Faults::default()
    };
    let Some(fx) = fixture(Rig::DynamoSqs, config, faults, false).await else {
        return;
    };
    let population = Population {
        welcome: 40,
        anchor: 200,
        confirm: 40,
        done: 20,
    };
    let deployment = prepare(&fx.app, population).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    // assert_marked_exactly checks one chain per (step, shard) with sessions.
    assert_marked_exactly(&fx.app, &deployment).await;
    let plan_uuid: Uuid = deployment.plan_id.parse().expect("plan id");
    let chains = fx
        .app
        .state
        .store()
        .get_plan_stats(fx.app.tenant, plan_uuid)
        .await
        .expect("stats")
        .chains_total;
    assert!(chains >= 4, "enough chains to exceed the slots: {chains}");
    let peak = fx.faults.marking_peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "{peak} chains marked at once by a worker with 2 slots ({chains} chains)"
    );
}

/// Deploy decides inline vs fan-out without counting every session: exactly
/// the threshold (spread over four steps and many small pages) is marked inline,
/// one more fans out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn the_inline_threshold_is_exact() {
    for (extra, status, state) in [(0, 200, "deployed"), (1, 202, "deploying")] {
        let config = Config {
            inline_mark_threshold: 100,
            mark_page_size: 7,
            ..fan_out_config()
        };
        let Some(fx) = fixture(Rig::Embedded, config, Faults::default(), false).await else {
            return;
        };
        let population = Population {
            welcome: 40,
            anchor: 33 + extra,
            confirm: 17,
            done: 10,
        };
        let deployment = prepare(&fx.app, population).await;
        let reply = deploy(&fx.app, &deployment.plan_id).await;
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert_eq!(reply.body["status"], state, "{:?}", reply.body);
        if extra == 0 {
            assert_marked_exactly(&fx.app, &deployment).await;
        }
    }
}

pub(crate) async fn fan_out_marks_every_eligible_session_once(rig: Rig) {
    // Three pages get through, then the workers wait: the deployment is
    // observably in flight while we call deploy again.
    let Some(fx) = fixture(rig, fan_out_config(), Faults::gated(3), false).await else {
        return;
    };
    let population = Population {
        welcome: 130,
        anchor: 2_750,
        confirm: 60,
        done: 70,
    };
    let deployment = prepare(&fx.app, population).await;
    assert!(deployment.eligible_by_hash()[&deployment.flag_hash[&2]] >= 2_500);
    let plan_id = deployment.plan_id.as_str();

    let reply = deploy(&fx.app, plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "deploying");
    assert_eq!(reply.body["plan_id"], json!(plan_id));
    assert!(reply.body["deployed_at"].is_null());

    let progress = wait_for(&fx.app, plan_id, "first pages", |s| {
        s["sessions_marked"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(progress["status"], "deploying");
    let again = deploy(&fx.app, plan_id).await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_eq!(again.body["status"], "deploying");
    let marked = again.body["sessions_marked"].as_u64().expect("progress");
    assert!(
        marked > 0 && marked < population.eligible(),
        "{:?}",
        again.body
    );

    fx.faults.open_gate();
    let done = wait_deployed(&fx.app, plan_id).await;
    assert!(done["deployed_at"].is_string(), "{done}");
    assert_marked_exactly(&fx.app, &deployment).await;

    let late = deploy(&fx.app, plan_id).await;
    assert_eq!(late.status, 409, "{:?}", late.body);
}

pub(crate) async fn redelivered_pages_count_once(rig: Rig) {
    // Every chain's first page is sent twice; on SQS both copies go through the
    // worker (each enqueues the same continuation, so the whole chain runs twice).
    let duplicate = matches!(rig, Rig::DynamoSqs);
    let Some(fx) = fixture(rig, fan_out_config(), Faults::default(), duplicate).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    if !duplicate {
        // In process: deliver copies of every first page (of every shard's
        // chain) by hand, on top of the queue's own.
        let plan_id: Uuid = deployment.plan_id.parse().expect("plan id");
        let shards = fx.app.state.store().step_index_shards();
        for n in [1u32, 2, 3, 5] {
            for shard in 0..shards {
                let body = serde_json::to_string(&MarkMessage {
                    tenant_id: fx.app.tenant,
                    plan_id,
                    chain: api::marking::Chain {
                        step_id: step(n),
                        shard,
                        shards,
                        anchor_content_hash: Some(deployment.flag_hash[&n].clone()),
                        pass: 0,
                        percent: 100,
                        withdraw: false,
                    },
                    cursor: None,
                })
                .expect("message json");
                let outcome = api::worker::process_body(&fx.app.state, &body, 1).await;
                assert_eq!(outcome, MessageOutcome::Done, "{body}");
            }
        }
    }
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_marked_exactly(&fx.app, &deployment).await;
}

pub(crate) async fn crash_between_marking_and_recording_is_retried_exactly(rig: Rig) {
    let faults = Faults {
        record_failures: AtomicU32::new(2),
        ..Faults::default()
    };
    let Some(fx) = fixture(rig, fan_out_config(), faults, false).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        fx.faults.record_failures.load(Ordering::SeqCst),
        0,
        "faults fired"
    );
    assert_marked_exactly(&fx.app, &deployment).await;
}

pub(crate) async fn throttled_write_is_retried_exactly(rig: Rig) {
    let faults = Faults {
        throttles: AtomicU32::new(2),
        ..Faults::default()
    };
    let Some(fx) = fixture(rig, fan_out_config(), faults, false).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    assert_eq!(
        fx.faults.throttles.load(Ordering::SeqCst),
        0,
        "faults fired"
    );
    assert_marked_exactly(&fx.app, &deployment).await;
}

/// A page that fails on every delivery is counted in `pages_failed` after
/// `mark_max_receives` attempts and its chain stops; the rest completes. On SQS the
/// page sits in the dead-letter queue; re-driven (once the cause is fixed) it
/// finishes the deployment with exact counts.
pub(crate) async fn poison_page_shows_in_status(rig: Rig) {
    let Some(fx) = fixture(rig, fan_out_config(), Faults::default(), false).await else {
        return;
    };
    let population = small_population();
    let deployment = prepare(&fx.app, population).await;
    // The first page of Welcome's chain (sessions are paged in id order).
    fx.faults.set_poison(Some(&session_id(1, 0)));
    let plan_id = deployment.plan_id.as_str();
    let reply = deploy(&fx.app, plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);

    // Welcome is marked by one chain per shard of the step index: the one
    // holding s1-00000 (a single page) stalls, every other chain finishes.
    let shards = fx.app.state.store().step_index_shards();
    let poisoned_shard = store::step_shard(&session_id(1, 0), shards);
    let in_poisoned: Vec<usize> = (0..population.welcome)
        .filter(|i| store::step_shard(&session_id(1, *i), shards) == poisoned_shard)
        .collect();
    assert!(in_poisoned.len() > 1 && in_poisoned.len() < population.welcome);
    let in_poisoned_eligible = in_poisoned
        .iter()
        .filter(|i| deployment.expected_flag(1, **i).is_some())
        .count() as u64;
    let without_poisoned = population.eligible() - in_poisoned_eligible;
    let stalled = wait_for(&fx.app, plan_id, "a failed page", |s| {
        s["pages_failed"] == 1 && s["sessions_marked"] == json!(without_poisoned)
    })
    .await;
    assert_eq!(stalled["status"], "deploying", "{stalled}");
    assert!(stalled["deployed_at"].is_null());
    let welcome = fx
        .app
        .call(
            "GET",
            &format!("/sessions/{}", session_id(1, in_poisoned[1])),
            None,
        )
        .await;
    assert!(
        welcome.body.get("pending_migration").is_none(),
        "{:?}",
        welcome.body
    );

    let Some((client, url)) = &fx.sqs else {
        // The in-process queue has no dead-letter queue to re-drive from.
        return;
    };
    // The message moves to the dead-letter queue on its next receive.
    let dlq = client
        .get_queue_url()
        .queue_name(format!("{}-dlq", url.rsplit('/').next().unwrap()))
        .send()
        .await
        .expect("DLQ url")
        .queue_url
        .expect("DLQ url");
    let deadline = Instant::now() + Duration::from_secs(600);
    let dead = loop {
        let received = client
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from DLQ");
        let messages = received.messages.unwrap_or_default();
        if !messages.is_empty() {
            break messages;
        }
        assert!(Instant::now() < deadline, "nothing reached the DLQ");
    };
    assert_eq!(dead.len(), 1);
    let body = dead[0].body().expect("body").to_owned();
    let message: MarkMessage = serde_json::from_str(&body).expect("a marking message");
    assert_eq!(message.chain.step_id, step(1));
    assert_eq!(message.chain.shard, poisoned_shard);
    assert_eq!(message.cursor, None);

    // Fix the cause, then re-drive: what `aws sqs start-message-move-task` does
    // (moto lacks it): send the body back to the source queue, delete it from the DLQ.
    fx.faults.set_poison(None);
    client
        .send_message()
        .queue_url(url)
        .message_body(&body)
        .send()
        .await
        .expect("re-drive");
    client
        .delete_message()
        .queue_url(&dlq)
        .receipt_handle(dead[0].receipt_handle().expect("handle"))
        .send()
        .await
        .expect("delete from DLQ");
    let done = wait_deployed(&fx.app, plan_id).await;
    assert_eq!(done["pages_failed"], 1, "a history count: {done}");
    let stats = fx
        .app
        .state
        .store()
        .get_plan_stats(fx.app.tenant, plan_id.parse().unwrap())
        .await
        .expect("stats");
    assert_eq!(stats.sessions_marked, population.eligible());
    assert_eq!(stats.sessions_by_anchor, deployment.eligible_by_hash());
    let after = read_sessions(&fx.app, &deployment).await;
    for (n, i, id) in deployment.session_ids() {
        let mut now = after[&id].clone();
        let flag = now.as_object_mut().unwrap().remove("pending_migration");
        assert_eq!(
            flag.is_some(),
            deployment.expected_flag(n, i).is_some(),
            "{id}"
        );
        let mut before = deployment.before[&id].clone();
        now.as_object_mut().unwrap().remove("revision");
        before.as_object_mut().unwrap().remove("revision");
        assert_eq!(now, before, "{id}");
    }
}

/// A store error in the middle of an inline deploy (the k-th page write fails
/// half-way) leaves the plan `deploying`; with the lease run out, the sweep (or,
/// in one trial, deploying again) resumes it from the ledger and it ends
/// `deployed` with exact counts and every eligible session flagged once.
pub(crate) async fn inline_deploy_failing_mid_marking_finishes_after_resume(rig: Rig) {
    for (trial, k) in [1u32, 4, 9, 14].into_iter().enumerate() {
        let config = Config {
            inline_mark_threshold: 100,
            mark_page_size: 7,
            deploy_lease_seconds: 0,
            ..fan_out_config()
        };
        let faults = Faults {
            fail_nth_mark: AtomicU32::new(k),
            ..Faults::default()
        };
        let Some(fx) = fixture(rig, config, faults, false).await else {
            return;
        };
        let population = Population {
            welcome: 40,
            anchor: 33,
            confirm: 17,
            done: 10,
        };
        let deployment = prepare(&fx.app, population).await;
        let reply = deploy(&fx.app, &deployment.plan_id).await;
        assert_eq!(reply.status, 500, "trial {trial}: {:?}", reply.body);
        let stuck = status(&fx.app, &deployment.plan_id).await;
        assert_eq!(stuck["status"], "deploying", "trial {trial}");
        if trial == 0 {
            let again = deploy(&fx.app, &deployment.plan_id).await;
            assert!(matches!(again.status, 200 | 202), "{:?}", again.body);
        } else {
            let report = api::services::deployments::sweep(fx.app.state.deps(), chrono::Utc::now())
                .await
                .expect("sweep");
            assert_eq!(report.plans_deploying, 1, "trial {trial}");
        }
        let done = sweep_until_deployed(&fx.app, &deployment.plan_id).await;
        assert!(done["resumptions"].as_u64() >= Some(1), "{done}");
        assert_marked_exactly(&fx.app, &deployment).await;
    }
}

/// What a served deployment has, every minute, on AWS and under `migrations
/// serve`: the sweep, here run again and again until the plan is deployed. One
/// sweep is not always enough: a store write of the failed inline walk can
/// still land after the sweep took its chain over (a page recorded by a call
/// the deploy had already given up on), and then the next sweep resumes the
/// chain from there.
async fn sweep_until_deployed(app: &TestApp, plan_id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let current = status(app, plan_id).await;
        if current["status"] == "deployed" {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "never reached deployed: {current}"
        );
        api::services::deployments::sweep(app.state.deps(), chrono::Utc::now())
            .await
            .expect("sweep");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A withdrawal fans out through the same queue as marking: with every
/// chain's first page delivered twice (SQS) and two pages crashing between
/// clearing and recording, each flag is cleared and counted once, and every
/// session is as it was before the deployment.
pub(crate) async fn a_withdrawal_through_the_queue_clears_each_flag_once(rig: Rig) {
    let duplicate = matches!(rig, Rig::DynamoSqs);
    let Some(fx) = fixture(rig, fan_out_config(), Faults::default(), duplicate).await else {
        return;
    };
    let deployment = prepare(&fx.app, small_population()).await;
    let reply = deploy(&fx.app, &deployment.plan_id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    wait_deployed(&fx.app, &deployment.plan_id).await;
    let marked = status(&fx.app, &deployment.plan_id).await["sessions_marked"]
        .as_u64()
        .unwrap();
    assert_eq!(marked, deployment.population.eligible() as u64);
    // The worker dies twice after clearing a page, before the ledger knows.
    fx.faults.record_failures.store(2, Ordering::SeqCst);
    let reply = fx
        .app
        .call(
            "POST",
            &format!("/migration-plans/{}/withdraw", deployment.plan_id),
            None,
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let done = wait_for(&fx.app, &deployment.plan_id, "withdrawn", |s| {
        s["status"] == "withdrawn"
    })
    .await;
    assert_eq!(
        fx.faults.record_failures.load(Ordering::SeqCst),
        0,
        "faults fired"
    );
    assert_eq!(done["flags_withdrawn"], marked, "{done}");
    assert_eq!(done["migrations_pending"], 0, "{done}");
    assert_eq!(done["pages_failed"], 0, "{done}");
    // Every session is back to what it was, but for its revision (a flag was
    // set and cleared).
    let after = read_sessions(&fx.app, &deployment).await;
    for (id, before) in &deployment.before {
        let now = &after[id];
        assert!(now["pending_migration"].is_null(), "{id}: {now}");
        for field in [
            "active_scenario_version",
            "active_step_id",
            "variables",
            "step_history",
        ] {
            assert_eq!(now[field], before[field], "{id}.{field}");
        }
    }
}
