//! One reconcile decision on a 200-step scenario (target: median under 50 µs;
//! figures in docs/benchmarks.md).
//!
//! V1 is a generated conversation; V2 adds, upstream of the late steps, a field to
//! collect, a required action and an age gate that can send minors elsewhere. The
//! plan is computed by the real diff. Plans and versions are prepared once, as the
//! Lambda caches them; each iteration is one `decide` call. Cases:
//! - `clean_graft`: a session before every change;
//! - `re_route_execute_action`: an adult after the gate, phone known: the gate is
//!   evaluated in CEL, the phone filled, the new required action executed;
//! - `re_route_blocked`: a minor who already passed a later checkpoint: the
//!   diversion is refused and the session grafted on its anchor;
//! - `collect`: the same session without data: asked for its age.
//!
//! Run: `cargo bench -p planning --bench reconcile`; the median is in
//! `target/criterion/<case>/new/estimates.json`.

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use uuid::Uuid;

use planning::model::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{PlanLink, PreparedPlan, PreparedScenario, ReconcileContext, decide};
use planning::testkit::{conversation, step};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Insert `new` steps before `before`: every transition into `before` now enters
/// the first of them, and the last one leads on (when it has no transitions yet).
fn insert_before(s: &mut ScenarioInput, before: Uuid, mut new: Vec<StepInput>) {
    let Some(first) = new.first().map(|n| n.id) else {
        return;
    };
    for st in &mut s.steps {
        for t in &mut st.transitions {
            if t.to_step_id == before {
                t.to_step_id = first;
            }
        }
    }
    for i in 0..new.len() {
        if new[i].transitions.is_empty() {
            let to = new.get(i + 1).map(|n| n.id).unwrap_or(before);
            new[i].transitions.push(TransitionInput {
                to_step_id: to,
                condition_text: String::new(),
                priority: 0,
                condition_fields: Vec::new(),
            });
        }
    }
    let at = s.steps.iter().position(|st| st.id == before).unwrap_or(0);
    for (k, n) in new.into_iter().enumerate() {
        s.steps.insert(at + k, n);
    }
}

struct Fixture {
    v1: PreparedScenario,
    v2: PreparedScenario,
    plan: PreparedPlan,
}

fn fixture() -> Fixture {
    let v1 = conversation(200, 42);
    let mut v2 = v1.clone();
    v2.version = 2;
    let id = |i: usize| v1.steps[i].id;
    insert_before(
        &mut v2,
        id(120),
        vec![
            step("Ask phone").collects(&["phone"]).build(),
            step("Verify ID").required_action().build(),
        ],
    );
    insert_before(
        &mut v2,
        id(150),
        vec![
            step("Age gate")
                .branch_id(id(150), "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18", &["age"], 0)
                .build(),
        ],
    );
    v2.steps.push(step("Rejected").terminal().build());

    let computed = compute_plan(&v1, &v2, &SessionCounts::new());
    let plan = MigrationPlan {
        id: Uuid::from_u128(1),
        tenant_id: Uuid::nil(),
        scenario_id: Uuid::nil(),
        scenario_name: v1.name.clone(),
        from_version: 1,
        to_version: 2,
        scenario_checksum_v1: computed.scenario_checksum_v1,
        scenario_checksum_v2: computed.scenario_checksum_v2,
        transformation_map: computed.transformation_map,
        anchor_policies: computed.anchor_policies,
        summary: computed.summary,
        status: PlanStatus::Deployed,
        created_at: now(),
        created_by: None,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: Some(now()),
        expires_at: None,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    };
    Fixture {
        v1: PreparedScenario::new(v1),
        v2: PreparedScenario::new(v2),
        plan: PreparedPlan::new(plan),
    }
}

/// A session that walked the main path of `v1` up to step `until`.
fn session(f: &Fixture, until: usize, flagged: bool) -> Session {
    let def = f.v1.definition();
    let target = def.steps[until].id;
    let mut history = Vec::new();
    let mut at = def.entry_step_id;
    for k in 0..1000 {
        let Some(st) = def.steps.iter().find(|s| s.id == at) else {
            break;
        };
        history.push(StepVisit {
            step_id: st.id,
            step_name: st.name.clone(),
            visited_at: now() - Duration::minutes(1000 - k),
            is_checkpoint: st.is_checkpoint,
            checkpoint_description: st.checkpoint_description.clone(),
        });
        // The last transition of a generated fork is the main path.
        match st.transitions.last() {
            Some(t) if st.id != target => at = t.to_step_id,
            _ => break,
        }
    }
    let anchor = f
        .plan
        .plan()
        .transformation_map
        .anchors
        .iter()
        .find(|a| a.anchor_node_id_v1 == at);
    let pending_migration = (flagged && anchor.is_some()).then(|| PendingMigration {
        migration_plan_id: f.plan.id(),
        target_version: 2,
        anchor_content_hash: anchor
            .map(|a| a.anchor_content_hash.clone())
            .unwrap_or_default(),
        from_step_id: at,
        marked_at: now() - Duration::hours(2),
    });
    Session {
        session_id: "bench".into(),
        tenant_id: Uuid::nil(),
        channel: "whatsapp".into(),
        customer_id: None,
        active_scenario_id: Uuid::nil(),
        active_scenario_version: 1,
        active_step_id: at,
        scenario_checksum: None,
        step_history: history,
        variables: [("email".to_string(), json!("a@example.com"))]
            .into_iter()
            .collect(),
        pending_migration,
        pinned_version: None,
        created_at: now() - Duration::days(3),
        updated_at: now() - Duration::hours(1),
        revision: 0,
    }
}

fn known(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, KnownField> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), KnownField::Plain(v.clone())))
        .collect()
}

struct Case<'a> {
    name: &'static str,
    session: &'a Session,
    known_fields: &'a BTreeMap<String, KnownField>,
    expected: ReconciliationAction,
}

impl<'a> Case<'a> {
    fn new(
        name: &'static str,
        session: &'a Session,
        known_fields: &'a BTreeMap<String, KnownField>,
        expected: ReconciliationAction,
    ) -> Self {
        Case {
            name,
            session,
            known_fields,
            expected,
        }
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let chain = [PlanLink {
        plan: &f.plan,
        to: &f.v2,
    }];
    let adult = known(&[("age", json!(30)), ("phone", json!("+33 6 00 00 00 00"))]);
    let minor = known(&[("age", json!(16)), ("phone", json!("+33 6 00 00 00 00"))]);
    let nothing = BTreeMap::new();
    let early = session(&f, 100, true);
    let late = session(&f, 185, true);
    let cases = [
        Case::new(
            "clean_graft",
            &early,
            &nothing,
            ReconciliationAction::Continue,
        ),
        Case::new(
            "re_route_execute_action",
            &late,
            &adult,
            ReconciliationAction::ExecuteAction,
        ),
        Case::new(
            "re_route_blocked",
            &late,
            &minor,
            ReconciliationAction::ExecuteAction,
        ),
        Case::new("collect", &late, &nothing, ReconciliationAction::Collect),
    ];
    for Case {
        name,
        session,
        known_fields,
        expected,
    } in cases
    {
        let ctx = ReconcileContext {
            session,
            current: &f.v2,
            chain: &chain,
            session_version: Some(&f.v1),
            known_fields,
            now: now(),
        };
        // The bench measures what it claims to: check the outcome once.
        let d = decide(&ctx);
        assert_eq!(d.result.action, expected, "{name}: {:?}", d.result);
        assert_eq!(
            d.result.blocked_by_checkpoint,
            name == "re_route_blocked",
            "{name}: {:?}",
            d.result
        );
        c.bench_function(&format!("reconcile/200 steps/{name}"), |b| {
            b.iter(|| decide(black_box(&ctx)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
