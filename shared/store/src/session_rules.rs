//! The session concurrency contract, decided once for every backend.
//!
//! A session is written by three parties: the conversation runtime (its position,
//! history and variables), marking (`pending_migration`) and reconcile (position,
//! flag, pin, filled variables). Every write bumps `revision`, and each backend
//! applies the rules below inside one atomic step (a transaction, or a write
//! conditioned on the revision it read), so no interleaving loses a flag,
//! resurrects one, or applies a migration twice.

use planning::Session;

use crate::{SessionPrecondition, SessionWrite, SessionWriteError};

/// The session a runtime write stores, given what is stored now.
///
/// - the client's precondition (`If-Match`, `If-None-Match: *`) is checked first;
/// - a session never moves back to an older version of the same scenario;
/// - `pending_migration` and `pinned_version` are kept from the stored session —
///   the runtime never writes them — unless the session moves to another
///   scenario, where they mean nothing and are cleared;
/// - `created_at` is kept (or taken from the write for a new session, or when the
///   client sets it explicitly); `revision` is the stored one plus one.
pub(crate) fn merge_runtime_write(
    stored: Option<&Session>,
    write: &SessionWrite,
) -> Result<Session, SessionWriteError> {
    let current = stored.map(|s| s.revision);
    let holds = match write.precondition {
        SessionPrecondition::None => true,
        SessionPrecondition::Revision(r) => current == Some(r),
        SessionPrecondition::Exists => stored.is_some(),
        SessionPrecondition::Absent => stored.is_none(),
    };
    if !holds {
        return Err(SessionWriteError::PreconditionFailed { current });
    }
    let mut next = write.session.clone();
    match stored {
        None => {
            next.pending_migration = None;
            next.pinned_version = None;
            next.created_at = write.created_at.unwrap_or(write.session.created_at);
            next.revision = 1;
        }
        Some(old) => {
            let same_scenario = old.active_scenario_id == next.active_scenario_id;
            if same_scenario && next.active_scenario_version < old.active_scenario_version {
                return Err(SessionWriteError::VersionRegression {
                    current: old.active_scenario_version,
                });
            }
            if same_scenario {
                next.pending_migration = old.pending_migration.clone();
                next.pinned_version = old.pinned_version;
            } else {
                next.pending_migration = None;
                next.pinned_version = None;
            }
            next.created_at = write.created_at.unwrap_or(old.created_at);
            next.revision = old.revision + 1;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use planning::PendingMigration;
    use uuid::Uuid;

    fn session(scenario: Uuid, version: i64) -> Session {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Session {
            session_id: "s".into(),
            tenant_id: Uuid::nil(),
            channel: "web".into(),
            customer_id: None,
            active_scenario_id: scenario,
            active_scenario_version: version,
            active_step_id: Uuid::nil(),
            scenario_checksum: None,
            step_history: Vec::new(),
            variables: Default::default(),
            pending_migration: None,
            pinned_version: None,
            created_at: at,
            updated_at: at,
            revision: 0,
        }
    }

    fn write(s: Session, precondition: SessionPrecondition) -> SessionWrite {
        SessionWrite {
            session: s,
            created_at: None,
            precondition,
        }
    }

    fn flagged(mut s: Session) -> Session {
        s.pending_migration = Some(PendingMigration {
            migration_plan_id: Uuid::from_u128(7),
            target_version: 2,
            anchor_content_hash: "h".into(),
            from_step_id: Uuid::nil(),
            marked_at: s.created_at,
        });
        s.pinned_version = Some(1);
        s.revision = 4;
        s
    }

    #[test]
    fn the_runtime_never_writes_product_owned_fields() {
        let sid = Uuid::from_u128(1);
        let stored = flagged(session(sid, 1));
        let next = merge_runtime_write(Some(&stored), &write(session(sid, 1), Default::default()))
            .expect("write");
        assert_eq!(next.pending_migration, stored.pending_migration);
        assert_eq!(next.pinned_version, Some(1));
        assert_eq!(next.revision, 5);
    }

    #[test]
    fn a_new_scenario_clears_the_flag_and_the_pin() {
        let stored = flagged(session(Uuid::from_u128(1), 3));
        let next = merge_runtime_write(
            Some(&stored),
            &write(session(Uuid::from_u128(2), 1), Default::default()),
        )
        .expect("write");
        assert_eq!(next.pending_migration, None);
        assert_eq!(next.pinned_version, None);
    }

    #[test]
    fn an_older_version_is_refused() {
        let sid = Uuid::from_u128(1);
        let stored = session(sid, 2);
        let err = merge_runtime_write(Some(&stored), &write(session(sid, 1), Default::default()))
            .expect_err("regression");
        assert!(matches!(
            err,
            SessionWriteError::VersionRegression { current: 2 }
        ));
    }

    #[test]
    fn preconditions() {
        let sid = Uuid::from_u128(1);
        let stored = flagged(session(sid, 1));
        let input = session(sid, 1);
        let ok = |p| merge_runtime_write(Some(&stored), &write(input.clone(), p)).is_ok();
        assert!(ok(SessionPrecondition::Revision(4)));
        assert!(!ok(SessionPrecondition::Revision(3)));
        assert!(ok(SessionPrecondition::Exists));
        assert!(!ok(SessionPrecondition::Absent));
        assert!(
            merge_runtime_write(None, &write(input.clone(), SessionPrecondition::Absent)).is_ok()
        );
        let missing = merge_runtime_write(None, &write(input, SessionPrecondition::Revision(0)));
        assert!(matches!(
            missing,
            Err(SessionWriteError::PreconditionFailed { current: None })
        ));
    }
}
