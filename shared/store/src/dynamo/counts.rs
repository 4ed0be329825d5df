//! DynamoDB session counts: counter items in the main table, fed by the
//! sessions table's change stream (`NEW_AND_OLD_IMAGES`).
//!
//! # Why a stream
//!
//! The sessions table is shared with the conversation runtime, which writes
//! items straight into it (docs/runtime.md): no write path of ours sees every session
//! move. The table's stream does. Each record carries the item before and after,
//! so it becomes "−1 where it was, +1 where it is" ([`crate::counts`]).
//!
//! # Items (main table)
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | counter | `{t}#COUNT#{scenario}#{v:020}` | `S#{step}#{k}` | `n` (N, `ADD` only; one counter shard may go below 0, the sum never does), `at` (latest record time applied) |
//! | flag counter | `{t}#PLAN#{plan}` | `ACT#{day}#{k}` | `n` (N, `ADD` only): the plan's flagged sessions last active on that UTC day (the drain's `pending_by_last_activity`), `ttl` (400 days after the day) |
//! | exact recount | `{t}#COUNT#{scenario}#{v:020}` | `RECOUNT` | `body` (JSON [`Recount`]) |
//! | stream checkpoint | `STREAM#{shard}` | `CHECKPOINT` | `seq` (last applied sequence number, zero-padded), `sequence_number` (as the stream wrote it), `at` |
//!
//! `{k}` is the counter shard, `0..COUNTER_SHARDS`, taken from a hash of the
//! *stream shard* that produced the change: each stream shard is consumed by one
//! invocation at a time, so concurrent consumers (one per stream shard) write
//! different counter items and never collide in a transaction, and a hot step
//! takes at most `COUNTER_SHARDS`-way parallel writes, each one per batch. The
//! checkpoints are operational items holding no tenant data (like `DEPLOYING`).
//!
//! # Reading: one Query
//!
//! `pk = {t}#COUNT#{scenario}#{v}` and `begins_with(sk, "S#")`, strongly
//! consistent: at most steps × `COUNTER_SHARDS` small items, whatever the
//! number of sessions. `counted_at` is the latest `at` read.
//!
//! # Exactly once
//!
//! A stream delivers each record at least once, and Lambda retries a failed
//! batch (whole, or bisected), so applying a record must be idempotent. Per
//! stream shard a checkpoint item holds the sequence number of the last record
//! applied. [`CountsApplier::apply`] reads it (strongly consistent), drops the
//! records at or below it, aggregates the rest into groups whose deltas write at
//! most 99 counters, and commits each group as one `TransactWriteItems`: the
//! counters' `ADD`s plus the checkpoint moved to the group's last record,
//! conditioned on the checkpoint still holding the value read. A redelivered or
//! overlapping batch finds its records at or below the checkpoint and adds
//! nothing; two writers of one shard (which Lambda never runs with
//! `ParallelizationFactor` 1) cannot both commit the same group. A crash between
//! groups leaves the checkpoint at the last committed group, and the retry
//! resumes after it. Within a shard records arrive in sequence order, and a
//! child shard is read only after its parent, so "at or below the checkpoint"
//! means "applied".
//!
//! What it does not cover: a batch that Lambda discards after its retries (sent
//! to the on-failure destination) is never counted; the exact recount shows the
//! drift.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue as Av, TransactWriteItem, Update};
use chrono::{DateTime, NaiveDate, Utc};
use planning::PendingOnDay;
use uuid::Uuid;

pub use super::CatchUp;
use super::attr::Item;
use super::keys::{key, plan_pk};
use super::ops::{built, retry_delays, sdk_error};
use super::tables::TTL;
#[cfg(any(feature = "local", feature = "stream-poll"))]
pub use super::tables::ensure_stream;
use crate::codec::version_key;
use crate::counts::{
    ChangeRecord, Deltas, FlagKey, Recount, SessionImage, StepCounts, aggregate, sequence_key,
    shard_hash,
};
use crate::{StoreError, StoreResult};

/// Counter items per (version, step): the spread of a hot step's writes.
pub const COUNTER_SHARDS: u64 = 4;
/// TransactWriteItems takes 100 items; one is the checkpoint.
const MAX_COUNTERS_PER_TRANSACTION: usize = 99;
const RECOUNT_SK: &str = "RECOUNT";
const FLAG_PREFIX: &str = "ACT#";

fn counts_pk(t: Uuid, sid: Uuid, v: i64) -> String {
    format!("{t}#COUNT#{sid}#{}", version_key(v))
}

fn counter_sk(step: Uuid, shard: u64) -> String {
    format!("S#{step}#{shard}")
}

/// A flag counter's item: under its plan, one per (day, counter shard).
fn flag_key(flag: &FlagKey, shard: u64) -> Item {
    key(
        plan_pk(flag.tenant, flag.plan_id),
        &format!("{FLAG_PREFIX}{}#{shard}", flag.day),
    )
}

/// How long a flag counter is kept after its day: a session idle this long
/// stops being counted among the plan's quiet ones.
const FLAG_COUNTER_DAYS: i64 = 400;

fn checkpoint_key(stream_shard: &str) -> Item {
    key(format!("STREAM#{stream_shard}"), "CHECKPOINT")
}

fn time_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Counter items: every item under `pk` whose sort key starts with `prefix`,
/// read strongly consistent, as (the rest of the sort key, `n`, the item).
async fn counter_items(
    client: &Client,
    main: &str,
    pk: String,
    prefix: &str,
) -> StoreResult<Vec<(String, i64, Item)>> {
    let mut counters = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(main)
            .key_condition_expression("pk = :pk AND begins_with(sk, :s)")
            .expression_attribute_values(":pk", Av::S(pk.clone()))
            .expression_attribute_values(":s", Av::S(prefix.into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        for item in out.items.unwrap_or_default() {
            let rest = match item.get("sk") {
                Some(Av::S(sk)) => sk.strip_prefix(prefix).map(str::to_owned),
                _ => None,
            };
            let n = match item.get("n") {
                Some(Av::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            };
            let (Some(rest), Some(n)) = (rest, n) else {
                return Err(StoreError::Unexpected(format!(
                    "malformed counter under {pk}"
                )));
            };
            counters.push((rest, n, item));
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(counters),
        }
    }
}

/// The counters of one scenario version: one (paged) Query.
pub(crate) async fn read_counts(
    client: &Client,
    main: &str,
    t: Uuid,
    sid: Uuid,
    v: i64,
) -> StoreResult<StepCounts> {
    let mut sums: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut counted_at: Option<DateTime<Utc>> = None;
    for (rest, n, item) in counter_items(client, main, counts_pk(t, sid, v), "S#").await? {
        // `{step}#{counter shard}`
        let step = rest
            .split('#')
            .next()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| StoreError::Unexpected("malformed session counter".into()))?;
        *sums.entry(step).or_insert(0) += n;
        if let Some(Av::S(at)) = item.get("at")
            && let Ok(at) = DateTime::parse_from_rfc3339(at)
        {
            let at = at.with_timezone(&Utc);
            counted_at = Some(counted_at.map_or(at, |c| c.max(at)));
        }
    }
    Ok(StepCounts {
        by_step: sums
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(step, n)| (step, n as u64))
            .collect(),
        counted_at,
    })
}

/// A plan's pending sessions by the day of their last activity: one (paged)
/// Query of its flag counters, summed over their shards.
pub(crate) async fn read_flag_counts(
    client: &Client,
    main: &str,
    t: Uuid,
    plan_id: Uuid,
) -> StoreResult<Vec<PendingOnDay>> {
    let mut sums: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for (rest, n, _) in counter_items(client, main, plan_pk(t, plan_id), FLAG_PREFIX).await? {
        // `{day}#{counter shard}`
        let day = rest
            .split('#')
            .next()
            .and_then(|d| d.parse::<NaiveDate>().ok())
            .ok_or_else(|| StoreError::Unexpected("malformed flag counter".into()))?;
        *sums.entry(day).or_insert(0) += n;
    }
    // A shard's counter may read below zero for a while (records of one
    // session on two stream shards): only whole days above zero count.
    Ok(sums
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(day, n)| PendingOnDay {
            day,
            sessions: n as u64,
        })
        .collect())
}

pub(crate) async fn put_recount(client: &Client, main: &str, r: &Recount) -> StoreResult<()> {
    let body = serde_json::to_string(r)
        .map_err(|e| StoreError::Unexpected(format!("encode recount: {e}")))?;
    let mut item = key(counts_pk(r.tenant, r.scenario_id, r.version), RECOUNT_SK);
    item.insert("body".into(), Av::S(body));
    client
        .put_item()
        .table_name(main)
        .set_item(Some(item))
        .send()
        .await
        .map_err(sdk_error)?;
    Ok(())
}

pub(crate) async fn get_recount(
    client: &Client,
    main: &str,
    t: Uuid,
    sid: Uuid,
    v: i64,
) -> StoreResult<Option<Recount>> {
    let out = client
        .get_item()
        .table_name(main)
        .set_key(Some(key(counts_pk(t, sid, v), RECOUNT_SK)))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk_error)?;
    match out.item.as_ref().and_then(|i| i.get("body")) {
        Some(Av::S(body)) => serde_json::from_str(body)
            .map(Some)
            .map_err(|e| StoreError::Unexpected(format!("decode recount: {e}"))),
        Some(_) => Err(StoreError::Unexpected("malformed recount".into())),
        None => Ok(None),
    }
}

/// A stream shard's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// [`sequence_key`] of the last applied record.
    pub seq: String,
    /// That record's sequence number as the stream wrote it (to resume reading
    /// after it with `AFTER_SEQUENCE_NUMBER`).
    pub sequence_number: String,
}

/// What one [`CountsApplier::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records counted now.
    pub records: usize,
    /// Transactions committed.
    pub transactions: usize,
    /// Counter writes (one per counter item per transaction).
    pub counter_writes: usize,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Applied) {
        self.records += other.records;
        self.transactions += other.transactions;
        self.counter_writes += other.counter_writes;
    }
}

/// Applies stream records to the counters, exactly once per record (see the
/// module documentation). Shared by the `count-sessions` Lambda and
/// `migrations serve --store dynamodb`.
#[derive(Clone)]
pub struct CountsApplier {
    client: Client,
    main: String,
}

impl CountsApplier {
    /// `main`: the main table (counters and checkpoints live there).
    pub fn new(client: Client, main: impl Into<String>) -> Self {
        CountsApplier {
            client,
            main: main.into(),
        }
    }

    /// The checkpoint of a stream shard, read strongly consistent.
    pub async fn checkpoint(&self, stream_shard: &str) -> StoreResult<Option<Checkpoint>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.main)
            .set_key(Some(checkpoint_key(stream_shard)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        match (item.get("seq"), item.get("sequence_number")) {
            (Some(Av::S(seq)), Some(Av::S(sequence_number))) => Ok(Some(Checkpoint {
                seq: seq.clone(),
                sequence_number: sequence_number.clone(),
            })),
            _ => Err(StoreError::Unexpected("malformed stream checkpoint".into())),
        }
    }

    /// Count `records` of one stream shard (a batch, in any order, redelivered
    /// or overlapping earlier ones): each record is counted once.
    pub async fn apply(
        &self,
        stream_shard: &str,
        records: &[ChangeRecord],
    ) -> StoreResult<Applied> {
        let counter_shard = shard_hash(stream_shard) % COUNTER_SHARDS;
        let by_sequence: HashMap<String, &ChangeRecord> = records
            .iter()
            .filter_map(|r| sequence_key(&r.sequence_number).map(|k| (k, r)))
            .collect();
        let mut applied = Applied::default();
        let mut delays = retry_delays();
        'read: loop {
            let mut checkpoint = self.checkpoint(stream_shard).await?;
            let groups = aggregate(
                records,
                checkpoint.as_ref().map(|c| c.seq.as_str()),
                MAX_COUNTERS_PER_TRANSACTION,
            );
            for group in groups {
                let Some(last) = group.last_sequence.clone() else {
                    continue;
                };
                let original = by_sequence
                    .get(&last)
                    .map(|r| r.sequence_number.clone())
                    .unwrap_or_else(|| last.clone());
                let items = self.group_items(
                    stream_shard,
                    counter_shard,
                    &group,
                    checkpoint.as_ref(),
                    &last,
                    &original,
                )?;
                match self.transact(items).await? {
                    Committed::Yes => {
                        applied.records += group.records;
                        applied.transactions += 1;
                        applied.counter_writes += group.items_touched();
                        checkpoint = Some(Checkpoint {
                            seq: last,
                            sequence_number: original,
                        });
                    }
                    // Someone else moved the checkpoint: decide again on what it holds.
                    Committed::CheckpointMoved => match delays.next() {
                        Some(delay) => {
                            tokio::time::sleep(delay).await;
                            continue 'read;
                        }
                        None => {
                            return Err(StoreError::Conflict(format!(
                                "checkpoint of stream shard {stream_shard} keeps moving"
                            )));
                        }
                    },
                }
            }
            return Ok(applied);
        }
    }

    fn group_items(
        &self,
        stream_shard: &str,
        counter_shard: u64,
        group: &Deltas,
        checkpoint: Option<&Checkpoint>,
        last: &str,
        original: &str,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let mut items = Vec::with_capacity(group.items_touched() + 1);
        for (counter, delta) in &group.by_key {
            let at = group
                .counted_at
                .get(&counter.version_of())
                .copied()
                .unwrap_or_else(Utc::now);
            let update = built(
                Update::builder()
                    .table_name(&self.main)
                    .set_key(Some(key(
                        counts_pk(counter.tenant, counter.scenario_id, counter.version),
                        &counter_sk(counter.step_id, counter_shard),
                    )))
                    .update_expression("ADD #n :d SET #at = :at")
                    .expression_attribute_names("#n", "n")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_values(":d", Av::N(delta.to_string()))
                    .expression_attribute_values(":at", Av::S(time_text(&at)))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        for (flag, delta) in &group.by_flag {
            let expires = flag
                .day
                .and_hms_opt(0, 0, 0)
                .map(|midnight| midnight.and_utc().timestamp() + FLAG_COUNTER_DAYS * 86_400)
                .unwrap_or_default();
            let update = built(
                Update::builder()
                    .table_name(&self.main)
                    .set_key(Some(flag_key(flag, counter_shard)))
                    .update_expression("ADD #n :d SET #ttl = :ttl")
                    .expression_attribute_names("#n", "n")
                    .expression_attribute_names("#ttl", TTL)
                    .expression_attribute_values(":d", Av::N(delta.to_string()))
                    .expression_attribute_values(":ttl", Av::N(expires.to_string()))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let last_at = group
            .counted_at
            .values()
            .max()
            .copied()
            .unwrap_or_else(Utc::now);
        let mut update = Update::builder()
            .table_name(&self.main)
            .set_key(Some(checkpoint_key(stream_shard)))
            .update_expression("SET #seq = :seq, #sn = :sn, #at = :at")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#sn", "sequence_number")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":seq", Av::S(last.to_owned()))
            .expression_attribute_values(":sn", Av::S(original.to_owned()))
            .expression_attribute_values(":at", Av::S(time_text(&last_at)));
        update = match checkpoint {
            None => update.condition_expression("attribute_not_exists(pk)"),
            Some(c) => update
                .condition_expression("#seq = :prev")
                .expression_attribute_values(":prev", Av::S(c.seq.clone())),
        };
        items.push(
            TransactWriteItem::builder()
                .update(built(update.build())?)
                .build(),
        );
        Ok(items)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<Committed> {
        let checkpoint_index = items.len() - 1;
        let mut delays = retry_delays();
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Committed::Yes),
                Err(err) => err,
            };
            let codes: Option<Vec<String>> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
                    e.cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect(),
                ),
                _ => None,
            };
            let retryable = match &codes {
                Some(codes) => {
                    if codes.get(checkpoint_index).map(String::as_str)
                        == Some("ConditionalCheckFailed")
                    {
                        return Ok(Committed::CheckpointMoved);
                    }
                    codes.iter().any(|c| {
                        c == "TransactionConflict"
                            || c.contains("Throttl")
                            || c.contains("Throughput")
                    })
                }
                None => matches!(
                    err.code(),
                    Some(
                        "TransactionConflictException"
                            | "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                    )
                ),
            };
            if retryable && let Some(delay) = delays.next() {
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(match codes {
                Some(codes) => StoreError::Unexpected(format!(
                    "session counts transaction cancelled: {}",
                    codes.join(",")
                )),
                None => sdk_error(err),
            });
        }
    }
}

enum Committed {
    Yes,
    CheckpointMoved,
}

/// The images of the Lambda stream events (`aws_lambda_events`, through
/// `serde_dynamo`), which the `count-sessions` function applies.
impl SessionImage for serde_dynamo::Item {
    fn text(&self, name: &str) -> Option<&str> {
        lambda_image_text(self.as_ref(), name)
    }

    fn text_in(&self, map: &str, name: &str) -> Option<&str> {
        let attributes: &HashMap<String, serde_dynamo::AttributeValue> = self.as_ref();
        match attributes.get(map)? {
            serde_dynamo::AttributeValue::M(inner) => lambda_image_text(inner, name),
            _ => None,
        }
    }
}

fn lambda_image_text<'a>(
    attributes: &'a HashMap<String, serde_dynamo::AttributeValue>,
    name: &str,
) -> Option<&'a str> {
    match attributes.get(name)? {
        serde_dynamo::AttributeValue::S(v) | serde_dynamo::AttributeValue::N(v) => Some(v.as_str()),
        _ => None,
    }
}
