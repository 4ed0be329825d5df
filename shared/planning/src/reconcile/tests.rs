//! One test (at least) per reconcile rule (the numbered rules and the
//! checkpoint invariant of `reconcile`'s module documentation). Plans are
//! written by hand so that each test controls exactly the transformation map
//! the decision sees.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::hash::step_content_hash;
use crate::model::*;
use crate::testkit::{ScenarioBuilder, StepBuilder, name_id, step};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn flow(version: i64, steps: Vec<StepBuilder>) -> PreparedScenario {
    PreparedScenario::new(
        steps
            .into_iter()
            .fold(ScenarioBuilder::new("Support flow", version), |b, s| {
                b.step(s)
            })
            .build(),
    )
}

/// Welcome → Email → Payment (checkpoint) → Shipping → Done.
fn v1_steps() -> Vec<StepBuilder> {
    vec![
        step("Welcome").to("Email"),
        step("Email").collects(&["email"]).to("Payment"),
        step("Payment")
            .checkpoint("Payment processed")
            .performs_action()
            .to("Shipping"),
        step("Shipping").to("Done"),
        step("Done").terminal(),
    ]
}

fn v1() -> PreparedScenario {
    flow(1, v1_steps())
}

fn hash_of(s: &PreparedScenario, name: &str) -> String {
    let idx = s.index_of(name_id(name)).unwrap_or_default();
    step_content_hash(s.step(idx))
}

struct Anchor {
    name: &'static str,
    v2_name: &'static str,
    scenario: MigrationScenario,
    upstream: RegionChanges,
}

fn anchor(name: &'static str, scenario: MigrationScenario) -> Anchor {
    Anchor {
        name,
        v2_name: name,
        scenario,
        upstream: RegionChanges::default(),
    }
}

impl Anchor {
    fn inserted(mut self, name: &str, fields: &[&str], required_action: bool) -> Self {
        self.upstream.inserted_nodes.push(InsertedNode {
            node_id: name_id(name),
            node_name: name.to_string(),
            collects_fields: fields.iter().map(|f| f.to_string()).collect(),
            has_rules: false,
            is_required_action: required_action,
            is_checkpoint: false,
        });
        self
    }
    fn fork(mut self, name: &str) -> Self {
        self.upstream.new_forks.push(NewFork {
            fork_node_id: name_id(name),
            fork_node_name: name.to_string(),
            branches: Vec::new(),
        });
        self
    }
    /// The V2 step is the one whose id is `name_id(v2_name)`.
    fn v2_id_of(mut self, v2_name: &'static str) -> Self {
        self.v2_name = v2_name;
        self
    }
}

type PolicyEdit = Box<dyn Fn(&mut AnchorMigrationPolicy)>;

struct PlanSpec {
    from: i64,
    to: i64,
    anchors: Vec<Anchor>,
    deleted: Vec<(&'static str, Option<&'static str>)>,
    policies: Vec<(&'static str, PolicyEdit)>,
}

fn plan_spec(from: i64, to: i64, anchors: Vec<Anchor>) -> PlanSpec {
    PlanSpec {
        from,
        to,
        anchors,
        deleted: Vec::new(),
        policies: Vec::new(),
    }
}

impl PlanSpec {
    fn deleted(mut self, name: &'static str, nearest: Option<&'static str>) -> Self {
        self.deleted.push((name, nearest));
        self
    }
    fn policy(
        mut self,
        anchor: &'static str,
        f: impl Fn(&mut AnchorMigrationPolicy) + 'static,
    ) -> Self {
        self.policies.push((anchor, Box::new(f)));
        self
    }
    /// `v2` gives the anchors' hashes (anchors have equal content in both versions).
    fn build(self, v2: &PreparedScenario) -> PreparedPlan {
        let anchors: Vec<AnchorTransformation> = self
            .anchors
            .iter()
            .map(|a| AnchorTransformation {
                anchor_content_hash: hash_of(v2, a.v2_name),
                anchor_name: a.v2_name.to_string(),
                anchor_node_id_v1: name_id(a.name),
                anchor_node_id_v2: name_id(a.v2_name),
                upstream_changes: a.upstream.clone(),
                downstream_changes: RegionChanges::default(),
                migration_scenario: a.scenario,
            })
            .collect();
        let deleted_nodes = self
            .deleted
            .iter()
            .map(|(name, nearest)| DeletedNode {
                node_id_v1: name_id(name),
                node_name: name.to_string(),
                nearest_anchor_hash: nearest.map(|n| hash_of(v2, n)),
                nearest_anchor_id_v2: nearest.map(name_id),
                edited: false,
            })
            .collect();
        let mut anchor_policies: BTreeMap<String, AnchorMigrationPolicy> = anchors
            .iter()
            .map(|a| {
                (
                    a.anchor_content_hash.clone(),
                    AnchorMigrationPolicy {
                        anchor_content_hash: a.anchor_content_hash.clone(),
                        anchor_name: a.anchor_name.clone(),
                        scope_filter: ScopeFilter::default(),
                        update_downstream: true,
                        force_scenario: None,
                        edited_step_behavior: None,
                    },
                )
            })
            .collect();
        for (name, f) in &self.policies {
            if let Some(p) = anchor_policies.get_mut(&hash_of(v2, name)) {
                f(p);
            }
        }
        PreparedPlan::new(MigrationPlan {
            id: Uuid::from_u128(0x9000 + self.to as u128),
            tenant_id: Uuid::nil(),
            scenario_id: Uuid::nil(),
            scenario_name: "Support flow".into(),
            from_version: self.from,
            to_version: self.to,
            scenario_checksum_v1: String::new(),
            scenario_checksum_v2: v2.checksum().to_string(),
            transformation_map: TransformationMap {
                anchors,
                deleted_nodes,
                new_node_ids: Vec::new(),
                edited_steps: Vec::new(),
            },
            anchor_policies,
            summary: MigrationSummary::default(),
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
            revision: 1,
        })
    }
}

fn session(version: i64, at: &str, history: &[&str]) -> Session {
    let visits = history
        .iter()
        .map(|name| StepVisit {
            step_id: name_id(name),
            step_name: name.to_string(),
            visited_at: now() - Duration::days(2),
            is_checkpoint: *name == "Payment",
            checkpoint_description: (*name == "Payment").then(|| "Payment processed".to_string()),
        })
        .collect();
    Session {
        session_id: "s-1".into(),
        tenant_id: Uuid::nil(),
        channel: "whatsapp".into(),
        customer_id: None,
        active_scenario_id: Uuid::nil(),
        active_scenario_version: version,
        active_step_id: name_id(at),
        scenario_checksum: None,
        step_history: visits,
        variables: BTreeMap::new(),
        pending_migration: None,
        pinned_version: None,
        created_at: now() - Duration::days(3),
        updated_at: now() - Duration::days(2),
        revision: 0,
    }
}

fn flagged(mut s: Session, plan: &PreparedPlan, anchor_hash: &str) -> Session {
    s.pending_migration = Some(PendingMigration {
        migration_plan_id: plan.id(),
        target_version: plan.plan().to_version,
        anchor_content_hash: anchor_hash.to_string(),
        from_step_id: s.active_step_id,
        marked_at: now() - Duration::days(1),
    });
    s
}

/// One world: a session's version, the current version and the plans between.
struct World<'a> {
    session_version: &'a PreparedScenario,
    current: &'a PreparedScenario,
    chain: Vec<PlanLink<'a>>,
}

impl<'a> World<'a> {
    fn one(v1: &'a PreparedScenario, v2: &'a PreparedScenario, plan: &'a PreparedPlan) -> Self {
        World {
            session_version: v1,
            current: v2,
            chain: vec![PlanLink { plan, to: v2 }],
        }
    }
    fn decide(&self, s: &Session, known: &BTreeMap<String, KnownField>) -> Decision {
        decide(&ReconcileContext {
            session: s,
            current: self.current,
            chain: &self.chain,
            session_version: Some(self.session_version),
            known_fields: known,
            now: now(),
        })
    }
}

fn none() -> BTreeMap<String, KnownField> {
    BTreeMap::new()
}

fn known(pairs: &[(&str, KnownField)]) -> BTreeMap<String, KnownField> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn plain(v: Value) -> KnownField {
    KnownField::Plain(v)
}

fn candidate(v: Value, confidence: f64) -> KnownField {
    KnownField::Candidate {
        value: v,
        source: Some("extraction".into()),
        confidence: Some(confidence),
    }
}

/// What the endpoint would write, applied to a copy of the session.
fn apply(s: &Session, d: &Decision) -> Session {
    let mut s = s.clone();
    if let Some(p) = &d.new_position {
        s.active_scenario_version = p.version;
        s.active_step_id = p.step_id;
        s.scenario_checksum = Some(p.checksum.clone());
    }
    if let Some(v) = d.pin_version {
        s.pinned_version = Some(v);
    }
    if d.clear_flag {
        s.pending_migration = None;
    }
    s.variables.extend(d.set_variables.clone());
    s
}

fn assert_settled(w: &World<'_>, s: &Session, d: &Decision, k: &BTreeMap<String, KnownField>) {
    let again = w.decide(&apply(s, d), k);
    assert_eq!(
        again.result.action,
        ReconciliationAction::Continue,
        "{again:?}"
    );
    assert!(!again.writes_session(), "{again:?}");
}

// ---------------------------------------------------------------------------
// No migration
// ---------------------------------------------------------------------------

#[test]
fn up_to_date_session_continues_without_write() {
    let v2 = v1();
    let world = World {
        session_version: &v2,
        current: &v2,
        chain: vec![],
    };
    let d = world.decide(&session(1, "Email", &["Welcome", "Email"]), &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.result.reason.as_deref(), Some("up to date"));
    assert!(!d.writes_session());
}

#[test]
fn pinned_session_is_never_migrated_again() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Email", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let mut s = session(1, "Email", &["Welcome", "Email"]);
    s.pinned_version = Some(1);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.writes_session());
    // A flag that slipped in is cleared, nothing else.
    let s = flagged(s, &plan, &hash_of(&v2, "Email"));
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.clear_flag && !d.applies_migration && d.new_position.is_none());
}

#[test]
fn leftover_flag_on_current_version_is_cleared() {
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Email", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v2, &v2, &plan);
    let s = flagged(
        session(2, "Email", &["Email"]),
        &plan,
        &hash_of(&v2, "Email"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.clear_flag && !d.applies_migration);
    assert_eq!(d.flag_plan_id, Some(plan.id()));
}

#[test]
fn a_checksum_that_is_not_the_versions_repositions_once() {
    let v2 = v1();
    let world = World {
        session_version: &v2,
        current: &v2,
        chain: vec![],
    };
    // The runtime ran an edited definition under version 1: its step still exists.
    let mut s = session(1, "Email", &["Welcome", "Email"]);
    s.scenario_checksum = Some("0123456789abcdef".into());
    let d = world.decide(&s, &none());
    assert!(d.checksum_mismatch);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    let position = d.new_position.as_ref().expect("rewritten");
    assert_eq!(position.step_id, s.active_step_id);
    assert_eq!(position.checksum, v2.checksum());
    assert!(d.writes_session());
    // Once rewritten, the session is up to date: nothing more to do.
    let settled = apply(&s, &d);
    let again = world.decide(&settled, &none());
    assert!(!again.writes_session(), "{:?}", again.result);
    // Its step does not exist in the version at all: it restarts, never half-way.
    let mut lost = session(1, "Email", &[]);
    lost.active_step_id = Uuid::from_u128(0xdead);
    lost.scenario_checksum = Some("0123456789abcdef".into());
    let d = world.decide(&lost, &none());
    assert!(d.checksum_mismatch);
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.checksum.as_str()),
        Some(v2.checksum())
    );
}

#[test]
fn already_migrated_answer() {
    let r = already_migrated();
    assert_eq!(r.action, ReconciliationAction::Continue);
    assert_eq!(r.reason.as_deref(), Some("already migrated"));
}

// ---------------------------------------------------------------------------
// Clean graft
// ---------------------------------------------------------------------------

#[test]
fn clean_graft_with_unchanged_id_continues_but_migrates() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration && d.clear_flag);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::CleanGraft)
    );
    assert_eq!(
        d.new_position,
        Some(Position {
            version: 2,
            step_id: name_id("Shipping"),
            checksum: v2.checksum().to_string()
        })
    );
    assert_eq!(d.flag_plan_id, Some(plan.id()));
    assert_eq!(d.plan_id, Some(plan.id()));
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn clean_graft_teleports_silently_when_the_id_changed() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping 2"),
            step("Shipping").id(name_id("Shipping 2")).to("Done"),
            step("Done").terminal(),
        ],
    );
    // The anchor's V2 step is found under the id of "Shipping 2".
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft).v2_id_of("Shipping 2")],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping 2"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping 2")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("clean_graft"));
    assert_eq!(d.result.user_message, None);
    assert!(!d.result.blocked_by_checkpoint);
    assert_settled(&world, &s, &d, &none());
}

// ---------------------------------------------------------------------------
// Gap fill
// ---------------------------------------------------------------------------

/// V2 inserts "Age check" (collects age) and "Verify ID" (required action) before Payment.
fn gap_world_steps(with_action: bool) -> Vec<StepBuilder> {
    let mut steps = vec![
        step("Welcome").to("Email"),
        step("Email").collects(&["email"]).to("Age check"),
    ];
    if with_action {
        steps.push(
            step("Age check")
                .collects(&["age", "country"])
                .to("Verify ID"),
        );
        steps.push(step("Verify ID").required_action().to("Payment"));
    } else {
        steps.push(
            step("Age check")
                .collects(&["age", "country"])
                .to("Payment"),
        );
    }
    steps.extend([
        step("Payment")
            .checkpoint("Payment processed")
            .performs_action()
            .to("Shipping"),
        step("Shipping").to("Done"),
        step("Done").terminal(),
    ]);
    steps
}

fn gap_plan(v2: &PreparedScenario, with_action: bool) -> PreparedPlan {
    let mut a = anchor("Shipping", MigrationScenario::GapFill).inserted(
        "Age check",
        &["age", "country"],
        false,
    );
    if with_action {
        a = a.inserted("Verify ID", &[], true);
    }
    plan_spec(1, 2, vec![a]).build(v2)
}

#[test]
fn gap_fill_collects_missing_fields_and_keeps_the_flag() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let k = known(&[("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert_eq!(d.fields_asked, vec!["age".to_string()]);
    assert!(
        d.result
            .user_message
            .as_deref()
            .is_some_and(|m| m.contains("age"))
    );
    assert!(!d.clear_flag && !d.applies_migration && d.new_position.is_none());
    // What was filled is still saved.
    assert_eq!(d.set_variables.get("country"), Some(&json!("FR")));
    assert_eq!(
        d.fields_filled.get("country").map(String::as_str),
        Some(SOURCE_KNOWN)
    );
    // Deterministic: the same call gives the same decision.
    assert_eq!(d, world.decide(&s, &k));
    // Saving the filled values and calling again still asks for the missing one only.
    let again = world.decide(&apply(&s, &d), &none());
    assert_eq!(again.result.collect_fields, vec!["age".to_string()]);
}

#[test]
fn gap_fill_uses_known_fields_then_variables_with_confidence_thresholds() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let mut s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    s.variables.insert("country".into(), json!("DE"));

    // Too unsure: not used, the variable does not hold age either.
    let d = world.decide(&s, &known(&[("age", candidate(json!(30), 0.8))]));
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);

    // Used, but to be confirmed.
    let k = known(&[("age", candidate(json!(30), 0.9))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(d.result.confirm_fields, vec!["age".to_string()]);
    assert_eq!(
        d.set_variables,
        [("age".to_string(), json!(30))].into_iter().collect()
    );
    assert_eq!(
        d.fields_filled.get("age").map(String::as_str),
        Some("extraction")
    );
    assert_eq!(
        d.fields_filled.get("country").map(String::as_str),
        Some(SOURCE_VARIABLES)
    );
    assert_settled(&world, &s, &d, &k);

    // Sure enough: used without confirmation; a plain value wins over the variable.
    let d = world.decide(
        &s,
        &known(&[
            ("age", candidate(json!(30), 0.97)),
            ("country", plain(json!("FR"))),
        ]),
    );
    assert!(d.result.confirm_fields.is_empty());
    assert_eq!(d.set_variables.get("country"), Some(&json!("FR")));
}

#[test]
fn gap_fill_required_action_is_executed() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(true));
    let plan = gap_plan(&v2, true);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::ExecuteAction);
    assert_eq!(d.result.execute_action_ids, vec![name_id("Verify ID")]);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping")));
    assert!(d.applies_migration && d.clear_flag);
    assert_settled(&world, &s, &d, &k);
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

#[test]
fn update_downstream_false_pins_the_session_where_it_is() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false)],
    )
    .policy("Shipping", |p| p.update_downstream = false)
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.pin_version, Some(1));
    assert!(d.clear_flag && d.applies_migration);
    assert_eq!(d.new_position, None);
    assert!(d.result.collect_fields.is_empty());
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn force_scenario_overrides_the_computed_one() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false)],
    )
    .policy("Shipping", |p| {
        p.force_scenario = Some(MigrationScenario::CleanGraft)
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::CleanGraft)
    );
    assert!(d.result.collect_fields.is_empty());

    // And upwards: a clean graft forced to gap fill asks for the inserted fields.
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft).inserted(
            "Age check",
            &["age"],
            false,
        )],
    )
    .policy("Shipping", |p| {
        p.force_scenario = Some(MigrationScenario::GapFill)
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
}

// ---------------------------------------------------------------------------
// Re-route
// ---------------------------------------------------------------------------

/// V1: Welcome → Email → Offer → Done. V2 inserts a fork "Age gate" before Offer:
/// adults go on to Offer, minors to Rejected (a dead end).
fn reroute_v1() -> PreparedScenario {
    flow(
        1,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Offer"),
            step("Offer").to("Done"),
            step("Done").terminal(),
        ],
    )
}

fn reroute_v2(minor_condition: &str) -> PreparedScenario {
    flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Age gate"),
            step("Age gate")
                .branch("Offer", "age >= 18", &["age"], 1)
                .branch("Rejected", minor_condition, &["age"], 0),
            step("Offer").to("Done"),
            step("Rejected").terminal(),
            step("Done").terminal(),
        ],
    )
}

fn reroute_plan(v2: &PreparedScenario) -> PreparedPlan {
    plan_spec(
        1,
        2,
        vec![
            anchor("Offer", MigrationScenario::ReRoute)
                .inserted("Age gate", &[], false)
                .fork("Age gate"),
        ],
    )
    .build(v2)
}

#[test]
fn re_route_asks_for_missing_condition_fields() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("age < 18");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert!(!d.clear_flag);
}

#[test]
fn re_route_teleports_to_a_true_branch_that_leaves_the_anchor_path() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("age < 18");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let k = known(&[("age", plain(json!(16)))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("re_route"));
    assert!(d.result.user_message.is_some());
    assert_eq!(d.set_variables.get("age"), Some(&json!(16)));
    assert_settled(&world, &s, &d, &k);

    // An adult stays on the anchor's path: graft.
    let d = world.decide(&s, &known(&[("age", plain(json!(30)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
}

#[test]
fn re_route_never_takes_an_invalid_condition_and_says_so() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("customer looks underage");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    let reason = d.result.reason.unwrap_or_default();
    assert!(reason.contains("not valid CEL"), "{reason}");
}

#[test]
fn re_route_fallback_branch_is_taken_when_every_other_is_false() {
    let v1 = reroute_v1();
    let v2 = reroute_v2("");
    let plan = reroute_plan(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Offer", &["Welcome", "Email", "Offer"]),
        &plan,
        &hash_of(&v2, "Offer"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
    // No value for `age`: CEL fails, so the fallback cannot be concluded either.
    let d = world.decide(&s, &known(&[("age", plain(json!("unknown")))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
}

/// V1: Welcome → Payment (checkpoint) → Shipping → Done. V2 puts an age gate
/// before Payment: minors go to Rejected. A customer who already paid is past it.
fn paid_world() -> (PreparedScenario, PreparedScenario) {
    let v1 = flow(
        1,
        vec![
            step("Welcome").to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Age gate"),
            step("Age gate")
                .branch("Payment", "age >= 18", &["age"], 1)
                .branch("Rejected", "age < 18", &["age"], 0),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Rejected").terminal(),
            step("Done").terminal(),
        ],
    );
    (v1, v2)
}

#[test]
fn re_route_upstream_of_a_passed_checkpoint_is_blocked_and_grafts_on_the_anchor() {
    let (v1, v2) = paid_world();
    let plan = plan_spec(
        1,
        2,
        vec![
            anchor("Shipping", MigrationScenario::ReRoute)
                .inserted("Age gate", &[], false)
                .fork("Age gate"),
        ],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    // "Customers under 18 should be rejected, but they already paid."
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint);
    assert!(d.result.checkpoint_warning.is_some());
    assert!(d.applies_migration);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Shipping"))
    );
    assert_eq!(d.new_position.as_ref().map(|p| p.version), Some(2));

    // Without the age, nobody is asked: that fork can never be re-decided.
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration && !d.result.blocked_by_checkpoint);
}

// ---------------------------------------------------------------------------
// Checkpoints on plain landings
// ---------------------------------------------------------------------------

#[test]
fn landing_upstream_of_the_last_checkpoint_pins_the_session() {
    // V2 moves Shipping before Payment: a customer past Payment at Shipping would
    // pay again after the graft.
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint);
    assert!(
        d.result
            .checkpoint_warning
            .as_deref()
            .is_some_and(|w| w.contains("Payment processed"))
    );
    assert_eq!(d.pin_version, Some(1));
    assert_eq!(d.new_position, None);
    assert!(d.clear_flag && d.applies_migration);
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn a_checkpoint_that_no_longer_exists_blocks() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert!(d.result.blocked_by_checkpoint);
    assert_eq!(d.pin_version, Some(1));
}

#[test]
fn a_checkpoint_whose_id_changed_is_found_by_content_hash() {
    let v1 = v1();
    // Same graph, Payment has a new id but the same content.
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment 2"),
            step("Payment")
                .id(name_id("Payment 2"))
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Email", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert!(!d.result.blocked_by_checkpoint, "{d:?}");
    assert!(d.applies_migration);
    assert!(d.new_position.is_some());

    // And the same relocated checkpoint still blocks a landing upstream of it.
    let v2b = flow(
        2,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Shipping"),
            step("Shipping").to("Payment 2"),
            step("Payment")
                .id(name_id("Payment 2"))
                .checkpoint("Payment processed")
                .performs_action()
                .to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2b);
    let world = World::one(&v1, &v2b, &plan);
    let d = world.decide(&s, &none());
    assert!(d.result.blocked_by_checkpoint);
}

#[test]
fn a_session_sitting_on_the_checkpoint_may_graft_onto_it() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Payment", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Payment", &["Welcome", "Email", "Payment"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let d = world.decide(&s, &none());
    assert!(!d.result.blocked_by_checkpoint);
    assert!(d.applies_migration && d.new_position.is_some());
}

// ---------------------------------------------------------------------------
// Deleted steps
// ---------------------------------------------------------------------------

#[test]
fn a_session_on_a_deleted_step_goes_through_its_nearest_anchor() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![
            step("Welcome").to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let plan = plan_spec(
        1,
        2,
        vec![
            anchor("Welcome", MigrationScenario::CleanGraft),
            anchor("Payment", MigrationScenario::GapFill),
        ],
    )
    .deleted("Email", Some("Payment"))
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    // The marker puts the nearest anchor's hash in the flag.
    let s = flagged(
        session(1, "Email", &["Welcome", "Email"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Payment")));
    assert_eq!(d.result.teleport_reason.as_deref(), Some("deleted_step"));
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::GapFill)
    );
    assert!(d.result.user_message.is_some());
    assert_settled(&world, &s, &d, &none());
}

#[test]
fn a_deleted_step_without_anchor_exits_the_scenario() {
    let v1 = v1();
    let v2 = flow(
        2,
        vec![step("Start over").to("End"), step("End").terminal()],
    );
    let plan = plan_spec(1, 2, vec![]).deleted("Email", None).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(session(1, "Email", &["Welcome", "Email"]), &plan, "");
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert!(
        d.result
            .user_message
            .as_deref()
            .is_some_and(|m| m.contains("start again"))
    );
    assert!(d.applies_migration && d.clear_flag);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Start over"))
    );
    assert_settled(&world, &s, &d, &none());
}

// ---------------------------------------------------------------------------
// Late arrivals and scope
// ---------------------------------------------------------------------------

#[test]
fn late_arrival_in_scope_migrates_as_if_flagged() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = gap_plan(&v2, false);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.applies_migration);
    assert_eq!(d.flag_plan_id, None);
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::GapFill)
    );
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn late_arrival_out_of_scope_stays_without_write() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", |p| {
        p.scope_filter.exclude_channels = vec!["whatsapp".into()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.writes_session());
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("scope"))
    );

    // Scope by CEL over the session, and by step name.
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", |p| {
        p.scope_filter.custom_conditions = vec!["session.current_step == 'Shipping'".into()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    assert!(world.decide(&s, &none()).applies_migration);
}

#[test]
fn a_flag_for_another_position_is_not_trusted() {
    // Marked at Email, then the runtime moved the session to Shipping.
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let plan = plan_spec(
        1,
        2,
        vec![
            anchor("Email", MigrationScenario::CleanGraft),
            anchor("Shipping", MigrationScenario::GapFill).inserted("Age check", &["age"], false),
        ],
    )
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let mut s = flagged(
        session(1, "Email", &["Welcome", "Email"]),
        &plan,
        &hash_of(&v2, "Email"),
    );
    s.active_step_id = name_id("Shipping");
    let d = world.decide(&s, &none());
    assert_eq!(d.result.anchor_hash, Some(hash_of(&v2, "Shipping")));
    assert_eq!(d.result.action, ReconciliationAction::Collect);
}

// ---------------------------------------------------------------------------
// Composite migrations and broken chains
// ---------------------------------------------------------------------------

/// v1 → v2 inserts "Age check" (age, country) before Shipping; v2 → v3 removes
/// the country question: a composite migration asks for age only.
#[test]
fn composite_accumulates_and_prunes_fields() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Age check 3"),
            step("Age check 3").collects(&["age"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping"),
            step("Shipping").to("Done"),
            step("Done").terminal(),
        ],
    );
    let p12 = gap_plan(&v2, false);
    let p23 = plan_spec(
        2,
        3,
        vec![anchor("Shipping", MigrationScenario::GapFill).inserted(
            "Age check 3",
            &["age"],
            false,
        )],
    )
    .build(&v3);
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![
            PlanLink {
                plan: &p12,
                to: &v2,
            },
            PlanLink {
                plan: &p23,
                to: &v3,
            },
        ],
    };
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &p12,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(d.result.collect_fields, vec!["age".to_string()]);
    assert!(
        d.result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("'country' is no longer used"))
    );
    let k = known(&[("age", plain(json!(33)))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.new_position.as_ref().map(|p| p.version), Some(3));
    assert_eq!(d.flag_plan_id, Some(p12.id()));
    assert_eq!(d.plan_id, Some(p23.id()));
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn composite_follows_an_anchor_renamed_between_versions() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    // v3 replaces Shipping by "Delivery" (new content): v2's Shipping is deleted,
    // its nearest anchor is Done.
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Delivery"),
            step("Delivery").to("Done"),
            step("Done").terminal(),
        ],
    );
    let p12 = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .build(&v2);
    let p23 = plan_spec(2, 3, vec![anchor("Done", MigrationScenario::CleanGraft)])
        .deleted("Shipping", Some("Done"))
        .build(&v3);
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![
            PlanLink {
                plan: &p12,
                to: &v2,
            },
            PlanLink {
                plan: &p23,
                to: &v3,
            },
        ],
    };
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &p12,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Done")));
}

#[test]
fn a_broken_chain_relocates_by_content_hash_or_exits() {
    let v1 = v1();
    let v3 = flow(
        3,
        vec![
            step("Welcome").to("Email"),
            step("Email").collects(&["email"]).to("Payment"),
            step("Payment")
                .checkpoint("Payment processed")
                .performs_action()
                .to("Shipping 3"),
            step("Shipping").id(name_id("Shipping 3")).to("Done"),
            step("Done").terminal(),
        ],
    );
    let p23 = plan_spec(2, 3, vec![]).build(&v3);
    // The v1 → v2 plan is missing.
    let world = World {
        session_version: &v1,
        current: &v3,
        chain: vec![PlanLink {
            plan: &p23,
            to: &v3,
        }],
    };
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Teleport);
    assert_eq!(d.result.target_step_id, Some(name_id("Shipping 3")));
    assert_eq!(
        d.result.teleport_reason.as_deref(),
        Some("relocated_by_content_hash")
    );
    assert_settled(&world, &s, &d, &none());

    // A step with no counterpart: exit.
    let s = session(1, "Email", &["Welcome", "Email"]);
    let v3b = flow(3, vec![step("Hello").to("Bye"), step("Bye").terminal()]);
    let world = World {
        session_version: &v1,
        current: &v3b,
        chain: vec![],
    };
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert_settled(&world, &s, &d, &none());
}

// ---------------------------------------------------------------------------
// With plans computed by the real diff
// ---------------------------------------------------------------------------

fn computed(v1: &PreparedScenario, v2: &PreparedScenario) -> PreparedPlan {
    let c = crate::plan::compute_plan(
        v1.definition(),
        v2.definition(),
        &crate::plan::SessionCounts::new(),
    );
    let mut plan = plan_spec(v1.version(), v2.version(), vec![])
        .build(v2)
        .plan()
        .clone();
    plan.transformation_map = c.transformation_map;
    plan.anchor_policies = c.anchor_policies;
    PreparedPlan::new(plan)
}

#[test]
fn computed_gap_fill_plan_collects_then_executes_then_settles() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(true));
    let plan = computed(&v1, &v2);
    let shipping = plan
        .plan()
        .transformation_map
        .anchor_by_hash(&hash_of(&v2, "Shipping"))
        .map(|a| a.migration_scenario);
    assert_eq!(shipping, Some(MigrationScenario::GapFill));
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Collect);
    assert_eq!(
        d.result.collect_fields,
        vec!["age".to_string(), "country".to_string()]
    );
    let k = known(&[("age", plain(json!(40))), ("country", plain(json!("FR")))]);
    let d = world.decide(&s, &k);
    assert_eq!(d.result.action, ReconciliationAction::ExecuteAction);
    assert_eq!(d.result.execute_action_ids, vec![name_id("Verify ID")]);
    assert_settled(&world, &s, &d, &k);
}

#[test]
fn computed_re_route_plan_blocks_a_customer_who_already_paid() {
    let (v1, v2) = paid_world();
    let plan = computed(&v1, &v2);
    let world = World::one(&v1, &v2, &plan);
    let s = flagged(
        session(1, "Shipping", &["Welcome", "Payment", "Shipping"]),
        &plan,
        &hash_of(&v2, "Shipping"),
    );
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(
        d.result.migration_scenario,
        Some(MigrationScenario::ReRoute)
    );
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.result.blocked_by_checkpoint, "{d:?}");
    assert_eq!(
        d.new_position.as_ref().map(|p| p.step_id),
        Some(name_id("Shipping"))
    );

    // Before paying, a minor is re-routed.
    let s = flagged(
        session(1, "Payment", &["Welcome", "Payment"]),
        &plan,
        &hash_of(&v2, "Payment"),
    );
    let mut s = s;
    s.step_history.retain(|v| !v.is_checkpoint);
    let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
    assert_eq!(d.result.action, ReconciliationAction::Teleport, "{d:?}");
    assert_eq!(d.result.target_step_id, Some(name_id("Rejected")));
}

// ---------------------------------------------------------------------------
// Conditions over a limit (docs/design.md, "Conditions are bounded")
// ---------------------------------------------------------------------------

/// A list literal of `n` numbers: a condition that does a lot of work.
fn numbers(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

#[test]
fn re_route_reports_a_condition_over_a_limit_or_the_budget() {
    let v1 = reroute_v1();
    let over_depth = format!("{} > age", vec!["1"; 200].join("+"));
    let over_budget = format!("{0}.all(a, {0}.all(b, age < 18))", numbers(300));
    for (condition, limit) in [
        (over_depth.as_str(), "max expression depth"),
        (over_budget.as_str(), "max evaluation steps"),
    ] {
        let v2 = reroute_v2(condition);
        let plan = reroute_plan(&v2);
        let world = World::one(&v1, &v2, &plan);
        let s = flagged(
            session(1, "Offer", &["Welcome", "Email", "Offer"]),
            &plan,
            &hash_of(&v2, "Offer"),
        );
        // A minor: only the hostile branch could divert them; it is not taken.
        let d = world.decide(&s, &known(&[("age", plain(json!(16)))]));
        assert_eq!(d.result.action, ReconciliationAction::Continue);
        let reason = d.result.reason.unwrap_or_default();
        assert!(
            reason.contains("was not taken") && reason.contains(limit),
            "{reason}"
        );
        // The condition is quoted shortened.
        assert!(reason.chars().count() < 1_000, "{reason}");
    }
}

#[test]
fn a_scope_condition_over_the_budget_leaves_the_session_out_and_says_so() {
    let v1 = v1();
    let v2 = flow(2, gap_world_steps(false));
    let bomb = format!(
        "{0}.all(a, {0}.all(b, session.age_days >= 0))",
        numbers(300)
    );
    let plan = plan_spec(
        1,
        2,
        vec![anchor("Shipping", MigrationScenario::CleanGraft)],
    )
    .policy("Shipping", move |p| {
        p.scope_filter.custom_conditions = vec![bomb.clone()]
    })
    .build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let s = session(1, "Shipping", &["Payment", "Shipping"]);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.applies_migration && !d.writes_session());
    let reason = d.result.reason.unwrap_or_default();
    assert!(
        reason.contains("outside the scope")
            && reason.contains("custom condition 0")
            && reason.contains("max evaluation steps"),
        "{reason}"
    );
}
