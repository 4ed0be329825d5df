//! Precomputation done once per scenario version and once per plan.
//!
//! A decision must take microseconds, so nothing in the hot path may hash a step,
//! parse an id map or compile CEL: callers build these structures once per Lambda
//! instance (they are immutable, `Send + Sync`, and meant to live in an `Arc`).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use uuid::Uuid;

use crate::scope::{InvalidCondition, compile_conditions};

use crate::conditions::{Condition, ConditionError};
use crate::hash::{scenario_checksum, step_content_hash};
use crate::model::{
    AnchorMigrationPolicy, AnchorTransformation, DeletedNode, EditedStep, MigrationPlan,
};
use crate::model::{ScenarioInput, StepInput};

/// How one outgoing transition of a fork can be decided automatically.
#[derive(Debug)]
pub(crate) enum BranchCondition {
    /// `condition_text` is empty: the fork's fallback branch.
    Default,
    /// A CEL expression.
    Cel(Condition),
    /// Not CEL (natural language, typo), or over a limit of
    /// [`crate::conditions`]: never taken automatically.
    Invalid(ConditionError),
}

/// One version of a scenario, indexed for reconcile decisions.
#[derive(Debug)]
pub struct PreparedScenario {
    def: ScenarioInput,
    index: HashMap<Uuid, usize>,
    successors: Vec<Vec<usize>>,
    predecessors: Vec<Vec<usize>>,
    hashes: Vec<String>,
    by_hash: HashMap<String, Vec<usize>>,
    checksum: String,
    needed_fields: HashSet<String>,
    /// Compiled lazily: a 10,000-step scenario has thousands of transitions and a
    /// decision only ever looks at the few forks around one anchor.
    conditions: Vec<OnceLock<Vec<BranchCondition>>>,
}

impl PreparedScenario {
    /// Index `def`. Tolerates invalid definitions (duplicate ids keep the first
    /// step, transitions to unknown steps are ignored) because a decision must
    /// never panic on stored data.
    pub fn new(def: ScenarioInput) -> Self {
        let n = def.steps.len();
        let mut index = HashMap::with_capacity(n);
        for (i, step) in def.steps.iter().enumerate() {
            index.entry(step.id).or_insert(i);
        }
        let mut successors = vec![Vec::new(); n];
        let mut predecessors = vec![Vec::new(); n];
        for (i, step) in def.steps.iter().enumerate() {
            for t in &step.transitions {
                if let Some(&j) = index.get(&t.to_step_id)
                    && !successors[i].contains(&j)
                {
                    successors[i].push(j);
                    predecessors[j].push(i);
                }
            }
        }
        let hashes: Vec<String> = def.steps.iter().map(step_content_hash).collect();
        let mut by_hash: HashMap<String, Vec<usize>> = HashMap::with_capacity(n);
        for (i, h) in hashes.iter().enumerate() {
            by_hash.entry(h.clone()).or_default().push(i);
        }
        let mut needed_fields = HashSet::new();
        for step in &def.steps {
            needed_fields.extend(step.collects_profile_fields.iter().cloned());
            for t in &step.transitions {
                needed_fields.extend(t.condition_fields.iter().cloned());
            }
        }
        let checksum = scenario_checksum(&def);
        let conditions = (0..n).map(|_| OnceLock::new()).collect();
        PreparedScenario {
            def,
            index,
            successors,
            predecessors,
            hashes,
            by_hash,
            checksum,
            needed_fields,
            conditions,
        }
    }

    pub fn definition(&self) -> &ScenarioInput {
        &self.def
    }

    pub fn version(&self) -> i64 {
        self.def.version
    }

    /// The scenario checksum (`crate::hash::scenario_checksum`) a migrated session stores.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    pub(crate) fn len(&self) -> usize {
        self.def.steps.len()
    }

    pub(crate) fn index_of(&self, id: Uuid) -> Option<usize> {
        self.index.get(&id).copied()
    }

    pub(crate) fn step(&self, idx: usize) -> &StepInput {
        &self.def.steps[idx]
    }

    pub(crate) fn step_by_id(&self, id: Uuid) -> Option<&StepInput> {
        self.index_of(id).map(|i| self.step(i))
    }

    pub(crate) fn hash(&self, idx: usize) -> &str {
        &self.hashes[idx]
    }

    pub(crate) fn steps_with_hash(&self, hash: &str) -> &[usize] {
        self.by_hash.get(hash).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when some step collects `field` or some condition reads it.
    pub(crate) fn needs_field(&self, field: &str) -> bool {
        self.needed_fields.contains(field)
    }

    /// Where a step of another version with `hash` (and, in that version, `id`)
    /// lives in this one: the same id when its content is unchanged, otherwise the
    /// only step with that content; when no step has that content, the step with
    /// the same id — the same step, edited in place (docs/design.md, "Edited steps
    /// are the same step"). Several candidates
    /// and none with the id are ambiguous: no answer rather than a guess.
    pub(crate) fn relocate(&self, id: Uuid, hash: &str) -> Option<usize> {
        let candidates = self.steps_with_hash(hash);
        let same_id = self.index_of(id);
        if let Some(i) = same_id
            && candidates.contains(&i)
        {
            return Some(i);
        }
        match candidates {
            [only] => Some(*only),
            [] => same_id,
            _ => None,
        }
    }

    /// Steps reachable from `start` by at least one transition (`start` itself
    /// only when it lies on a cycle).
    pub(crate) fn reachable_from(&self, start: usize) -> Vec<bool> {
        walk(&self.successors, start, self.len())
    }

    /// Steps that reach `target` by at least one transition.
    pub(crate) fn reaching(&self, target: usize) -> Vec<bool> {
        walk(&self.predecessors, target, self.len())
    }

    /// The compiled conditions of `idx`'s transitions, in definition order.
    pub(crate) fn branch_conditions(&self, idx: usize) -> &[BranchCondition] {
        self.conditions[idx].get_or_init(|| {
            self.def.steps[idx]
                .transitions
                .iter()
                .map(|t| {
                    if t.condition_text.trim().is_empty() {
                        BranchCondition::Default
                    } else {
                        match Condition::compile(&t.condition_text) {
                            Ok(c) => BranchCondition::Cel(c),
                            Err(e) => BranchCondition::Invalid(e),
                        }
                    }
                })
                .collect()
        })
    }
}

fn walk(edges: &[Vec<usize>], start: usize, n: usize) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = edges.get(start).cloned().unwrap_or_default();
    while let Some(i) = stack.pop() {
        if !seen[i] {
            seen[i] = true;
            stack.extend(edges[i].iter().copied().filter(|&j| !seen[j]));
        }
    }
    seen
}

/// A deployed plan, indexed for reconcile decisions.
///
/// Its *anchors* are the plan's anchors followed by its edited steps (each as the
/// anchor it migrates like, keyed by its policy key): index `i` below the number
/// of anchors is `transformation_map.anchors[i]`, above it an edited step. The
/// deleted nodes that only stand for edited steps are not deleted steps here.
#[derive(Debug)]
pub struct PreparedPlan {
    plan: MigrationPlan,
    anchors_by_hash: HashMap<String, Vec<usize>>,
    anchor_by_v1: HashMap<Uuid, usize>,
    deleted_by_v1: HashMap<Uuid, usize>,
    /// Each policy's custom conditions, compiled once: compiling costs ~5 µs a
    /// character, and a policy at the expression limits would otherwise cost a
    /// large part of a second on every reconcile of an unflagged session.
    scope_conditions: HashMap<String, Result<Vec<Condition>, Vec<InvalidCondition>>>,
}

impl PreparedPlan {
    pub fn new(plan: MigrationPlan) -> Self {
        let map = &plan.transformation_map;
        let mut anchors_by_hash: HashMap<String, Vec<usize>> = HashMap::new();
        let mut anchor_by_v1 = HashMap::with_capacity(map.anchors.len());
        for (i, a) in map.targets().enumerate() {
            anchors_by_hash
                .entry(a.anchor_content_hash.clone())
                .or_default()
                .push(i);
            anchor_by_v1.entry(a.anchor_node_id_v1).or_insert(i);
        }
        let deleted_by_v1 = map
            .deleted_nodes
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.edited)
            .map(|(i, d)| (d.node_id_v1, i))
            .collect();
        let scope_conditions = plan
            .anchor_policies
            .iter()
            .filter(|(_, p)| !p.scope_filter.custom_conditions.is_empty())
            .map(|(key, p)| (key.clone(), compile_conditions(&p.scope_filter)))
            .collect();
        PreparedPlan {
            plan,
            anchors_by_hash,
            anchor_by_v1,
            deleted_by_v1,
            scope_conditions,
        }
    }

    pub fn plan(&self) -> &MigrationPlan {
        &self.plan
    }

    pub fn id(&self) -> Uuid {
        self.plan.id
    }

    pub(crate) fn anchor(&self, i: usize) -> &AnchorTransformation {
        let map = &self.plan.transformation_map;
        match map.anchors.get(i) {
            Some(a) => a,
            None => &map.edited_steps[i - map.anchors.len()].step,
        }
    }

    /// The edited step behind anchor index `i`, if it is one.
    pub(crate) fn edited(&self, i: usize) -> Option<&EditedStep> {
        let map = &self.plan.transformation_map;
        i.checked_sub(map.anchors.len())
            .and_then(|e| map.edited_steps.get(e))
    }

    pub(crate) fn anchor_at_v1(&self, id: Uuid) -> Option<usize> {
        self.anchor_by_v1.get(&id).copied()
    }

    /// The anchor with `hash`; when the hash names several anchors (duplicated
    /// content), the one whose V1 (or, with `prefer_v2`, V2) step is `prefer`.
    pub(crate) fn anchor_by_hash(
        &self,
        hash: &str,
        prefer: Uuid,
        prefer_v2: bool,
    ) -> Option<usize> {
        let candidates = self.anchors_by_hash.get(hash)?;
        let side = |i: &usize| {
            let a = self.anchor(*i);
            if prefer_v2 {
                a.anchor_node_id_v2
            } else {
                a.anchor_node_id_v1
            }
        };
        if let Some(&i) = candidates.iter().find(|i| side(i) == prefer) {
            return Some(i);
        }
        match candidates.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    pub(crate) fn deleted_at_v1(&self, id: Uuid) -> Option<&DeletedNode> {
        self.deleted_by_v1
            .get(&id)
            .map(|&i| &self.plan.transformation_map.deleted_nodes[i])
    }

    pub(crate) fn policy(&self, anchor_hash: &str) -> Option<&AnchorMigrationPolicy> {
        self.plan.anchor_policies.get(anchor_hash)
    }

    /// The compiled custom conditions of the policy under `anchor_hash` (none
    /// when it has none), or the ones that do not compile.
    pub(crate) fn scope_conditions(
        &self,
        anchor_hash: &str,
    ) -> Result<&[Condition], &[InvalidCondition]> {
        match self.scope_conditions.get(anchor_hash) {
            None => Ok(&[]),
            Some(Ok(conditions)) => Ok(conditions),
            Some(Err(invalid)) => Err(invalid),
        }
    }
}
