//! The offline part of a migration plan (SPEC §5): transformation map, default
//! policies, checksums and the operator summary with its warnings.
//!
//! Session counts come from the store, which should only be asked about the steps
//! that matter. So planning runs in two stages: [`prepare`] does the graph work once
//! and tells which V1 steps to count ([`PlanDraft::counted_steps`]); [`PlanDraft::finish`]
//! applies the counts. [`compute_plan`] does both for callers that already have counts
//! (or none, offline).
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use uuid::Uuid;

use crate::conditions::is_machine_evaluable;
use crate::diff::{AmbiguousGroup, Analysis};
use crate::graph::{BitSet, Dir};
use crate::hash::scenario_checksum;
use crate::model::{
    AnchorMigrationPolicy, AnchorTransformation, EditedStepBehavior, FieldCollectionInfo,
    MigrationScenario, MigrationSummary, MigrationWarning, PlanComputation, ScenarioInput,
    ScopeFilter, Severity, StepAttribute, TransformationMap,
};

/// Sessions of the from-version per V1 step id. Empty when counts are unknown (offline).
pub type SessionCounts = BTreeMap<Uuid, u64>;

/// How many anchor or step names a warning message quotes before "and N more".
const EXAMPLES: usize = 3;

/// Whether condition texts compile as CEL, remembered across plans: compiling is the
/// most expensive part of a small plan, and the same conditions come back with every
/// version of a scenario. Bounded, because a long-lived process sees every tenant's.
static CEL_VALIDITY: LazyLock<Mutex<HashMap<String, bool>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CEL_VALIDITY_CAPACITY: usize = 4_096;

fn is_valid_cel(text: &str) -> bool {
    if let Ok(cache) = CEL_VALIDITY.lock()
        && let Some(&known) = cache.get(text)
    {
        return known;
    }
    let valid = is_machine_evaluable(text);
    // A poisoned lock only loses the memo, never the answer.
    if let Ok(mut cache) = CEL_VALIDITY.lock() {
        if cache.len() >= CEL_VALIDITY_CAPACITY {
            cache.clear();
        }
        cache.insert(text.to_string(), valid);
    }
    valid
}

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
pub fn default_policies(map: &TransformationMap) -> BTreeMap<String, AnchorMigrationPolicy> {
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
pub fn counted_steps(map: &TransformationMap) -> Vec<Uuid> {
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
pub struct PlanDraft {
    pub scenario_checksum_v1: String,
    pub scenario_checksum_v2: String,
    pub transformation_map: TransformationMap,
    pub ambiguous: Vec<AmbiguousGroup>,
    pub unreachable_v2_step_ids: Vec<Uuid>,
    /// Per anchor, then per edited step (map order): the V1 steps whose sessions
    /// migrate through it.
    through: Vec<Vec<Uuid>>,
    findings: Vec<Finding>,
    fields_to_collect: Vec<FieldCollectionInfo>,
}

/// Diff `v1` against `v2` and gather everything the summary needs except counts.
pub fn prepare(v1: &ScenarioInput, v2: &ScenarioInput) -> PlanDraft {
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
        ambiguous: output.ambiguous,
        unreachable_v2_step_ids: output.unreachable_v2_step_ids,
        through,
        findings,
        fields_to_collect,
    }
}

impl PlanDraft {
    pub fn counted_steps(&self) -> Vec<Uuid> {
        counted_steps(&self.transformation_map)
    }

    pub fn finish(self, counts: &SessionCounts) -> PlanComputation {
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

// ---------------------------------------------------------------------------
// Findings: warnings before session counts are known
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Finding {
    kind: FindingKind,
    anchor_name: String,
    /// V1 steps whose sessions the warning is about.
    steps: Vec<Uuid>,
}

#[derive(Debug, Clone)]
enum FindingKind {
    DeletedStep {
        step: String,
        nearest: Option<String>,
    },
    EditedStep {
        step: String,
        /// The old name, when the edit renamed it.
        renamed_from: Option<String>,
        changed: Vec<String>,
        becomes_checkpoint: bool,
        becomes_required_action: bool,
    },
    RerouteCheckpoint {
        fork: String,
        checkpoints: Vec<String>,
        anchors: Vec<String>,
    },
    InvalidCel {
        fork: String,
        conditions: Vec<String>,
        anchors: usize,
    },
    Ambiguous {
        name: String,
        in_v1: usize,
        in_v2: usize,
    },
    Unreachable {
        names: Vec<String>,
    },
    Field {
        field: String,
        anchors: Vec<String>,
        reason: String,
    },
    RequiredAction {
        step: String,
        anchors: Vec<String>,
        /// An existing step the edit made a required action.
        edited: bool,
    },
    Truncated {
        anchors: u64,
        omitted: u64,
    },
}

/// "'A', 'B', 'C' and 4 more"
fn quote_some(names: &[String]) -> String {
    let mut out = names
        .iter()
        .take(EXAMPLES)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > EXAMPLES {
        out.push_str(&format!(" and {} more", names.len() - EXAMPLES));
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Finding {
    fn render(&self, sessions: u64) -> MigrationWarning {
        let (severity, message) = match &self.kind {
            FindingKind::DeletedStep { step, nearest } => match (nearest, sessions) {
                (None, _) => (
                    Severity::Critical,
                    format!(
                        "Step '{step}' is deleted and no step of the new version can be reached from it or leads to it: {sessions} session(s) there will exit the scenario with a restart message"
                    ),
                ),
                (Some(anchor), 0) => (
                    Severity::Info,
                    format!(
                        "Step '{step}' is deleted; sessions found there at deployment continue from '{anchor}'"
                    ),
                ),
                (Some(anchor), n) => (
                    Severity::Warning,
                    format!(
                        "{n} session(s) sit on deleted step '{step}'; they will continue from '{anchor}'"
                    ),
                ),
            },
            FindingKind::EditedStep {
                step,
                renamed_from,
                changed,
                becomes_checkpoint,
                becomes_required_action,
            } => {
                let what = match renamed_from {
                    Some(old) => format!("Step '{old}' is edited in place and renamed '{step}'"),
                    None => format!("Step '{step}' is edited in place"),
                };
                let changed = changed.join(", ");
                let becomes = match (becomes_checkpoint, becomes_required_action) {
                    (true, true) => Some("a checkpoint and a required action"),
                    (true, false) => Some("a checkpoint"),
                    (false, true) => Some("a required action"),
                    (false, false) => None,
                };
                match becomes {
                    Some(becomes) => (
                        Severity::Warning,
                        format!(
                            "{what} ({changed}) and becomes {becomes}: the {sessions} session(s) waiting there stay on it and will go through it when they continue"
                        ),
                    ),
                    None if sessions > 0 => (
                        Severity::Info,
                        format!(
                            "{what} ({changed}): the {sessions} session(s) waiting there stay on it"
                        ),
                    ),
                    None => (
                        Severity::Info,
                        format!(
                            "{what} ({changed}); sessions found there at deployment stay on it"
                        ),
                    ),
                }
            }
            FindingKind::RerouteCheckpoint {
                fork,
                checkpoints,
                anchors,
            } => (
                Severity::Warning,
                format!(
                    "New fork '{fork}' lies before checkpoint {} that customers at {} ({}) have already passed: they will not be re-routed by it (that would undo an irreversible action) and are grafted onto their step instead",
                    quote_some(checkpoints),
                    plural(anchors.len(), "re-route anchor", "re-route anchors"),
                    quote_some(anchors),
                ),
            ),
            FindingKind::InvalidCel {
                fork,
                conditions,
                anchors,
            } => (
                Severity::Warning,
                format!(
                    "Fork '{fork}' has condition(s) that are not valid CEL and cannot be evaluated automatically: {}; sessions at {} will not be routed on them",
                    conditions
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    plural(*anchors, "re-route anchor", "re-route anchors"),
                ),
            ),
            FindingKind::Ambiguous { name, in_v1, in_v2 } => (
                Severity::Warning,
                format!(
                    "{in_v1} step(s) of the current version and {in_v2} of the new one named '{name}' have identical content and could not be told apart (different ids and neighbours): they are not anchors, so their sessions move to the nearest anchor"
                ),
            ),
            FindingKind::Unreachable { names } => (
                Severity::Warning,
                format!(
                    "{} of the new version cannot be reached from the entry step: {}",
                    plural(names.len(), "step", "steps"),
                    quote_some(names)
                ),
            ),
            FindingKind::Field {
                field,
                anchors,
                reason,
            } => (
                Severity::Info,
                format!(
                    "Field '{field}' will be collected (or confirmed) from sessions at {} ({}): {reason}",
                    plural(anchors.len(), "anchor", "anchors"),
                    quote_some(anchors)
                ),
            ),
            FindingKind::RequiredAction {
                step,
                anchors,
                edited,
            } => (
                Severity::Info,
                if *edited {
                    format!(
                        "Step '{step}' is now a required action: it will be executed for sessions at {} ({}), which passed it before the edit, before they continue",
                        plural(anchors.len(), "anchor", "anchors"),
                        quote_some(anchors)
                    )
                } else {
                    format!(
                        "New required action '{step}' will be executed for sessions at {} ({}) before they continue",
                        plural(anchors.len(), "anchor", "anchors"),
                        quote_some(anchors)
                    )
                },
            ),
            FindingKind::Truncated { anchors, omitted } => (
                Severity::Critical,
                format!(
                    "This change alters the surroundings of almost every anchor (typically a transition back to an earlier step that puts every step upstream of every other): the change lists of {anchors} anchor(s) were cut to {} entries each, decisive ones first ({omitted} entries left out). Migration scenarios were computed on the full regions; review the loop before deploying",
                    crate::diff::TRUNCATED_REGION_ITEMS
                ),
            ),
        };
        MigrationWarning {
            severity,
            anchor_name: self.anchor_name.clone(),
            message,
            affected_sessions_estimate: sessions,
        }
    }
}

fn deleted_findings(map: &TransformationMap, out: &mut Vec<Finding>) {
    let names: HashMap<(&str, Uuid), &str> = map
        .targets()
        .map(|a| {
            (
                (a.anchor_content_hash.as_str(), a.anchor_node_id_v2),
                a.anchor_name.as_str(),
            )
        })
        .collect();
    for d in map.deleted_nodes.iter().filter(|d| !d.edited) {
        let nearest = match (&d.nearest_anchor_hash, d.nearest_anchor_id_v2) {
            (Some(h), Some(v2)) => names.get(&(h.as_str(), v2)).map(|n| n.to_string()),
            _ => None,
        };
        out.push(Finding {
            anchor_name: nearest.clone().unwrap_or_else(|| d.node_name.clone()),
            kind: FindingKind::DeletedStep {
                step: d.node_name.clone(),
                nearest,
            },
            steps: vec![d.node_id_v1],
        });
    }
}

/// One finding per edited step: what changed, and a warning when the edit makes it
/// a checkpoint or a required action that its waiting sessions will go through.
fn edited_findings(map: &TransformationMap, through: &[Vec<Uuid>], out: &mut Vec<Finding>) {
    let n = map.anchors.len();
    for (e, edited) in map.edited_steps.iter().enumerate() {
        let step = edited.step.anchor_name.clone();
        out.push(Finding {
            anchor_name: step.clone(),
            kind: FindingKind::EditedStep {
                renamed_from: edited
                    .changed(StepAttribute::Name)
                    .then(|| edited.node_name_v1.clone()),
                step,
                changed: edited
                    .changes
                    .iter()
                    .map(|c| c.attribute.label().to_string())
                    .collect(),
                becomes_checkpoint: edited.becomes_checkpoint(),
                becomes_required_action: edited.becomes_required_action(),
            },
            steps: through.get(n + e).cloned().unwrap_or_default(),
        });
    }
}

/// Re-route anchors whose customers already passed a checkpoint that lies after the
/// re-routing fork: the runtime will refuse to re-decide that fork for them.
fn checkpoint_findings(analysis: &mut Analysis<'_>, through: &[Vec<Uuid>], out: &mut Vec<Finding>) {
    let checkpoint_anchors: Vec<u32> = (0..analysis.anchors.len() as u32)
        .filter(|&k| {
            analysis
                .g1
                .step(analysis.anchors[k as usize].0)
                .is_checkpoint
        })
        .collect();
    if checkpoint_anchors.is_empty() {
        return;
    }
    // Per fork: checkpoint anchors after it in V2, the V1 steps behind them, and the
    // re-route anchors among those.
    struct ForkCheck {
        checkpoints: Vec<u32>,
        behind: BitSet,
        anchors: Vec<u32>,
    }
    let mut per_fork: BTreeMap<u32, ForkCheck> = BTreeMap::new();
    for a in 0..analysis.anchors.len() {
        let forks = analysis.reroute_forks[a].clone();
        for f in forks {
            let check = per_fork.entry(f).or_insert_with(|| {
                let after = analysis.reach2.get(&analysis.g2, f, Dir::Forward);
                let checkpoints: Vec<u32> = checkpoint_anchors
                    .iter()
                    .copied()
                    .filter(|&c| after.contains(analysis.anchors[c as usize].1))
                    .collect();
                let starts: Vec<u32> = checkpoints
                    .iter()
                    .map(|&c| analysis.anchors[c as usize].0)
                    .collect();
                ForkCheck {
                    checkpoints,
                    behind: analysis.g1.reach(&starts, Dir::Forward),
                    anchors: Vec::new(),
                }
            });
            if check.behind.contains(analysis.anchors[a].0) {
                check.anchors.push(a as u32);
            }
        }
    }
    let mut forks: Vec<u32> = per_fork.keys().copied().collect();
    forks.sort_by_key(|&f| analysis.g2.rank[f as usize]);
    for f in forks {
        let Some(ForkCheck {
            checkpoints: cps,
            anchors,
            ..
        }) = per_fork.remove(&f)
        else {
            continue;
        };
        if anchors.is_empty() {
            continue;
        }
        // Name the checkpoints some affected anchor actually lies behind.
        let mut names = Vec::new();
        for &c in &cps {
            let from =
                analysis
                    .reach1
                    .get(&analysis.g1, analysis.anchors[c as usize].0, Dir::Forward);
            if anchors
                .iter()
                .any(|&a| from.contains(analysis.anchors[a as usize].0))
            {
                names.push(
                    analysis
                        .g1
                        .step(analysis.anchors[c as usize].0)
                        .name
                        .clone(),
                );
            }
            if names.len() > EXAMPLES {
                break;
            }
        }
        let anchor_names: Vec<String> = anchors
            .iter()
            .map(|&a| {
                analysis
                    .g1
                    .step(analysis.anchors[a as usize].0)
                    .name
                    .clone()
            })
            .collect();
        out.push(Finding {
            anchor_name: anchor_names.first().cloned().unwrap_or_default(),
            kind: FindingKind::RerouteCheckpoint {
                fork: analysis.g2.step(f).name.clone(),
                checkpoints: names,
                anchors: anchor_names,
            },
            steps: anchors
                .iter()
                .flat_map(|&a| through[a as usize].iter().copied())
                .collect(),
        });
    }
}

/// Re-routing forks with branch conditions that do not compile as CEL.
fn cel_findings(analysis: &Analysis<'_>, through: &[Vec<Uuid>], out: &mut Vec<Finding>) {
    let mut anchors_of: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (a, forks) in analysis.reroute_forks.iter().enumerate() {
        for &f in forks {
            anchors_of.entry(f).or_default().push(a as u32);
        }
    }
    let mut forks: Vec<u32> = anchors_of.keys().copied().collect();
    forks.sort_by_key(|&f| analysis.g2.rank[f as usize]);
    for f in forks {
        let step = analysis.g2.step(f);
        let mut bad: Vec<String> = Vec::new();
        for t in &step.transitions {
            let text = t.condition_text.as_str();
            // An empty condition is the unconditional (default) branch.
            if text.trim().is_empty() {
                continue;
            }
            let ok = is_valid_cel(text);
            if !ok && !bad.iter().any(|b| b == text) {
                bad.push(text.to_string());
            }
        }
        if bad.is_empty() {
            continue;
        }
        let anchors = anchors_of.get(&f).cloned().unwrap_or_default();
        out.push(Finding {
            anchor_name: step.name.clone(),
            kind: FindingKind::InvalidCel {
                fork: step.name.clone(),
                conditions: bad,
                anchors: anchors.len(),
            },
            steps: anchors
                .iter()
                .flat_map(|&a| through[a as usize].iter().copied())
                .collect(),
        });
    }
}

fn ambiguous_findings(analysis: &Analysis<'_>, out: &mut Vec<Finding>) {
    for group in &analysis.output.ambiguous {
        out.push(Finding {
            anchor_name: group.step_name.clone(),
            kind: FindingKind::Ambiguous {
                name: group.step_name.clone(),
                in_v1: group.v1_step_ids.len(),
                in_v2: group.v2_step_ids.len(),
            },
            steps: group.v1_step_ids.clone(),
        });
    }
}

fn unreachable_findings(analysis: &Analysis<'_>, through: &[Vec<Uuid>], out: &mut Vec<Finding>) {
    let ids = &analysis.output.unreachable_v2_step_ids;
    if ids.is_empty() {
        return;
    }
    let names: Vec<String> = ids
        .iter()
        .filter_map(|id| analysis.g2.index.get(id))
        .map(|&j| analysis.g2.step(j).name.clone())
        .collect();
    // Sessions that would land on an unreachable step.
    let steps: Vec<Uuid> = analysis
        .anchors
        .iter()
        .enumerate()
        .filter(|&(_, &(_, j))| !analysis.g2.is_reachable_from_entry(j))
        .flat_map(|(k, _)| through[k].iter().copied())
        .collect();
    out.push(Finding {
        anchor_name: names.first().cloned().unwrap_or_default(),
        kind: FindingKind::Unreachable { names },
        steps,
    });
}

/// Python's `str.title()` after `_`/`-` → space, as the original's display names.
fn display_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut start = true;
    for c in field.chars() {
        let c = if c == '_' || c == '-' { ' ' } else { c };
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

#[derive(Default)]
struct FieldDraft {
    anchors: Vec<u32>,
    reasons: Vec<String>,
    asked_by_a_step: bool,
}

/// Fields the migration will ask for: collected by new upstream steps of gap-fill and
/// re-route anchors, and read by the conditions of re-routing forks. Also the new
/// required actions those anchors will execute.
fn fields_and_actions(
    analysis: &Analysis<'_>,
    through: &[Vec<Uuid>],
    out: &mut Vec<Finding>,
) -> Vec<FieldCollectionInfo> {
    let map = &analysis.output.transformation_map;
    let targets: Vec<&AnchorTransformation> = map.targets().collect();
    let mut fields: BTreeMap<String, FieldDraft> = BTreeMap::new();
    let mut actions: BTreeMap<(u32, Uuid), (String, Vec<u32>, bool)> = BTreeMap::new();
    let rank_of = |id: &Uuid| {
        analysis
            .g2
            .index
            .get(id)
            .map(|&j| analysis.g2.rank[j as usize])
            .unwrap_or(u32::MAX)
    };
    let add = |fields: &mut BTreeMap<String, FieldDraft>,
               name: &str,
               a: u32,
               reason: String,
               asked: bool| {
        let entry = fields.entry(name.to_string()).or_default();
        if entry.anchors.last() != Some(&a) {
            entry.anchors.push(a);
        }
        if entry.reasons.len() <= EXAMPLES && !entry.reasons.contains(&reason) {
            entry.reasons.push(reason);
        }
        entry.asked_by_a_step |= asked;
    };
    for (a, anchor) in targets.iter().enumerate() {
        if anchor.migration_scenario == MigrationScenario::CleanGraft {
            continue;
        }
        for node in &anchor.upstream_changes.inserted_nodes {
            for field in &node.collects_fields {
                add(
                    &mut fields,
                    field,
                    a as u32,
                    format!("collected by new step '{}'", node.node_name),
                    true,
                );
            }
            if node.is_required_action {
                actions
                    .entry((rank_of(&node.node_id), node.node_id))
                    .or_insert_with(|| (node.node_name.clone(), Vec::new(), false))
                    .1
                    .push(a as u32);
            }
        }
        for node in &anchor.upstream_changes.edited_nodes {
            for field in &node.added_fields {
                add(
                    &mut fields,
                    field,
                    a as u32,
                    format!("now collected by edited step '{}'", node.node_name),
                    true,
                );
            }
            if node.new_required_action {
                actions
                    .entry((rank_of(&node.node_id), node.node_id))
                    .or_insert_with(|| (node.node_name.clone(), Vec::new(), true))
                    .1
                    .push(a as u32);
            }
        }
        for &f in &analysis.reroute_forks[a] {
            let fork = analysis.g2.step(f);
            for t in &fork.transitions {
                for field in &t.condition_fields {
                    add(
                        &mut fields,
                        field,
                        a as u32,
                        format!("read by the condition of new fork '{}'", fork.name),
                        false,
                    );
                }
            }
        }
    }

    let name_of = |a: u32| targets[a as usize].anchor_name.clone();
    let mut infos = Vec::with_capacity(fields.len());
    for (field, draft) in fields {
        let mut reasons = draft.reasons;
        if reasons.len() > EXAMPLES {
            reasons.truncate(EXAMPLES);
            reasons.push("…".into());
        }
        let reason = reasons.join("; ");
        let anchors: Vec<String> = draft.anchors.iter().map(|&a| name_of(a)).collect();
        out.push(Finding {
            anchor_name: anchors.first().cloned().unwrap_or_default(),
            kind: FindingKind::Field {
                field: field.clone(),
                anchors: anchors.clone(),
                reason: reason.clone(),
            },
            steps: draft
                .anchors
                .iter()
                .flat_map(|&a| through[a as usize].iter().copied())
                .collect(),
        });
        infos.push(FieldCollectionInfo {
            display_name: display_name(&field),
            field_name: field,
            affected_anchors: anchors,
            reason,
            // A field some step asks for in conversation may already have been given
            // in earlier messages; one only a condition reads is rarely volunteered.
            can_extract_from_conversation: draft.asked_by_a_step,
        });
    }
    for (_, (step, anchors, edited)) in actions {
        let names: Vec<String> = anchors.iter().map(|&a| name_of(a)).collect();
        out.push(Finding {
            anchor_name: names.first().cloned().unwrap_or_default(),
            kind: FindingKind::RequiredAction {
                step,
                anchors: names,
                edited,
            },
            steps: anchors
                .iter()
                .flat_map(|&a| through[a as usize].iter().copied())
                .collect(),
        });
    }
    infos
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
