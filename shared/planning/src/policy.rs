//! Validation of the anchor migration policies an operator sends for a plan
//! (`PUT /migration-plans/{plan_id}/policies`): every problem, each with its location.
//!
//! Locations are relative to the `policies` object (`[hash, "scope_filter",
//! "custom_conditions", 0]`), so the HTTP layer only prefixes them with
//! `["body", "policies"]`.

use std::collections::BTreeMap;

use crate::conditions::MAX_EXPRESSION_CHARS;
use crate::model::{AnchorMigrationPolicy, EditedStepBehavior, TransformationMap};
use crate::scope::{CompiledScope, MAX_CUSTOM_CONDITIONS};
use crate::validate::{LocPart, ValidationIssue};

/// Custom-condition characters one `PUT .../policies` may carry. Compiling CEL
/// costs about 5 µs a character (optimised): this keeps a request under ~0.3 s of
/// CPU, where a 6 MB body of conditions would take half a minute.
pub const MAX_CONDITION_CHARS_PER_REQUEST: usize = 65_536;

/// Session ages a scope filter may name: ten years, far beyond any session, and
/// far from the overflow of date arithmetic.
pub const MAX_SESSION_AGE_DAYS: i64 = 3_650;

/// Every problem of `policies` (keyed by anchor content hash or edited-step policy
/// key) for a plan with this transformation map, or `Ok(())`.
///
/// Checked per policy: the key names an anchor or edited step of the map; the
/// policy repeats its key; only an edited step's policy has an
/// `edited_step_behavior`, and relocating needs a nearest anchor; session ages lie
/// in `0..=MAX_SESSION_AGE_DAYS` with min ≤ max; at most
/// [`MAX_CUSTOM_CONDITIONS`] custom conditions, at most
/// [`MAX_CONDITION_CHARS_PER_REQUEST`] condition characters over the whole request
/// (past it nothing more is compiled), and each condition compiles as a boolean
/// CEL expression within the limits of [`crate::conditions`].
pub fn validate_policies(
    map: &TransformationMap,
    policies: &BTreeMap<String, AnchorMigrationPolicy>,
) -> Result<(), Vec<ValidationIssue>> {
    let mut problems = Vec::new();
    let mut condition_chars = 0usize;
    for (hash, policy) in policies {
        let at = |rest: &[&str]| -> Vec<LocPart> {
            std::iter::once(hash.as_str())
                .chain(rest.iter().copied())
                .map(LocPart::from)
                .collect()
        };
        let mut push = |loc: Vec<LocPart>, msg: String, kind: &str| {
            problems.push(ValidationIssue {
                loc,
                msg,
                kind: kind.to_string(),
            })
        };
        if map.anchor_by_hash(hash).is_none() {
            push(
                at(&[]),
                "unknown anchor content hash".into(),
                "value_error.unknown_anchor",
            );
            continue;
        }
        if &policy.anchor_content_hash != hash {
            push(
                at(&["anchor_content_hash"]),
                "must equal the policy's key".into(),
                "value_error.mismatch",
            );
        }
        // Only an edited step's policy chooses where its sessions go; relocating
        // needs an anchor to relocate to.
        if let Some(behavior) = policy.edited_step_behavior {
            let behavior_at = at(&["edited_step_behavior"]);
            match map.edited_by_key(hash) {
                None => push(
                    behavior_at,
                    "only the policy of an edited step (transformation_map.edited_steps) has an edited_step_behavior".into(),
                    "value_error.not_edited_step",
                ),
                Some(edited)
                    if behavior == EditedStepBehavior::RelocateToNearestAnchor
                        && edited.nearest_anchor_hash.is_none() =>
                {
                    push(
                        behavior_at,
                        format!(
                            "edited step '{}' has no nearest anchor to relocate its sessions to",
                            edited.step.anchor_name
                        ),
                        "value_error.no_nearest_anchor",
                    )
                }
                Some(_) => {}
            }
        }
        let filter = &policy.scope_filter;
        for (field, value) in [
            ("max_session_age_days", filter.max_session_age_days),
            ("min_session_age_days", filter.min_session_age_days),
        ] {
            if value.is_some_and(|v| v < 0) {
                push(
                    at(&["scope_filter", field]),
                    "must be zero or positive".into(),
                    "greater_than_equal",
                );
            } else if value.is_some_and(|v| v > MAX_SESSION_AGE_DAYS) {
                push(
                    at(&["scope_filter", field]),
                    format!("must be at most {MAX_SESSION_AGE_DAYS} days"),
                    "less_than_equal",
                );
            }
        }
        if let (Some(min), Some(max)) = (filter.min_session_age_days, filter.max_session_age_days)
            && min > max
        {
            push(
                at(&["scope_filter", "min_session_age_days"]),
                "must not exceed max_session_age_days (no session could match)".into(),
                "value_error.range",
            );
        }
        let conditions_at = at(&["scope_filter", "custom_conditions"]);
        if filter.custom_conditions.len() > MAX_CUSTOM_CONDITIONS {
            push(
                conditions_at,
                format!(
                    "{} custom conditions; the limit (max custom conditions) is {MAX_CUSTOM_CONDITIONS}",
                    filter.custom_conditions.len()
                ),
                "value_error.cel.limit",
            );
            continue;
        }
        if condition_chars > MAX_CONDITION_CHARS_PER_REQUEST {
            // Already reported: compile nothing more.
            continue;
        }
        // A condition over the length limit is refused before it is parsed:
        // it costs no more than one at the limit.
        condition_chars += filter
            .custom_conditions
            .iter()
            .map(|c| c.chars().count().min(MAX_EXPRESSION_CHARS + 1))
            .sum::<usize>();
        if condition_chars > MAX_CONDITION_CHARS_PER_REQUEST {
            push(
                conditions_at,
                format!(
                    "the custom conditions of this request exceed {MAX_CONDITION_CHARS_PER_REQUEST} characters in total (limit: max condition characters per request); send the policies in several requests"
                ),
                "value_error.cel.limit",
            );
            continue;
        }
        if let Err(invalid) = CompiledScope::compile(filter) {
            for condition in invalid {
                let mut loc = conditions_at.clone();
                loc.push(LocPart::Index(condition.index));
                // `value_error.cel` (syntax), `.cel.limit` (over a limit of
                // crate::conditions: the message names it) or `.cel.not_boolean`.
                push(loc, condition.error.to_string(), condition.error.kind());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
