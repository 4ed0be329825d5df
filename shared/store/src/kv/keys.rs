//! The key layout (the table in [`super`]).

use planning::{MigrationPlan, Session};
use uuid::Uuid;

use crate::codec::{time_key, version_key};

/// The exclusive end of the range of keys starting with `prefix` (which ends in `/`).
pub(super) fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0'); // the character after '/'
    end
}

pub(super) fn scenario_head_key(t: Uuid, sid: Uuid) -> String {
    format!("{t}/SCN/{sid}/HEAD")
}
pub(super) fn scenario_version_key(t: Uuid, sid: Uuid, v: i64) -> String {
    format!("{t}/SCN/{sid}/V/{}", version_key(v))
}
pub(super) fn plan_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PLAN/{pid}")
}
pub(super) fn plan_target_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PTGT/{pid}")
}
pub(super) fn plan_header_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PHEAD/{pid}")
}
pub(super) fn plan_summary_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/PSUM/{pid}")
}
pub(super) fn plan_index_prefix(t: Uuid) -> String {
    format!("{t}/PIDX/")
}
pub(super) fn plan_index_key(plan: &MigrationPlan) -> String {
    format!(
        "{}{}/{}",
        plan_index_prefix(plan.tenant_id),
        time_key(&plan.created_at),
        plan.id
    )
}
pub(super) fn slot_key(plan: &MigrationPlan) -> String {
    format!(
        "{}/SLOT/{}/{}/{}",
        plan.tenant_id,
        plan.scenario_id,
        version_key(plan.from_version),
        version_key(plan.to_version)
    )
}
pub(super) fn stats_key(t: Uuid, pid: Uuid) -> String {
    format!("{t}/STATS/{pid}")
}
pub(super) fn ledger_key(t: Uuid, pid: Uuid, page: &str) -> String {
    format!("{t}/LEDGER/{pid}/{page}")
}
/// The mark ids of a session's flags (not part of the session's own value).
pub(super) fn mark_ids_key(t: Uuid, session_id: &str) -> String {
    format!("{t}/MARKID/{session_id}")
}
/// A marking page's claim.
pub(super) fn page_claim_key(t: Uuid, pid: Uuid, page: &str) -> String {
    format!("{t}/CLAIM/{pid}/{page}")
}
pub(super) fn failed_key(t: Uuid, pid: Uuid, page: &str) -> String {
    format!("{t}/FAILED/{pid}/{page}")
}
pub(super) fn chains_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/CHAIN/{pid}/")
}
/// Pass 0 keeps the key chains always had; a ramp's passes add theirs.
pub(super) fn chain_key(t: Uuid, pid: Uuid, chain: crate::ChainKey) -> String {
    let crate::ChainKey {
        step_id,
        shard,
        pass,
    } = chain;
    match pass {
        0 => format!("{}{step_id}/{shard}", chains_prefix(t, pid)),
        pass => format!("{}{step_id}/{shard}/p{pass}", chains_prefix(t, pid)),
    }
}
pub(super) const DEPLOYING_PREFIX: &str = "DEPLOYING/";
pub(super) const EXPIRE_PREFIX: &str = "EXPIRE/";
/// The lifecycle events' outbox: operational, across tenants (like `DEPLOYING/`).
pub(super) const OUTBOX_PREFIX: &str = "OUTBOX/";

pub(super) fn outbox_key(t: Uuid, pid: Uuid) -> String {
    format!("{OUTBOX_PREFIX}{t}/{pid}")
}

pub(super) fn deploying_key(t: Uuid, pid: Uuid) -> String {
    format!("{DEPLOYING_PREFIX}{t}/{pid}")
}
/// Which plans migrated a session and when, one entry per plan, with the
/// runtime's reported outcome once given.
pub(super) fn migrated_by_prefix(t: Uuid, session_id: &str) -> String {
    format!("{t}/MIGRATEDBY/{session_id}/")
}
/// Per-minute counts of a plan's applied flagged migrations, by minute.
pub(super) fn applied_minutes_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/APM/{pid}/")
}
pub(super) fn events_prefix(t: Uuid, pid: Uuid) -> String {
    format!("{t}/EVT/{pid}/")
}
pub(super) fn session_key(t: Uuid, session_id: &str) -> String {
    format!("{t}/SESS/{session_id}")
}
pub(super) fn step_prefix(t: Uuid, sid: Uuid, v: i64, step: Uuid) -> String {
    format!("{t}/STEP/{sid}/{}/{step}/", version_key(v))
}
/// The entries of one shard of a step.
pub(super) fn step_shard_prefix(t: Uuid, sid: Uuid, v: i64, step: Uuid, shard: u32) -> String {
    format!("{}{shard}/", step_prefix(t, sid, v, step))
}
pub(super) fn step_entry_key(s: &Session, shards: u32) -> String {
    format!(
        "{}{}",
        step_shard_prefix(
            s.tenant_id,
            s.active_scenario_id,
            s.active_scenario_version,
            s.active_step_id,
            crate::step_shard(&s.session_id, shards),
        ),
        s.session_id
    )
}
