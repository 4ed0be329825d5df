//! What a runtime does on each customer message: reconcile with the retry
//! policy, read the answer as a [`Decision`]; and change sessions by
//! read-modify-write under `If-Match`.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::client::{Client, Precondition, Revisioned};
use crate::error::Error;
use crate::model::{
    KnownField, MigrationScenario, ReconcileRequest, ReconciliationAction, ReconciliationResult,
    Session, SessionInput,
};

/// What the runtime does with the turn, from reconcile's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Process the message at the session's step as stored by the service. A
    /// migration may have been applied without moving the session (a clean
    /// graft): the version changed, the step did not.
    Continue,
    /// The session was moved to `step_id` of the new version: process the
    /// message there, saying `user_message` first when there is one.
    Teleport {
        step_id: Uuid,
        user_message: Option<String>,
    },
    /// The new version needs these fields before the session can move: ask the
    /// customer (`user_message` is a ready question), then reconcile again with
    /// the answers in `known_fields`. Nothing moved yet. `confirm` lists fields
    /// taken from extraction candidates that the customer should confirm.
    Collect {
        fields: Vec<String>,
        confirm: Vec<String>,
        user_message: Option<String>,
    },
    /// The session was moved to `then_step_id`, but first run these required
    /// actions (steps the new version added upstream that the customer never
    /// went through), then continue there.
    ExecuteAction {
        action_ids: Vec<Uuid>,
        then_step_id: Uuid,
    },
    /// The conversation cannot be carried over: the session was restarted at
    /// the new version's entry step `entry_step_id`. Tell the customer
    /// (`user_message`) and start over.
    ExitScenario {
        entry_step_id: Uuid,
        user_message: Option<String>,
    },
}

/// A reconcile answer: the decision, the answer as sent, and the session's
/// revision after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub decision: Decision,
    pub result: ReconciliationResult,
    pub revision: Option<u64>,
}

impl Reconciled {
    /// Whether this call applied a migration plan to the session (the session's
    /// version changed, or will once the fields asked for are given).
    pub fn migration(&self) -> Option<MigrationScenario> {
        self.result.migration_scenario
    }

    /// Set when a checkpoint (an irreversible step the customer passed, such as
    /// a payment) kept the session from moving back before it.
    pub fn checkpoint_warning(&self) -> Option<&str> {
        self.result
            .blocked_by_checkpoint
            .then_some(self.result.checkpoint_warning.as_deref().unwrap_or(""))
    }
}

impl Decision {
    pub(crate) fn of(result: &ReconciliationResult) -> Result<Decision, String> {
        let target = || {
            result
                .target_step_id
                .ok_or_else(|| format!("{:?} without target_step_id", result.action))
        };
        Ok(match result.action {
            ReconciliationAction::Continue => Decision::Continue,
            ReconciliationAction::Teleport => Decision::Teleport {
                step_id: target()?,
                user_message: result.user_message.clone(),
            },
            ReconciliationAction::Collect => Decision::Collect {
                fields: result.collect_fields.clone(),
                confirm: result.confirm_fields.clone(),
                user_message: result.user_message.clone(),
            },
            ReconciliationAction::ExecuteAction => Decision::ExecuteAction {
                action_ids: result.execute_action_ids.clone(),
                then_step_id: target()?,
            },
            ReconciliationAction::ExitScenario => Decision::ExitScenario {
                entry_step_id: target()?,
                user_message: result.user_message.clone(),
            },
        })
    }
}

/// Attempts of a read-modify-write before giving up on a session that others
/// keep changing.
const READ_MODIFY_WRITE_ATTEMPTS: u32 = 8;

impl Client {
    /// Call on every customer message, before processing it: reconcile the
    /// session with the fields the runtime already knows, retried under the
    /// client's [`RetryPolicy`](crate::RetryPolicy) on no answer, 429 and 5xx
    /// (never on a 4xx), and read as a [`Decision`].
    ///
    /// A retry after a lost answer is safe: the service applies a migration
    /// once, and answers the retry from the session as it now is (a teleport
    /// whose answer was lost comes back as `Continue` at the new step), so
    /// take the session's position from the service, not from before the call.
    pub async fn reconcile_on_message(
        &self,
        session_id: &str,
        known_fields: &BTreeMap<String, KnownField>,
    ) -> Result<Reconciled, Error> {
        let request = ReconcileRequest {
            dry_run: false,
            known_fields: known_fields.clone(),
        };
        let answer = self.reconcile(session_id, &request).await?;
        let decision = Decision::of(&answer.value).map_err(|message| Error::Unexpected {
            operation: crate::operations::RECONCILE_SESSION.id,
            message,
        })?;
        Ok(Reconciled {
            decision,
            result: answer.value,
            revision: answer.revision,
        })
    }

    /// Record a new session: `If-None-Match: *`, so an existing one is never
    /// overwritten (412 if it exists).
    pub async fn create_session(
        &self,
        session_id: &str,
        session: &SessionInput,
    ) -> Result<Revisioned<Session>, Error> {
        self.put_session(session_id, session, Precondition::Absent)
            .await
    }

    /// Read the session, apply `change` to it, and write it back with
    /// `If-Match` on the revision read; when someone wrote in between (412),
    /// read again and apply `change` again, up to 8 times.
    ///
    /// `change` may run more than once, and after a write that did happen
    /// whose answer was lost (a retried 5xx that then meets its own write as a
    /// 412): make it set values, not add to them.
    pub async fn update_session<F>(
        &self,
        session_id: &str,
        mut change: F,
    ) -> Result<Revisioned<Session>, Error>
    where
        F: FnMut(&mut SessionInput),
    {
        for _ in 0..READ_MODIFY_WRITE_ATTEMPTS {
            let current = self.get_session(session_id).await?;
            let revision = current.revision.unwrap_or(current.value.revision);
            let mut next = current.value.to_input();
            change(&mut next);
            match self
                .put_session(session_id, &next, Precondition::Revision(revision))
                .await
            {
                Err(e) if e.is_precondition_failed() => continue,
                other => return other,
            }
        }
        Err(Error::Contended {
            session_id: session_id.to_owned(),
            attempts: READ_MODIFY_WRITE_ATTEMPTS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(value: serde_json::Value) -> ReconciliationResult {
        serde_json::from_value(value).expect("a reconcile answer")
    }

    #[test]
    fn each_action_becomes_its_decision() {
        let step = Uuid::from_u128(7);
        assert_eq!(
            Decision::of(&result(json!({"action": "continue"}))),
            Ok(Decision::Continue)
        );
        assert_eq!(
            Decision::of(&result(
                json!({"action": "teleport", "target_step_id": step, "user_message": "moved"})
            )),
            Ok(Decision::Teleport {
                step_id: step,
                user_message: Some("moved".into())
            })
        );
        assert_eq!(
            Decision::of(&result(
                json!({"action": "collect", "collect_fields": ["age"], "confirm_fields": ["email"]})
            )),
            Ok(Decision::Collect {
                fields: vec!["age".into()],
                confirm: vec!["email".into()],
                user_message: None
            })
        );
        assert_eq!(
            Decision::of(&result(json!({"action": "execute_action",
                "execute_action_ids": [Uuid::from_u128(1)], "target_step_id": step}))),
            Ok(Decision::ExecuteAction {
                action_ids: vec![Uuid::from_u128(1)],
                then_step_id: step
            })
        );
        assert_eq!(
            Decision::of(&result(
                json!({"action": "exit_scenario", "target_step_id": step})
            )),
            Ok(Decision::ExitScenario {
                entry_step_id: step,
                user_message: None
            })
        );
    }

    #[test]
    fn a_move_without_a_target_is_refused() {
        assert!(Decision::of(&result(json!({"action": "teleport"}))).is_err());
        assert!(Decision::of(&result(json!({"action": "exit_scenario"}))).is_err());
    }
}
