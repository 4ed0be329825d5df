//! What a decision says: the answer to the runtime and the writes the endpoint
//! applies (see "Applying a decision" in the `reconcile` documentation).

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::model::ReconciliationResult;

use super::context::ReconcileContext;

/// Where a migrated session now is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub version: i64,
    pub step_id: Uuid,
    pub checksum: String,
}

/// What to answer and what to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub result: ReconciliationResult,
    /// The plan named by the session's flag, if any: the guard of the write.
    pub flag_plan_id: Option<Uuid>,
    /// The plan whose migration is applied or attempted (last of the chain, or the
    /// plan whose policy pinned the session).
    pub plan_id: Option<Uuid>,
    /// New version, step and checksum; `None` leaves them unchanged.
    pub new_position: Option<Position>,
    /// Set `pinned_version` to this.
    pub pin_version: Option<i64>,
    /// Remove `pending_migration`.
    pub clear_flag: bool,
    /// Values to merge into the session's variables (only changed ones).
    pub set_variables: BTreeMap<String, Value>,
    /// Field → where its value came from (`known_fields`, a candidate's source,
    /// `session_variables`), for the audit event.
    pub fields_filled: BTreeMap<String, String>,
    /// Fields the customer is asked for.
    pub fields_asked: Vec<String>,
    /// A migration outcome: conditional write, audit event, counters.
    pub applies_migration: bool,
    /// The session's `scenario_checksum` did not match its version's: the runtime
    /// ran an edited definition under the same version number (logged by callers).
    pub checksum_mismatch: bool,
}

impl Decision {
    /// Whether the session item must be written at all.
    pub fn writes_session(&self) -> bool {
        self.applies_migration || self.clear_flag || !self.set_variables.is_empty()
    }
}

/// The answer to a call whose conditional write lost to a concurrent or earlier
/// call that applied the same migration.
pub fn already_migrated() -> ReconciliationResult {
    ReconciliationResult::continue_with("already migrated")
}

/// A `continue` that changes nothing about where the session is.
pub(super) fn unchanged(ctx: &ReconcileContext<'_>, reason: impl Into<String>) -> Decision {
    Decision {
        result: ReconciliationResult::continue_with(reason),
        flag_plan_id: ctx
            .session
            .pending_migration
            .as_ref()
            .map(|f| f.migration_plan_id),
        plan_id: None,
        new_position: None,
        pin_version: None,
        clear_flag: false,
        set_variables: BTreeMap::new(),
        fields_filled: BTreeMap::new(),
        fields_asked: Vec::new(),
        applies_migration: false,
        checksum_mismatch: false,
    }
}
