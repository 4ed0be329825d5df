//! The deployment under test: two versions, a population of sessions spread
//! over the steps, and the exact outcome every fan-out test asserts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

// ----- the deployment under test ---------------------------------------------------

/// V1: Welcome(1) → Collect email(2) → Confirm(5) → Done(3).
pub(crate) fn v1() -> Value {
    json!({
        "name": "Signup",
        "version": 1,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(2, "")]),
            step_json(2, "Collect email", &[(5, "")]),
            step_json(5, "Confirm", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

/// V2: an age check before Collect email; Confirm is gone (its sessions go to Done).
pub(crate) fn v2() -> Value {
    let mut age = step_json(4, "Check age", &[(2, "")]);
    age["collects_profile_fields"] = json!(["age"]);
    json!({
        "name": "Signup",
        "version": 2,
        "entry_step_id": step(1),
        "steps": [
            step_json(1, "Welcome", &[(4, "")]),
            age,
            step_json(2, "Collect email", &[(3, "")]),
            step_json(3, "Done", &[]),
        ]
    })
}

/// How many sessions sit at each V1 step. At the anchor "Collect email" every
/// eleventh session is on SMS, which the anchor's scope filter excludes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Population {
    pub(crate) welcome: usize,
    pub(crate) anchor: usize,
    pub(crate) confirm: usize,
    pub(crate) done: usize,
}

impl Population {
    pub(crate) fn per_step(&self) -> [(u32, usize); 4] {
        [
            (1, self.welcome),
            (2, self.anchor),
            (5, self.confirm),
            (3, self.done),
        ]
    }

    pub(crate) fn eligible(&self) -> u64 {
        let sms = self.anchor.div_ceil(11);
        (self.welcome + self.anchor - sms + self.confirm + self.done) as u64
    }
}

pub(crate) fn session_id(step_n: u32, i: usize) -> String {
    format!("s{step_n}-{i:05}")
}

pub(crate) fn channel_of(step_n: u32, i: usize) -> &'static str {
    match (step_n, i % 11, i % 2) {
        (2, 0, _) => "sms",
        (_, _, 0) => "whatsapp",
        _ => "web",
    }
}

/// A session as the runtime records it, with enough on it to notice any change.
pub(crate) fn session_body(scenario: Uuid, step_n: u32, i: usize) -> Value {
    json!({
        "channel": channel_of(step_n, i),
        "customer_id": format!("cust-{i}"),
        "active_scenario_id": scenario,
        "active_scenario_version": 1,
        "active_step_id": step(step_n),
        "step_history": [
            {"step_id": step(1), "step_name": "Welcome", "visited_at": "2025-03-01T10:00:00Z", "is_checkpoint": false}
        ],
        "variables": {
            "email": format!("c{i}@example.com"),
            "visits": i,
            "profile": {"tier": (["gold", "basic", "basic"][i % 3]), "tags": ["a", "b"]},
            "note": "Zoë 🚀"
        },
        "created_at": "2025-03-01T09:59:00Z"
    })
}

pub(crate) struct Deployment {
    pub(crate) plan_id: String,
    pub(crate) population: Population,
    /// V1 step → the anchor hash its sessions are flagged with.
    pub(crate) flag_hash: BTreeMap<u32, String>,
    /// Every session as read back before the deployment.
    pub(crate) before: BTreeMap<String, Value>,
}

impl Deployment {
    /// The flag an eligible session must carry, `None` for an excluded one.
    pub(crate) fn expected_flag(&self, step_n: u32, i: usize) -> Option<&str> {
        (channel_of(step_n, i) != "sms" || step_n != 2).then(|| self.flag_hash[&step_n].as_str())
    }

    pub(crate) fn session_ids(&self) -> impl Iterator<Item = (u32, usize, String)> + '_ {
        self.population
            .per_step()
            .into_iter()
            .flat_map(|(n, count)| (0..count).map(move |i| (n, i, session_id(n, i))))
    }

    pub(crate) fn eligible_by_hash(&self) -> BTreeMap<String, u64> {
        let mut by_hash = BTreeMap::new();
        for (n, i, _) in self.session_ids() {
            if let Some(hash) = self.expected_flag(n, i) {
                *by_hash.entry(hash.to_owned()).or_default() += 1;
            }
        }
        by_hash
    }
}

/// Each step's first session through `PUT /sessions/{id}` as the runtime sends it,
/// the others seeded from it ([`seed_like_first`]) with their own id, channel,
/// customer and variables.
async fn seed_sessions(app: &TestApp, scenario: Uuid, population: Population) {
    let steps = population
        .per_step()
        .into_iter()
        .filter(|(_, count)| *count > 0);
    futures::future::join_all(steps.map(|(n, count)| async move {
        let overlays = (1..count).map(|i| {
            let body = session_body(scenario, n, i);
            json!({
                "session_id": session_id(n, i),
                "channel": body["channel"],
                "customer_id": body["customer_id"],
                "variables": body["variables"],
            })
        });
        let first = session_id(n, 0);
        seed_like_first(app, &first, session_body(scenario, n, 0), overlays).await;
    }))
    .await;
}

/// Scenario, sessions, plan with a scope filter on the anchor, approval; the
/// sessions are read back as the baseline. Stops short of deploying.
pub(crate) async fn prepare(app: &TestApp, population: Population) -> Deployment {
    let scenario = Uuid::new_v4();
    let reply = app
        .call("PUT", &format!("/scenarios/{scenario}"), Some(v1()))
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    seed_sessions(app, scenario, population).await;

    let reply = app
        .call(
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v2()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let plan = reply.body;
    let plan_id = plan["id"].as_str().expect("plan id").to_owned();
    let map = &plan["transformation_map"];
    let mut flag_hash = BTreeMap::new();
    for anchor in map["anchors"].as_array().expect("anchors") {
        let n = [1, 2, 3]
            .into_iter()
            .find(|n| anchor["anchor_node_id_v1"] == json!(step(*n)))
            .expect("an anchor of V1");
        flag_hash.insert(
            n,
            anchor["anchor_content_hash"].as_str().unwrap().to_owned(),
        );
    }
    assert_eq!(flag_hash.len(), 3, "{map}");
    let deleted = &map["deleted_nodes"][0];
    assert_eq!(deleted["node_id_v1"], json!(step(5)), "{map}");
    assert_eq!(
        deleted["nearest_anchor_hash"],
        json!(flag_hash[&3]),
        "Confirm's sessions go to Done"
    );
    flag_hash.insert(5, flag_hash[&3].clone());

    let anchor_hash = flag_hash[&2].clone();
    let mut policy = plan["anchor_policies"][&anchor_hash].clone();
    policy["scope_filter"]["exclude_channels"] = json!(["sms"]);
    let reply = app
        .call(
            "PUT",
            &format!("/migration-plans/{plan_id}/policies"),
            Some(json!({"policies": {anchor_hash: policy}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = app
        .call("POST", &format!("/migration-plans/{plan_id}/approve"), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let mut deployment = Deployment {
        plan_id,
        population,
        flag_hash,
        before: BTreeMap::new(),
    };
    deployment.before = read_sessions(app, &deployment).await;
    assert!(
        deployment
            .before
            .values()
            .all(|s| s.get("pending_migration").is_none())
    );
    deployment
}

pub(crate) async fn read_sessions(
    app: &TestApp,
    deployment: &Deployment,
) -> BTreeMap<String, Value> {
    let ids: Vec<String> = deployment.session_ids().map(|(_, _, id)| id).collect();
    futures::stream::iter(ids.into_iter().map(|id| async move {
        let reply = app.call("GET", &format!("/sessions/{id}"), None).await;
        assert_eq!(reply.status, 200, "{id}: {:?}", reply.body);
        (id, reply.body)
    }))
    .buffer_unordered(16)
    .collect()
    .await
}

pub(crate) async fn deploy(app: &TestApp, plan_id: &str) -> Reply {
    app.call("POST", &format!("/migration-plans/{plan_id}/deploy"), None)
        .await
}

pub(crate) async fn status(app: &TestApp, plan_id: &str) -> Value {
    let reply = app
        .call(
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// Poll the deployment status until `done` holds. The deadline only guards
/// against a hang; it asserts nothing about speed.
pub(crate) async fn wait_for(
    app: &TestApp,
    plan_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let current = status(app, plan_id).await;
        if done(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "never reached {what}: {current}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_deployed(app: &TestApp, plan_id: &str) -> Value {
    wait_for(app, plan_id, "deployed", |s| s["status"] == "deployed").await
}

/// The whole outcome: exact counts, every eligible session flagged by this plan
/// with its anchor, excluded ones untouched, and nothing else changed anywhere.
pub(crate) async fn assert_marked_exactly(app: &TestApp, deployment: &Deployment) {
    let plan_id = &deployment.plan_id;
    let current = status(app, plan_id).await;
    assert_eq!(current["status"], "deployed", "{current}");
    assert!(current["deployed_at"].is_string(), "{current}");
    assert_eq!(
        current["sessions_marked"],
        json!(deployment.population.eligible()),
        "{current}"
    );
    assert_eq!(
        current["migrations_pending"],
        json!(deployment.population.eligible())
    );
    assert_eq!(current["migrations_applied"], 0);
    assert_eq!(current["pages_failed"], 0, "{current}");

    let plan_uuid: Uuid = plan_id.parse().expect("plan id");
    let stats = app
        .state
        .store()
        .get_plan_stats(app.tenant, plan_uuid)
        .await
        .expect("stats");
    assert_eq!(stats.sessions_by_anchor, deployment.eligible_by_hash());
    assert_eq!(stats.chains_done, stats.chains_total);
    // One chain per (step, shard of the step index) that holds sessions.
    let shards = app.state.store().step_index_shards();
    assert!(shards > 1, "marking runs on a sharded step index");
    let chains: std::collections::BTreeSet<(u32, u32)> = deployment
        .session_ids()
        .map(|(n, _, id)| (n, store::step_shard(&id, shards)))
        .collect();
    assert_eq!(stats.chains_total, chains.len() as u64);
    assert!(
        stats.chains_total > 4,
        "a step's sessions are marked by several chains"
    );

    let after = read_sessions(app, deployment).await;
    for (n, i, id) in deployment.session_ids() {
        let mut now = after[&id].clone();
        let flag = now
            .as_object_mut()
            .expect("session object")
            .remove("pending_migration");
        match deployment.expected_flag(n, i) {
            Some(hash) => {
                let flag = flag.unwrap_or_else(|| panic!("{id} is eligible but not flagged"));
                assert_eq!(flag["migration_plan_id"], json!(plan_id), "{id}");
                assert_eq!(flag["target_version"], 2, "{id}");
                assert_eq!(flag["anchor_content_hash"], json!(hash), "{id}");
                assert_eq!(flag["from_step_id"], json!(step(n)), "{id}");
                assert!(flag["marked_at"].is_string(), "{id}");
            }
            None => assert!(flag.is_none(), "{id} is out of scope but flagged"),
        }
        // Marking bumps the revision with the flag, and changes nothing else.
        let mut before = deployment.before[&id].clone();
        let revision_before = before["revision"].as_u64().expect("revision");
        let flagged = deployment.expected_flag(n, i).is_some();
        assert_eq!(
            now["revision"].as_u64(),
            Some(revision_before + u64::from(flagged)),
            "{id}: one revision per write"
        );
        now.as_object_mut().expect("object").remove("revision");
        before.as_object_mut().expect("object").remove("revision");
        assert_eq!(now, before, "{id}: only the flag may change");
    }
}

pub(crate) fn small_population() -> Population {
    Population {
        welcome: 140,
        anchor: 330,
        confirm: 45,
        done: 25,
    }
}
