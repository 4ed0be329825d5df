//! Items ↔ domain types: the attributes each item carries.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};
use planning::{
    MigrationPlan, MigrationPlanSummaryItem, MigrationSummary, PendingMigration, PlanStatus,
    Session, TransformationMap, TransitionRecord,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::attr::{Item, bad_item, n, opt_n, parse_time};
use super::body::BodyRef;
use super::keys::{chain_sk, key, plan_pk, plans_gsi_pk, session_pk, session_step_key};
use crate::codec::{from_json, time_key, to_json};
use crate::{ChainStart, ChainState, PlanStats, Retention, StepQuery, StoreResult};

pub(super) const ANCHOR_PREFIX: &str = "anchor#";

pub(super) fn status_str(status: PlanStatus) -> &'static str {
    status.as_str()
}

pub(super) fn parse_status(v: &str) -> StoreResult<PlanStatus> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|_| bad_item("status"))
}

pub(super) fn ttl_av(at: DateTime<Utc>, days: u32) -> Av {
    n(Retention::until(at, days).timestamp())
}

// ---------------------------------------------------------------------------
// Item structs, mapped by `serde_dynamo`.
//
// Each struct is the stored form of one item kind, field for field. Runtimes
// write session items straight into the sessions table and read them back,
// and the stream counter (`counts`) reads them, none of it through this code:
// the attribute names and types are a format others depend on. So the text of
// every value is exactly what it always was, ids and times stay `String`
// (hyphenated ids, [`time_key`] times) and JSON-text fields stay JSON text.
// An absent `Option` is left out of the item, never written as NULL; on read,
// a missing or NULL attribute is `None`. Attributes a struct does not name
// are ignored on read.

/// An item struct from an item's attributes. Binary attributes (inline
/// bodies) are left out: no item struct maps one, and they can be large.
fn decode<T: DeserializeOwned>(item: &Item, what: &str) -> StoreResult<T> {
    let attributes: Item = item
        .iter()
        .filter(|(_, value)| !matches!(value, Av::B(_)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    serde_dynamo::from_item(attributes).map_err(|e| bad_item(&format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T, what: &str) -> StoreResult<Item> {
    serde_dynamo::to_item(value).map_err(|e| bad_item(&format!("{what}: {e}")))
}

fn parse_uuid(text: &str, name: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| bad_item(name))
}

fn opt_parse_time(v: Option<&str>, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    v.map(|v| parse_time(v, name)).transpose()
}

fn opt_time_key(at: &Option<DateTime<Utc>>) -> Option<String> {
    at.as_ref().map(time_key)
}

/// The plan head (`{tenant}#PLAN#{id}` / `HEAD`) without its key and body
/// references. The summary counters are `Option` only because reading a plan
/// never needed them; they are always written.
#[derive(Serialize, Deserialize)]
struct PlanHeadAttributes {
    /// The listing index's keys: written, never read back.
    #[serde(skip_deserializing)]
    gsi1pk: String,
    #[serde(skip_deserializing)]
    gsi1sk: String,
    id: String,
    tenant_id: String,
    scenario_id: String,
    scenario_name: String,
    from_version: i64,
    to_version: i64,
    scenario_checksum_v1: String,
    scenario_checksum_v2: String,
    status: String,
    revision: u64,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_anchors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    estimated_sessions_affected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warning_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejection_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_from: Option<String>,
    /// The rollout guard as JSON text (written at activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    halt_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout_pass: Option<u32>,
    /// The status history as JSON text: written whole with each status change
    /// (bounded by `planning::MAX_TRANSITIONS_KEPT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transitions: Option<String>,
}

/// A plan's status history as the head stores it (absent when empty).
fn transitions_text(history: &[TransitionRecord]) -> StoreResult<Option<String>> {
    if history.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(history)
        .map(Some)
        .map_err(|_| bad_item("transitions"))
}

/// The head's `transitions` attribute once `record` is appended to `history`
/// (the rule is `planning`'s: [`TransitionRecord::append_to`]).
pub(super) fn transitions_after(
    history: &[TransitionRecord],
    record: TransitionRecord,
) -> StoreResult<Option<Av>> {
    let mut after = history.to_vec();
    record.append_to(&mut after);
    Ok(transitions_text(&after)?.map(super::attr::s))
}

pub(super) fn plan_head_item(
    plan: &MigrationPlan,
    body: &BodyRef,
    policies: &BodyRef,
    target: &BodyRef,
) -> StoreResult<Item> {
    let t = plan.tenant_id;
    let head = PlanHeadAttributes {
        gsi1pk: plans_gsi_pk(t),
        gsi1sk: format!("{}#{}", time_key(&plan.created_at), plan.id),
        id: plan.id.to_string(),
        tenant_id: t.to_string(),
        scenario_id: plan.scenario_id.to_string(),
        scenario_name: plan.scenario_name.clone(),
        from_version: plan.from_version,
        to_version: plan.to_version,
        scenario_checksum_v1: plan.scenario_checksum_v1.clone(),
        scenario_checksum_v2: plan.scenario_checksum_v2.clone(),
        status: status_str(plan.status).to_owned(),
        revision: plan.revision,
        created_at: time_key(&plan.created_at),
        total_anchors: Some(plan.summary.total_anchors),
        estimated_sessions_affected: Some(plan.summary.estimated_sessions_affected),
        warning_count: Some(plan.summary.warnings.len() as u64),
        created_by: plan.created_by.clone(),
        approved_at: opt_time_key(&plan.approved_at),
        approved_by: plan.approved_by.clone(),
        rejected_at: opt_time_key(&plan.rejected_at),
        rejected_by: plan.rejected_by.clone(),
        rejection_reason: plan.rejection_reason.clone(),
        deployed_at: opt_time_key(&plan.deployed_at),
        expires_at: opt_time_key(&plan.expires_at),
        paused_from: plan.paused_from.map(|s| s.as_str().to_owned()),
        guard: plan
            .guard
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| bad_item("guard"))?,
        halt_reason: plan.halt_reason.clone(),
        percent: plan.percent,
        rollout_pass: (plan.rollout_pass > 0).then_some(plan.rollout_pass),
        transitions: transitions_text(&plan.transitions)?,
    };
    let mut item = key(plan_pk(t, plan.id), "HEAD");
    item.extend(encode(&head, "plan head")?);
    body.write_into(&mut item, "body");
    policies.write_into(&mut item, "pol");
    target.write_into(&mut item, "tgt");
    Ok(item)
}

/// A plan as the listing index projects it ([`SUMMARY_FIELDS`]).
#[derive(Deserialize)]
struct PlanSummaryAttributes {
    id: String,
    scenario_id: String,
    scenario_name: String,
    from_version: i64,
    to_version: i64,
    status: String,
    total_anchors: u64,
    estimated_sessions_affected: u64,
    warning_count: u64,
    created_at: String,
}

pub(super) fn summary_item(item: &Item) -> StoreResult<MigrationPlanSummaryItem> {
    let stored: PlanSummaryAttributes = decode(item, "plan summary")?;
    Ok(MigrationPlanSummaryItem {
        id: parse_uuid(&stored.id, "id")?,
        scenario_id: parse_uuid(&stored.scenario_id, "scenario_id")?,
        scenario_name: stored.scenario_name,
        from_version: stored.from_version,
        to_version: stored.to_version,
        status: parse_status(&stored.status)?,
        total_anchors: stored.total_anchors,
        estimated_sessions_affected: stored.estimated_sessions_affected,
        warning_count: stored.warning_count,
        created_at: parse_time(&stored.created_at, "created_at")?,
    })
}

/// The plan head without its bodies.
pub(super) fn plan_from_head(item: &Item) -> StoreResult<MigrationPlan> {
    let stored: PlanHeadAttributes = decode(item, "plan head")?;
    Ok(MigrationPlan {
        id: parse_uuid(&stored.id, "id")?,
        tenant_id: parse_uuid(&stored.tenant_id, "tenant_id")?,
        scenario_id: parse_uuid(&stored.scenario_id, "scenario_id")?,
        scenario_name: stored.scenario_name,
        from_version: stored.from_version,
        to_version: stored.to_version,
        scenario_checksum_v1: stored.scenario_checksum_v1,
        scenario_checksum_v2: stored.scenario_checksum_v2,
        transformation_map: TransformationMap::default(),
        anchor_policies: Default::default(),
        summary: MigrationSummary::default(),
        status: parse_status(&stored.status)?,
        created_at: parse_time(&stored.created_at, "created_at")?,
        created_by: stored.created_by,
        approved_at: opt_parse_time(stored.approved_at.as_deref(), "approved_at")?,
        approved_by: stored.approved_by,
        rejected_at: opt_parse_time(stored.rejected_at.as_deref(), "rejected_at")?,
        rejected_by: stored.rejected_by,
        rejection_reason: stored.rejection_reason,
        deployed_at: opt_parse_time(stored.deployed_at.as_deref(), "deployed_at")?,
        expires_at: opt_parse_time(stored.expires_at.as_deref(), "expires_at")?,
        paused_from: stored
            .paused_from
            .as_deref()
            .map(parse_status)
            .transpose()?,
        guard: stored
            .guard
            .as_deref()
            .map(|json| serde_json::from_str(json).map_err(|_| bad_item("guard")))
            .transpose()?,
        halt_reason: stored.halt_reason,
        percent: stored.percent,
        rollout_pass: stored.rollout_pass.unwrap_or(0),
        revision: stored.revision,
        transitions: stored
            .transitions
            .as_deref()
            .map(|json| serde_json::from_str(json).map_err(|_| bad_item("transitions")))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// `pending_migration` as stored on a session: a map (M) of strings and one
/// number, the ids as hyphenated text and `marked_at` as [`time_key`] text:
/// runtimes read it from the session items they share with us, so its form is
/// part of the item format they rely on. Mapped by
/// `serde_dynamo`; the ids and the time stay `String` here so their text is
/// exactly what it always was, whatever serializer options.
#[derive(Serialize, Deserialize)]
struct PendingAttribute {
    migration_plan_id: String,
    target_version: i64,
    anchor_content_hash: String,
    from_step_id: String,
    marked_at: String,
}

impl PendingAttribute {
    fn of(p: &PendingMigration) -> Self {
        PendingAttribute {
            migration_plan_id: p.migration_plan_id.to_string(),
            target_version: p.target_version,
            anchor_content_hash: p.anchor_content_hash.clone(),
            from_step_id: p.from_step_id.to_string(),
            marked_at: time_key(&p.marked_at),
        }
    }

    fn read(self) -> StoreResult<PendingMigration> {
        Ok(PendingMigration {
            migration_plan_id: parse_uuid(&self.migration_plan_id, "migration_plan_id")?,
            target_version: self.target_version,
            anchor_content_hash: self.anchor_content_hash,
            from_step_id: parse_uuid(&self.from_step_id, "from_step_id")?,
            marked_at: parse_time(&self.marked_at, "marked_at")?,
        })
    }
}

pub(super) fn pending_av(p: &PendingMigration) -> StoreResult<Av> {
    serde_dynamo::to_attribute_value(PendingAttribute::of(p))
        .map_err(|_| bad_item("pending_migration"))
}

#[cfg(test)]
fn pending_from(item: &Item) -> StoreResult<Option<PendingMigration>> {
    let value = match item.get("pending_migration") {
        None | Some(Av::Null(_)) => return Ok(None),
        Some(value @ Av::M(_)) => value.clone(),
        Some(_) => return Err(bad_item("pending_migration")),
    };
    let stored: PendingAttribute =
        serde_dynamo::from_attribute_value(value).map_err(|_| bad_item("pending_migration"))?;
    stored.read().map(Some)
}

fn json_string(v: &serde_json::Value) -> StoreResult<String> {
    String::from_utf8(to_json(v)?).map_err(|_| bad_item("variable"))
}

pub(super) fn json_text(v: &serde_json::Value) -> StoreResult<Av> {
    json_string(v).map(Av::S)
}

/// `variables` as stored: a map (M) of name → the value as JSON text (S).
fn variables_of(
    variables: &BTreeMap<String, serde_json::Value>,
) -> StoreResult<HashMap<String, String>> {
    variables
        .iter()
        .map(|(name, value)| Ok((name.clone(), json_string(value)?)))
        .collect()
}

/// `variables` read by hand, as always: a missing, NULL or non-map attribute
/// is no variables (runtimes write the table too), a value that is not JSON
/// text is a malformed item.
fn variables_from(item: &Item) -> StoreResult<BTreeMap<String, serde_json::Value>> {
    let mut variables = BTreeMap::new();
    if let Some(Av::M(stored)) = item.get("variables") {
        for (name, value) in stored {
            let Av::S(text) = value else {
                return Err(bad_item("variables"));
            };
            variables.insert(name.clone(), from_json(text.as_bytes())?);
        }
    }
    Ok(variables)
}

/// A session item. Runtimes write these straight into the table too, in the
/// same format, so no attribute may change name or type. `step_history` is
/// the visits as JSON text, `variables` a map of name → JSON text (read by
/// [`variables_from`]). `step_history` and `revision` are always written,
/// but read as empty/0 when missing: runtimes write items without them.
#[derive(Serialize, Deserialize)]
struct SessionAttributes {
    /// The table key and the step index key: written, never read back (the
    /// position is read from the fields it is derived from).
    #[serde(skip_deserializing)]
    pk: String,
    #[serde(skip_deserializing)]
    step_key: String,
    session_id: String,
    tenant_id: String,
    channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
    active_scenario_id: String,
    active_scenario_version: i64,
    active_step_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scenario_checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_history: Option<String>,
    #[serde(skip_deserializing)]
    variables: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_migration: Option<PendingAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_version: Option<i64>,
    created_at: String,
    updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

pub(super) fn session_item(x: &Session, shards: u32) -> StoreResult<Item> {
    let history = String::from_utf8(to_json(&x.step_history)?).map_err(|_| bad_item("history"))?;
    let stored = SessionAttributes {
        pk: session_pk(x.tenant_id, &x.session_id),
        step_key: session_step_key(x, shards),
        session_id: x.session_id.clone(),
        tenant_id: x.tenant_id.to_string(),
        channel: x.channel.clone(),
        customer_id: x.customer_id.clone(),
        active_scenario_id: x.active_scenario_id.to_string(),
        active_scenario_version: x.active_scenario_version,
        active_step_id: x.active_step_id.to_string(),
        scenario_checksum: x.scenario_checksum.clone(),
        step_history: Some(history),
        variables: variables_of(&x.variables)?,
        pending_migration: x.pending_migration.as_ref().map(PendingAttribute::of),
        pinned_version: x.pinned_version,
        created_at: time_key(&x.created_at),
        updated_at: time_key(&x.updated_at),
        revision: Some(x.revision),
    };
    encode(&stored, "session")
}

pub(super) fn session_from(item: &Item) -> StoreResult<Session> {
    let stored: SessionAttributes = decode(item, "session")?;
    Ok(Session {
        session_id: stored.session_id,
        tenant_id: parse_uuid(&stored.tenant_id, "tenant_id")?,
        channel: stored.channel,
        customer_id: stored.customer_id,
        active_scenario_id: parse_uuid(&stored.active_scenario_id, "active_scenario_id")?,
        active_scenario_version: stored.active_scenario_version,
        active_step_id: parse_uuid(&stored.active_step_id, "active_step_id")?,
        scenario_checksum: stored.scenario_checksum,
        step_history: match stored.step_history {
            Some(text) => from_json(text.as_bytes())?,
            None => Vec::new(),
        },
        variables: variables_from(item)?,
        pending_migration: stored
            .pending_migration
            .map(PendingAttribute::read)
            .transpose()?,
        pinned_version: stored.pinned_version,
        created_at: parse_time(&stored.created_at, "created_at")?,
        updated_at: parse_time(&stored.updated_at, "updated_at")?,
        // Items the runtime wrote straight into the table before revisions existed.
        revision: stored.revision.unwrap_or(0),
    })
}

/// A session as the step index projects it ([`STEP_INDEX_FIELDS`]).
#[derive(Deserialize)]
struct IndexedSessionAttributes {
    session_id: String,
    channel: String,
    created_at: String,
    #[serde(default)]
    pending_migration: Option<PendingAttribute>,
    #[serde(default)]
    pinned_version: Option<i64>,
}

/// A session as the step index projects it ([`STEP_INDEX_FIELDS`]): the
/// position comes from the query, fields the index leaves out stay empty
/// (`updated_at` reads as `created_at`, `revision` as 0).
pub(super) fn indexed_session_from(item: &Item, q: &StepQuery) -> StoreResult<Session> {
    let stored: IndexedSessionAttributes = decode(item, "indexed session")?;
    let created_at = parse_time(&stored.created_at, "created_at")?;
    Ok(Session {
        session_id: stored.session_id,
        tenant_id: q.tenant,
        channel: stored.channel,
        customer_id: None,
        active_scenario_id: q.scenario_id,
        active_scenario_version: q.version,
        active_step_id: q.step_id,
        scenario_checksum: None,
        step_history: Vec::new(),
        variables: variables_from(item)?,
        pending_migration: stored
            .pending_migration
            .map(PendingAttribute::read)
            .transpose()?,
        pinned_version: stored.pinned_version,
        created_at,
        updated_at: created_at,
        revision: 0,
    })
}

/// The plan's counters item (`STATS`), only ever written by update
/// expressions (ADD/SET), so every counter may be missing (reads as 0). The
/// per-anchor counters are attributes named `anchor#{hash}`, read by name.
#[derive(Deserialize)]
struct StatsAttributes {
    #[serde(default)]
    sessions_marked: Option<u64>,
    #[serde(default)]
    chains_total: Option<u64>,
    #[serde(default)]
    chains_done: Option<u64>,
    #[serde(default)]
    pages_recorded: Option<u64>,
    #[serde(default)]
    pages_failed: Option<u64>,
    #[serde(default)]
    migrations_applied: Option<u64>,
    #[serde(default)]
    flagged_applied: Option<u64>,
    #[serde(default)]
    clean_graft: Option<u64>,
    #[serde(default)]
    gap_fill: Option<u64>,
    #[serde(default)]
    re_route: Option<u64>,
    #[serde(default)]
    checkpoint_blocks: Option<u64>,
    #[serde(default)]
    exits: Option<u64>,
    #[serde(default)]
    marking_started_at: Option<String>,
    #[serde(default)]
    last_progress_at: Option<String>,
    #[serde(default)]
    resumptions: Option<u64>,
    #[serde(default)]
    marking_pass: Option<u32>,
    #[serde(default)]
    reported_outcomes: Option<u64>,
    #[serde(default)]
    reported_failures: Option<u64>,
    #[serde(default)]
    flags_withdrawn: Option<u64>,
}

pub(super) fn stats_from(item: &Item) -> StoreResult<PlanStats> {
    let stored: StatsAttributes = decode(item, "stats")?;
    let mut stats = PlanStats {
        sessions_marked: stored.sessions_marked.unwrap_or_default(),
        chains_total: stored.chains_total.unwrap_or_default(),
        chains_done: stored.chains_done.unwrap_or_default(),
        pages_recorded: stored.pages_recorded.unwrap_or_default(),
        pages_failed: stored.pages_failed.unwrap_or_default(),
        migrations_applied: stored.migrations_applied.unwrap_or_default(),
        flagged_applied: stored.flagged_applied.unwrap_or_default(),
        clean_graft: stored.clean_graft.unwrap_or_default(),
        gap_fill: stored.gap_fill.unwrap_or_default(),
        re_route: stored.re_route.unwrap_or_default(),
        checkpoint_blocks: stored.checkpoint_blocks.unwrap_or_default(),
        exits: stored.exits.unwrap_or_default(),
        marking_started_at: opt_parse_time(
            stored.marking_started_at.as_deref(),
            "marking_started_at",
        )?,
        last_progress_at: opt_parse_time(stored.last_progress_at.as_deref(), "last_progress_at")?,
        resumptions: stored.resumptions.unwrap_or_default(),
        marking_pass: stored.marking_pass.unwrap_or_default(),
        reported_outcomes: stored.reported_outcomes.unwrap_or_default(),
        reported_failures: stored.reported_failures.unwrap_or_default(),
        flags_withdrawn: stored.flags_withdrawn.unwrap_or_default(),
        ..PlanStats::default()
    };
    for name in item.keys() {
        if let Some(hash) = name.strip_prefix(ANCHOR_PREFIX) {
            let count = opt_n::<u64>(item, name)?.unwrap_or_default();
            stats.sessions_by_anchor.insert(hash.to_owned(), count);
        }
    }
    Ok(stats)
}

/// A marking chain (`CHAIN#{step}#{shard}`). `shard`/`shards` are missing on
/// chains registered before the step index was sharded (shard 0 of 1);
/// `cursor` and `resumptions` are set by update expressions only. `done` is
/// read by hand, as always: only BOOL true is done.
#[derive(Serialize, Deserialize)]
struct ChainAttributes {
    step_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shards: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor_content_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    done: Option<bool>,
    updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resumptions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pass: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent: Option<u8>,
}

/// A chain as registered when marking starts: not done, no cursor yet.
pub(super) fn chain_item(pk: String, chain: &ChainStart, at: DateTime<Utc>) -> StoreResult<Item> {
    let stored = ChainAttributes {
        step_id: chain.step_id.to_string(),
        shard: Some(chain.shard),
        shards: Some(chain.shards),
        anchor_content_hash: chain.anchor_content_hash.clone(),
        cursor: None,
        done: Some(false),
        updated_at: time_key(&at),
        resumptions: None,
        pass: (chain.pass > 0).then_some(chain.pass),
        percent: (chain.percent < 100).then_some(chain.percent),
    };
    let which = crate::ChainKey {
        step_id: chain.step_id,
        shard: chain.shard,
        pass: chain.pass,
    };
    let mut item = key(pk, &chain_sk(which));
    item.extend(encode(&stored, "chain")?);
    Ok(item)
}

pub(super) fn chain_from(item: &Item) -> StoreResult<ChainState> {
    let stored: ChainAttributes = decode(item, "chain")?;
    Ok(ChainState {
        step_id: parse_uuid(&stored.step_id, "step_id")?,
        shard: stored.shard.unwrap_or(0),
        shards: stored.shards.unwrap_or(1),
        anchor_content_hash: stored.anchor_content_hash,
        pass: stored.pass.unwrap_or(0),
        percent: stored.percent.unwrap_or(100),
        cursor: stored.cursor,
        done: matches!(item.get("done"), Some(Av::Bool(true))),
        updated_at: parse_time(&stored.updated_at, "updated_at")?,
        resumptions: stored.resumptions.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
