//! What an in-place edit changed on a step, as the content hash reads it.

use serde_json::Value;

use crate::model::{AttributeChange, EditedNode, StepAttribute, StepInput};

fn sorted_strings<'s>(items: impl Iterator<Item = &'s String>) -> Vec<&'s str> {
    let mut v: Vec<&str> = items.map(String::as_str).collect();
    v.sort_unstable();
    v
}

/// The attributes an edit changed, normalised as the content hash reads them.
pub(super) fn attribute_changes(s1: &StepInput, s2: &StepInput) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let mut push = |attribute: StepAttribute, before: Value, after: Value| {
        if before != after {
            out.push(AttributeChange {
                attribute,
                before,
                after,
            });
        }
    };
    push(
        StepAttribute::Name,
        Value::from(s1.name.as_str()),
        Value::from(s2.name.as_str()),
    );
    push(
        StepAttribute::Description,
        Value::from(s1.description.as_deref().unwrap_or("")),
        Value::from(s2.description.as_deref().unwrap_or("")),
    );
    let rules = |s: &StepInput| {
        let mut r: Vec<String> = s.rule_ids.iter().map(|u| u.to_string()).collect();
        r.sort_unstable();
        Value::from(r)
    };
    push(StepAttribute::RuleIds, rules(s1), rules(s2));
    push(
        StepAttribute::CollectsProfileFields,
        Value::from(sorted_strings(s1.collects_profile_fields.iter())),
        Value::from(sorted_strings(s2.collects_profile_fields.iter())),
    );
    push(
        StepAttribute::IsCheckpoint,
        Value::from(s1.is_checkpoint),
        Value::from(s2.is_checkpoint),
    );
    push(
        StepAttribute::CheckpointDescription,
        Value::from(s1.checkpoint_description.as_deref().unwrap_or("")),
        Value::from(s2.checkpoint_description.as_deref().unwrap_or("")),
    );
    push(
        StepAttribute::PerformsAction,
        Value::from(s1.performs_action),
        Value::from(s2.performs_action),
    );
    push(
        StepAttribute::IsRequiredAction,
        Value::from(s1.is_required_action),
        Value::from(s2.is_required_action),
    );
    out
}

/// How an edited step appears in the regions of others.
pub(super) fn edited_node(s1: &StepInput, s2: &StepInput) -> EditedNode {
    let mut added_fields: Vec<String> = Vec::new();
    for f in &s2.collects_profile_fields {
        if !s1.collects_profile_fields.contains(f) && !added_fields.contains(f) {
            added_fields.push(f.clone());
        }
    }
    EditedNode {
        node_id: s2.id,
        node_name: s2.name.clone(),
        changed: attribute_changes(s1, s2)
            .into_iter()
            .map(|c| c.attribute)
            .collect(),
        added_fields,
        // A step that already performed an action was passed *with* it: running
        // it again could repeat something irreversible.
        new_required_action: s2.is_required_action && !s1.is_required_action && !s1.performs_action,
        is_checkpoint: s2.is_checkpoint,
    }
}
