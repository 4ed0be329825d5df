//! Fixtures shared by the reconcile tests: prepared flows, hand-written plans
//! (`plan_spec`), sessions, known fields, a `World` that decides over one
//! chain, and what the endpoint would write for a decision.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::hash::step_content_hash;
use crate::model::*;
use crate::reconcile::*;
use crate::testkit::{ScenarioBuilder, StepBuilder, name_id};

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

pub(super) fn flow(version: i64, steps: Vec<StepBuilder>) -> PreparedScenario {
    PreparedScenario::new(
        steps
            .into_iter()
            .fold(ScenarioBuilder::new("Support flow", version), |b, s| {
                b.step(s)
            })
            .build(),
    )
}

pub(super) fn hash_of(s: &PreparedScenario, name: &str) -> String {
    let idx = s.index_of(name_id(name)).unwrap_or_default();
    step_content_hash(s.step(idx))
}

pub(super) struct Anchor {
    name: &'static str,
    v2_name: &'static str,
    scenario: MigrationScenario,
    upstream: RegionChanges,
}

pub(super) fn anchor(name: &'static str, scenario: MigrationScenario) -> Anchor {
    Anchor {
        name,
        v2_name: name,
        scenario,
        upstream: RegionChanges::default(),
    }
}

impl Anchor {
    pub(super) fn inserted(mut self, name: &str, fields: &[&str], required_action: bool) -> Self {
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
    pub(super) fn fork(mut self, name: &str) -> Self {
        self.upstream.new_forks.push(NewFork {
            fork_node_id: name_id(name),
            fork_node_name: name.to_string(),
            branches: Vec::new(),
        });
        self
    }
    /// The V2 step is the one whose id is `name_id(v2_name)`.
    pub(super) fn v2_id_of(mut self, v2_name: &'static str) -> Self {
        self.v2_name = v2_name;
        self
    }
}

type PolicyEdit = Box<dyn Fn(&mut AnchorMigrationPolicy)>;

pub(super) struct PlanSpec {
    from: i64,
    to: i64,
    anchors: Vec<Anchor>,
    deleted: Vec<(&'static str, Option<&'static str>)>,
    policies: Vec<(&'static str, PolicyEdit)>,
}

pub(super) fn plan_spec(from: i64, to: i64, anchors: Vec<Anchor>) -> PlanSpec {
    PlanSpec {
        from,
        to,
        anchors,
        deleted: Vec::new(),
        policies: Vec::new(),
    }
}

impl PlanSpec {
    pub(super) fn deleted(mut self, name: &'static str, nearest: Option<&'static str>) -> Self {
        self.deleted.push((name, nearest));
        self
    }
    pub(super) fn policy(
        mut self,
        anchor: &'static str,
        f: impl Fn(&mut AnchorMigrationPolicy) + 'static,
    ) -> Self {
        self.policies.push((anchor, Box::new(f)));
        self
    }
    /// `v2` gives the anchors' hashes (anchors have equal content in both versions).
    pub(super) fn build(self, v2: &PreparedScenario) -> PreparedPlan {
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
            paused_from: None,
            guard: None,
            halt_reason: None,
            percent: None,
            rollout_pass: 0,
            transitions: Vec::new(),
            revision: 1,
        })
    }
}

pub(super) fn session(version: i64, at: &str, history: &[&str]) -> Session {
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

pub(super) fn flagged(mut s: Session, plan: &PreparedPlan, anchor_hash: &str) -> Session {
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
pub(super) struct World<'a> {
    pub(super) session_version: &'a PreparedScenario,
    pub(super) current: &'a PreparedScenario,
    pub(super) chain: Vec<PlanLink<'a>>,
}

impl<'a> World<'a> {
    pub(super) fn one(
        v1: &'a PreparedScenario,
        v2: &'a PreparedScenario,
        plan: &'a PreparedPlan,
    ) -> Self {
        World {
            session_version: v1,
            current: v2,
            chain: vec![PlanLink { plan, to: v2 }],
        }
    }
    pub(super) fn decide(&self, s: &Session, known: &BTreeMap<String, KnownField>) -> Decision {
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

pub(super) fn none() -> BTreeMap<String, KnownField> {
    BTreeMap::new()
}

pub(super) fn known(pairs: &[(&str, KnownField)]) -> BTreeMap<String, KnownField> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub(super) fn plain(v: Value) -> KnownField {
    KnownField::Plain(v)
}

pub(super) fn candidate(v: Value, confidence: f64) -> KnownField {
    KnownField::Candidate {
        value: v,
        source: Some("extraction".into()),
        confidence: Some(confidence),
    }
}

/// What the endpoint would write, applied to a copy of the session.
pub(super) fn apply(s: &Session, d: &Decision) -> Session {
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

pub(super) fn assert_settled(
    w: &World<'_>,
    s: &Session,
    d: &Decision,
    k: &BTreeMap<String, KnownField>,
) {
    let again = w.decide(&apply(s, d), k);
    assert_eq!(
        again.result.action,
        ReconciliationAction::Continue,
        "{again:?}"
    );
    assert!(!again.writes_session(), "{again:?}");
}
