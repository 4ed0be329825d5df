//! Retention: `EXPIRE/{at}/{key}` entries and the sweep that deletes what they name.

use planning::MigrationPlan;

use crate::codec::time_key;
use chrono::{DateTime, Utc};

use super::KvWrite;
use super::keys::{
    EXPIRE_PREFIX, chains_prefix, plan_header_key, plan_index_key, plan_key, plan_summary_key,
    plan_target_key, prefix_end, slot_key, stats_key,
};
use crate::StoreResult;

/// Delete `key` once `at` has passed (the next sweep after it).
pub(super) fn expire_at(kv: &mut dyn KvWrite, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
    kv.put(
        &format!("{EXPIRE_PREFIX}{}/{key}", time_key(&at)),
        Vec::new(),
    )
}

/// Everything a deployed plan leaves behind, deleted after its retention.
pub(super) fn expire_deployed_plan(
    kv: &mut dyn KvWrite,
    plan: &MigrationPlan,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let (t, pid) = (plan.tenant_id, plan.id);
    let mut keys = vec![
        plan_key(t, pid),
        plan_header_key(t, pid),
        plan_summary_key(t, pid),
        plan_target_key(t, pid),
        plan_index_key(plan),
        stats_key(t, pid),
        slot_key(plan),
    ];
    for prefix in [chains_prefix(t, pid), format!("{t}/FAILED/{pid}/")] {
        for (key, _) in kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)? {
            keys.push(key);
        }
    }
    for key in keys {
        expire_at(kv, &key, at)?;
    }
    Ok(())
}

pub(super) fn sweep_expired(
    kv: &mut dyn KvWrite,
    now: DateTime<Utc>,
    limit: usize,
) -> StoreResult<u64> {
    let end = format!("{EXPIRE_PREFIX}{}", time_key(&now));
    let due = kv.range(EXPIRE_PREFIX, &end, false, limit)?;
    for (entry, _) in &due {
        // `EXPIRE/{at}/{key}`: the time has no '/', the key may.
        if let Some((_, key)) = entry[EXPIRE_PREFIX.len()..].split_once('/') {
            kv.delete(key)?;
        }
        kv.delete(entry)?;
    }
    Ok(due.len() as u64)
}
