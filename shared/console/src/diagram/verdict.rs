//! How the plan sees each step of the drawn side — anchor and migration
//! scenario, inserted, deleted, edited, new fork, session count — and how that
//! reads in words on the step's box.

use std::collections::{BTreeMap, HashMap};

use planning::{MigrationPlan, MigrationScenario, StepInput};
use uuid::Uuid;

use super::Side;

/// How the plan sees one step of the drawn side.
#[derive(Debug, Clone, Default)]
pub(super) struct Verdict {
    pub scenario: Option<MigrationScenario>,
    pub anchor_hash: Option<String>,
    pub inserted: bool,
    pub deleted: bool,
    pub edited: bool,
    pub new_fork: bool,
    pub sessions: Option<u64>,
}

/// The verdict of every step the plan says something about, by step id (a step
/// absent from the map is unchanged).
pub(super) fn verdicts(
    plan: &MigrationPlan,
    side: Side,
    deleted_counts: &BTreeMap<Uuid, u64>,
) -> HashMap<Uuid, Verdict> {
    let map = &plan.transformation_map;
    let counts = &plan.summary.sessions_by_anchor;
    let mut out: HashMap<Uuid, Verdict> = HashMap::new();
    for target in map.targets() {
        let id = side.pick(target.anchor_node_id_v1, target.anchor_node_id_v2);
        let v = out.entry(id).or_default();
        v.scenario = Some(target.migration_scenario);
        v.anchor_hash = Some(target.anchor_content_hash.clone());
        v.sessions = counts.get(&target.anchor_content_hash).copied();
    }
    for edited in &map.edited_steps {
        out.entry(edited.step.anchor_node_id_v2).or_default().edited = true;
    }
    match side {
        // Only V1 has deleted steps; their sessions are counted live, the plan's
        // counts being per anchor.
        Side::V1 => {
            for deleted in map.deleted_nodes.iter().filter(|d| !d.edited) {
                let v = out.entry(deleted.node_id_v1).or_default();
                v.deleted = true;
                v.sessions = Some(
                    deleted_counts
                        .get(&deleted.node_id_v1)
                        .copied()
                        .unwrap_or(0),
                );
            }
        }
        // Only V2 has inserted steps and new forks.
        Side::V2 => {
            for id in &map.new_node_ids {
                out.entry(*id).or_default().inserted = true;
            }
            for target in map.targets() {
                for region in [&target.upstream_changes, &target.downstream_changes] {
                    for fork in &region.new_forks {
                        out.entry(fork.fork_node_id).or_default().new_fork = true;
                    }
                }
            }
        }
    }
    out
}

/// The V1 steps without a partner in V2 (deleted, not edited): their sessions
/// are counted live for the V1 diagram.
pub fn deleted_step_ids(plan: &MigrationPlan) -> Vec<Uuid> {
    plan.transformation_map
        .deleted_nodes
        .iter()
        .filter(|d| !d.edited)
        .map(|d| d.node_id_v1)
        .collect()
}

impl Verdict {
    /// The step group's `data-kind`: the colour of its box, in a form tools and
    /// tests can read.
    pub(super) fn kind(&self) -> &'static str {
        if self.deleted {
            "deleted"
        } else if self.inserted {
            "inserted"
        } else {
            self.scenario.map_or("unchanged", MigrationScenario::as_str)
        }
    }

    /// The step's name with the mark of its change, if any.
    pub(super) fn marked_name(&self, name: String) -> String {
        if self.inserted {
            format!("+ {name}")
        } else if self.deleted {
            format!("− {name}")
        } else if self.edited {
            format!("✎ {name}")
        } else {
            name
        }
    }
}

fn scenario_words(s: MigrationScenario) -> &'static str {
    match s {
        MigrationScenario::CleanGraft => "clean graft",
        MigrationScenario::GapFill => "gap fill",
        MigrationScenario::ReRoute => "re-route",
    }
}

/// Everything known about a step, in words joined by " · " (its box's second line
/// and its tooltip).
pub(super) fn tags(step: &StepInput, v: &Verdict) -> String {
    let mut tags: Vec<String> = Vec::new();
    if v.deleted {
        tags.push("− deleted".into());
    }
    if v.inserted {
        tags.push("+ new".into());
    }
    if v.edited {
        tags.push("✎ edited".into());
    }
    if let Some(s) = v.scenario {
        tags.push(scenario_words(s).into());
    }
    if v.new_fork {
        tags.push("◆ new fork".into());
    }
    if step.is_checkpoint {
        tags.push("⚑ checkpoint".into());
    }
    if step.is_required_action {
        tags.push("★ required action".into());
    }
    if let Some(n) = v.sessions {
        tags.push(format!("{n} session{}", if n == 1 { "" } else { "s" }));
    }
    tags.join(" · ")
}
