//! The just-in-time reconcile decision, as a pure function.
//!
//! The endpoint loads the session, the current scenario version and the deployed
//! plans, calls [`decide`], and applies the returned [`Decision`]: one conditional
//! write, an audit event, the plan counters. Nothing here reads a clock, a store or
//! the network, so the same inputs always give the same decision.
//!
//! # Calling it
//!
//! ```ignore
//! // Once per Lambda instance, cached (both are immutable and Send + Sync):
//! let v1 = Arc::new(PreparedScenario::new(v1_def));
//! let v2 = Arc::new(PreparedScenario::new(v2_def));
//! let plan = Arc::new(PreparedPlan::new(plan_v1_v2));
//! // Per request:
//! let chain = [PlanLink { plan: &plan, to: &v2 }];
//! let decision = decide(&ReconcileContext {
//!     session: &session,
//!     current: &v2,
//!     chain: &chain,
//!     session_version: Some(&v1),
//!     known_fields: &request.known_fields,
//!     now,
//! });
//! ```
//!
//! `chain` holds the deployed plans from the session's version to the current
//! one, in order, each with the definition of its `to_version`. Give what you
//! have: a missing plan, a gap or an empty chain is a *broken chain* and the
//! session is relocated by the content hash of its step (which needs
//! `session_version`, the definition of the version the session is on; it also
//! locates checkpoints whose step ids changed, and names the step for scope
//! filters).
//!
//! # Applying a decision
//!
//! - [`Decision::writes_session`] false: nothing to write (plain `continue`).
//! - `applies_migration`: this is a migration outcome. Write in one conditional
//!   update, guarded by the flag still naming `flag_plan_id` (or, without a flag,
//!   no flag and the same version and step): `new_position` when present
//!   (version, step, checksum), `pin_version` when present, clear the flag, merge
//!   `set_variables`. Then write the audit event (`fields_filled`, `fields_asked`,
//!   `result`) and count it (`result.blocked_by_checkpoint` counts a checkpoint
//!   block). A lost condition means another call applied it: answer
//!   [`already_migrated`].
//! - Otherwise (`collect`, or a flag that no longer applies): merge
//!   `set_variables`, clear the flag when `clear_flag`; no migration is counted.
//!
//! `flag_plan_id` is the plan that marked the session (its pending count drops
//! when the flag is cleared); `plan_id` is the last plan of the chain, whose
//! version the session lands on.
//!
//! # Rules, in the order they are tried
//!
//! 1. `pinned_version` set → `continue`, forever (a flag that slipped in is cleared).
//! 2. Version current (or newer) → `continue`; a leftover flag is cleared.
//! 3. Locate the anchor in the first plan: by the flag's anchor hash when the flag
//!    was computed for the step the session is still on; otherwise by position
//!    (anchor V1 step, edited step, or deleted step → its nearest anchor) and the
//!    anchor policy's scope filter is evaluated now. An edited step (same id,
//!    other content) is an anchor keyed by its policy key: the session lands on
//!    it, unless its policy says `relocate_to_nearest_anchor` — then it is a
//!    deleted step (its nearest anchor and that anchor's policy take over; the
//!    scope filter stays the edited step's, which marking used). Out of scope → `continue` on its
//!    version, not pinned: filters on age or custom conditions can include the
//!    session later, so it is re-evaluated on every call (no write).
//!    Only the first plan's scope filter applies: it is the plan that marked (or
//!    would have marked) the session; later plans never saw it.
//! 4. Follow the anchor through every plan of the chain (composite migration).
//!    Any link whose policy has `update_downstream = false` pins the session on the
//!    version it is on: `continue`, position unchanged, flag cleared. A deleted
//!    step without a nearest anchor → `exit_scenario`. A chain that cannot be
//!    followed → relocation by content hash, else `exit_scenario`.
//! 5. Each link contributes per its effective scenario (`force_scenario` or the
//!    computed one): gap fill → fields of inserted upstream steps and inserted
//!    upstream required actions; re-route → also its new upstream forks. Fields
//!    the final version no longer needs are dropped; actions and forks are mapped
//!    onto the final version (by id, else content hash) and dropped when gone.
//! 6. Checkpoint invariant on the anchor's V2 step (see below); blocked → the
//!    session stays pinned on its version.
//! 7. Re-route: evaluate the diverting forks (see `reroute`); missing condition
//!    fields → `collect`; a diversion → `teleport` there with a message; a blocked
//!    diversion carries on to the anchor with `blocked_by_checkpoint`.
//! 8. Gap fill: missing fields → `collect` (flag kept); required actions not yet
//!    visited → `execute_action` (landing on the anchor afterwards). Fields an
//!    upstream edited step now collects count like an inserted step's; a step an
//!    edit made a required action is owed even though the session visited it,
//!    when the session's version of that step performed no action.
//! 9. Land on the anchor's V2 step: `teleport`, or `continue` when the step id is
//!    unchanged (still a migration: version and checksum move).
//!
//! Relocation by content hash (broken chain) only moves the session to the step
//! with its step's content (same id preferred, else the only one; when no step has
//! that content, the step with the same id, edited in place); it cannot know
//! what the missing plans would have asked, so it collects nothing. A step without
//! a unique counterpart → `exit_scenario`.
//!
//! `reason` always says what was decided and adds what was skipped: conditions
//! that are not valid CEL or failed to evaluate, pruned fields, forks not
//! re-evaluated because they precede a passed checkpoint.
//!
//! `exit_scenario` moves the session to the entry step of the current version, so
//! that the stored session is valid and a retry answers `continue`; the runtime
//! says the restart message and starts over (every migration outcome but
//! `collect` sets version, step and checksum).
//!
//! # Checkpoints
//!
//! Before any landing, the last checkpoint of `step_history` is located in the
//! target version (by id, and by content hash through the definitions given when
//! the ids changed). The landing is refused when that checkpoint no longer exists,
//! when the target can reach it, or when the target *is* it and the session is not
//! sitting on it; for a re-route, also when the fork that chose the branch can
//! reach it (or is it). Earlier checkpoints of the history are checked for
//! reachability as well.

mod checkpoint;
mod context;
mod decision;
mod engine;
mod fill;
mod prepared;
mod reroute;
mod route;

#[cfg(test)]
mod tests;

pub use context::{PlanLink, ReconcileContext};
pub use decision::{Decision, Position, already_migrated};
pub use fill::{CONFIRM_BELOW, MIN_CONFIDENCE, SOURCE_KNOWN, SOURCE_VARIABLES};
pub use prepared::{PreparedPlan, PreparedScenario};

use decision::unchanged;
use engine::Engine;

/// Decide what to do with `ctx.session` before its next turn.
pub fn decide(ctx: &ReconcileContext<'_>) -> Decision {
    let s = ctx.session;
    let current_version = ctx.current.version();
    let has_flag = s.pending_migration.is_some();
    if let Some(pin) = s.pinned_version {
        let mut d = unchanged(ctx, format!("pinned to version {pin}"));
        // A pinned session is never migrated again, so a flag can only be stale.
        d.clear_flag = has_flag;
        return d;
    }
    if s.active_scenario_version == current_version
        && s.scenario_checksum
            .as_deref()
            .is_some_and(|c| c != ctx.current.checksum())
    {
        return Engine::new(ctx).checksum_mismatch();
    }
    if s.active_scenario_version >= current_version {
        let reason = if !has_flag && s.active_scenario_version == current_version {
            "up to date".to_string()
        } else if has_flag {
            format!(
                "already on version {}: pending migration cleared",
                s.active_scenario_version
            )
        } else {
            format!(
                "session is on version {}, newer than the current version {current_version}",
                s.active_scenario_version
            )
        };
        let mut d = unchanged(ctx, reason);
        d.clear_flag = has_flag;
        return d;
    }
    Engine::new(ctx).run()
}
