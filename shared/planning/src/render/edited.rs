//! The EDITED STEPS section of the review: what changed in each step edited in
//! place, where its sessions go, and its surroundings.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{
    AnchorTransformation, AttributeChange, EditedStep, EditedStepBehavior, PlanComputation,
};

use super::labels::{Names, scenario_label};
use super::regions::region_text;

/// Edited steps listed in detail before "… and N more".
const TEXT_EDITED: usize = 40;
/// Characters of an attribute value shown in the review.
const TEXT_VALUE: usize = 60;

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
pub(super) fn edited_text(out: &mut String, plan: &PlanComputation, names: &Names<'_>) {
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
