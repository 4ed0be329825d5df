//! The offline part of a migration plan: transformation map, default
//! policies, checksums and the operator summary with its warnings.
//!
//! [`compute_plan`] works in two steps: the graph work (the diff, the warnings as
//! *findings* (`findings.rs`) and the fields and actions the migration will ask for
//! (`fields.rs`)) is done once and needs no session counts; the counts are applied
//! afterwards, when the warnings are rendered and the summary is filled in.
//!
//! Counting rules: a session on a deleted step migrates through the deleted step's
//! nearest anchor, so it is counted in that anchor's `sessions_by_anchor` entry and in
//! the warnings about that anchor; `sessions_by_anchor` lists every anchor and
//! edited step (0 when none of its sessions is counted), as the original did; `estimated_sessions_affected` is every session on an anchor or a
//! deleted step of the from-version.
//!
//! Edited steps (`TransformationMap::edited_steps`) count like anchors under their
//! policy key: their own sessions, and those of deleted steps whose nearest anchor
//! they are. They are not anchors: `total_anchors` and the per-scenario counters
//! leave them out, `nodes_deleted` too; `steps_edited` counts them.

mod cel_validity;
mod fields;
mod findings;

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::diff::Analysis;
use crate::hash::scenario_checksum;
use crate::model::{
    AnchorMigrationPolicy, EditedStepBehavior, FieldCollectionInfo, MigrationScenario,
    MigrationSummary, MigrationWarning, PlanComputation, ScenarioInput, ScopeFilter,
    TransformationMap,
};

use fields::fields_and_actions;
use findings::{
    Finding, FindingKind, ambiguous_findings, cel_findings, checkpoint_findings, deleted_findings,
    edited_findings, unreachable_findings,
};

/// Sessions of the from-version per V1 step id. Empty when counts are unknown (offline).
pub type SessionCounts = BTreeMap<Uuid, u64>;

/// The plan between `v1` (current) and `v2` (proposed) with the given session counts.
/// Expects validated scenarios; on invalid ones it still returns, never panics.
pub fn compute_plan(
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    counts: &SessionCounts,
) -> PlanComputation {
    prepare(v1, v2).finish(counts)
}

/// One default policy per anchor content hash and per edited step's policy key:
/// every session in scope, downstream updated, the computed scenario; sessions at an
/// edited step stay on it.
pub(crate) fn default_policies(map: &TransformationMap) -> BTreeMap<String, AnchorMigrationPolicy> {
    let mut policies = BTreeMap::new();
    let edited = map
        .edited_steps
        .iter()
        .map(|e| (&e.step, Some(EditedStepBehavior::Stay)));
    for (anchor, behavior) in map.anchors.iter().map(|a| (a, None)).chain(edited) {
        policies
            .entry(anchor.anchor_content_hash.clone())
            .or_insert_with(|| AnchorMigrationPolicy {
                anchor_content_hash: anchor.anchor_content_hash.clone(),
                anchor_name: anchor.anchor_name.clone(),
                scope_filter: ScopeFilter::default(),
                update_downstream: true,
                force_scenario: None,
                edited_step_behavior: behavior,
            });
    }
    policies
}

/// The V1 step ids whose sessions a plan must count: every anchor's V1 step and every
/// deleted step (edited steps included), each once, in map order.
pub(crate) fn counted_steps(map: &TransformationMap) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    map.anchors
        .iter()
        .map(|a| a.anchor_node_id_v1)
        .chain(map.deleted_nodes.iter().map(|d| d.node_id_v1))
        .filter(|id| seen.insert(*id))
        .collect()
}

/// A plan whose graph work is done and whose session counts are still to come.
#[derive(Debug, Clone)]
struct PlanDraft {
    scenario_checksum_v1: String,
    scenario_checksum_v2: String,
    transformation_map: TransformationMap,
    /// Per anchor, then per edited step (map order): the V1 steps whose sessions
    /// migrate through it.
    through: Vec<Vec<Uuid>>,
    findings: Vec<Finding>,
    fields_to_collect: Vec<FieldCollectionInfo>,
}

/// Diff `v1` against `v2` and gather everything the summary needs except counts.
fn prepare(v1: &ScenarioInput, v2: &ScenarioInput) -> PlanDraft {
    let mut analysis = Analysis::new(v1, v2);
    let through = sessions_through(&analysis.output.transformation_map);
    let mut findings = Vec::new();
    deleted_findings(&analysis.output.transformation_map, &mut findings);
    edited_findings(&analysis.output.transformation_map, &through, &mut findings);
    checkpoint_findings(&mut analysis, &through, &mut findings);
    cel_findings(&analysis, &through, &mut findings);
    ambiguous_findings(&analysis, &mut findings);
    unreachable_findings(&analysis, &through, &mut findings);
    let fields_to_collect = fields_and_actions(&analysis, &through, &mut findings);
    if analysis.output.truncated_anchors > 0 {
        findings.push(Finding {
            // As the original did for warnings that concern many anchors.
            anchor_name: "Multiple".into(),
            kind: FindingKind::Truncated {
                anchors: analysis.output.truncated_anchors,
                omitted: analysis.output.omitted_region_entries,
            },
            steps: Vec::new(),
        });
    }
    let output = analysis.output;
    PlanDraft {
        scenario_checksum_v1: scenario_checksum(v1),
        scenario_checksum_v2: scenario_checksum(v2),
        transformation_map: output.transformation_map,
        through,
        findings,
        fields_to_collect,
    }
}

impl PlanDraft {
    #[cfg(test)]
    fn counted_steps(&self) -> Vec<Uuid> {
        counted_steps(&self.transformation_map)
    }

    fn finish(self, counts: &SessionCounts) -> PlanComputation {
        let sessions = |ids: &[Uuid]| -> u64 {
            ids.iter()
                .map(|id| counts.get(id).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        };
        let map = &self.transformation_map;
        let mut summary = MigrationSummary {
            total_anchors: map.anchors.len() as u64,
            nodes_deleted: map.deleted_nodes.iter().filter(|d| !d.edited).count() as u64,
            steps_edited: map.edited_steps.len() as u64,
            ..MigrationSummary::default()
        };
        for (k, (anchor, through)) in map.targets().zip(&self.through).enumerate() {
            if k < map.anchors.len() {
                match anchor.migration_scenario {
                    MigrationScenario::CleanGraft => summary.anchors_with_clean_graft += 1,
                    MigrationScenario::GapFill => summary.anchors_with_gap_fill += 1,
                    MigrationScenario::ReRoute => summary.anchors_with_re_route += 1,
                }
            }
            // Every anchor is listed, 0 when none of its sessions: the original's
            // clients look each anchor up in the map.
            let n = sessions(through);
            let entry = summary
                .sessions_by_anchor
                .entry(anchor.anchor_content_hash.clone())
                .or_insert(0);
            *entry = entry.saturating_add(n);
        }
        summary.estimated_sessions_affected = sessions(&counted_steps(map));
        let mut warnings: Vec<MigrationWarning> = self
            .findings
            .iter()
            .map(|f| f.render(sessions(&f.steps)))
            .collect();
        // Most severe first; otherwise the order the findings were made in.
        warnings.sort_by_key(|w| std::cmp::Reverse(w.severity));
        summary.warnings = warnings;
        summary.fields_to_collect = self.fields_to_collect;
        PlanComputation {
            scenario_checksum_v1: self.scenario_checksum_v1,
            scenario_checksum_v2: self.scenario_checksum_v2,
            anchor_policies: default_policies(&self.transformation_map),
            transformation_map: self.transformation_map,
            summary,
        }
    }
}

fn sessions_through(map: &TransformationMap) -> Vec<Vec<Uuid>> {
    let mut through: Vec<Vec<Uuid>> = map.targets().map(|a| vec![a.anchor_node_id_v1]).collect();
    let mut by_target: HashMap<(&str, Uuid), usize> = HashMap::new();
    for (k, a) in map.targets().enumerate() {
        by_target
            .entry((a.anchor_content_hash.as_str(), a.anchor_node_id_v2))
            .or_insert(k);
    }
    // An edited step's own sessions are already its first entry.
    for d in map.deleted_nodes.iter().filter(|d| !d.edited) {
        if let (Some(h), Some(v2)) = (&d.nearest_anchor_hash, d.nearest_anchor_id_v2)
            && let Some(&k) = by_target.get(&(h.as_str(), v2))
        {
            through[k].push(d.node_id_v1);
        }
    }
    through
}

#[cfg(test)]
mod tests;
