//! `GET /migration-plans/{id}/forecast` against what really happens, on the
//! embedded store and DynamoDB Local.
//!
//! - Exactness, as a property over generated plans and populations: forecast,
//!   then approve, deploy and reconcile every session once; every count of the
//!   forecast (per action, scope exclusions, pins, checkpoint blocks, per anchor
//!   and deleted step, teleport targets, missing fields) equals what the
//!   reconciles answered.
//! - A policy change is reflected at once, with the new `plan_revision`.
//! - Sampling: with the exact limit at 0, the 95% intervals of sampled
//!   forecasts hold the exact counts (≥ 90% of them over many draws), and
//!   every stratum's sample stays far below its population.

use std::collections::BTreeMap;

use crate::common::*;
use planning::testkit::{Rng, conversation, edit, edit_in_place};
use planning::{ForecastCount, PlanForecast, ScenarioInput};
use serde_json::{Value, json};
use uuid::Uuid;

store::backend_matrix! {
    run: with_app,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        the_forecast_is_what_deploying_and_reconciling_does,
        a_policy_change_is_forecast_at_once,
    ],
}

// The sample's statistics do not depend on the store; DynamoDB's reads of
// whole sessions (`BatchGetItem`) are exercised by the exact forecasts above.
mod sampled {
    use super::*;
    store::backend_matrix! {
        run: with_app,
        backends: [embedded => Backend::Embedded],
        tests: [sampled_intervals_hold_the_exact_counts],
    }
}

const CHANNELS: [&str; 3] = ["web", "voice", "sms"];

/// A generated world: V1, V2, and sessions spread over V1's steps.
struct World {
    v1: ScenarioInput,
    v2: ScenarioInput,
    /// A third version: V1 → V2 is deployed and half the sessions reconciled
    /// first, then V2 → V3 is forecast — over the V2 sessions and the V1
    /// sessions still to migrate through both plans.
    v3: Option<ScenarioInput>,
    sessions: Vec<(String, Value)>,
}

fn world(seed: u64, sessions: usize) -> World {
    let v1 = conversation(26, seed);
    let mut v2 = edit(&v1, 3 + (seed % 3) as usize, seed);
    if seed.is_multiple_of(2) {
        v2 = edit_in_place(&v2, 1, seed);
        v2.version = 2;
    }
    if seed.is_multiple_of(3) {
        drop_checkpoint(&mut v2);
    }
    let v3 = (seed % 4 == 1).then(|| {
        let mut v3 = edit(&v2, 2, seed + 100);
        v3.version = 3;
        v3
    });
    let mut rng = Rng::new(seed ^ 0xF0CA1);
    let population = (0..sessions)
        .map(|i| {
            let at = rng.below(v1.steps.len());
            // Sessions walked the main path up to where they are: the
            // checkpoints they passed are in their history.
            let history: Vec<Value> = v1.steps[..at]
                .iter()
                .filter(|_| !rng.one_in(4))
                .map(|s| {
                    json!({
                        "step_id": s.id,
                        "step_name": s.name,
                        "visited_at": "2026-11-30T10:00:00Z",
                        "is_checkpoint": s.is_checkpoint,
                    })
                })
                .collect();
            let mut variables = serde_json::Map::new();
            for (field, value) in [
                ("age", json!(16 + rng.below(40))),
                ("country", json!(["FR", "DE"][rng.below(2)])),
                ("email", json!("a@example.com")),
                ("order_id", json!("o-1")),
                ("postcode", json!("75011")),
            ] {
                if rng.one_in(2) {
                    variables.insert(field.into(), value);
                }
            }
            let session = json!({
                "channel": CHANNELS[rng.below(3)],
                "active_scenario_version": 1,
                "active_step_id": v1.steps[at].id,
                "step_history": history,
                "variables": variables,
            });
            (format!("s-{seed}-{i:04}"), session)
        })
        .collect();
    World {
        v1,
        v2,
        v3,
        sessions: population,
    }
}

/// Delete the first checkpoint step: sessions that passed it are blocked
/// wherever a migration would take them.
fn drop_checkpoint(v2: &mut ScenarioInput) {
    let Some(at) = v2.steps.iter().position(|s| s.is_checkpoint) else {
        return;
    };
    let gone = v2.steps.remove(at);
    let Some(next) = gone.transitions.first().map(|t| t.to_step_id) else {
        return;
    };
    for step in &mut v2.steps {
        for t in &mut step.transitions {
            if t.to_step_id == gone.id {
                t.to_step_id = next;
            }
        }
    }
}

/// Create V1 and the sessions, plan V2; the plan's id.
async fn planned(app: &TestApp, world: &World) -> (Uuid, Value) {
    let scenario = Uuid::new_v4();
    let reply = app
        .call(
            "PUT",
            &format!("/scenarios/{scenario}"),
            Some(serde_json::to_value(&world.v1).unwrap()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let writes = world.sessions.iter().map(|(id, session)| {
        let mut session = session.clone();
        session["active_scenario_id"] = json!(scenario);
        async move {
            let reply = app
                .call("PUT", &format!("/sessions/{id}"), Some(session))
                .await;
            assert_eq!(reply.status, 201, "{:?}", reply.body);
        }
    });
    futures::future::join_all(writes).await;
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": world.v2})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    let Some(v3) = &world.v3 else {
        return (Uuid::parse_str(&plan_id).unwrap(), reply.body);
    };
    // V1 → V2 first; every other session reconciled, the rest left behind.
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // Many occupied steps: the deploy may fan out (202) and finish in the queue.
    deploy_until_deployed(app, &plan_id).await;
    for (id, _) in world.sessions.iter().step_by(2) {
        let reply = app
            .call(
                "POST",
                &format!("/sessions/{id}/reconcile"),
                Some(json!({})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v3})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan_id = reply.body["id"].as_str().unwrap().to_string();
    (Uuid::parse_str(&plan_id).unwrap(), reply.body)
}

/// Policies drawn by `seed`: scope filters on channel and age, pinned anchors,
/// forced re-routes.
fn policies(plan: &Value, seed: u64) -> Value {
    let mut rng = Rng::new(seed ^ 0x9011C7);
    let mut policies = plan["anchor_policies"].as_object().cloned().unwrap();
    for policy in policies.values_mut() {
        if rng.one_in(4) {
            policy["scope_filter"]["include_channels"] = json!(["web", "sms"]);
        }
        if rng.one_in(5) {
            policy["scope_filter"]["custom_conditions"] = json!(["age >= 30"]);
        }
        if rng.one_in(6) {
            policy["update_downstream"] = json!(false);
        }
        if rng.one_in(4) {
            policy["force_scenario"] = json!("re_route");
        }
    }
    json!({"policies": policies})
}

async fn get_forecast(app: &TestApp, plan_id: Uuid) -> PlanForecast {
    let reply = app
        .call("GET", &format!("/migration-plans/{plan_id}/forecast"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    serde_json::from_value(reply.body).expect("a forecast")
}

/// What the reconciles answered, tallied as a forecast counts.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    outcomes: BTreeMap<&'static str, u64>,
    targets: BTreeMap<Uuid, u64>,
    fields: BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, key: &'static str) {
        *self.outcomes.entry(key).or_default() += 1;
    }
}

fn outcomes_of(f: &planning::ForecastOutcomes) -> BTreeMap<&'static str, u64> {
    [
        ("continue", f.continue_),
        ("excluded_by_scope", f.excluded_by_scope),
        ("pinned", f.pinned),
        ("teleport", f.teleport),
        ("collect", f.collect),
        ("execute_action", f.execute_action),
        ("exit_scenario", f.exit_scenario),
        ("blocked_by_checkpoint", f.blocked_by_checkpoint),
    ]
    .into_iter()
    .filter(|(_, c)| c.value() > 0)
    .map(|(k, c)| (k, c.value()))
    .collect()
}

fn exact_map<K: Ord + Clone>(m: &BTreeMap<K, ForecastCount>) -> BTreeMap<K, u64> {
    m.iter().map(|(k, c)| (k.clone(), c.value())).collect()
}

/// Approve, deploy, reconcile every session once; tally per V1 step and in all.
async fn deploy_and_reconcile(
    app: &TestApp,
    world: &World,
    plan_id: Uuid,
) -> (Tally, BTreeMap<(i64, Uuid), Tally>) {
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    deploy_until_deployed(app, &plan_id.to_string()).await;
    let mut total = Tally::default();
    let mut by_step: BTreeMap<(i64, Uuid), Tally> = BTreeMap::new();
    for (id, _) in &world.sessions {
        // Where the session is (deploying marks, it moves no one).
        let before = app.call("GET", &format!("/sessions/{id}"), None).await;
        assert_eq!(before.status, 200);
        let version = before.body["active_scenario_version"].as_i64().unwrap();
        let step: Uuid = serde_json::from_value(before.body["active_step_id"].clone()).unwrap();
        let reply = app
            .call(
                "POST",
                &format!("/sessions/{id}/reconcile"),
                Some(json!({})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let result = reply.body;
        let after = app.call("GET", &format!("/sessions/{id}"), None).await;
        assert_eq!(after.status, 200);
        let action = result["action"].as_str().unwrap().to_string();
        for tally in [&mut total, by_step.entry((version, step)).or_default()] {
            let key: &'static str = match action.as_str() {
                "continue" => "continue",
                "teleport" => "teleport",
                "collect" => "collect",
                "execute_action" => "execute_action",
                "exit_scenario" => "exit_scenario",
                other => panic!("unknown action {other}"),
            };
            tally.count(key);
            if action == "continue" {
                if !after.body["pinned_version"].is_null() {
                    tally.count("pinned");
                } else if after.body["active_scenario_version"] == json!(version) {
                    tally.count("excluded_by_scope");
                }
            }
            if result["blocked_by_checkpoint"] == json!(true) {
                tally.count("blocked_by_checkpoint");
            }
            if action == "teleport" {
                let target: Uuid =
                    serde_json::from_value(result["target_step_id"].clone()).unwrap();
                *tally.targets.entry(target).or_default() += 1;
            }
            if action == "collect" {
                for field in result["collect_fields"].as_array().unwrap() {
                    *tally
                        .fields
                        .entry(field.as_str().unwrap().to_string())
                        .or_default() += 1;
                }
            }
        }
    }
    (total, by_step)
}

async fn the_forecast_is_what_deploying_and_reconciling_does(app: TestApp) {
    let mut seen = Tally::default();
    let mut composite_worlds = 0;
    let mut kinds_seen = std::collections::BTreeSet::new();
    for seed in 1..=6 {
        let sessions = 50;
        let world = world(seed, sessions);
        let (plan_id, plan) = planned(&app, &world).await;
        let reply = app
            .call(
                "PUT",
                &format!("/migration-plans/{plan_id}/policies"),
                Some(policies(&plan, seed)),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let forecast = get_forecast(&app, plan_id).await;
        assert!(forecast.exact);
        assert_eq!(forecast.sessions_considered, world.sessions.len() as u64);
        assert_eq!(forecast.sample_size, world.sessions.len() as u64);
        if world.v3.is_some() {
            composite_worlds += 1;
            assert!(
                forecast
                    .by_anchor
                    .iter()
                    .any(|a| a.version == 1 && a.sessions.value() > 0),
                "seed {seed}: sessions left on V1 are forecast through both plans"
            );
        }
        let (total, by_step) = deploy_and_reconcile(&app, &world, plan_id).await;
        assert_eq!(
            outcomes_of(&forecast.outcomes),
            total.outcomes,
            "seed {seed}: outcomes"
        );
        assert_eq!(
            exact_map(&forecast.fields_missing),
            total.fields,
            "seed {seed}: fields"
        );
        for anchor in &forecast.by_anchor {
            let real = by_step.get(&(anchor.version, anchor.v1_step_id));
            let empty = Tally::default();
            let real = real.unwrap_or(&empty);
            assert_eq!(
                anchor.sessions.value(),
                real.outcomes.get("continue").copied().unwrap_or(0)
                    + ["teleport", "collect", "execute_action", "exit_scenario"]
                        .iter()
                        .map(|k| real.outcomes.get(k).copied().unwrap_or(0))
                        .sum::<u64>(),
                "seed {seed}: sessions at {}",
                anchor.anchor_name
            );
            assert_eq!(outcomes_of(&anchor.outcomes), real.outcomes, "seed {seed}");
            assert_eq!(exact_map(&anchor.targets), real.targets, "seed {seed}");
            assert_eq!(
                exact_map(&anchor.fields_missing),
                real.fields,
                "seed {seed}"
            );
        }
        for (k, v) in total.outcomes {
            *seen.outcomes.entry(k).or_default() += v;
        }
        for anchor in forecast.by_anchor.iter().filter(|a| a.sessions.value() > 0) {
            kinds_seen.insert(format!("{:?}", anchor.kind));
        }
    }
    assert!(composite_worlds >= 2);
    // Sessions at anchors, deleted steps, steps edited in place and earlier versions.
    for kind in ["Anchor", "DeletedStep", "EditedStep", "EarlierVersion"] {
        assert!(
            kinds_seen.contains(kind),
            "no sessions at a {kind}: {kinds_seen:?}"
        );
    }
    // The generated worlds reach every kind of outcome the property is about.
    for kind in [
        "continue",
        "excluded_by_scope",
        "pinned",
        "teleport",
        "collect",
        "blocked_by_checkpoint",
    ] {
        assert!(
            seen.outcomes.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in any world: {:?}",
            seen.outcomes
        );
    }
}

async fn a_policy_change_is_forecast_at_once(app: TestApp) {
    let world = world(11, 40);
    let (plan_id, plan) = planned(&app, &world).await;
    let before = get_forecast(&app, plan_id).await;
    assert_eq!(before.outcomes.excluded_by_scope.value(), 0);
    // Another tenant's plan does not exist for this one.
    let stranger = app
        .call_as(
            Uuid::new_v4(),
            "GET",
            &format!("/migration-plans/{plan_id}/forecast"),
            None,
        )
        .await;
    assert_eq!(stranger.status, 404, "{:?}", stranger.body);
    // Every anchor leaves out every channel the sessions use but one.
    let mut policies = plan["anchor_policies"].as_object().cloned().unwrap();
    for policy in policies.values_mut() {
        policy["scope_filter"]["include_channels"] = json!(["voice"]);
    }
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(json!({"policies": policies})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let after = get_forecast(&app, plan_id).await;
    assert!(after.plan_revision > before.plan_revision);
    let not_voice = world
        .sessions
        .iter()
        .filter(|(_, s)| s["channel"] != json!("voice"))
        .count() as u64;
    assert!(not_voice > 0);
    assert_eq!(after.outcomes.excluded_by_scope.value(), not_voice);
}

async fn sampled_intervals_hold_the_exact_counts(app: TestApp) {
    let sessions = 600;
    let world = world(21, sessions);
    let (plan_id, _) = planned(&app, &world).await;
    let store = app.state.store();
    let plan = store
        .get_plan(app.tenant, plan_id)
        .await
        .unwrap()
        .expect("plan");
    let now = chrono::Utc::now();
    let exact_config = api::Config {
        forecast_exact_limit: u64::MAX,
        ..test_config()
    };
    let exact = api::services::forecast::compute(store, &exact_config, plan.clone(), now, 1)
        .await
        .unwrap();
    assert!(exact.exact);
    assert_eq!(exact.sample_size, sessions as u64);
    let sampled_config = api::Config {
        forecast_exact_limit: 0,
        forecast_sample_per_stratum: 5,
        ..test_config()
    };
    let (mut held, mut checked) = (0u32, 0u32);
    let mut check = |estimate: &ForecastCount, truth: &ForecastCount| {
        checked += 1;
        held += u32::from(estimate.holds(truth.value()));
    };
    for seed in 0..8 {
        let sampled =
            api::services::forecast::compute(store, &sampled_config, plan.clone(), now, seed)
                .await
                .unwrap();
        assert!(!sampled.exact);
        assert!(
            sampled.sample_size < exact.sample_size / 2,
            "a sample reads a fraction: {} of {}",
            sampled.sample_size,
            exact.sample_size
        );
        let pairs = |f: &PlanForecast| -> Vec<ForecastCount> {
            let o = &f.outcomes;
            vec![
                o.continue_,
                o.excluded_by_scope,
                o.pinned,
                o.teleport,
                o.collect,
                o.execute_action,
                o.exit_scenario,
                o.blocked_by_checkpoint,
            ]
        };
        for (s, e) in pairs(&sampled).iter().zip(pairs(&exact).iter()) {
            check(s, e);
        }
        for (s, e) in sampled.by_anchor.iter().zip(&exact.by_anchor) {
            assert_eq!(s.v1_step_id, e.v1_step_id);
            for (a, b) in [
                (&s.outcomes.continue_, &e.outcomes.continue_),
                (&s.outcomes.teleport, &e.outcomes.teleport),
                (&s.outcomes.collect, &e.outcomes.collect),
                (&s.outcomes.exit_scenario, &e.outcomes.exit_scenario),
                (&s.outcomes.execute_action, &e.outcomes.execute_action),
            ] {
                check(a, b);
            }
        }
    }
    let coverage = f64::from(held) / f64::from(checked.max(1));
    println!("sampled forecast: {held} of {checked} intervals hold the exact count");
    assert!(
        coverage >= 0.9,
        "{held} of {checked} intervals hold the exact count"
    );
}
