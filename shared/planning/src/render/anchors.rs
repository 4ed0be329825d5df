//! The ANCHORS section of the review: anchors grouped by scenario and
//! surroundings, the most consequential first.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{AnchorTransformation, MigrationScenario, PlanComputation};

use super::labels::{Names, TEXT_ITEMS, list_some, scenario_label};
use super::regions::region_text;

/// Anchors listed in detail by the text review before "… and N more".
const TEXT_ANCHORS: usize = 40;

/// Anchors grouped by identical scenario and surroundings (an edit near the entry
/// changes the upstream of thousands of anchors the same way), most consequential
/// first: re-route, gap fill, clean grafts with upstream changes, the rest.
pub(super) fn anchors_text(out: &mut String, plan: &PlanComputation, names: &Names<'_>) {
    struct Group<'p> {
        scenario: MigrationScenario,
        upstream_changed: bool,
        body: String,
        anchors: Vec<&'p AnchorTransformation>,
        sessions: u64,
    }
    let map = &plan.transformation_map;
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<(MigrationScenario, String), usize> = HashMap::new();
    let mut quiet = 0usize;
    for a in &map.anchors {
        let unchanged = a.migration_scenario == MigrationScenario::CleanGraft
            && a.upstream_changes.is_empty()
            && a.downstream_changes.is_empty()
            && a.anchor_node_id_v1 == a.anchor_node_id_v2;
        if unchanged {
            quiet += 1;
            continue;
        }
        let mut body = String::new();
        region_text(&mut body, "upstream", &a.upstream_changes, names);
        region_text(&mut body, "downstream", &a.downstream_changes, names);
        let sessions = plan
            .summary
            .sessions_by_anchor
            .get(&a.anchor_content_hash)
            .copied()
            .unwrap_or(0);
        let k = *by_key
            .entry((a.migration_scenario, body.clone()))
            .or_insert_with(|| {
                groups.push(Group {
                    scenario: a.migration_scenario,
                    upstream_changed: !a.upstream_changes.is_empty(),
                    body,
                    anchors: Vec::new(),
                    sessions: 0,
                });
                groups.len() - 1
            });
        groups[k].anchors.push(a);
        groups[k].sessions = groups[k].sessions.saturating_add(sessions);
    }
    groups.sort_by_key(|g| match (g.scenario, g.upstream_changed) {
        (MigrationScenario::ReRoute, _) => 0,
        (MigrationScenario::GapFill, _) => 1,
        (MigrationScenario::CleanGraft, true) => 2,
        (MigrationScenario::CleanGraft, false) => 3,
    });
    for g in groups.iter().take(TEXT_ANCHORS) {
        let sessions = if g.sessions > 0 {
            format!(", {} session(s)", g.sessions)
        } else {
            String::new()
        };
        match g.anchors.as_slice() {
            [a] => {
                let _ = writeln!(
                    out,
                    "  [{}] {}  ({}{sessions})",
                    scenario_label(g.scenario),
                    a.anchor_name,
                    a.anchor_content_hash
                );
                if a.anchor_node_id_v1 != a.anchor_node_id_v2 {
                    let _ = writeln!(
                        out,
                        "      id changes: {} → {}",
                        a.anchor_node_id_v1, a.anchor_node_id_v2
                    );
                }
            }
            many => {
                let listed: Vec<String> = many.iter().map(|a| a.anchor_name.clone()).collect();
                let _ = writeln!(
                    out,
                    "  [{}] {} anchors{sessions}: {}",
                    scenario_label(g.scenario),
                    many.len(),
                    list_some(&listed, TEXT_ITEMS)
                );
            }
        }
        if g.body.is_empty() {
            let _ = writeln!(out, "      (only the step id changed)");
        }
        out.push_str(&g.body);
    }
    if groups.len() > TEXT_ANCHORS {
        let rest: usize = groups[TEXT_ANCHORS..].iter().map(|g| g.anchors.len()).sum();
        let _ = writeln!(
            out,
            "  … and {rest} more anchors in {} other groups (use --format json for all)",
            groups.len() - TEXT_ANCHORS
        );
    }
    if quiet > 0 {
        let _ = writeln!(
            out,
            "  {quiet} anchor(s) with nothing changed around them: clean graft"
        );
    }
}
