//! The Mermaid flowchart of a plan's to-version, coloured by migration scenario.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use uuid::Uuid;

use crate::graph::Graph;
use crate::model::{MigrationScenario, PlanComputation, ScenarioInput};

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
