//! Finding the anchor a session migrates through, across one plan or a chain.
//!
//! A chain of plans is followed in memory: the anchor of plan *i* lands on a step
//! of version *i+1*, which is either an anchor of plan *i+1* (same step id on its
//! V1 side) or a step that plan deleted (then its nearest anchor takes over, as
//! for a session sitting on a deleted step). Requirements are accumulated per
//! link according to that link's effective scenario, then mapped onto the final
//! version, where the decision is taken once.
//!
//! An edited step is an anchor here (see [`PreparedPlan`]): its sessions land on
//! it. When its policy says `relocate_to_nearest_anchor` (and keeps
//! `update_downstream`), it is a deleted step instead and its nearest anchor takes
//! over, with that anchor's policy — except for the scope filter, which stays the
//! edited step's (marking used it).

use uuid::Uuid;

use crate::model::{AnchorTransformation, EditedStepBehavior, MigrationScenario};
use crate::scope::{Inclusion, check_scope};

use super::context::ReconcileContext;
use super::prepared::{PreparedPlan, PreparedScenario};

/// The anchor to act on and everything the links asked for, in final-version terms.
#[derive(Debug)]
pub(crate) struct AnchorRoute<'a> {
    /// The anchor in the last plan of the chain.
    pub anchor: &'a AnchorTransformation,
    /// Its V2 step in the current version.
    pub target: usize,
    /// The strongest effective scenario over the chain (forced ones included).
    pub scenario: MigrationScenario,
    /// Fields collected by inserted upstream steps, in first-seen order, not yet
    /// pruned against the final version.
    pub fields: Vec<String>,
    /// Inserted upstream required actions still present in the final version, and
    /// whether each one is owed even though the session visited its step (a step
    /// the edit made a required action: the session passed it without one).
    pub actions: Vec<(usize, bool)>,
    /// New upstream forks still present in the final version.
    pub forks: Vec<usize>,
    /// The session's step was deleted: its name.
    pub deleted_step: Option<String>,
    /// The session's step was edited in place: its name, and whether its policy
    /// relocated the session to the nearest anchor instead of keeping it there.
    pub edited_step: Option<(String, bool)>,
}

#[derive(Debug)]
pub(crate) enum Route<'a> {
    Anchor(AnchorRoute<'a>),
    /// A policy on the way has `update_downstream = false`.
    Pinned {
        anchor: &'a AnchorTransformation,
        scenario: MigrationScenario,
        plan: &'a PreparedPlan,
    },
    /// The policy's scope filter leaves this (unflagged) session out.
    OutOfScope {
        anchor: &'a AnchorTransformation,
        plan: &'a PreparedPlan,
        /// Why, when a custom condition could not be evaluated (or compiled).
        not_taken: Option<String>,
    },
    /// The step (or its successor on the way) was deleted and no anchor is near it.
    DeletedWithoutAnchor {
        step_name: String,
    },
    /// The plans cannot be followed; relocate by content hash.
    Broken(String),
}

struct Start {
    anchor: usize,
    /// Whose policy's scope filter applies to an unflagged session: the anchor or
    /// edited step the session's step leads to, before any relocation.
    scope: usize,
    deleted_step: Option<String>,
    edited_step: Option<(String, bool)>,
}

impl Start {
    fn at(anchor: usize, deleted_step: Option<String>) -> Self {
        Start {
            anchor,
            scope: anchor,
            deleted_step,
            edited_step: None,
        }
    }
}

enum Located {
    At(Start),
    DeletedWithoutAnchor(String),
    Unknown(String),
}

/// Where the step `id` of the plan's V1 leads: its anchor (or edited step), or the
/// nearest anchor of the deleted step.
fn locate_by_step(plan: &PreparedPlan, id: Uuid) -> Located {
    if let Some(anchor) = plan.anchor_at_v1(id) {
        return resolve_edited(plan, Start::at(anchor, None));
    }
    if let Some(d) = plan.deleted_at_v1(id) {
        return match &d.nearest_anchor_hash {
            None => Located::DeletedWithoutAnchor(d.node_name.clone()),
            Some(h) => {
                let v2 = d.nearest_anchor_id_v2.unwrap_or(Uuid::nil());
                match plan.anchor_by_hash(h, v2, true) {
                    Some(anchor) => {
                        resolve_edited(plan, Start::at(anchor, Some(d.node_name.clone())))
                    }
                    None => Located::Unknown(format!(
                        "the nearest anchor of deleted step '{}' is not in plan {}",
                        d.node_name,
                        plan.id()
                    )),
                }
            }
        };
    }
    Located::Unknown(format!(
        "step {id} is neither an anchor nor a deleted step of plan {}",
        plan.id()
    ))
}

/// A start on an edited step: stays there, or — when its policy asks for
/// `relocate_to_nearest_anchor` and keeps `update_downstream` (otherwise the
/// session is pinned by that policy) — moves on to its nearest anchor as a
/// deleted step would.
fn resolve_edited(plan: &PreparedPlan, mut start: Start) -> Located {
    let Some(edited) = plan.edited(start.anchor) else {
        return Located::At(start);
    };
    let relocate = plan.policy(edited.key()).is_some_and(|p| {
        p.update_downstream
            && p.edited_step_behavior == Some(EditedStepBehavior::RelocateToNearestAnchor)
    });
    if !relocate {
        start.edited_step = Some((edited.step.anchor_name.clone(), false));
        return Located::At(start);
    }
    let Some(h) = &edited.nearest_anchor_hash else {
        return Located::DeletedWithoutAnchor(edited.node_name_v1.clone());
    };
    let v2 = edited.nearest_anchor_id_v2.unwrap_or(Uuid::nil());
    match plan.anchor_by_hash(h, v2, true) {
        Some(anchor) => Located::At(Start {
            anchor,
            scope: start.scope,
            deleted_step: start
                .deleted_step
                .or_else(|| Some(edited.node_name_v1.clone())),
            edited_step: Some((edited.step.anchor_name.clone(), true)),
        }),
        None => Located::Unknown(format!(
            "the nearest anchor of edited step '{}' is not in plan {}",
            edited.node_name_v1,
            plan.id()
        )),
    }
}

fn check_chain(ctx: &ReconcileContext<'_>) -> Result<(), String> {
    let s = ctx.session;
    let current = ctx.current.version();
    let Some(first) = ctx.chain.first() else {
        return Err(format!(
            "no deployed plan leads from version {} to {current}",
            s.active_scenario_version
        ));
    };
    if first.plan.plan().from_version != s.active_scenario_version {
        return Err(format!(
            "the first plan starts at version {}, the session is on version {}",
            first.plan.plan().from_version,
            s.active_scenario_version
        ));
    }
    for pair in ctx.chain.windows(2) {
        let (a, b) = (pair[0].plan.plan(), pair[1].plan.plan());
        if a.to_version != b.from_version {
            return Err(format!(
                "gap in the plan chain between version {} and {}",
                a.to_version, b.from_version
            ));
        }
    }
    for link in ctx.chain {
        if link.to.version() != link.plan.plan().to_version {
            return Err(format!(
                "plan {} targets version {} but was given version {}",
                link.plan.id(),
                link.plan.plan().to_version,
                link.to.version()
            ));
        }
    }
    let last = ctx.chain.last().map(|l| l.plan.plan().to_version);
    if last != Some(current) {
        return Err(format!(
            "the plan chain ends at version {}, the current version is {current}",
            last.unwrap_or_default()
        ));
    }
    Ok(())
}

/// The name of the session's step, for scope filters (`include_current_nodes`).
pub(crate) fn current_step_name<'a>(ctx: &ReconcileContext<'a>, fallback: &'a str) -> &'a str {
    let id = ctx.session.active_step_id;
    if let Some(step) = ctx.session_version.and_then(|d| d.step_by_id(id)) {
        return &step.name;
    }
    ctx.session
        .step_history
        .iter()
        .rev()
        .find(|v| v.step_id == id)
        .map(|v| v.step_name.as_str())
        .unwrap_or(fallback)
}

pub(crate) fn route<'a>(ctx: &ReconcileContext<'a>) -> Route<'a> {
    if let Err(why) = check_chain(ctx) {
        return Route::Broken(why);
    }
    let s = ctx.session;
    let chain = ctx.chain;
    let first = chain[0].plan;

    // The flag's anchor is trusted only when it was computed for where the session
    // still is; a session that moved after marking is placed by its position and
    // goes through the scope filter again, like a late arrival.
    let trusted = s
        .pending_migration
        .as_ref()
        .filter(|f| f.migration_plan_id == first.id() && f.from_step_id == s.active_step_id);
    let located = match trusted
        .and_then(|f| first.anchor_by_hash(&f.anchor_content_hash, s.active_step_id, false))
    {
        Some(anchor) if first.deleted_at_v1(s.active_step_id).is_none() => {
            resolve_edited(first, Start::at(anchor, None))
        }
        _ => locate_by_step(first, s.active_step_id),
    };
    let start = match located {
        Located::At(start) => start,
        Located::DeletedWithoutAnchor(step_name) => {
            return Route::DeletedWithoutAnchor { step_name };
        }
        Located::Unknown(why) => return Route::Broken(why),
    };

    if trusted.is_none() {
        let anchor = first.anchor(start.scope);
        if let Some(policy) = first.policy(&anchor.anchor_content_hash) {
            let name = current_step_name(ctx, start.deleted_step.as_deref().unwrap_or(""));
            // A filter that no longer compiles was rejected when saved; if one
            // slips through, leaving the session alone is the safe reading.
            let inclusion = match first.scope_conditions(&anchor.anchor_content_hash) {
                Ok(conditions) => check_scope(&policy.scope_filter, conditions, s, name, ctx.now),
                Err(invalid) => Inclusion::NotEvaluated {
                    index: invalid[0].index,
                    error: invalid[0].error.clone(),
                },
            };
            match inclusion {
                Inclusion::Included => {}
                Inclusion::Excluded => {
                    return Route::OutOfScope {
                        anchor,
                        plan: first,
                        not_taken: None,
                    };
                }
                Inclusion::NotEvaluated { index, error } => {
                    return Route::OutOfScope {
                        anchor,
                        plan: first,
                        not_taken: Some(format!(
                            "custom condition {index} of its scope filter was not taken: {error}"
                        )),
                    };
                }
            }
        }
    }

    let mut fields: Vec<String> = Vec::new();
    let mut actions: Vec<(usize, Uuid, bool)> = Vec::new();
    let mut forks: Vec<(usize, Uuid)> = Vec::new();
    let mut strongest = MigrationScenario::CleanGraft;
    let mut anchor_idx = start.anchor;
    let deleted_step = start.deleted_step;
    let edited_step = start.edited_step;

    for (i, link) in chain.iter().enumerate() {
        let plan = link.plan;
        if i > 0 {
            let arrived = chain[i - 1].plan.anchor(anchor_idx).anchor_node_id_v2;
            anchor_idx = match locate_by_step(plan, arrived) {
                Located::At(start) => start.anchor,
                Located::DeletedWithoutAnchor(step_name) => {
                    return Route::DeletedWithoutAnchor { step_name };
                }
                Located::Unknown(why) => return Route::Broken(why),
            };
        }
        let anchor = plan.anchor(anchor_idx);
        let policy = plan.policy(&anchor.anchor_content_hash);
        let scenario = policy
            .and_then(|p| p.force_scenario)
            .unwrap_or(anchor.migration_scenario);
        if policy.is_some_and(|p| !p.update_downstream) {
            return Route::Pinned {
                anchor,
                scenario,
                plan,
            };
        }
        strongest = strongest.max(scenario);
        if scenario >= MigrationScenario::GapFill {
            for node in &anchor.upstream_changes.inserted_nodes {
                for f in &node.collects_fields {
                    if !fields.contains(f) {
                        fields.push(f.clone());
                    }
                }
                if node.is_required_action {
                    actions.push((i, node.node_id, false));
                }
            }
            for node in &anchor.upstream_changes.edited_nodes {
                for f in &node.added_fields {
                    if !fields.contains(f) {
                        fields.push(f.clone());
                    }
                }
                if node.new_required_action {
                    actions.push((i, node.node_id, true));
                }
            }
        }
        if scenario == MigrationScenario::ReRoute {
            for fork in &anchor.upstream_changes.new_forks {
                forks.push((i, fork.fork_node_id));
            }
        }
    }

    let last_link = chain.len() - 1;
    let anchor = chain[last_link].plan.anchor(anchor_idx);
    let Some(target) = ctx.current.index_of(anchor.anchor_node_id_v2) else {
        return Route::Broken(format!(
            "anchor '{}' has no step {} in version {}",
            anchor.anchor_name,
            anchor.anchor_node_id_v2,
            ctx.current.version()
        ));
    };
    let to_final = |(i, id): (usize, Uuid)| -> Option<usize> {
        if i == last_link {
            ctx.current.index_of(id)
        } else {
            let def: &PreparedScenario = chain[i].to;
            let idx = def.index_of(id)?;
            ctx.current.relocate(id, def.hash(idx))
        }
    };
    let mut final_actions: Vec<(usize, bool)> = Vec::new();
    for (i, id, owed) in actions {
        let Some(idx) = to_final((i, id)) else {
            continue;
        };
        match final_actions.iter_mut().find(|(a, _)| *a == idx) {
            Some(known) => known.1 |= owed,
            None => final_actions.push((idx, owed)),
        }
    }
    let mut final_forks = Vec::new();
    for idx in forks.into_iter().filter_map(to_final) {
        if !final_forks.contains(&idx) {
            final_forks.push(idx);
        }
    }
    Route::Anchor(AnchorRoute {
        anchor,
        target,
        scenario: strongest,
        fields,
        actions: final_actions,
        forks: final_forks,
        deleted_step,
        edited_step,
    })
}
