//! Session counts of the key-value stores: a counter per step,
//! `{t}/COUNT/{scenario}/{v}/{step}` (decimal text), moved in the same
//! transaction as every session write that creates a session or moves it, so
//! the counts are exact; and the latest exact recount of each version.
//!
//! They run inside a key-value transaction, so they live here rather than in
//! [`crate::counts`], which holds what every backend shares and depends on no
//! backend.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use planning::PendingOnDay;
#[cfg(feature = "local")]
use planning::Session;
use uuid::Uuid;

#[cfg(feature = "local")]
use super::values::decode_value;
use super::{KvRead, KvWrite};
use crate::codec::version_key;
use crate::counts::{CountKey, FlagKey, Recount, StepCounts};
use crate::{StoreError, StoreResult};

fn version_prefix(t: Uuid, sid: Uuid, v: i64) -> String {
    format!("{t}/COUNT/{sid}/{}/", version_key(v))
}

fn counter_key(key: &CountKey) -> String {
    format!(
        "{}{}",
        version_prefix(key.tenant, key.scenario_id, key.version),
        key.step_id
    )
}

/// Set once every session of a key-value store is counted (new stores, and
/// older files after [`rebuild`]).
#[cfg(feature = "local")]
const READY: &str = "COUNTS/READY";
/// Set once every flagged session is counted by its plan and day of last
/// activity (new stores, and older files after [`rebuild`]).
#[cfg(feature = "local")]
const FLAGS_READY: &str = "COUNTS/FLAGS_READY";

fn add(kv: &mut dyn KvWrite, key: &CountKey, delta: i64) -> StoreResult<()> {
    add_to(kv, &counter_key(key), delta)
}

fn flag_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/ACT/{pid}/")
}

fn flag_counter_key(flag: &FlagKey) -> String {
    format!("{}{}", flag_prefix(flag.tenant, flag.plan_id), flag.day)
}

fn add_to(kv: &mut dyn KvWrite, counter: &str, delta: i64) -> StoreResult<()> {
    let current: i64 = match kv.get(counter)? {
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Unexpected(format!("malformed counter {counter}")))?,
        None => 0,
    };
    let next = current + delta;
    if next <= 0 {
        kv.delete(counter)
    } else {
        kv.put(counter, next.to_string().into_bytes())
    }
}

/// A session's flag counter went from `old` to `new` (`None`: no flag):
/// adjust the counters, inside the caller's transaction. Every session write
/// calls it with the session before and after.
pub(super) fn move_flag(
    kv: &mut dyn KvWrite,
    old: Option<FlagKey>,
    new: Option<FlagKey>,
) -> StoreResult<()> {
    if old == new {
        return Ok(());
    }
    if let Some(old) = old {
        add_to(kv, &flag_counter_key(&old), -1)?;
    }
    if let Some(new) = new {
        add_to(kv, &flag_counter_key(&new), 1)?;
    }
    Ok(())
}

/// A plan's pending sessions by the day of their last activity: one range read.
pub(super) fn flag_counts(kv: &dyn KvRead, t: Uuid, pid: Uuid) -> StoreResult<Vec<PendingOnDay>> {
    let prefix = flag_prefix(t, pid);
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0');
    let mut days = Vec::new();
    for (key, bytes) in kv.range(&prefix, &end, false, usize::MAX)? {
        let malformed = || StoreError::Unexpected(format!("malformed flag counter {key}"));
        let day: NaiveDate = key[prefix.len()..].parse().map_err(|_| malformed())?;
        let sessions: u64 = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        days.push(PendingOnDay { day, sessions });
    }
    Ok(days)
}

/// A session moved from `old` to `new` (`None`: did not exist / no longer
/// exists): adjust the counters, inside the caller's transaction.
pub(super) fn move_session(
    kv: &mut dyn KvWrite,
    old: Option<CountKey>,
    new: Option<CountKey>,
) -> StoreResult<()> {
    if old == new {
        return Ok(());
    }
    if let Some(old) = old {
        add(kv, &old, -1)?;
    }
    if let Some(new) = new {
        add(kv, &new, 1)?;
    }
    Ok(())
}

/// The counters of one scenario version: one range read.
fn read(kv: &dyn KvRead, t: Uuid, sid: Uuid, v: i64) -> StoreResult<BTreeMap<Uuid, u64>> {
    let prefix = version_prefix(t, sid, v);
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0');
    let mut counts = BTreeMap::new();
    for (key, value) in kv.range(&prefix, &end, false, usize::MAX)? {
        let step = Uuid::parse_str(&key[prefix.len()..]).ok();
        let n = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        if let (Some(step), Some(n)) = (step, n)
            && n > 0
        {
            counts.insert(step, n);
        }
    }
    Ok(counts)
}

/// The counts of one scenario version, exact as of the read.
pub(super) fn session_counts(
    kv: &dyn KvRead,
    t: Uuid,
    sid: Uuid,
    v: i64,
) -> StoreResult<StepCounts> {
    Ok(StepCounts {
        by_step: read(kv, t, sid, v)?,
        counted_at: Some(Utc::now()),
    })
}

fn recount_key(t: Uuid, sid: Uuid, v: i64) -> String {
    format!("{t}/RECOUNT/{sid}/{}", version_key(v))
}

pub(super) fn put_recount(kv: &mut dyn KvWrite, recount: &Recount) -> StoreResult<()> {
    let bytes = serde_json::to_vec(recount)
        .map_err(|e| StoreError::Unexpected(format!("encode recount: {e}")))?;
    kv.put(
        &recount_key(recount.tenant, recount.scenario_id, recount.version),
        bytes,
    )
}

pub(super) fn get_recount(
    kv: &dyn KvRead,
    t: Uuid,
    sid: Uuid,
    v: i64,
) -> StoreResult<Option<Recount>> {
    kv.get(&recount_key(t, sid, v))?
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Unexpected(format!("decode recount: {e}")))
        })
        .transpose()
}

/// Count every stored session once — by step, and when flagged by its plan
/// and day of last activity — for a store written before those counters
/// existed; each kind is a no-op once its marker ([`READY`], [`FLAGS_READY`])
/// is set. Reads the whole store once, and only when a marker is missing.
#[cfg(feature = "local")]
pub(crate) fn rebuild(kv: &mut dyn KvWrite) -> StoreResult<bool> {
    let steps = kv.get(READY)?.is_none();
    let flags = kv.get(FLAGS_READY)?.is_none();
    if !steps && !flags {
        return Ok(false);
    }
    let mut by_step: BTreeMap<CountKey, i64> = BTreeMap::new();
    let mut by_flag: BTreeMap<FlagKey, i64> = BTreeMap::new();
    for (key, value) in kv.range("", "\u{10FFFF}", false, usize::MAX)? {
        // `{t}/SESS/{session}`: sessions under every tenant.
        let Some((_, rest)) = key.split_once('/') else {
            continue;
        };
        if !rest.starts_with("SESS/") {
            continue;
        }
        let session: Session = decode_value(&value)?;
        *by_step.entry(CountKey::of(&session)).or_insert(0) += 1;
        if let Some(flag) = FlagKey::of(&session) {
            *by_flag.entry(flag).or_insert(0) += 1;
        }
    }
    if steps {
        for (key, n) in by_step {
            kv.put(&counter_key(&key), n.to_string().into_bytes())?;
        }
        kv.put(READY, Vec::new())?;
    }
    if flags {
        for (key, n) in by_flag {
            kv.put(&flag_counter_key(&key), n.to_string().into_bytes())?;
        }
        kv.put(FLAGS_READY, Vec::new())?;
    }
    Ok(true)
}
