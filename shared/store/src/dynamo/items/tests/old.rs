//! The hand-written item mapping as it was before `serde_dynamo`, kept to
//! prove the item structs store and read exactly the same attributes.

use super::super::*;
use crate::dynamo::attr::*;

pub(super) fn opt_time(item: &Item, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    opt_s(item, name)?.map(|v| parse_time(v, name)).transpose()
}

pub(super) fn put_opt(item: &mut Item, name: &str, v: Option<Av>) {
    if let Some(v) = v {
        item.insert(name.to_owned(), v);
    }
}

pub(super) fn plan_head_item(
    plan: &MigrationPlan,
    body: &BodyRef,
    policies: &BodyRef,
    target: &BodyRef,
) -> Item {
    let t = plan.tenant_id;
    let mut item = key(plan_pk(t, plan.id), "HEAD");
    let time = |d: &Option<DateTime<Utc>>| d.as_ref().map(|d| s(time_key(d)));
    let text = |v: &Option<String>| v.as_ref().map(|v| s(v.clone()));
    item.extend([
        ("gsi1pk".to_owned(), s(plans_gsi_pk(t))),
        (
            "gsi1sk".to_owned(),
            s(format!("{}#{}", time_key(&plan.created_at), plan.id)),
        ),
        ("id".to_owned(), s(plan.id.to_string())),
        ("tenant_id".to_owned(), s(t.to_string())),
        ("scenario_id".to_owned(), s(plan.scenario_id.to_string())),
        ("scenario_name".to_owned(), s(plan.scenario_name.clone())),
        ("from_version".to_owned(), n(plan.from_version)),
        ("to_version".to_owned(), n(plan.to_version)),
        (
            "scenario_checksum_v1".to_owned(),
            s(plan.scenario_checksum_v1.clone()),
        ),
        (
            "scenario_checksum_v2".to_owned(),
            s(plan.scenario_checksum_v2.clone()),
        ),
        ("status".to_owned(), s(status_str(plan.status))),
        ("revision".to_owned(), n(plan.revision)),
        ("created_at".to_owned(), s(time_key(&plan.created_at))),
        ("total_anchors".to_owned(), n(plan.summary.total_anchors)),
        (
            "estimated_sessions_affected".to_owned(),
            n(plan.summary.estimated_sessions_affected),
        ),
        ("warning_count".to_owned(), n(plan.summary.warnings.len())),
    ]);
    put_opt(&mut item, "created_by", text(&plan.created_by));
    put_opt(&mut item, "approved_at", time(&plan.approved_at));
    put_opt(&mut item, "approved_by", text(&plan.approved_by));
    put_opt(&mut item, "rejected_at", time(&plan.rejected_at));
    put_opt(&mut item, "rejected_by", text(&plan.rejected_by));
    put_opt(&mut item, "rejection_reason", text(&plan.rejection_reason));
    put_opt(&mut item, "deployed_at", time(&plan.deployed_at));
    put_opt(&mut item, "expires_at", time(&plan.expires_at));
    body.write_into(&mut item, "body");
    policies.write_into(&mut item, "pol");
    target.write_into(&mut item, "tgt");
    item
}

pub(super) fn summary_item(item: &Item) -> StoreResult<MigrationPlanSummaryItem> {
    Ok(MigrationPlanSummaryItem {
        id: get_uuid(item, "id")?,
        scenario_id: get_uuid(item, "scenario_id")?,
        scenario_name: get_s(item, "scenario_name")?.to_owned(),
        from_version: get_n(item, "from_version")?,
        to_version: get_n(item, "to_version")?,
        status: parse_status(get_s(item, "status")?)?,
        total_anchors: get_n(item, "total_anchors")?,
        estimated_sessions_affected: get_n(item, "estimated_sessions_affected")?,
        warning_count: get_n(item, "warning_count")?,
        created_at: get_time(item, "created_at")?,
    })
}

/// The plan head without its bodies.
pub(super) fn plan_from_head(item: &Item) -> StoreResult<MigrationPlan> {
    let text = |name: &str| opt_s(item, name).map(|v| v.map(str::to_owned));
    Ok(MigrationPlan {
        id: get_uuid(item, "id")?,
        tenant_id: get_uuid(item, "tenant_id")?,
        scenario_id: get_uuid(item, "scenario_id")?,
        scenario_name: get_s(item, "scenario_name")?.to_owned(),
        from_version: get_n(item, "from_version")?,
        to_version: get_n(item, "to_version")?,
        scenario_checksum_v1: get_s(item, "scenario_checksum_v1")?.to_owned(),
        scenario_checksum_v2: get_s(item, "scenario_checksum_v2")?.to_owned(),
        transformation_map: TransformationMap::default(),
        anchor_policies: Default::default(),
        summary: MigrationSummary::default(),
        status: parse_status(get_s(item, "status")?)?,
        created_at: get_time(item, "created_at")?,
        created_by: text("created_by")?,
        approved_at: opt_time(item, "approved_at")?,
        approved_by: text("approved_by")?,
        rejected_at: opt_time(item, "rejected_at")?,
        rejected_by: text("rejected_by")?,
        rejection_reason: text("rejection_reason")?,
        deployed_at: opt_time(item, "deployed_at")?,
        expires_at: opt_time(item, "expires_at")?,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: get_n(item, "revision")?,
    })
}

pub(super) fn session_item(x: &Session, shards: u32) -> StoreResult<Item> {
    let t = x.tenant_id;
    let mut variables = HashMap::new();
    for (k, v) in &x.variables {
        variables.insert(k.clone(), json_text(v)?);
    }
    let history = String::from_utf8(to_json(&x.step_history)?).map_err(|_| bad_item("history"))?;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(session_pk(t, &x.session_id))),
        ("session_id".to_owned(), s(x.session_id.clone())),
        ("tenant_id".to_owned(), s(t.to_string())),
        ("channel".to_owned(), s(x.channel.clone())),
        (
            "active_scenario_id".to_owned(),
            s(x.active_scenario_id.to_string()),
        ),
        (
            "active_scenario_version".to_owned(),
            n(x.active_scenario_version),
        ),
        ("active_step_id".to_owned(), s(x.active_step_id.to_string())),
        ("step_key".to_owned(), s(session_step_key(x, shards))),
        ("step_history".to_owned(), s(history)),
        ("variables".to_owned(), Av::M(variables)),
        ("created_at".to_owned(), s(time_key(&x.created_at))),
        ("updated_at".to_owned(), s(time_key(&x.updated_at))),
        ("revision".to_owned(), n(x.revision)),
    ]);
    put_opt(&mut item, "customer_id", x.customer_id.clone().map(s));
    put_opt(
        &mut item,
        "scenario_checksum",
        x.scenario_checksum.clone().map(s),
    );
    put_opt(
        &mut item,
        "pending_migration",
        x.pending_migration.as_ref().map(pending_av).transpose()?,
    );
    put_opt(&mut item, "pinned_version", x.pinned_version.map(n));
    Ok(item)
}

pub(super) fn session_from(item: &Item) -> StoreResult<Session> {
    let mut variables = std::collections::BTreeMap::new();
    if let Some(Av::M(m)) = item.get("variables") {
        for (k, v) in m {
            let Av::S(text) = v else {
                return Err(bad_item("variables"));
            };
            variables.insert(k.clone(), from_json(text.as_bytes())?);
        }
    }
    Ok(Session {
        session_id: get_s(item, "session_id")?.to_owned(),
        tenant_id: get_uuid(item, "tenant_id")?,
        channel: get_s(item, "channel")?.to_owned(),
        customer_id: opt_s(item, "customer_id")?.map(str::to_owned),
        active_scenario_id: get_uuid(item, "active_scenario_id")?,
        active_scenario_version: get_n(item, "active_scenario_version")?,
        active_step_id: get_uuid(item, "active_step_id")?,
        scenario_checksum: opt_s(item, "scenario_checksum")?.map(str::to_owned),
        step_history: match opt_s(item, "step_history")? {
            Some(text) => from_json(text.as_bytes())?,
            None => Vec::new(),
        },
        variables,
        pending_migration: pending_from(item)?,
        pinned_version: opt_n(item, "pinned_version")?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        // Items the runtime wrote straight into the table before revisions existed.
        revision: opt_n(item, "revision")?.unwrap_or(0),
    })
}

/// A session as the step index projects it ([`STEP_INDEX_FIELDS`]): the
/// position comes from the query, fields the index leaves out stay empty
/// (`updated_at` reads as `created_at`, `revision` as 0).
pub(super) fn indexed_session_from(item: &Item, q: &StepQuery) -> StoreResult<Session> {
    let mut variables = std::collections::BTreeMap::new();
    if let Some(Av::M(m)) = item.get("variables") {
        for (k, v) in m {
            let Av::S(text) = v else {
                return Err(bad_item("variables"));
            };
            variables.insert(k.clone(), from_json(text.as_bytes())?);
        }
    }
    let created_at = get_time(item, "created_at")?;
    Ok(Session {
        session_id: get_s(item, "session_id")?.to_owned(),
        tenant_id: q.tenant,
        channel: get_s(item, "channel")?.to_owned(),
        customer_id: None,
        active_scenario_id: q.scenario_id,
        active_scenario_version: q.version,
        active_step_id: q.step_id,
        scenario_checksum: None,
        step_history: Vec::new(),
        variables,
        pending_migration: pending_from(item)?,
        pinned_version: opt_n(item, "pinned_version")?,
        created_at,
        updated_at: created_at,
        revision: 0,
    })
}

pub(super) fn stats_from(item: &Item) -> StoreResult<PlanStats> {
    let c = |name: &str| opt_n::<u64>(item, name).map(Option::unwrap_or_default);
    let mut stats = PlanStats {
        sessions_marked: c("sessions_marked")?,
        chains_total: c("chains_total")?,
        chains_done: c("chains_done")?,
        pages_recorded: c("pages_recorded")?,
        pages_failed: c("pages_failed")?,
        migrations_applied: c("migrations_applied")?,
        flagged_applied: c("flagged_applied")?,
        clean_graft: c("clean_graft")?,
        gap_fill: c("gap_fill")?,
        re_route: c("re_route")?,
        checkpoint_blocks: c("checkpoint_blocks")?,
        exits: c("exits")?,
        marking_started_at: opt_time(item, "marking_started_at")?,
        last_progress_at: opt_time(item, "last_progress_at")?,
        resumptions: c("resumptions")?,
        ..PlanStats::default()
    };
    for name in item.keys() {
        if let Some(hash) = name.strip_prefix(ANCHOR_PREFIX) {
            stats.sessions_by_anchor.insert(hash.to_owned(), c(name)?);
        }
    }
    Ok(stats)
}

pub(super) fn chain_from(item: &Item) -> StoreResult<ChainState> {
    Ok(ChainState {
        step_id: get_uuid(item, "step_id")?,
        shard: opt_n(item, "shard")?.unwrap_or(0),
        shards: opt_n(item, "shards")?.unwrap_or(1),
        anchor_content_hash: opt_s(item, "anchor_content_hash")?.map(str::to_owned),
        pass: opt_n(item, "pass")?.unwrap_or(0),
        percent: opt_n(item, "percent")?.unwrap_or(100),
        cursor: opt_s(item, "cursor")?.map(str::to_owned),
        done: matches!(item.get("done"), Some(Av::Bool(true))),
        updated_at: get_time(item, "updated_at")?,
        resumptions: opt_n(item, "resumptions")?.unwrap_or(0),
    })
}

/// The chain item `start_marking` built by hand.
pub(super) fn chain_item(pk: String, chain: &ChainStart, at: DateTime<Utc>) -> Item {
    let mut item = key(
        pk,
        &chain_sk(crate::ChainKey {
            step_id: chain.step_id,
            shard: chain.shard,
            pass: chain.pass,
        }),
    );
    item.insert("step_id".into(), s(chain.step_id.to_string()));
    item.insert("shard".into(), n(chain.shard));
    item.insert("shards".into(), n(chain.shards));
    put_opt(
        &mut item,
        "anchor_content_hash",
        chain.anchor_content_hash.clone().map(s),
    );
    item.insert("done".into(), Av::Bool(false));
    item.insert("updated_at".into(), s(time_key(&at)));
    item
}
