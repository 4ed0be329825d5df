//! Rules 1 and 2: pinned, up-to-date and newer sessions, a checksum that is
//! not the version's, and the answer to a lost conditional write.

use uuid::Uuid;

use crate::model::*;
use crate::reconcile::*;

use super::fixtures::*;
use super::worlds::*;

#[test]
fn up_to_date_session_continues_without_write() {
    let v2 = v1();
    let world = World {
        session_version: &v2,
        current: &v2,
        chain: vec![],
    };
    let d = world.decide(&session(1, "Email", &["Welcome", "Email"]), &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert_eq!(d.result.reason.as_deref(), Some("up to date"));
    assert!(!d.writes_session());
}

#[test]
fn pinned_session_is_never_migrated_again() {
    let v1 = v1();
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Email", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v1, &v2, &plan);
    let mut s = session(1, "Email", &["Welcome", "Email"]);
    s.pinned_version = Some(1);
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(!d.writes_session());
    // A flag that slipped in is cleared, nothing else.
    let s = flagged(s, &plan, &hash_of(&v2, "Email"));
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.clear_flag && !d.applies_migration && d.new_position.is_none());
}

#[test]
fn leftover_flag_on_current_version_is_cleared() {
    let v2 = flow(2, v1_steps());
    let plan = plan_spec(1, 2, vec![anchor("Email", MigrationScenario::CleanGraft)]).build(&v2);
    let world = World::one(&v2, &v2, &plan);
    let s = flagged(
        session(2, "Email", &["Email"]),
        &plan,
        &hash_of(&v2, "Email"),
    );
    let d = world.decide(&s, &none());
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    assert!(d.clear_flag && !d.applies_migration);
    assert_eq!(d.flag_plan_id, Some(plan.id()));
}

#[test]
fn a_checksum_that_is_not_the_versions_repositions_once() {
    let v2 = v1();
    let world = World {
        session_version: &v2,
        current: &v2,
        chain: vec![],
    };
    // The runtime ran an edited definition under version 1: its step still exists.
    let mut s = session(1, "Email", &["Welcome", "Email"]);
    s.scenario_checksum = Some("0123456789abcdef".into());
    let d = world.decide(&s, &none());
    assert!(d.checksum_mismatch);
    assert_eq!(d.result.action, ReconciliationAction::Continue);
    let position = d.new_position.as_ref().expect("rewritten");
    assert_eq!(position.step_id, s.active_step_id);
    assert_eq!(position.checksum, v2.checksum());
    assert!(d.writes_session());
    // Once rewritten, the session is up to date: nothing more to do.
    let settled = apply(&s, &d);
    let again = world.decide(&settled, &none());
    assert!(!again.writes_session(), "{:?}", again.result);
    // Its step does not exist in the version at all: it restarts, never half-way.
    let mut lost = session(1, "Email", &[]);
    lost.active_step_id = Uuid::from_u128(0xdead);
    lost.scenario_checksum = Some("0123456789abcdef".into());
    let d = world.decide(&lost, &none());
    assert!(d.checksum_mismatch);
    assert_eq!(d.result.action, ReconciliationAction::ExitScenario);
    assert_eq!(
        d.new_position.as_ref().map(|p| p.checksum.as_str()),
        Some(v2.checksum())
    );
}

#[test]
fn already_migrated_answer() {
    let r = already_migrated();
    assert_eq!(r.action, ReconciliationAction::Continue);
    assert_eq!(r.reason.as_deref(), Some("already migrated"));
}
