//! A step edited in place (same id, other content) keeps its sessions, and the
//! review says "edited", not "deleted + new".
//!
//! The rules of docs/design.md ("Edited steps are the same step"), end to end
//! through the public API: the diff,
//! the plan and its summary, the renderings, and the reconcile decision on plans
//! computed by `compute_plan`, with sessions flagged the way marking flags them
//! (a chain per anchor and per deleted node, flag = the chain's anchor hash).
//! Then properties over generated scenarios.
//!
//! `helpers` holds what the other files share.

mod anchor_machinery;
mod helpers;
mod json;
mod properties;
mod worked_example;
