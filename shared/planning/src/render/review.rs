//! The terminal review of a plan: summary, anchors, edited, deleted and new
//! steps, warnings and the fields to collect, in that order.

use std::collections::HashMap;
use std::fmt::Write as _;

use uuid::Uuid;

use crate::model::{PlanComputation, ScenarioInput, Severity};

use super::anchors::anchors_text;
use super::edited::edited_text;
use super::labels::{Names, TEXT_ITEMS, list_some};

/// Warnings of the same severity listed before "… and N more".
const TEXT_WARNINGS: usize = 30;

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
