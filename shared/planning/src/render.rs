//! Human renderings of a plan: a terminal review and a Mermaid flowchart. Pure string
//! building, so the CLI stays a thin shell and the formats are unit-tested here.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use uuid::Uuid;

use crate::graph::Graph;
use crate::model::{
    AnchorTransformation, AttributeChange, EditedStep, EditedStepBehavior, MigrationScenario,
    PlanComputation, RegionChanges, ScenarioInput, Severity, TransitionChangeType,
};

/// Anchors listed in detail by the text review before "… and N more".
const TEXT_ANCHORS: usize = 40;
/// Items of one kind listed per region before "… and N more".
const TEXT_ITEMS: usize = 5;
/// Warnings of the same severity listed before "… and N more".
const TEXT_WARNINGS: usize = 30;
/// Edited steps listed in detail before "… and N more".
const TEXT_EDITED: usize = 40;
/// Characters of an attribute value shown in the review.
const TEXT_VALUE: usize = 60;

struct Names<'a> {
    v1: HashMap<Uuid, &'a str>,
    v2: HashMap<Uuid, &'a str>,
}

impl<'a> Names<'a> {
    fn new(v1: &'a ScenarioInput, v2: &'a ScenarioInput) -> Self {
        Names {
            v1: v1.steps.iter().map(|s| (s.id, s.name.as_str())).collect(),
            v2: v2.steps.iter().map(|s| (s.id, s.name.as_str())).collect(),
        }
    }
    fn v1(&self, id: Uuid) -> String {
        self.v1
            .get(&id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }
    fn v2(&self, id: Uuid) -> String {
        self.v2
            .get(&id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }
}

fn scenario_label(s: MigrationScenario) -> &'static str {
    match s {
        MigrationScenario::CleanGraft => "clean graft",
        MigrationScenario::GapFill => "gap fill",
        MigrationScenario::ReRoute => "re-route",
    }
}

fn list_some(items: &[String], limit: usize) -> String {
    let mut out = items
        .iter()
        .take(limit)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > limit {
        let _ = write!(out, ", … and {} more", items.len() - limit);
    }
    out
}

/// A review of the plan an operator can read in a terminal.
pub fn text(plan: &PlanComputation, v1: &ScenarioInput, v2: &ScenarioInput) -> String {
    let names = Names::new(v1, v2);
    let map = &plan.transformation_map;
    let s = &plan.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Migration plan: {} v{} → {} v{}",
        v1.name, v1.version, v2.name, v2.version
    );
    let _ = writeln!(
        out,
        "Checksums: {} → {}\n",
        plan.scenario_checksum_v1, plan.scenario_checksum_v2
    );

    let _ = writeln!(out, "SUMMARY");
    let _ = writeln!(
        out,
        "  anchors            {:>6}   clean graft {}, gap fill {}, re-route {}",
        s.total_anchors,
        s.anchors_with_clean_graft,
        s.anchors_with_gap_fill,
        s.anchors_with_re_route
    );
    let _ = writeln!(out, "  edited steps       {:>6}", map.edited_steps.len());
    let _ = writeln!(out, "  deleted steps      {:>6}", s.nodes_deleted);
    let _ = writeln!(out, "  new steps          {:>6}", map.new_node_ids.len());
    let _ = writeln!(
        out,
        "  sessions affected  {:>6}{}",
        s.estimated_sessions_affected,
        if s.estimated_sessions_affected == 0 {
            "   (no session counts: offline plan or no sessions)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "  warnings           {:>6}\n", s.warnings.len());

    let _ = writeln!(out, "ANCHORS");
    anchors_text(&mut out, plan, &names);
    if map.anchors.is_empty() {
        let _ = writeln!(out, "  (none: no step of the current version survives)");
    }

    if !map.edited_steps.is_empty() {
        let _ = writeln!(
            out,
            "\nEDITED STEPS (same id, content changed: sessions keep their step)"
        );
        edited_text(&mut out, plan, &names);
    }

    if map.deleted_nodes.iter().any(|d| !d.edited) {
        let _ = writeln!(out, "\nDELETED STEPS");
        let anchor_names: HashMap<Uuid, &str> = map
            .targets()
            .map(|a| (a.anchor_node_id_v2, a.anchor_name.as_str()))
            .collect();
        for d in map.deleted_nodes.iter().filter(|d| !d.edited) {
            match d.nearest_anchor_id_v2 {
                Some(v2id) => {
                    let _ = writeln!(
                        out,
                        "  - {}  → sessions continue at '{}'",
                        d.node_name,
                        anchor_names.get(&v2id).copied().unwrap_or("?")
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  - {}  → no anchor: sessions exit the scenario",
                        d.node_name
                    );
                }
            }
        }
    }
    if !map.new_node_ids.is_empty() {
        let new: Vec<String> = map.new_node_ids.iter().map(|&id| names.v2(id)).collect();
        let _ = writeln!(out, "\nNEW STEPS\n  {}", list_some(&new, 20));
    }

    let _ = writeln!(out, "\nWARNINGS");
    if s.warnings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
        let of: Vec<_> = s
            .warnings
            .iter()
            .filter(|w| w.severity == severity)
            .collect();
        let label = match severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "warning ",
            Severity::Info => "info    ",
        };
        for w in of.iter().take(TEXT_WARNINGS) {
            let sessions = if w.affected_sessions_estimate > 0 {
                format!(" [{} session(s)]", w.affected_sessions_estimate)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {label} {}{sessions}", w.message);
        }
        if of.len() > TEXT_WARNINGS {
            let _ = writeln!(out, "  {label} … and {} more", of.len() - TEXT_WARNINGS);
        }
    }

    let _ = writeln!(out, "\nFIELDS TO COLLECT");
    if s.fields_to_collect.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for f in &s.fields_to_collect {
        let _ = writeln!(
            out,
            "  {} ({}){} — {}; anchors: {}",
            f.field_name,
            f.display_name,
            if f.can_extract_from_conversation {
                ", may be extracted from the conversation"
            } else {
                ""
            },
            f.reason,
            list_some(&f.affected_anchors, TEXT_ITEMS)
        );
    }
    out
}

/// Anchors grouped by identical scenario and surroundings (an edit near the entry
/// changes the upstream of thousands of anchors the same way), most consequential
/// first: re-route, gap fill, clean grafts with upstream changes, the rest.
fn anchors_text(out: &mut String, plan: &PlanComputation, names: &Names<'_>) {
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

/// A value of a changed attribute, short: strings quoted and cut, lists joined.
fn value_text(v: &serde_json::Value) -> String {
    let cut = |t: &str| {
        let mut s: String = t.chars().take(TEXT_VALUE).collect();
        if t.chars().count() > TEXT_VALUE {
            s.push('…');
        }
        s
    };
    match v {
        serde_json::Value::String(t) if t.is_empty() => "(none)".to_string(),
        serde_json::Value::String(t) => format!("\"{}\"", cut(t)),
        serde_json::Value::Array(items) if items.is_empty() => "(none)".to_string(),
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect();
            cut(&parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn change_text(c: &AttributeChange) -> String {
    format!(
        "{}: {} → {}",
        c.attribute.label(),
        value_text(&c.before),
        value_text(&c.after)
    )
}

/// Each edited step: what changed, where its sessions go, its surroundings.
fn edited_text(out: &mut String, plan: &PlanComputation, names: &Names<'_>) {
    let map = &plan.transformation_map;
    let targets: HashMap<&str, &str> = map
        .anchors
        .iter()
        .map(|a| (a.anchor_content_hash.as_str(), a.anchor_name.as_str()))
        .collect();
    for e in map.edited_steps.iter().take(TEXT_EDITED) {
        let a: &AnchorTransformation = &e.step;
        let sessions = plan
            .summary
            .sessions_by_anchor
            .get(&a.anchor_content_hash)
            .filter(|n| **n > 0)
            .map(|n| format!(", {n} session(s)"))
            .unwrap_or_default();
        let title = if e.node_name_v1 == a.anchor_name {
            a.anchor_name.clone()
        } else {
            format!("{} (was '{}')", a.anchor_name, e.node_name_v1)
        };
        let _ = writeln!(
            out,
            "  [{}] {title}  ({}{sessions})",
            scenario_label(a.migration_scenario),
            a.anchor_content_hash
        );
        for c in &e.changes {
            let _ = writeln!(out, "      ~ {}", change_text(c));
        }
        let _ = writeln!(
            out,
            "      sessions there: {}",
            edited_behavior(plan, e, &targets)
        );
        if e.becomes_checkpoint() || e.becomes_required_action() {
            let _ = writeln!(
                out,
                "      ! the edit makes it {}: sessions waiting there will go through it",
                match (e.becomes_checkpoint(), e.becomes_required_action()) {
                    (true, true) => "a checkpoint and a required action",
                    (true, false) => "a checkpoint",
                    _ => "a required action",
                }
            );
        }
        region_text(out, "upstream", &a.upstream_changes, names);
        region_text(out, "downstream", &a.downstream_changes, names);
    }
    if map.edited_steps.len() > TEXT_EDITED {
        let _ = writeln!(
            out,
            "  … and {} more edited steps (use --format json for all)",
            map.edited_steps.len() - TEXT_EDITED
        );
    }
}

fn edited_behavior(
    plan: &PlanComputation,
    e: &EditedStep,
    anchors: &HashMap<&str, &str>,
) -> String {
    let behavior = plan
        .anchor_policies
        .get(e.key())
        .and_then(|p| p.edited_step_behavior)
        .unwrap_or_default();
    match behavior {
        EditedStepBehavior::Stay => "stay on the edited step".to_string(),
        EditedStepBehavior::RelocateToNearestAnchor => match &e.nearest_anchor_hash {
            Some(h) => format!(
                "relocated to the nearest anchor '{}' (policy)",
                anchors.get(h.as_str()).copied().unwrap_or("?")
            ),
            None => "relocated (policy), but no anchor is near: they exit the scenario".to_string(),
        },
    }
}

fn region_text(out: &mut String, side: &str, r: &RegionChanges, names: &Names<'_>) {
    if r.is_empty() {
        return;
    }
    let inserted: Vec<String> = r
        .inserted_nodes
        .iter()
        .map(|n| {
            let mut tags = Vec::new();
            if !n.collects_fields.is_empty() {
                tags.push(format!("collects {}", n.collects_fields.join(", ")));
            }
            if n.is_required_action {
                tags.push("required action".to_string());
            }
            if n.is_checkpoint {
                tags.push("checkpoint".to_string());
            }
            if tags.is_empty() {
                n.node_name.clone()
            } else {
                format!("{} [{}]", n.node_name, tags.join("; "))
            }
        })
        .collect();
    let removed: Vec<String> = r.removed_node_ids.iter().map(|&id| names.v1(id)).collect();
    let edited: Vec<String> = r
        .edited_nodes
        .iter()
        .map(|n| {
            let mut tags: Vec<String> = vec![
                n.changed
                    .iter()
                    .map(|a| a.label())
                    .collect::<Vec<_>>()
                    .join(", "),
            ];
            if !n.added_fields.is_empty() {
                tags.push(format!("now collects {}", n.added_fields.join(", ")));
            }
            if n.new_required_action {
                tags.push("now a required action".to_string());
            }
            format!("{} [{}]", n.node_name, tags.join("; "))
        })
        .collect();
    let forks: Vec<String> = r
        .new_forks
        .iter()
        .map(|f| {
            let branches: Vec<String> = f
                .branches
                .iter()
                .map(|b| {
                    if b.condition_text.is_empty() {
                        format!("→ {}", b.target_step_name)
                    } else {
                        format!("{} → {}", b.condition_text, b.target_step_name)
                    }
                })
                .collect();
            format!("{} ({})", f.fork_node_name, branches.join(" | "))
        })
        .collect();
    let transitions: Vec<String> = r
        .modified_transitions
        .iter()
        .map(|t| {
            let from = names.v2(t.from_step_id);
            match t.change_type {
                TransitionChangeType::Added => format!(
                    "{from} → {} added",
                    t.to_step_id_v2.map(|i| names.v2(i)).unwrap_or_default()
                ),
                TransitionChangeType::Removed => format!(
                    "{from} → {} removed",
                    t.to_step_id_v1.map(|i| names.v1(i)).unwrap_or_default()
                ),
                TransitionChangeType::Modified => format!(
                    "{from} → {} modified",
                    t.to_step_id_v2.map(|i| names.v2(i)).unwrap_or_default()
                ),
            }
        })
        .collect();
    let _ = writeln!(out, "      {side}:");
    for (label, items) in [
        ("+ inserted", &inserted),
        ("- removed", &removed),
        ("* edited", &edited),
        ("? new forks", &forks),
        ("~ transitions", &transitions),
    ] {
        if !items.is_empty() {
            let _ = writeln!(out, "        {label}: {}", list_some(items, TEXT_ITEMS));
        }
    }
}

/// Mermaid-safe label text: quotes become entities, line breaks spaces, long texts cut.
fn label(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("#quot;"),
            '\n' | '\r' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A Mermaid flowchart of V2: anchors coloured by migration scenario, new steps
/// dashed, and the deleted V1 steps in their own group with a dotted link to the
/// anchor their sessions move to.
pub fn mermaid(plan: &PlanComputation, v2: &ScenarioInput) -> String {
    let map = &plan.transformation_map;
    let g = Graph::new(v2);
    let mut order: Vec<u32> = (0..g.len() as u32).collect();
    order.sort_by_key(|&i| g.rank[i as usize]);
    let node = |i: u32| format!("s{}", g.rank[i as usize]);

    let scenario_of: HashMap<Uuid, MigrationScenario> = map
        .targets()
        .map(|a| (a.anchor_node_id_v2, a.migration_scenario))
        .collect();
    let new: HashSet<Uuid> = map.new_node_ids.iter().copied().collect();
    let edited: HashSet<Uuid> = map
        .edited_steps
        .iter()
        .map(|e| e.step.anchor_node_id_v2)
        .collect();

    let mut out = String::new();
    let _ = writeln!(out, "flowchart TD");
    let _ = writeln!(
        out,
        "  classDef clean_graft fill:#d8f5d0,stroke:#2e7d32,color:#1b3d1b"
    );
    let _ = writeln!(
        out,
        "  classDef gap_fill fill:#fff4c2,stroke:#b58900,color:#4a3b00"
    );
    let _ = writeln!(
        out,
        "  classDef re_route fill:#ffd6d6,stroke:#c62828,color:#4a0d0d"
    );
    let _ = writeln!(
        out,
        "  classDef inserted fill:#dbe9ff,stroke:#1f5fbf,stroke-width:2px,stroke-dasharray:5 3"
    );
    let _ = writeln!(
        out,
        "  classDef deleted fill:#eeeeee,stroke:#888888,color:#666666,stroke-dasharray:3 3"
    );

    for &i in &order {
        let st = g.step(i);
        let mut text = label(&st.name, 60);
        if new.contains(&st.id) {
            text = format!("+ {text}");
        } else if edited.contains(&st.id) {
            text = format!("✎ {text}");
        }
        if st.is_checkpoint {
            text.push_str(" ⚑");
        }
        let class = if new.contains(&st.id) {
            Some("inserted")
        } else {
            scenario_of.get(&st.id).map(|s| s.as_str())
        };
        match class {
            Some(c) => {
                let _ = writeln!(out, "  {}[\"{text}\"]:::{c}", node(i));
            }
            None => {
                let _ = writeln!(out, "  {}[\"{text}\"]", node(i));
            }
        }
    }
    for &i in &order {
        let st = g.step(i);
        for t in &st.transitions {
            let Some(&to) = g.index.get(&t.to_step_id) else {
                continue;
            };
            if t.condition_text.trim().is_empty() {
                let _ = writeln!(out, "  {} --> {}", node(i), node(to));
            } else {
                let _ = writeln!(
                    out,
                    "  {} -->|\"{}\"| {}",
                    node(i),
                    label(&t.condition_text, 40),
                    node(to)
                );
            }
        }
    }

    // Edited steps are drawn in place (✎), not as deletions.
    if map.deleted_nodes.iter().any(|d| !d.edited) {
        let _ = writeln!(
            out,
            "  subgraph deleted_steps[\"Deleted from the current version\"]"
        );
        let deleted = || {
            map.deleted_nodes
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.edited)
        };
        for (k, d) in deleted() {
            let _ = writeln!(out, "    d{k}[\"- {}\"]:::deleted", label(&d.node_name, 60));
        }
        let _ = writeln!(out, "  end");
        for (k, d) in deleted() {
            if let Some(&to) = d.nearest_anchor_id_v2.and_then(|id| g.index.get(&id)) {
                let _ = writeln!(out, "  d{k} -.->|\"sessions move\"| {}", node(to));
            }
        }
    }

    let _ = writeln!(out, "  subgraph legend[\"Legend\"]");
    let _ = writeln!(out, "    legend_clean[\"clean graft\"]:::clean_graft");
    let _ = writeln!(out, "    legend_gap[\"gap fill\"]:::gap_fill");
    let _ = writeln!(out, "    legend_reroute[\"re-route\"]:::re_route");
    let _ = writeln!(out, "    legend_new[\"+ new step\"]:::inserted");
    let _ = writeln!(out, "    legend_edited[\"✎ edited step (same id)\"]");
    let _ = writeln!(out, "    legend_deleted[\"- deleted step\"]:::deleted");
    let _ = writeln!(out, "  end");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SessionCounts, compute_plan};
    use crate::testkit::{scenario, step};

    fn pair() -> (ScenarioInput, ScenarioInput) {
        let v1 = scenario(
            1,
            vec![
                step("Welcome").to("Ask email"),
                step("Ask email").collects(&["email"]).to("Payment"),
                step("Payment").checkpoint("Paid").to("Done"),
                step("Done"),
            ],
        );
        let v2 = scenario(
            2,
            vec![
                step("Welcome").to("Age check"),
                step("Age check")
                    .branch("Payment", "age >= 18", &["age"], 1)
                    .branch("Rejected", "age < 18 && name == \"x\"", &["age"], 0),
                step("Payment").checkpoint("Paid").to("Done"),
                step("Done"),
                step("Rejected"),
            ],
        );
        (v1, v2)
    }

    #[test]
    fn text_review_has_every_section() {
        let (v1, v2) = pair();
        let plan = compute_plan(&v1, &v2, &SessionCounts::new());
        let t = text(&plan, &v1, &v2);
        for needle in [
            "Migration plan: Test flow v1 → Test flow v2",
            "SUMMARY",
            "[re-route] 2 anchors: Payment, Done",
            "? new forks: Age check (age >= 18 → Payment",
            "- removed: Ask email",
            "DELETED STEPS",
            "Ask email  → sessions continue at 'Payment'",
            "NEW STEPS",
            "WARNINGS",
            "FIELDS TO COLLECT",
            "age (Age)",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }

    #[test]
    fn mermaid_colours_anchors_and_marks_new_and_deleted_steps() {
        let (v1, v2) = pair();
        let plan = compute_plan(&v1, &v2, &SessionCounts::new());
        let m = mermaid(&plan, &v2);
        assert!(m.starts_with("flowchart TD\n"));
        assert!(m.contains("s0[\"Welcome\"]:::clean_graft"));
        assert!(m.contains("[\"+ Age check\"]:::inserted"));
        assert!(m.contains("[\"Payment ⚑\"]:::re_route"));
        assert!(m.contains("-->|\"age < 18 && name == #quot;x#quot;\"|"));
        assert!(m.contains("subgraph deleted_steps"));
        assert!(m.contains("d0[\"- Ask email\"]:::deleted"));
        assert!(m.contains("d0 -.->|\"sessions move\"|"));
    }
}
