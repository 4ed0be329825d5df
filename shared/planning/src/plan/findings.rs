//! Findings: the warnings of a plan before its session counts are known, and how
//! each is rendered once they are.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::diff::Analysis;
use crate::graph::{BitSet, Dir};
use crate::model::{MigrationWarning, Severity, StepAttribute, TransformationMap};

use super::cel_validity::is_valid_cel;

/// How many anchor or step names a warning message quotes before "and N more"
/// (the field reasons of `fields` are cut to the same number).
pub(super) const EXAMPLES: usize = 3;

#[derive(Debug, Clone)]
pub(super) struct Finding {
    pub(super) kind: FindingKind,
    pub(super) anchor_name: String,
    /// V1 steps whose sessions the warning is about.
    pub(super) steps: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub(super) enum FindingKind {
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
    pub(super) fn render(&self, sessions: u64) -> MigrationWarning {
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

pub(super) fn deleted_findings(map: &TransformationMap, out: &mut Vec<Finding>) {
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
pub(super) fn edited_findings(
    map: &TransformationMap,
    through: &[Vec<Uuid>],
    out: &mut Vec<Finding>,
) {
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
pub(super) fn checkpoint_findings(
    analysis: &mut Analysis<'_>,
    through: &[Vec<Uuid>],
    out: &mut Vec<Finding>,
) {
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
pub(super) fn cel_findings(analysis: &Analysis<'_>, through: &[Vec<Uuid>], out: &mut Vec<Finding>) {
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

pub(super) fn ambiguous_findings(analysis: &Analysis<'_>, out: &mut Vec<Finding>) {
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

pub(super) fn unreachable_findings(
    analysis: &Analysis<'_>,
    through: &[Vec<Uuid>],
    out: &mut Vec<Finding>,
) {
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
