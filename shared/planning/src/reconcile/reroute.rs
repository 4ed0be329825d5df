//! Re-route: would a new upstream fork have sent this customer elsewhere?
//!
//! Only forks upstream of the anchor with at least one branch that cannot reach
//! the anchor matter (the others route everyone to the anchor anyway). Their
//! branches are those of the *final* version, so a composite migration evaluates
//! what the customer would face today.
//!
//! Branches are tried by descending `priority`, then in definition order. A CEL
//! condition that is true takes its branch; one that is not valid CEL, or that
//! fails to evaluate, is never taken and is reported. An empty condition is the
//! fork's fallback: taken only when every other branch evaluated to false, since
//! an unevaluable branch might have been the one the runtime would take.

use serde_json::Value;
use std::collections::BTreeMap;

use super::checkpoint::{Block, CheckpointGuard};
use super::context::ReconcileContext;
use super::fill::{Fills, Sources};
use super::prepared::BranchCondition;
use crate::conditions::ConditionError;

#[derive(Debug)]
pub(crate) enum ReRoute {
    /// Condition fields are missing (listed in `Fills::missing`).
    Collect,
    /// The customer belongs on `to`, chosen at `fork`.
    Divert { fork: usize, to: usize },
    /// A diversion was found but the checkpoint invariant forbids it.
    Blocked(Block),
    /// No fork diverts this customer.
    Stay,
}

pub(crate) struct ReRouteInput<'x, 'a> {
    pub ctx: &'x ReconcileContext<'a>,
    pub forks: &'x [usize],
    pub target: usize,
    pub guard: &'x CheckpointGuard<'a>,
    pub sources: &'x Sources<'a>,
    pub current_step_name: &'x str,
    pub age_days: i64,
}

pub(crate) fn evaluate(
    input: &ReRouteInput<'_, '_>,
    fills: &mut Fills,
    notes: &mut Vec<String>,
) -> ReRoute {
    let current = input.ctx.current;
    let upstream = current.reaching(input.target);
    let leads_to_anchor = |i: usize| i == input.target || upstream[i];
    let diverting: Vec<usize> = input
        .forks
        .iter()
        .copied()
        .filter(|&f| {
            // The anchor's own branches are its downstream side, never a re-route.
            f != input.target
                && upstream[f]
                && current.step(f).transitions.len() >= 2
                && current
                    .step(f)
                    .transitions
                    .iter()
                    .filter_map(|t| current.index_of(t.to_step_id))
                    .any(|to| !leads_to_anchor(to))
        })
        .collect();
    if diverting.is_empty() {
        return ReRoute::Stay;
    }

    // First gather every condition field, so the customer is asked once.
    let mut to_evaluate = Vec::with_capacity(diverting.len());
    for &f in &diverting {
        let step = current.step(f);
        let fields: Vec<&String> = step
            .transitions
            .iter()
            .zip(current.branch_conditions(f))
            .filter(|(_, c)| matches!(c, BranchCondition::Cel(_)))
            .flat_map(|(t, _)| t.condition_fields.iter())
            .collect();
        // A fork before a passed checkpoint can never be re-decided: asking the
        // customer for its fields would be a question without a purpose. With the
        // fields at hand it is still evaluated, so a diversion it would have made
        // is reported as blocked.
        if input.guard.check_fork(f).is_err() && !fields.iter().all(|x| input.sources.has(x)) {
            notes.push(format!(
                "fork '{}' lies before a checkpoint the customer passed; not re-evaluated",
                step.name
            ));
            continue;
        }
        for x in fields {
            fills.require(input.sources, x);
        }
        to_evaluate.push(f);
    }
    if !fills.missing.is_empty() {
        return ReRoute::Collect;
    }

    let bindings = input
        .sources
        .bindings(input.current_step_name, input.age_days);
    for f in to_evaluate {
        let Some(to) = choose_branch(input, f, &bindings, notes) else {
            continue;
        };
        if leads_to_anchor(to) {
            continue;
        }
        if let Err(block) = input.guard.check_fork(f) {
            return ReRoute::Blocked(block);
        }
        if let Err(block) = input.guard.check_landing(to) {
            return ReRoute::Blocked(block);
        }
        return ReRoute::Divert { fork: f, to };
    }
    ReRoute::Stay
}

/// The step the fork `f` sends this customer to, if it can be decided.
fn choose_branch(
    input: &ReRouteInput<'_, '_>,
    f: usize,
    bindings: &BTreeMap<String, Value>,
    notes: &mut Vec<String>,
) -> Option<usize> {
    let current = input.ctx.current;
    let step = current.step(f);
    let conditions = current.branch_conditions(f);
    let mut order: Vec<usize> = (0..step.transitions.len().min(conditions.len())).collect();
    // Stable sort: equal priorities keep definition order.
    order.sort_by_key(|&i| std::cmp::Reverse(step.transitions[i].priority));
    let mut fallback = None;
    let mut undecidable = false;
    for i in order {
        let t = &step.transitions[i];
        match &conditions[i] {
            BranchCondition::Default => {
                if fallback.is_none() {
                    fallback = Some(t);
                }
            }
            BranchCondition::Invalid(e) => {
                undecidable = true;
                let why = match e {
                    ConditionError::Syntax(_) | ConditionError::Internal => "is not valid CEL",
                    _ => "cannot be used",
                };
                notes.push(format!(
                    "condition \"{}\" at '{}' {why} and was not taken ({e})",
                    quoted(&t.condition_text),
                    step.name
                ));
            }
            BranchCondition::Cel(c) => match c.evaluate(bindings) {
                Ok(true) => return current.index_of(t.to_step_id),
                Ok(false) => {}
                Err(e) => {
                    undecidable = true;
                    notes.push(format!(
                        "condition \"{}\" at '{}' could not be evaluated and was not taken ({e})",
                        quoted(&t.condition_text),
                        step.name
                    ));
                }
            },
        }
    }
    if undecidable {
        return None;
    }
    fallback.and_then(|t| current.index_of(t.to_step_id))
}

/// A condition as quoted in a reason: conditions may be up to 10,000 characters
/// of natural language.
fn quoted(condition: &str) -> String {
    const MAX_QUOTED_CHARS: usize = 200;
    match condition.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &condition[..cut]),
        None => condition.to_string(),
    }
}
