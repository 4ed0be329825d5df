//! The fields a migration will ask sessions for and the required actions it will
//! run, per anchor, with their findings.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::diff::Analysis;
use crate::model::{AnchorTransformation, FieldCollectionInfo, MigrationScenario};

use super::findings::{EXAMPLES, Finding, FindingKind};

/// Python's `str.title()` after `_`/`-` → space, as the original's display names.
pub(super) fn display_name(field: &str) -> String {
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
pub(super) fn fields_and_actions(
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
