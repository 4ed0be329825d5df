//! Sessions (with their step-index entries and counts) and the audit events of reconcile.

use chrono::{DateTime, Utc};
use planning::{MigrationPlan, PendingMigration, Session};
use uuid::Uuid;

use crate::codec::{decode_token, encode_token, time_key};

use super::counts;
use super::keys::{
    applied_minutes_prefix, events_prefix, mark_ids_key, migrated_by_prefix, plan_header_key,
    prefix_end, scenario_head_key, session_key, stats_key, step_entry_key, step_shard_prefix,
};
use super::marking::load_stats;
use super::retention::expire_at;
use super::values::{decode_value, load, save};
use super::{KvRead, KvWrite};
use crate::counts::{CountKey, FlagKey};
use crate::semantics::{
    apply_session_fields, count_migration, event_query_id, session_matches, step_query_id,
};
use crate::session_rules::merge_runtime_write;
use crate::{
    EventPage, EventQuery, Retention, SessionChange, SessionPage, SessionPosition, SessionWrite,
    SessionWriteError, StepQuery, StoreError, StoreResult, WrittenSession,
};

pub(super) fn put_session(kv: &mut dyn KvWrite, session: &Session, shards: u32) -> StoreResult<()> {
    let key = session_key(session.tenant_id, &session.session_id);
    let old = load::<Session>(kv, &key)?;
    if let Some(old) = &old {
        kv.delete(&step_entry_key(old, shards))?;
        if old.pending_migration != session.pending_migration {
            forget_mark_id(kv, session.tenant_id, &session.session_id)?;
        }
    }
    // Session counts move in this same transaction, so they stay exact.
    counts::move_session(
        kv,
        old.as_ref().map(CountKey::of),
        Some(CountKey::of(session)),
    )?;
    counts::move_flag(kv, old.as_ref().and_then(FlagKey::of), FlagKey::of(session))?;
    save(kv, &key, session)?;
    kv.put(&step_entry_key(session, shards), Vec::new())
}

/// The runtime's write: the contract's merge, applied in this one transaction.
pub(super) fn write_session(
    kv: &mut dyn KvWrite,
    write: &SessionWrite,
    shards: u32,
) -> Result<WrittenSession, SessionWriteError> {
    let key = session_key(write.session.tenant_id, &write.session.session_id);
    let stored = load::<Session>(kv, &key)?;
    let next = merge_runtime_write(stored.as_ref(), write)?;
    put_session(kv, &next, shards)?;
    Ok(WrittenSession {
        session: next,
        created: stored.is_none(),
    })
}

/// Where a forward range resumes: just after the key in `token`, which must be
/// under `prefix` and issued for `query_id`; the prefix itself without a token.
pub(super) fn resume_after(
    token: Option<&str>,
    query_id: &str,
    prefix: &str,
) -> StoreResult<String> {
    match token {
        Some(token) => {
            let key = decode_token(token, query_id)?;
            if !key.starts_with(prefix) {
                return Err(StoreError::InvalidToken);
            }
            Ok(format!("{key}\u{0}"))
        }
        None => Ok(prefix.to_owned()),
    }
}

pub(super) fn sessions_at_step(kv: &dyn KvRead, q: &StepQuery) -> StoreResult<SessionPage> {
    let prefix = step_shard_prefix(q.tenant, q.scenario_id, q.version, q.step_id, q.shard);
    let start = resume_after(q.cursor.as_deref(), &step_query_id(q), &prefix)?;
    let mut entries = kv.range(
        &start,
        &prefix_end(&prefix),
        false,
        q.limit.saturating_add(1),
    )?;
    let more = entries.len() > q.limit;
    entries.truncate(q.limit);
    let mut sessions = Vec::with_capacity(entries.len());
    for (key, _) in &entries {
        let session_id = &key[prefix.len()..];
        if let Some(s) = load::<Session>(kv, &session_key(q.tenant, session_id))? {
            sessions.push(s);
        }
    }
    let next_cursor = match (more, entries.last()) {
        (true, Some((key, _))) => Some(encode_token(key, &step_query_id(q))),
        _ => None,
    };
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

/// Which marks set a session's flags: the current flag's, and the one whose
/// flag the last flagged reconcile applied. Kept beside the session, not in it
/// (the session's value is the model the API returns).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct MarkIds {
    mark_id: Option<String>,
    applied_mark_id: Option<String>,
    /// The withdrawal page that cleared the last flag.
    #[serde(default)]
    unmark_id: Option<String>,
    /// The mark whose flag that withdrawal cleared: no delivery of the page
    /// that set it sets it again.
    #[serde(default)]
    withdrawn_mark_id: Option<String>,
}

pub(super) fn mark_session(
    kv: &mut dyn KvWrite,
    t: Uuid,
    session_id: &str,
    expected: &SessionPosition,
    pending: &PendingMigration,
    mark_id: &str,
) -> StoreResult<bool> {
    let key = session_key(t, session_id);
    let Some(mut session) = load::<Session>(kv, &key)? else {
        return Ok(false);
    };
    let ids_key = mark_ids_key(t, session_id);
    let mut ids = load::<MarkIds>(kv, &ids_key)?.unwrap_or_default();
    let ours = |id: &Option<String>| id.as_deref() == Some(mark_id);
    let withdrawn_here = ours(&ids.withdrawn_mark_id);
    let eligible = session.active_scenario_id == expected.scenario_id
        && session.active_scenario_version == expected.version
        && session.active_step_id == expected.step_id
        && session.pending_migration.is_none()
        && session.pinned_version.is_none()
        && !withdrawn_here;
    if !eligible {
        return Ok(ours(&ids.mark_id) || ours(&ids.applied_mark_id) || withdrawn_here);
    }
    session.pending_migration = Some(pending.clone());
    session.revision += 1;
    counts::move_flag(kv, None, FlagKey::of(&session))?;
    save(kv, &key, &session)?;
    ids.mark_id = Some(mark_id.to_owned());
    save(kv, &ids_key, &ids).map(|()| true)
}

pub(super) fn unmark_session(
    kv: &mut dyn KvWrite,
    t: Uuid,
    unmark: &crate::SessionUnmark,
) -> StoreResult<bool> {
    let key = session_key(t, &unmark.session_id);
    let Some(mut session) = load::<Session>(kv, &key)? else {
        return Ok(false);
    };
    let ids_key = mark_ids_key(t, &unmark.session_id);
    let mut ids = load::<MarkIds>(kv, &ids_key)?.unwrap_or_default();
    let ours = session
        .pending_migration
        .as_ref()
        .is_some_and(|flag| flag.migration_plan_id == unmark.plan_id);
    if !ours {
        return Ok(ids.unmark_id.as_deref() == Some(unmark.unmark_id.as_str()));
    }
    let flag_before = FlagKey::of(&session);
    session.pending_migration = None;
    session.revision += 1;
    counts::move_flag(kv, flag_before, None)?;
    save(kv, &key, &session)?;
    ids.withdrawn_mark_id = ids.mark_id.take();
    ids.unmark_id = Some(unmark.unmark_id.clone());
    save(kv, &ids_key, &ids).map(|()| true)
}

/// A write that changed or cleared the flag: the flag's mark id no longer applies.
fn forget_mark_id(kv: &mut dyn KvWrite, t: Uuid, session_id: &str) -> StoreResult<()> {
    let ids_key = mark_ids_key(t, session_id);
    if let Some(mut ids) = load::<MarkIds>(kv, &ids_key)?
        && ids.mark_id.is_some()
    {
        ids.mark_id = None;
        save(kv, &ids_key, &ids)?;
    }
    Ok(())
}

/// A flagged reconcile applied the flag: remember whose it was.
fn applied_mark_id(kv: &mut dyn KvWrite, t: Uuid, session_id: &str) -> StoreResult<()> {
    let ids_key = mark_ids_key(t, session_id);
    if let Some(mut ids) = load::<MarkIds>(kv, &ids_key)? {
        ids.applied_mark_id = ids.mark_id.take();
        save(kv, &ids_key, &ids)?;
    }
    Ok(())
}

pub(super) fn apply_session_change(
    kv: &mut dyn KvWrite,
    change: &SessionChange,
    retention: Retention,
    shards: u32,
) -> StoreResult<bool> {
    let key = session_key(change.tenant, &change.session_id);
    let Some(mut session) = load::<Session>(kv, &key)? else {
        return Ok(false);
    };
    if session.revision != change.expected_revision || !session_matches(&session, &change.expect) {
        return Ok(false);
    }
    for plan_id in &change.require_applying {
        let header: Option<MigrationPlan> = load(kv, &plan_header_key(change.tenant, *plan_id))?;
        if !header.is_some_and(|plan| plan.status.applies_migrations()) {
            return Err(StoreError::PlanNotApplying(*plan_id));
        }
    }
    if let Some(expected) = &change.expect_head {
        let head: Option<crate::ScenarioHead> =
            load(kv, &scenario_head_key(change.tenant, expected.scenario_id))?;
        let holds = head.is_some_and(|h| {
            h.current_version == expected.current_version
                && h.rollout.map(|r| r.plan_id) == expected.rollout_plan
        });
        if !holds {
            return Ok(false);
        }
    }
    kv.delete(&step_entry_key(&session, shards))?;
    if change.clear_flag && session.pending_migration.is_some() {
        applied_mark_id(kv, change.tenant, &change.session_id)?;
    }
    let (counted_before, flag_before) = (CountKey::of(&session), FlagKey::of(&session));
    apply_session_fields(&mut session, change);
    counts::move_session(kv, Some(counted_before), Some(CountKey::of(&session)))?;
    counts::move_flag(kv, flag_before, FlagKey::of(&session))?;
    save(kv, &key, &session)?;
    kv.put(&step_entry_key(&session, shards), Vec::new())?;
    if let Some(applied) = &change.applied {
        let e = &applied.event;
        let event_key = format!(
            "{}{}/{}",
            events_prefix(change.tenant, e.plan_id),
            time_key(&e.at),
            e.event_id
        );
        save(kv, &event_key, e)?;
        expire_at(kv, &event_key, Retention::until(e.at, retention.event_days))?;
        let mut stats = load_stats(kv, change.tenant, e.plan_id)?;
        count_migration(&mut stats, applied);
        save(kv, &stats_key(change.tenant, e.plan_id), &stats)?;
        if applied.was_flagged {
            count_in_minute(kv, change.tenant, e.plan_id, e.at)?;
        }
        let migrated = format!(
            "{}{}",
            migrated_by_prefix(change.tenant, &change.session_id),
            e.plan_id
        );
        save(
            kv,
            &migrated,
            &MigratedBy {
                plan_id: e.plan_id,
                at: e.at,
                outcome: None,
            },
        )?;
        expire_at(kv, &migrated, Retention::until(e.at, retention.event_days))?;
    }
    Ok(true)
}

/// A plan's migration of a session, for the runtime's outcome report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct MigratedBy {
    plan_id: Uuid,
    at: DateTime<Utc>,
    /// Reported ok (`true`) or failed.
    outcome: Option<bool>,
}

pub(super) fn report_outcome(
    kv: &mut dyn KvWrite,
    report: &crate::OutcomeReport,
) -> StoreResult<crate::OutcomeRecorded> {
    use crate::OutcomeRecorded;
    let prefix = migrated_by_prefix(report.tenant, &report.session_id);
    let mut last: Option<(String, MigratedBy)> = None;
    for (key, bytes) in kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)? {
        let entry: MigratedBy = decode_value(&bytes)?;
        if last.as_ref().is_none_or(|(_, l)| entry.at > l.at) {
            last = Some((key, entry));
        }
    }
    let Some((key, mut entry)) = last.filter(|(_, e)| e.at >= report.window_start) else {
        return Ok(OutcomeRecorded::NoRecentMigration);
    };
    if entry.outcome.is_some() {
        return Ok(OutcomeRecorded::AlreadyReported {
            plan_id: entry.plan_id,
        });
    }
    entry.outcome = Some(report.ok);
    save(kv, &key, &entry)?;
    let mut stats = load_stats(kv, report.tenant, entry.plan_id)?;
    stats.reported_outcomes += 1;
    if !report.ok {
        stats.reported_failures += 1;
    }
    save(kv, &stats_key(report.tenant, entry.plan_id), &stats)?;
    Ok(OutcomeRecorded::Counted {
        plan_id: entry.plan_id,
    })
}

pub(super) fn list_events(kv: &dyn KvRead, q: &EventQuery) -> StoreResult<EventPage> {
    let query_id = event_query_id(q);
    let prefix = events_prefix(q.tenant, q.plan_id);
    let start = resume_after(q.next_token.as_deref(), &query_id, &prefix)?;
    let mut entries = kv.range(
        &start,
        &prefix_end(&prefix),
        false,
        q.limit.saturating_add(1),
    )?;
    let more = entries.len() > q.limit;
    entries.truncate(q.limit);
    let events = entries
        .iter()
        .map(|(_, bytes)| decode_value(bytes))
        .collect::<StoreResult<Vec<_>>>()?;
    let next_token = match (more, entries.last()) {
        (true, Some((key, _))) => Some(encode_token(key, &query_id)),
        _ => None,
    };
    Ok(EventPage { events, next_token })
}

/// One more flagged migration of the plan in the minute of `at`.
fn count_in_minute(
    kv: &mut dyn KvWrite,
    t: Uuid,
    plan_id: Uuid,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let minute = planning::drain::minute_of(at);
    let key = format!(
        "{}{}",
        applied_minutes_prefix(t, plan_id),
        time_key(&minute)
    );
    let counted: Option<planning::AppliedInMinute> = load(kv, &key)?;
    if counted.is_none() {
        expire_at(kv, &key, minute + chrono::Duration::days(1))?;
    }
    let applied = counted.map_or(0, |c| c.applied) + 1;
    save(kv, &key, &planning::AppliedInMinute { minute, applied })
}

pub(super) fn applied_per_minute(
    kv: &dyn KvRead,
    t: Uuid,
    plan_id: Uuid,
    since: DateTime<Utc>,
) -> StoreResult<Vec<planning::AppliedInMinute>> {
    let prefix = applied_minutes_prefix(t, plan_id);
    let start = format!("{prefix}{}", time_key(&since));
    kv.range(&start, &prefix_end(&prefix), false, usize::MAX)?
        .into_iter()
        .map(|(_, value)| decode_value(&value))
        .collect()
}
