//! Sessions: the runtime's writes, the step index, marking and reconcile writes.

use std::collections::HashMap;

use planning::{PendingMigration, PlanStatus, Session};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, has_s, n, s};
use super::expr::{Expr, revision_condition};
use super::items::{
    indexed_session_from, json_text, pending_av, session_from, session_item, status_str,
};
use super::keys::{key, page_of, plan_pk, scenario_pk, session_pk, step_key, token_item};
use super::ops::{
    ALL_OLD_ON_FAILURE, RECONCILE_WRITE_ID, WRITE_ID, found_item, new_write_id, own_write,
    retry_delays, retrying, retrying_same_write, sdk_error,
};
use super::tables::STEPS_INDEX;
use crate::codec::time_key;
use crate::semantics::{session_matches, step_query_id};
use crate::session_rules::merge_runtime_write;
use crate::{
    SessionChange, SessionExpectation, SessionMark, SessionPage, SessionPosition, SessionWrite,
    SessionWriteError, StepQuery, Store, StoreError, StoreResult, WrittenSession,
};

pub(super) async fn put_session(db: &DynamoStore, session: &Session) -> StoreResult<()> {
    let request = db
        .client
        .put_item()
        .table_name(&db.tables.sessions)
        .set_item(Some(session_item(session, db.step_shards)?));
    retrying(|| request.clone().send())
        .await
        .map_err(sdk_error)?;
    Ok(())
}

/// Read, decide with the shared rules, then put conditioned on the revision
/// read (or on absence): a write that lost a race is decided again on what
/// won, so the runtime never overwrites a flag set meanwhile.
pub(super) async fn write_session(
    db: &DynamoStore,
    write: &SessionWrite,
) -> Result<WrittenSession, SessionWriteError> {
    let (tenant, id) = (write.session.tenant_id, write.session.session_id.as_str());
    let mut delays = retry_delays();
    loop {
        let stored_item = session_item_of(db, tenant, id).await?;
        let stored = stored_item.as_ref().map(session_from).transpose()?;
        let next = merge_runtime_write(stored.as_ref(), write)?;
        let mut expr = Expr::default();
        let condition = match &stored {
            None => {
                let pk = expr.name("pk");
                format!("attribute_not_exists({pk})")
            }
            Some(old) => revision_condition(&mut expr, old.revision),
        };
        // A retry after a lost answer finds this very item: the write is ours
        // and done, not a race lost (else the runtime's own write would come
        // back as a 412 on its own ETag).
        let write_id = new_write_id();
        let mut item = session_item(&next, db.step_shards)?;
        item.insert(WRITE_ID.into(), s(write_id.clone()));
        if let Some(old) = &stored_item {
            keep_mark_ids(old, &mut item, stored.as_ref(), &next);
        }
        let request = db
            .client
            .put_item()
            .table_name(&db.tables.sessions)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values());
        let written = WrittenSession {
            session: next,
            created: stored.is_none(),
        };
        match retrying_same_write(|| request.clone().send()).await {
            Ok(_) => return Ok(written),
            Err(e) if own_write(&e, &write_id).is_some() => return Ok(written),
            Err(e) => match sdk_error(e) {
                // Lost the race: decide again on what won.
                StoreError::Conflict(message) => match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(StoreError::Conflict(message).into()),
                },
                e => return Err(e.into()),
            },
        }
    }
}

pub(super) async fn get_session(
    db: &DynamoStore,
    tenant: Uuid,
    session_id: &str,
) -> StoreResult<Option<Session>> {
    let item = session_item_of(db, tenant, session_id).await?;
    item.as_ref().map(session_from).transpose()
}

/// A session's item as stored (with the attributes only the store knows),
/// read consistently.
async fn session_item_of(
    db: &DynamoStore,
    tenant: Uuid,
    session_id: &str,
) -> StoreResult<Option<Item>> {
    db.get_item(
        &db.tables.sessions,
        HashMap::from([("pk".to_owned(), s(session_pk(tenant, session_id)))]),
    )
    .await
}

pub(super) async fn sessions_at_step(db: &DynamoStore, q: &StepQuery) -> StoreResult<SessionPage> {
    const KEY: [&str; 3] = ["pk", "step_key", "session_id"];
    let query_id = step_query_id(q);
    let sk = step_key(q.tenant, q.scenario_id, q.version, q.step_id, q.shard);
    let start = q
        .cursor
        .as_deref()
        .map(|token| token_item(token, &query_id, &KEY, |k| k.get("step_key") == Some(&sk)))
        .transpose()?;
    let query = db
        .client
        .query()
        .table_name(&db.tables.sessions)
        .index_name(STEPS_INDEX)
        .key_condition_expression("step_key = :k")
        .expression_attribute_values(":k", s(sk.clone()))
        .limit(i32::try_from(q.limit.saturating_add(1)).unwrap_or(i32::MAX));
    let items = db
        .query_some(query, start, q.limit.saturating_add(1))
        .await?;
    let (sessions, next_cursor) = page_of(items, q.limit, &KEY, &query_id, |item| {
        indexed_session_from(item, q)
    })?;
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

/// The page of the step index, then its sessions' items from the table: the
/// index projects only what marking reads.
pub(super) async fn whole_sessions_at_step(
    db: &DynamoStore,
    q: &StepQuery,
) -> StoreResult<SessionPage> {
    let page = sessions_at_step(db, q).await?;
    let ids: Vec<String> = page.sessions.into_iter().map(|x| x.session_id).collect();
    let sessions = get_sessions(db, q.tenant, &ids)
        .await?
        .into_iter()
        .filter(|x| q.finds(x))
        .collect();
    Ok(SessionPage {
        sessions,
        next_cursor: page.next_cursor,
    })
}

/// Sessions by id, in the order asked, the missing ones left out.
/// `BatchGetItem` reads up to 100 keys at a time; keys DynamoDB leaves
/// unprocessed (throttling) are asked again after a backoff.
pub(super) async fn get_sessions(
    db: &DynamoStore,
    tenant: Uuid,
    ids: &[String],
) -> StoreResult<Vec<Session>> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found: HashMap<String, Session> = HashMap::with_capacity(ids.len());
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    let unique: Vec<&String> = unique.into_iter().collect();
    for chunk in unique.chunks(100) {
        let keys: Vec<Item> = chunk
            .iter()
            .map(|id| HashMap::from([("pk".to_owned(), s(session_pk(tenant, id)))]))
            .collect();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unexpected(e.to_string()))?,
        );
        let mut delays = retry_delays();
        while let Some(request) = pending.take() {
            let out = db
                .client
                .batch_get_item()
                .request_items(&db.tables.sessions, request)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(&db.tables.sessions))
                .unwrap_or_default()
            {
                let session = session_from(&item)?;
                found.insert(session.session_id.clone(), session);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut r| r.remove(&db.tables.sessions))
                .filter(|k| !k.keys().is_empty());
            if pending.is_some() {
                let delay = delays.next().ok_or_else(|| {
                    StoreError::Throttled("sessions left unprocessed after retries".into())
                })?;
                tokio::time::sleep(delay).await;
            }
        }
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

pub(super) async fn count_sessions_at_step(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
    step_id: Uuid,
) -> StoreResult<u64> {
    // Every shard of the step.
    let mut total = 0;
    for shard in 0..db.step_shards {
        let query = db
            .client
            .query()
            .table_name(&db.tables.sessions)
            .index_name(STEPS_INDEX)
            .key_condition_expression("step_key = :k")
            .expression_attribute_values(
                ":k",
                s(step_key(tenant, scenario_id, version, step_id, shard)),
            );
        total += db.count_all(query).await?;
    }
    Ok(total)
}

pub(super) async fn mark_session(
    db: &DynamoStore,
    tenant: Uuid,
    session_id: &str,
    expected: &SessionPosition,
    pending: &PendingMigration,
    mark_id: &str,
) -> StoreResult<bool> {
    let request = db
        .client
        .update_item()
        .table_name(&db.tables.sessions)
        .key("pk", s(session_pk(tenant, session_id)))
        .update_expression(
            "SET pending_migration = :pm, mark_id = :mark, \
             revision = if_not_exists(revision, :zero) + :one",
        )
        .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE)
        .expression_attribute_values(":mark", s(mark_id.to_owned()))
        .condition_expression(
            "attribute_exists(pk) AND active_scenario_id = :sid \
             AND active_scenario_version = :v AND active_step_id = :step \
             AND attribute_not_exists(pending_migration) \
             AND attribute_not_exists(pinned_version) \
             AND (attribute_not_exists(withdrawn_mark_id) OR withdrawn_mark_id <> :mark)",
        )
        .expression_attribute_values(":pm", pending_av(pending)?)
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":sid", s(expected.scenario_id.to_string()))
        .expression_attribute_values(":v", n(expected.version))
        .expression_attribute_values(":step", s(expected.step_id.to_string()));
    match retrying_same_write(|| request.clone().send()).await {
        Ok(_) => Ok(true),
        // A flag with this mark id: set by an earlier attempt of this call whose
        // answer was lost, or by another delivery of the same page — still
        // pending, or applied by a reconcile since (which kept the id as
        // `applied_mark_id`), or withdrawn since (`withdrawn_mark_id`: then it is
        // not set again — a delivery a withdrawal overtook flags nothing it
        // cleared). Either way the page marked it.
        Err(e) if found_item(&e).is_some_and(|item| marked_by(item, mark_id)) => Ok(true),
        Err(e) => match sdk_error(e) {
            StoreError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

/// Whether the session item carries (or carried, until a reconcile applied it
/// or a withdrawal cleared it) the flag set by the mark `mark_id`.
fn marked_by(item: &Item, mark_id: &str) -> bool {
    has_s(item, MARK_ID, mark_id)
        || has_s(item, APPLIED_MARK_ID, mark_id)
        || has_s(item, WITHDRAWN_MARK_ID, mark_id)
}

/// A runtime write replaces the whole item: it keeps the mark ids that only
/// the store knows, so that a retried mark still recognises its flag after a
/// runtime write came in between ([`marked_by`]).
fn keep_mark_ids(old: &Item, new: &mut Item, stored: Option<&Session>, next: &Session) {
    let same_flag = stored.is_some_and(|s| s.pending_migration == next.pending_migration);
    if same_flag && let Some(id) = old.get(MARK_ID) {
        new.insert(MARK_ID.into(), id.clone());
    }
    if let Some(id) = old.get(APPLIED_MARK_ID) {
        new.insert(APPLIED_MARK_ID.into(), id.clone());
    }
    for kept in [UNMARK_ID, WITHDRAWN_MARK_ID] {
        if let Some(id) = old.get(kept) {
            new.insert(kept.into(), id.clone());
        }
    }
}

/// Clear one withdrawn flag: only while it is `plan_id`'s; the page's
/// `unmark_id` stays on the item so that a repeat recognises its clearing, and
/// the cleared flag's mark id as `withdrawn_mark_id`, so that no delivery of
/// the page that set it sets it again.
pub(super) async fn unmark_session(
    db: &DynamoStore,
    tenant: Uuid,
    unmark: &crate::SessionUnmark,
) -> StoreResult<bool> {
    let request = db
        .client
        .update_item()
        .table_name(&db.tables.sessions)
        .key("pk", s(session_pk(tenant, &unmark.session_id)))
        .update_expression(
            "REMOVE pending_migration, mark_id \
             SET unmark_id = :u, withdrawn_mark_id = if_not_exists(mark_id, :none), \
             revision = if_not_exists(revision, :zero) + :one",
        )
        .expression_attribute_values(":none", s(String::new()))
        .condition_expression("attribute_exists(pk) AND pending_migration.migration_plan_id = :p")
        .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE)
        .expression_attribute_values(":u", s(unmark.unmark_id.clone()))
        .expression_attribute_values(":p", s(unmark.plan_id.to_string()))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1));
    match retrying_same_write(|| request.clone().send()).await {
        Ok(_) => Ok(true),
        // Cleared by an earlier attempt of this call whose answer was lost, or
        // by another delivery of the same page.
        Err(e) if found_item(&e).is_some_and(|item| has_s(item, UNMARK_ID, &unmark.unmark_id)) => {
            Ok(true)
        }
        Err(e) => match sdk_error(e) {
            StoreError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

pub(super) async fn unmark_sessions(
    db: &DynamoStore,
    tenant: Uuid,
    unmarks: &[crate::SessionUnmark],
    concurrency: usize,
) -> StoreResult<Vec<bool>> {
    let writes = unmarks
        .iter()
        .map(|u| unmark_session(db, tenant, u))
        .collect();
    all_in_order(writes, concurrency).await
}

/// Run conditional writes `concurrency` at a time and answer in input order.
/// Unordered while running: one slow write must not hold the other slots
/// idle (`buffered` starts no new write until the oldest one finishes).
async fn all_in_order<F>(writes: Vec<F>, concurrency: usize) -> StoreResult<Vec<bool>>
where
    F: std::future::Future<Output = StoreResult<bool>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    let total = writes.len();
    let indexed = writes
        .into_iter()
        .enumerate()
        .map(|(i, write)| async move { write.await.map(|done| (i, done)) });
    let done: Vec<(usize, bool)> = stream::iter(indexed)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut answers = vec![false; total];
    for (i, answer) in done {
        answers[i] = answer;
    }
    Ok(answers)
}

/// The id of the mark that set the session's current flag.
const MARK_ID: &str = "mark_id";
/// The id of the withdrawal page that cleared the session's last flag.
const UNMARK_ID: &str = "unmark_id";
/// The id of the mark whose flag the last flagged reconcile applied (and cleared).
const APPLIED_MARK_ID: &str = "applied_mark_id";
/// The id of the mark whose flag the last withdrawal cleared.
const WITHDRAWN_MARK_ID: &str = "withdrawn_mark_id";

pub(super) async fn mark_sessions(
    db: &DynamoStore,
    tenant: Uuid,
    marks: &[SessionMark],
    concurrency: usize,
) -> StoreResult<Vec<bool>> {
    // Built up front: a mapping closure returning borrowed futures defeats the
    // compiler's `Send` inference for this future.
    let writes: Vec<_> = marks
        .iter()
        .map(|m| db.mark_session(tenant, &m.session_id, &m.expected, &m.pending, &m.mark_id))
        .collect();
    all_in_order(writes, concurrency).await
}

pub(super) async fn apply_session_change(
    db: &DynamoStore,
    change: &SessionChange,
) -> StoreResult<bool> {
    let t = change.tenant;
    let pk = session_pk(t, &change.session_id);
    let Some(item) = db
        .get_item(
            &db.tables.sessions,
            HashMap::from([("pk".to_owned(), s(pk.clone()))]),
        )
        .await?
    else {
        return Ok(false);
    };
    let current = session_from(&item)?;
    if current.revision != change.expected_revision || !session_matches(&current, &change.expect) {
        return Ok(false);
    }

    let mut expr = Expr::default();
    expr.set("updated_at", s(time_key(&change.at)));
    expr.set("revision", n(change.expected_revision + 1));
    if let Some(pos) = &change.new_position {
        expr.set("active_scenario_version", n(pos.version));
        expr.set("active_step_id", s(pos.step_id.to_string()));
        expr.set("scenario_checksum", s(pos.checksum.clone()));
        expr.set(
            "step_key",
            s(step_key(
                t,
                current.active_scenario_id,
                pos.version,
                pos.step_id,
                crate::step_shard(&change.session_id, db.step_shards),
            )),
        );
    }
    if let Some(pin) = change.pin_version {
        expr.set("pinned_version", n(pin));
    }
    if change.clear_flag {
        expr.set_or_remove("pending_migration", None);
        // Keep which mark's flag this was, so that a retry of that mark whose
        // answer was lost still recognises it ([`mark_session`]).
        let (applied, mark) = (expr.name(APPLIED_MARK_ID), expr.name(MARK_ID));
        let none = expr.value(s(String::new()));
        expr.set
            .push(format!("{applied} = if_not_exists({mark}, {none})"));
        expr.set_or_remove(MARK_ID, None);
    }
    // A retry of this transaction after a lost answer finds its own id — in
    // an attribute of its own, so that the runtime's `PUT` keeps its.
    let write_id = new_write_id();
    expr.set(RECONCILE_WRITE_ID, s(write_id.clone()));
    if !change.set_variables.is_empty() {
        let vars = expr.name("variables");
        for (name, value) in &change.set_variables {
            let (k, v) = (expr.name(name), expr.value(json_text(value)?));
            expr.set.push(format!("{vars}.{k} = {v}"));
        }
    }
    let sid = expr.value(s(current.active_scenario_id.to_string()));
    let at_revision = revision_condition(&mut expr, change.expected_revision);
    let mut condition =
        format!("attribute_exists(pk) AND active_scenario_id = {sid} AND {at_revision}");
    match &change.expect {
        SessionExpectation::FlaggedBy(plan_id) => {
            let (pm, id) = (
                expr.name("pending_migration"),
                expr.value(s(plan_id.to_string())),
            );
            condition.push_str(&format!(" AND {pm}.migration_plan_id = {id}"));
        }
        SessionExpectation::UnflaggedAt { version } => {
            let (pm, pin, ver) = (
                expr.name("pending_migration"),
                expr.name("pinned_version"),
                expr.name("active_scenario_version"),
            );
            let v = expr.value(n(*version));
            condition.push_str(&format!(
                " AND attribute_not_exists({pm}) AND attribute_not_exists({pin}) AND {ver} = {v}"
            ));
        }
    }
    let mut items = vec![db.tx_update(
        &db.tables.sessions,
        HashMap::from([("pk".to_owned(), s(pk))]),
        &expr,
        Some(condition),
    )?];
    // Checked in the same transaction, so a pause written after the decision
    // was read stops the write; indices 1.. in the transaction.
    for plan_id in &change.require_applying {
        let mut check = Expr::default();
        let st = check.name("status");
        let (deploying, deployed) = (
            check.value(s(status_str(PlanStatus::Deploying))),
            check.value(s(status_str(PlanStatus::Deployed))),
        );
        items.push(db.tx_check(
            db.main(),
            key(plan_pk(t, *plan_id), "HEAD"),
            &check,
            format!("{st} IN ({deploying}, {deployed})"),
        )?);
    }
    // The scenario head as the decision read it: a withdrawal that finished
    // since (its version no longer current) stops the write.
    let head_at = items.len();
    if let Some(head) = &change.expect_head {
        let mut check = Expr::default();
        let (cv, v, owner) = (
            check.name("current_version"),
            check.value(n(head.current_version)),
            check.name("rollout_plan"),
        );
        let rollout = match head.rollout_plan {
            Some(plan_id) => format!("{owner} = {}", check.value(s(plan_id.to_string()))),
            None => format!("attribute_not_exists({owner})"),
        };
        items.push(db.tx_check(
            db.main(),
            key(scenario_pk(t, head.scenario_id), "HEAD"),
            &check,
            format!("{cv} = {v} AND {rollout}"),
        )?);
    }
    if let Some(applied) = &change.applied {
        items.extend(db.applied_items(t, &applied.event, applied.was_flagged)?);
    }
    match db.transact_same_write(items).await {
        Ok(()) => Ok(true),
        Err(e) if e.own_write_at(0, &write_id) => Ok(true),
        Err(e) if e.failed_at(0) => Ok(false),
        Err(e) if change.expect_head.is_some() && e.failed_at(head_at) => Ok(false),
        Err(e) if let Some(i) = (1..=change.require_applying.len()).find(|i| e.failed_at(*i)) => {
            Err(StoreError::PlanNotApplying(change.require_applying[i - 1]))
        }
        Err(e) => Err(e.into_store("apply session change")),
    }
}
