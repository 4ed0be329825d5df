//! The changes around one anchor or edited step, upstream or downstream, as
//! review lines.

use std::fmt::Write as _;

use crate::model::{RegionChanges, TransitionChangeType};

use super::labels::{Names, TEXT_ITEMS, list_some};

/// One region's changes (inserted, removed and edited steps, new forks, changed
/// transitions), one line per kind, under the anchor or edited step they surround.
pub(super) fn region_text(out: &mut String, side: &str, r: &RegionChanges, names: &Names<'_>) {
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
