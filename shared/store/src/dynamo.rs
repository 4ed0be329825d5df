//! DynamoDB store.
//!
//! # Key design
//!
//! Two tables. Every partition key starts with the tenant id (`{t}`), so a
//! lookup made for another tenant cannot reach an item. No `Scan` anywhere.
//!
//! **Main table** (`pk`, `sk`: strings), shared by plans, scenarios, ledger and events:
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | scenario head | `{t}#SCN#{scenario}` | `HEAD` | `current_version` |
//! | scenario version | `{t}#SCN#{scenario}` | `V#{version:020}` | body (see bodies) |
//! | plan head | `{t}#PLAN#{plan}` | `HEAD` | status, revision, lifecycle fields, summary-item fields, body refs; `gsi1pk`/`gsi1sk` |
//! | plan stats | `{t}#PLAN#{plan}` | `STATS` | counters, `ADD`-only; per-anchor counts as attributes `anchor#{hash}` |
//! | marking ledger | `{t}#PLAN#{plan}` | `LEDGER#{page}` / `FAILED#{page}` | created with `attribute_not_exists(pk)`; `{page}` = `{step}#{shard}#{cursor or "start"}` |
//! | marking chain | `{t}#PLAN#{plan}` | `CHAIN#{step}#{shard}` | `step_id`, `shard`, `shards` (the plan's shard count, fixed when marking starts), `cursor`, `done`, `updated_at` (the lease), `resumptions`: where one (step, shard) chain's marking stands |
//! | deploying registry | `DEPLOYING` | `{t}#{plan}` | one item per plan in `deploying`, for the sweep (ids only; the one partition not under a tenant) |
//! | live-plan slot | `{t}#SLOT#{scenario}#{from:020}#{to:020}` | `SLOT` | `plan_id`: one live plan per version pair |
//! | audit event | `{t}#EVT#{plan}` | `{at}#{event}` | `at`, `body` (JSON) |
//! | body part | `{t}#BLOB#{blob}` | `P#{n:05}` | `data`: ≤ 350 KB of a compressed body |
//! | session counter | `{t}#COUNT#{scenario}#{version:020}` | `S#{step}#{k}` | `n` (N, `ADD` only), `at`: sessions at that step as counted from the sessions stream, `k` = counter shard ([`crate::dynamo_counts`]) |
//! | exact recount | `{t}#COUNT#{scenario}#{version:020}` | `RECOUNT` | `body`: JSON [`crate::Recount`] |
//! | stream checkpoint | `STREAM#{stream shard}` | `CHECKPOINT` | `seq`, `sequence_number`, `at`: last stream record counted (operational, no tenant data) |
//!
//! Index `gsi1` (`gsi1pk` = `{t}#PLANS`, `gsi1sk` = `{created_at}#{plan}`, projection
//! INCLUDE of the summary-item fields only) serves plan listing newest first;
//! `scenario_id` / `status` filters are a `FilterExpression` on that query and
//! `total` is the same query with `Select=COUNT`. Listing never reads a body.
//!
//! **Sessions table** (`pk` = `{t}#{session_id}`): the session's fields as native
//! attributes (`active_scenario_id`, `active_scenario_version` (N),
//! `active_step_id`, `pending_migration` (M), `pinned_version` (N),
//! `scenario_checksum`, `channel`, `customer_id`, `created_at`, `updated_at`),
//! `variables` as a map of name → JSON text (so a reconcile can set single
//! variables and numbers round-trip exactly), `step_history` as JSON text, and
//! `step_key` = `{t}#{scenario}#{version}#{step}#{shard}`, write-sharded:
//! `{shard}` = [`crate::step_shard`] (32-bit FNV-1a of the session id's UTF-8
//! bytes) mod `STEP_INDEX_SHARDS` (the store's `with_step_index_shards`, 8 by
//! default), so a popular step's index writes spread over that many partition
//! keys. Runtimes writing items straight into the table compute the same key
//! (README, "Step index shards"). Index `by_step_shard` (`step_key`,
//! `session_id`, projection INCLUDE of `STEP_INDEX_FIELDS`: `channel`,
//! `created_at`, `variables`, `pending_migration`, `pinned_version` — what
//! marking and the scope filter read; not `step_history`, `updated_at` or
//! `revision`, so a runtime write that does not move a session rewrites at
//! most one small index item) serves "sessions at a step", shard by shard.
//! It replaced `by_step` (key without shard, projection ALL): a GSI's
//! projection cannot change in place, hence the new name;
//! [`backfill_step_keys`] rewrites items of the old form.
//!
//! | access pattern | served by |
//! |---|---|
//! | create scenario (conflict if it exists) | TransactWrite: Put head `attribute_not_exists(pk)` + Put version |
//! | current / archived version | GetItem head → GetItem version |
//! | create plan (one live plan per pair) | TransactWrite: Put slot + Put head, both `attribute_not_exists(pk)` |
//! | get plan / target | GetItem head → Query body parts |
//! | list plans, total | Query `gsi1` descending (+ `Select=COUNT`) |
//! | update policies | write new body, UpdateItem head swaps the ref `IF status = pending AND revision = r` |
//! | transition | UpdateItem head `IF status AND revision`; to a non-live status in a TransactWrite with the slot Delete |
//! | activate | TransactWrite: head approved→deploying `IF status AND revision`, scenario head `IF current_version = from`, Put version |
//! | start marking | conditional Put of each (step, shard) chain + Update stats `IF attribute_not_exists(marking_started_at)` |
//! | record page | TransactWrite: Put ledger `attribute_not_exists(pk)` + Update chain `IF NOT done AND cursor = page cursor` + Update stats `ADD` |
//! | resume a chain | TransactWrite: Update chain `IF NOT done AND updated_at = seen` + Update stats `ADD resumptions` |
//! | deploying plans (sweep) | Query `pk = DEPLOYING` |
//! | sessions at a step (one shard) | Query `by_step_shard` `step_key = {t}#{scenario}#{version}#{step}#{shard}` |
//! | count at a step (index) | Query `by_step_shard` `Select=COUNT`, once per shard: the exact recount only (queue message) |
//! | session counts of a version (plans, summary, deploy's inline/fan-out) | Query `pk = {t}#COUNT#{scenario}#{v}`, `begins_with(sk, "S#")`: ≤ steps × 4 small items |
//! | count a stream batch | GetItem checkpoint → TransactWrite: Update ≤ 99 counters `ADD n` + Update checkpoint `IF seq = read` |
//! | step-key backfill (migration tool) | Scan of the sessions table (the one Scan) + UpdateItem `IF step_key = old AND position` |
//! | mark session | UpdateItem `SET pending_migration` `IF` position, no flag, not pinned |
//! | apply reconcile | TransactWrite: Update session `IF` expectation + Put event + Update stats `ADD` |
//! | events of a plan | Query `{t}#EVT#{plan}` ascending |
//! | last migration time | Query `{t}#EVT#{plan}` descending, `Limit 1` |
//!
//! # Bodies
//!
//! Plan bodies (transformation map + summary; policies; the V2 definition) and
//! scenario definitions are JSON compressed with zlib. Up to 100 KB they are stored
//! inline in their item (`{name}_inline`); larger ones are split into ≤ 350 KB
//! parts written (BatchWriteItem) *before* the item that references them
//! (`{name}_blob`, `{name}_parts`). Bodies are immutable: a policies update writes
//! a new body and then conditionally swaps the reference; the old parts are
//! deleted afterwards (best effort — an orphan costs storage, never correctness).
//!
//! # Errors
//!
//! A failed condition is [`StoreError::Conflict`] (or `Ok(false)` where the
//! contract says so), throttling is [`StoreError::Throttled`], the rest is
//! [`StoreError::Unexpected`]. Transactions cancelled only by `TransactionConflict`
//! (another transaction touching the same item) are retried with jittered backoff.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, Delete, DeleteRequest,
    GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    PutRequest, ReturnValue, ScalarAttributeType, Select, TableStatus, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::{DateTime, Utc};
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationPlanSummaryItem, MigrationScenario,
    MigrationSummary, PendingMigration, PlanStatus, ScenarioVersion, Session, TransformationMap,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{
    compress_json, decode_token, decompress_json, encode_token, from_json, time_key, to_json,
    version_key,
};
use crate::kv::{event_query_id, plan_query_id, session_matches, step_query_id};
use crate::session_rules::merge_runtime_write;
use crate::{
    ActivationError, AuditEvent, ChainStart, ChainState, EventPage, EventQuery, MarkedPage,
    PlanActivation, PlanPage, PlanQuery, PlanStats, PlanTransition, Retention, SessionChange,
    SessionExpectation, SessionMark, SessionPage, SessionPosition, SessionWrite, SessionWriteError,
    StepQuery, Store, StoreError, StoreResult, WrittenSession,
};

type Item = HashMap<String, Av>;

const PLANS_INDEX: &str = "gsi1";
/// The write-sharded step index. It replaced `by_step` (projection ALL, key
/// without shard): a GSI's projection cannot change in place, so it is a new
/// index (README, "Step index shards", for the migration).
pub const STEPS_INDEX: &str = "by_step_shard";

/// Non-key attributes the step index projects: what marking and the scope
/// filter read (`planning::scope`: channel, age from `created_at`, variables;
/// marking: the flag and the pin). Not `step_history`, `updated_at` or
/// `revision`: a runtime write that does not move a session then changes at
/// most one small index item, and none when it changes none of these.
const STEP_INDEX_FIELDS: [&str; 5] = [
    "channel",
    "created_at",
    "variables",
    "pending_migration",
    "pinned_version",
];
const INLINE_MAX: usize = 100 * 1024;
const PART_MAX: usize = 350 * 1024;
const CONFLICT_RETRIES: u32 = 12;
const ANCHOR_PREFIX: &str = "anchor#";

/// Summary-item fields projected into the listing index.
const SUMMARY_FIELDS: [&str; 10] = [
    "id",
    "scenario_id",
    "scenario_name",
    "from_version",
    "to_version",
    "status",
    "total_anchors",
    "estimated_sessions_affected",
    "warning_count",
    "created_at",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Plans, scenarios, ledger, events, body parts.
    pub main: String,
    /// Sessions (shared with the conversation runtime).
    pub sessions: String,
}

/// The DynamoDB [`Store`]. Cheap to clone; build it once per process.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    retention: Retention,
    step_shards: u32,
    /// Run before each session-counts read (see [`DynamoStore::with_counts_catch_up`]).
    counts_catch_up: Option<std::sync::Arc<dyn crate::dynamo_counts::CatchUp>>,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            retention: Retention::default(),
            step_shards: crate::DEFAULT_STEP_INDEX_SHARDS,
            counts_catch_up: None,
        }
    }

    /// Bring the session counters up to date with the sessions table's stream
    /// before each [`Store::session_counts`] read: `migrations serve` and the
    /// tests (read-your-writes locally). The Lambdas leave it off and read what
    /// the `count-sessions` function has applied.
    pub fn with_counts_catch_up(
        mut self,
        catch_up: std::sync::Arc<dyn crate::dynamo_counts::CatchUp>,
    ) -> Self {
        self.counts_catch_up = Some(catch_up);
        self
    }

    /// Shards of the step index (`STEP_INDEX_SHARDS`; 0 counts as 1): the
    /// `{shard}` of every `step_key` this store writes, and of the chains a
    /// deployment registers. Runtimes writing into the table must use the same.
    pub fn with_step_index_shards(mut self, shards: u32) -> Self {
        self.step_shards = shards.max(1);
        self
    }

    /// How long deployed plans, ledger items and audit events are kept (their
    /// `ttl` attribute; the main table's TTL deletes them).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

fn classify(code: Option<&str>, message: String) -> StoreError {
    match code {
        Some("ConditionalCheckFailedException") => StoreError::Conflict(message),
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled(message),
        _ => StoreError::Unexpected(message),
    }
}

pub(crate) fn sdk_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_owned);
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => DisplayErrorContext(&err).to_string(),
    };
    classify(code.as_deref(), message)
}

pub(crate) fn built<T>(r: Result<T, BuildError>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Unexpected(format!("request: {e}")))
}

fn bad_item(what: &str) -> StoreError {
    StoreError::Unexpected(format!("malformed item: {what}"))
}

pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = 5u64 << attempt.min(6);
    let jitter = (Uuid::new_v4().as_u128() % u128::from(cap_ms)) as u64;
    tokio::time::sleep(Duration::from_millis(jitter + 1)).await;
}

/// Run a single-item request, retrying while it collides with a transaction.
async fn retrying<T, E, R, Fut>(mut op: impl FnMut() -> Fut) -> Result<T, SdkError<E, R>>
where
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e)
                if attempt < CONFLICT_RETRIES
                    && e.code() == Some("TransactionConflictException") =>
            {
                attempt += 1;
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}

/// Why a transaction did not commit.
enum TxError {
    /// Cancelled because conditions failed: per-item cancellation codes.
    Failed(Vec<String>),
    Store(StoreError),
}

impl TxError {
    /// Whether the condition of item `i` of the transaction failed.
    fn failed_at(&self, i: usize) -> bool {
        matches!(self, TxError::Failed(codes) if codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed"))
    }

    fn into_store(self, what: &str) -> StoreError {
        match self {
            TxError::Failed(codes) => {
                StoreError::Conflict(format!("{what}: condition failed ({})", codes.join(",")))
            }
            TxError::Store(e) => e,
        }
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

// ---------------------------------------------------------------------------
// attribute helpers
// ---------------------------------------------------------------------------

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    opt_s(item, name)?.ok_or_else(|| bad_item(name))
}

fn opt_s<'a>(item: &'a Item, name: &str) -> StoreResult<Option<&'a str>> {
    match item.get(name) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(Av::S(v)) => Ok(Some(v.as_str())),
        Some(_) => Err(bad_item(name)),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<T> {
    opt_n(item, name)?.ok_or_else(|| bad_item(name))
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<Option<T>> {
    match item.get(name) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(Av::N(v)) => v.parse().map(Some).map_err(|_| bad_item(name)),
        Some(_) => Err(bad_item(name)),
    }
}

fn get_uuid(item: &Item, name: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(get_s(item, name)?).map_err(|_| bad_item(name))
}

fn parse_time(v: &str, name: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| bad_item(name))
}

fn get_time(item: &Item, name: &str) -> StoreResult<DateTime<Utc>> {
    parse_time(get_s(item, name)?, name)
}

fn opt_time(item: &Item, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    opt_s(item, name)?.map(|v| parse_time(v, name)).transpose()
}

fn put_opt(item: &mut Item, name: &str, v: Option<Av>) {
    if let Some(v) = v {
        item.insert(name.to_owned(), v);
    }
}

fn status_str(status: PlanStatus) -> &'static str {
    status.as_str()
}

fn parse_status(v: &str) -> StoreResult<PlanStatus> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|_| bad_item("status"))
}

/// An update expression under construction, with placeholders for every name.
#[derive(Default)]
struct Expr {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, Av>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }
    fn value(&mut self, v: Av) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }
    fn set(&mut self, attr: &str, v: Av) {
        let (n, v) = (self.name(attr), self.value(v));
        self.set.push(format!("{n} = {v}"));
    }
    /// SET when `Some`, REMOVE when `None`.
    fn set_or_remove(&mut self, attr: &str, v: Option<Av>) {
        match v {
            Some(v) => self.set(attr, v),
            None => {
                let n = self.name(attr);
                self.remove.push(n);
            }
        }
    }
    fn add(&mut self, attr: &str, by: u64) {
        let (n, v) = (self.name(attr), self.value(n_av(by)));
        self.add.push(format!("{n} {v}"));
    }
    fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        parts.join(" ")
    }
    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }
    fn values(&self) -> Option<HashMap<String, Av>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn n_av(v: u64) -> Av {
    n(v)
}

/// The `ttl` attribute: epoch seconds after which DynamoDB deletes the item.
const TTL: &str = "ttl";

fn ttl_av(at: DateTime<Utc>, days: u32) -> Av {
    n(Retention::until(at, days).timestamp())
}

// ---------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
fn scenario_pk(t: Uuid, sid: Uuid) -> String {
    format!("{t}#SCN#{sid}")
}
fn version_sk(v: i64) -> String {
    format!("V#{}", version_key(v))
}
fn plan_pk(t: Uuid, pid: Uuid) -> String {
    format!("{t}#PLAN#{pid}")
}
fn slot_pk(t: Uuid, sid: Uuid, from: i64, to: i64) -> String {
    format!("{t}#SLOT#{sid}#{}#{}", version_key(from), version_key(to))
}
fn events_pk(t: Uuid, pid: Uuid) -> String {
    format!("{t}#EVT#{pid}")
}
fn blob_pk(t: Uuid, blob: &str) -> String {
    format!("{t}#BLOB#{blob}")
}
fn plans_gsi_pk(t: Uuid) -> String {
    format!("{t}#PLANS")
}
fn session_pk(t: Uuid, id: &str) -> String {
    format!("{t}#{id}")
}
/// The step index's partition key: one per (step, shard), so a popular step's
/// index writes spread over `shards` partition keys.
pub fn step_key(t: Uuid, sid: Uuid, v: i64, step: Uuid, shard: u32) -> String {
    format!("{t}#{sid}#{v}#{step}#{shard}")
}

/// The `step_key` of a session in a store with `shards` shards.
pub fn session_step_key(x: &Session, shards: u32) -> String {
    step_key(
        x.tenant_id,
        x.active_scenario_id,
        x.active_scenario_version,
        x.active_step_id,
        crate::step_shard(&x.session_id, shards),
    )
}

/// A token holding an item's key attributes.
fn item_token(item: &Item, attrs: &[&str], query_id: &str) -> StoreResult<String> {
    let mut key = std::collections::BTreeMap::new();
    for a in attrs {
        key.insert((*a).to_owned(), get_s(item, a)?.to_owned());
    }
    let json = String::from_utf8(to_json(&key)?).map_err(|_| bad_item("key"))?;
    Ok(encode_token(&json, query_id))
}

/// The start key in a token; `check` validates it belongs to the query.
fn token_item(
    token: &str,
    query_id: &str,
    attrs: &[&str],
    check: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) -> StoreResult<Item> {
    let json = decode_token(token, query_id)?;
    let key: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&json).map_err(|_| StoreError::InvalidToken)?;
    if key.len() != attrs.len() || attrs.iter().any(|a| !key.contains_key(*a)) || !check(&key) {
        return Err(StoreError::InvalidToken);
    }
    Ok(key.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// One page of `limit` items out of up to `limit + 1` read, converted by `f`,
/// with a token naming the last item's key when more exist.
fn page_of<T>(
    mut items: Vec<Item>,
    limit: usize,
    key: &[&str],
    query_id: &str,
    f: impl Fn(&Item) -> StoreResult<T>,
) -> StoreResult<(Vec<T>, Option<String>)> {
    let more = items.len() > limit;
    items.truncate(limit);
    let token = match (more, items.last()) {
        (true, Some(last)) => Some(item_token(last, key, query_id)?),
        _ => None,
    };
    let values = items.iter().map(f).collect::<StoreResult<Vec<_>>>()?;
    Ok((values, token))
}

// ---------------------------------------------------------------------------
// bodies
// ---------------------------------------------------------------------------

/// Where a compressed body lives.
enum BodyRef {
    Inline(Vec<u8>),
    Blob { id: String, parts: usize },
}

impl BodyRef {
    fn write_into(&self, item: &mut Item, name: &str) {
        match self {
            BodyRef::Inline(bytes) => {
                item.insert(format!("{name}_inline"), Av::B(Blob::new(bytes.clone())));
            }
            BodyRef::Blob { id, parts } => {
                item.insert(format!("{name}_blob"), s(id.clone()));
                item.insert(format!("{name}_parts"), n(parts));
            }
        }
    }

    /// Swap the reference in an update expression.
    fn write_expr(&self, expr: &mut Expr, name: &str) {
        match self {
            BodyRef::Inline(bytes) => {
                expr.set(&format!("{name}_inline"), Av::B(Blob::new(bytes.clone())));
                expr.set_or_remove(&format!("{name}_blob"), None);
                expr.set_or_remove(&format!("{name}_parts"), None);
            }
            BodyRef::Blob { id, parts } => {
                expr.set_or_remove(&format!("{name}_inline"), None);
                expr.set(&format!("{name}_blob"), s(id.clone()));
                expr.set(&format!("{name}_parts"), n(parts));
            }
        }
    }

    fn read(item: &Item, name: &str) -> StoreResult<BodyRef> {
        if let Some(Av::B(bytes)) = item.get(&format!("{name}_inline")) {
            return Ok(BodyRef::Inline(bytes.as_ref().to_vec()));
        }
        let id = get_s(item, &format!("{name}_blob"))?.to_owned();
        let parts = get_n(item, &format!("{name}_parts"))?;
        Ok(BodyRef::Blob { id, parts })
    }
}

/// The immutable part of a plan body.
#[derive(Serialize, Deserialize)]
struct PlanBody {
    transformation_map: TransformationMap,
    summary: MigrationSummary,
}

impl DynamoStore {
    fn main(&self) -> &str {
        &self.tables.main
    }

    /// Compress `value` and store it inline or as parts; parts are written now.
    async fn store_body<T: Serialize + ?Sized>(
        &self,
        tenant: Uuid,
        value: &T,
    ) -> StoreResult<BodyRef> {
        let bytes = compress_json(value)?;
        if bytes.len() <= INLINE_MAX {
            return Ok(BodyRef::Inline(bytes));
        }
        let id = Uuid::new_v4().simple().to_string();
        let pk = blob_pk(tenant, &id);
        let mut requests = Vec::new();
        for (i, chunk) in bytes.chunks(PART_MAX).enumerate() {
            let mut item = key(pk.clone(), &format!("P#{i:05}"));
            item.insert("data".into(), Av::B(Blob::new(chunk.to_vec())));
            let put = built(PutRequest::builder().set_item(Some(item)).build())?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let parts = requests.len();
        self.batch_write(requests).await?;
        Ok(BodyRef::Blob { id, parts })
    }

    async fn load_body<T: serde::de::DeserializeOwned>(
        &self,
        tenant: Uuid,
        body: &BodyRef,
    ) -> StoreResult<T> {
        match body {
            BodyRef::Inline(bytes) => decompress_json(bytes),
            BodyRef::Blob { id, parts } => {
                let items = self
                    .query_all(
                        self.client
                            .query()
                            .table_name(self.main())
                            .key_condition_expression("pk = :pk")
                            .expression_attribute_values(":pk", s(blob_pk(tenant, id)))
                            .consistent_read(true),
                    )
                    .await?;
                if items.len() != *parts {
                    return Err(StoreError::Unexpected(format!(
                        "body {id}: {} of {parts} parts",
                        items.len()
                    )));
                }
                let mut bytes = Vec::new();
                for item in &items {
                    match item.get("data") {
                        Some(Av::B(b)) => bytes.extend_from_slice(b.as_ref()),
                        _ => return Err(bad_item("data")),
                    }
                }
                decompress_json(&bytes)
            }
        }
    }

    /// Best effort: an orphaned body costs storage, never correctness.
    async fn delete_body(&self, tenant: Uuid, body: &BodyRef) {
        let BodyRef::Blob { id, parts } = body else {
            return;
        };
        let mut requests = Vec::new();
        for i in 0..*parts {
            let Ok(del) = DeleteRequest::builder()
                .set_key(Some(key(blob_pk(tenant, id), &format!("P#{i:05}"))))
                .build()
            else {
                return;
            };
            requests.push(WriteRequest::builder().delete_request(del).build());
        }
        if let Err(e) = self.batch_write(requests).await {
            tracing::warn!(error = %e, blob = %id, "could not delete an unused body");
        }
    }

    async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.main(), pending)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(self.main()))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > CONFLICT_RETRIES {
                        return Err(StoreError::Throttled("unprocessed batch items".into()));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// All items of a query, following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Up to `want` items of a query from `start`, following `LastEvaluatedKey`.
    async fn query_some(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        mut start: Option<Item>,
        want: usize,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(out.items.unwrap_or_default());
            if items.len() >= want {
                items.truncate(want);
                return Ok(items);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Count the items of a query (`Select=COUNT`), following `LastEvaluatedKey`.
    async fn count_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> StoreResult<u64> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = query
                .clone()
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    async fn get_item(&self, table: &str, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
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
            let Some(codes) = codes else {
                if attempt < CONFLICT_RETRIES && err.code() == Some("TransactionConflictException")
                {
                    attempt += 1;
                    backoff(attempt).await;
                    continue;
                }
                return Err(TxError::Store(sdk_error(err)));
            };
            if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                return Err(TxError::Failed(codes));
            }
            if codes.iter().any(|c| c == "TransactionConflict") {
                if attempt < CONFLICT_RETRIES {
                    attempt += 1;
                    backoff(attempt).await;
                    continue;
                }
                return Err(TxError::Store(StoreError::Conflict(
                    "transaction conflict persisted".into(),
                )));
            }
            let message = format!("transaction cancelled: {}", codes.join(","));
            let throttled = codes
                .iter()
                .any(|c| c.contains("Throughput") || c.contains("Throttl"));
            return Err(TxError::Store(if throttled {
                StoreError::Throttled(message)
            } else {
                StoreError::Unexpected(message)
            }));
        }
    }

    fn tx_put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let put = built(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn tx_update(
        &self,
        table: &str,
        key: Item,
        expr: &Expr,
        condition: Option<String>,
    ) -> StoreResult<TransactWriteItem> {
        let update = built(
            Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression(expr.update_expression())
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

// ---------------------------------------------------------------------------
// item <-> domain
// ---------------------------------------------------------------------------

fn plan_head_item(
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

fn summary_item(item: &Item) -> StoreResult<MigrationPlanSummaryItem> {
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
fn plan_from_head(item: &Item) -> StoreResult<MigrationPlan> {
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
        revision: get_n(item, "revision")?,
        anchors_next_token: None,
    })
}

fn pending_av(p: &PendingMigration) -> Av {
    Av::M(HashMap::from([
        (
            "migration_plan_id".to_owned(),
            s(p.migration_plan_id.to_string()),
        ),
        ("target_version".to_owned(), n(p.target_version)),
        (
            "anchor_content_hash".to_owned(),
            s(p.anchor_content_hash.clone()),
        ),
        ("from_step_id".to_owned(), s(p.from_step_id.to_string())),
        ("marked_at".to_owned(), s(time_key(&p.marked_at))),
    ]))
}

fn pending_from(item: &Item) -> StoreResult<Option<PendingMigration>> {
    let m = match item.get("pending_migration") {
        None | Some(Av::Null(_)) => return Ok(None),
        Some(Av::M(m)) => m,
        Some(_) => return Err(bad_item("pending_migration")),
    };
    Ok(Some(PendingMigration {
        migration_plan_id: get_uuid(m, "migration_plan_id")?,
        target_version: get_n(m, "target_version")?,
        anchor_content_hash: get_s(m, "anchor_content_hash")?.to_owned(),
        from_step_id: get_uuid(m, "from_step_id")?,
        marked_at: get_time(m, "marked_at")?,
    }))
}

fn json_text(v: &serde_json::Value) -> StoreResult<Av> {
    let bytes = to_json(v)?;
    String::from_utf8(bytes)
        .map(Av::S)
        .map_err(|_| bad_item("variable"))
}

fn session_item(x: &Session, shards: u32) -> StoreResult<Item> {
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
        x.pending_migration.as_ref().map(pending_av),
    );
    put_opt(&mut item, "pinned_version", x.pinned_version.map(n));
    Ok(item)
}

fn session_from(item: &Item) -> StoreResult<Session> {
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
fn indexed_session_from(item: &Item, q: &StepQuery) -> StoreResult<Session> {
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

/// The condition that an item is still at the revision it was read at (an item
/// without the attribute reads as revision 0), with its placeholders.
fn revision_condition(expr: &mut Expr, revision: u64) -> String {
    let rev = expr.name("revision");
    let v = expr.value(n(revision));
    if revision == 0 {
        format!("(attribute_not_exists({rev}) OR {rev} = {v})")
    } else {
        format!("{rev} = {v}")
    }
}

fn stats_from(item: &Item) -> StoreResult<PlanStats> {
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

const CHAIN_PREFIX: &str = "CHAIN#";
const DEPLOYING_PK: &str = "DEPLOYING";

fn chain_sk(step: Uuid, shard: u32) -> String {
    format!("{CHAIN_PREFIX}{step}#{shard}")
}

fn deploying_key(t: Uuid, pid: Uuid) -> Item {
    key(DEPLOYING_PK.to_owned(), &format!("{t}#{pid}"))
}

fn chain_from(item: &Item) -> StoreResult<ChainState> {
    Ok(ChainState {
        step_id: get_uuid(item, "step_id")?,
        shard: opt_n(item, "shard")?.unwrap_or(0),
        shards: opt_n(item, "shards")?.unwrap_or(1),
        anchor_content_hash: opt_s(item, "anchor_content_hash")?.map(str::to_owned),
        cursor: opt_s(item, "cursor")?.map(str::to_owned),
        done: matches!(item.get("done"), Some(Av::Bool(true))),
        updated_at: get_time(item, "updated_at")?,
        resumptions: opt_n(item, "resumptions")?.unwrap_or(0),
    })
}

// ---------------------------------------------------------------------------
// the Store
// ---------------------------------------------------------------------------

impl DynamoStore {
    async fn load_plan(&self, tenant: Uuid, head: &Item) -> StoreResult<MigrationPlan> {
        let mut plan = plan_from_head(head)?;
        if plan.tenant_id != tenant {
            return Err(bad_item("tenant_id"));
        }
        let body: PlanBody = self
            .load_body(tenant, &BodyRef::read(head, "body")?)
            .await?;
        plan.transformation_map = body.transformation_map;
        plan.summary = body.summary;
        plan.anchor_policies = self.load_body(tenant, &BodyRef::read(head, "pol")?).await?;
        Ok(plan)
    }

    /// Give the rest of a deployed plan (chains, failed-page records, body parts)
    /// the head's `ttl`. Best effort: an item missed is kept, never lost early.
    async fn expire_plan_parts(&self, tenant: Uuid, plan_id: Uuid, head: &Item, at: DateTime<Utc>) {
        let ttl = ttl_av(at, self.retention.deployed_plan_days);
        let mut keys = Vec::new();
        for prefix in [CHAIN_PREFIX, "FAILED#"] {
            let query = self
                .client
                .query()
                .table_name(self.main())
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(plan_pk(tenant, plan_id)))
                .expression_attribute_values(":p", s(prefix))
                .projection_expression("pk, sk");
            match self.query_all(query).await {
                Ok(items) => keys.extend(items),
                Err(e) => {
                    tracing::warn!(error = %e, %plan_id, "could not list a deployed plan's items for retention")
                }
            }
        }
        for name in ["body", "pol", "tgt", "sum"] {
            if let Ok(BodyRef::Blob { id, parts }) = BodyRef::read(head, name) {
                for part in 0..parts {
                    keys.push(key(blob_pk(tenant, &id), &format!("P#{part:05}")));
                }
            }
        }
        for item_key in keys {
            let request = self
                .client
                .update_item()
                .table_name(self.main())
                .set_key(Some(item_key))
                .update_expression("SET #ttl = :ttl")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":ttl", ttl.clone());
            if let Err(e) = retrying(|| request.clone().send()).await.map_err(sdk_error)
                && !matches!(e, StoreError::Conflict(_))
            {
                tracing::warn!(error = %e, %plan_id, "could not set retention on a deployed plan's item");
            }
        }
    }

    async fn plan_head(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<Item>> {
        self.get_item(self.main(), key(plan_pk(tenant, plan_id), "HEAD"))
            .await
    }

    async fn last_event_time(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let out = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(events_pk(tenant, plan_id)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        match out.items.unwrap_or_default().first() {
            Some(item) => Ok(Some(get_time(item, "at")?)),
            None => Ok(None),
        }
    }

    fn plans_query(
        &self,
        q: &PlanQuery,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut filters = Vec::new();
        let mut query = self
            .client
            .query()
            .table_name(self.main())
            .index_name(PLANS_INDEX)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(plans_gsi_pk(q.tenant)))
            .scan_index_forward(false);
        if let Some(sid) = q.scenario_id {
            filters.push("scenario_id = :sid");
            query = query.expression_attribute_values(":sid", s(sid.to_string()));
        }
        if let Some(status) = q.status {
            filters.push("#st = :st");
            query = query
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(status_str(status)));
        }
        if !filters.is_empty() {
            query = query.filter_expression(filters.join(" AND "));
        }
        query
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()> {
        let t = scenario.tenant_id;
        let body = self.store_body(t, scenario).await?;
        let pk = scenario_pk(t, scenario.id);
        let mut head = key(pk.clone(), "HEAD");
        head.insert("current_version".into(), n(scenario.version));
        let mut version = key(pk, &version_sk(scenario.version));
        version.insert("version".into(), n(scenario.version));
        body.write_into(&mut version, "body");
        let items = vec![
            self.tx_put(self.main(), head, Some("attribute_not_exists(pk)"))?,
            self.tx_put(self.main(), version, None)?,
        ];
        if let Err(e) = self.transact(items).await {
            self.delete_body(t, &body).await;
            return Err(e.into_store("scenario already exists"));
        }
        Ok(())
    }

    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let head = self
            .get_item(self.main(), key(scenario_pk(tenant, scenario_id), "HEAD"))
            .await?;
        match head {
            Some(head) => {
                let v = get_n(&head, "current_version")?;
                self.get_scenario_version(tenant, scenario_id, v).await
            }
            None => Ok(None),
        }
    }

    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let item = self
            .get_item(
                self.main(),
                key(scenario_pk(tenant, scenario_id), &version_sk(version)),
            )
            .await?;
        match item {
            Some(item) => Ok(Some(
                self.load_body(tenant, &BodyRef::read(&item, "body")?)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()> {
        let t = plan.tenant_id;
        let body = self
            .store_body(
                t,
                &PlanBody {
                    transformation_map: plan.transformation_map.clone(),
                    summary: plan.summary.clone(),
                },
            )
            .await?;
        let policies = self.store_body(t, &plan.anchor_policies).await?;
        let tgt = self.store_body(t, target).await?;
        // The summary again on its own, so the summary route reads kilobytes, not
        // the whole transformation map.
        let summary = self.store_body(t, &plan.summary).await?;
        let mut slot = key(
            slot_pk(t, plan.scenario_id, plan.from_version, plan.to_version),
            "SLOT",
        );
        slot.insert("plan_id".into(), s(plan.id.to_string()));
        let mut head = plan_head_item(plan, &body, &policies, &tgt);
        summary.write_into(&mut head, "sum");
        let items = vec![
            self.tx_put(self.main(), slot, Some("attribute_not_exists(pk)"))?,
            self.tx_put(self.main(), head, Some("attribute_not_exists(pk)"))?,
        ];
        if let Err(e) = self.transact(items).await {
            for b in [&body, &policies, &tgt, &summary] {
                self.delete_body(t, b).await;
            }
            return Err(e.into_store("a live plan exists for this version pair"));
        }
        Ok(())
    }

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>> {
        match self.plan_head(tenant, plan_id).await? {
            Some(head) => Ok(Some(self.load_plan(tenant, &head).await?)),
            None => Ok(None),
        }
    }

    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        let Some(head) = self.plan_head(tenant, plan_id).await? else {
            return Ok(None);
        };
        let plan = plan_from_head(&head)?;
        if plan.tenant_id != tenant {
            return Err(bad_item("tenant_id"));
        }
        Ok(Some(plan))
    }

    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationSummary>> {
        let Some(head) = self.plan_head(tenant, plan_id).await? else {
            return Ok(None);
        };
        match BodyRef::read(&head, "sum") {
            Ok(summary) => Ok(Some(self.load_body(tenant, &summary).await?)),
            // Stored before the summary was kept apart.
            Err(_) => {
                let body: PlanBody = self
                    .load_body(tenant, &BodyRef::read(&head, "body")?)
                    .await?;
                Ok(Some(body.summary))
            }
        }
    }

    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        match self.plan_head(tenant, plan_id).await? {
            Some(head) => Ok(Some(
                self.load_body(tenant, &BodyRef::read(&head, "tgt")?)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn list_plans(&self, q: &PlanQuery) -> StoreResult<PlanPage> {
        const KEY: [&str; 4] = ["pk", "sk", "gsi1pk", "gsi1sk"];
        let query_id = plan_query_id(q);
        let gsi_pk = plans_gsi_pk(q.tenant);
        let start = q
            .next_token
            .as_deref()
            .map(|token| {
                token_item(token, &query_id, &KEY, |k| {
                    k.get("gsi1pk") == Some(&gsi_pk)
                        && k.get("pk")
                            .is_some_and(|pk| pk.starts_with(&format!("{}#", q.tenant)))
                })
            })
            .transpose()?;
        let filtered = q.scenario_id.is_some() || q.status.is_some();
        let page_size = if filtered {
            100
        } else {
            q.limit.saturating_add(1)
        };
        let query = self.plans_query(q);
        let items = self
            .query_some(
                query.clone().limit(i32::try_from(page_size).unwrap_or(100)),
                start,
                q.limit.saturating_add(1),
            )
            .await?;
        let (plans, next_token) = page_of(items, q.limit, &KEY, &query_id, summary_item)?;
        let total = self.count_all(query).await?;
        Ok(PlanPage {
            plans,
            total,
            next_token,
        })
    }

    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &std::collections::BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan> {
        let head = self
            .plan_head(tenant, plan_id)
            .await?
            .ok_or_else(|| StoreError::Conflict("plan not found".into()))?;
        let current = plan_from_head(&head)?;
        if current.status != PlanStatus::Pending || current.revision != expected_revision {
            return Err(StoreError::Conflict(
                "plan is not pending at the expected revision".into(),
            ));
        }
        let old = BodyRef::read(&head, "pol")?;
        let new = self.store_body(tenant, policies).await?;
        let mut expr = Expr::default();
        new.write_expr(&mut expr, "pol");
        expr.set("revision", n(expected_revision + 1));
        let (st, rev) = (expr.name("status"), expr.name("revision"));
        let (pending, expected) = (
            expr.value(s(status_str(PlanStatus::Pending))),
            expr.value(n(expected_revision)),
        );
        let request = self
            .client
            .update_item()
            .table_name(self.main())
            .set_key(Some(key(plan_pk(tenant, plan_id), "HEAD")))
            .update_expression(expr.update_expression())
            .condition_expression(format!("{st} = {pending} AND {rev} = {expected}"))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew);
        match retrying(|| request.clone().send()).await {
            Ok(out) => {
                self.delete_body(tenant, &old).await;
                let head = out.attributes.ok_or_else(|| bad_item("plan head"))?;
                let mut plan = self.load_plan_without_policies(tenant, &head).await?;
                plan.anchor_policies = policies.clone();
                Ok(plan)
            }
            Err(e) => {
                self.delete_body(tenant, &new).await;
                Err(sdk_error(e))
            }
        }
    }

    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan> {
        let t = change.tenant;
        let mut expr = Expr::default();
        expr.set("status", s(status_str(change.to)));
        expr.set("revision", n(change.expected_revision + 1));
        let time = s(time_key(&change.at));
        match change.to {
            PlanStatus::Approved => {
                expr.set("approved_at", time);
                expr.set_or_remove("approved_by", change.by.clone().map(s));
            }
            PlanStatus::Rejected => {
                expr.set("rejected_at", time);
                expr.set_or_remove("rejected_by", change.by.clone().map(s));
                expr.set_or_remove("rejection_reason", change.reason.clone().map(s));
            }
            PlanStatus::Deployed => {
                expr.set("deployed_at", time);
                expr.set(TTL, ttl_av(change.at, self.retention.deployed_plan_days));
            }
            PlanStatus::Pending
            | PlanStatus::Deploying
            | PlanStatus::Superseded
            | PlanStatus::Expired => {}
        }
        let (st, rev) = (expr.name("status"), expr.name("revision"));
        let (from, expected) = (
            expr.value(s(status_str(change.from))),
            expr.value(n(change.expected_revision)),
        );
        let condition = format!("{st} = {from} AND {rev} = {expected}");
        let head_key = key(plan_pk(t, change.plan_id), "HEAD");

        if change.to.is_live() && change.from != PlanStatus::Deploying {
            let request = self
                .client
                .update_item()
                .table_name(self.main())
                .set_key(Some(head_key))
                .update_expression(expr.update_expression())
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values(ReturnValue::AllNew);
            let out = retrying(|| request.clone().send())
                .await
                .map_err(sdk_error)?;
            let head = out.attributes.ok_or_else(|| bad_item("plan head"))?;
            return self.load_plan(t, &head).await;
        }

        // Leaving the live states frees the version-pair slot, and leaving
        // `deploying` the sweep's registry entry, atomically.
        let head = self
            .plan_head(t, change.plan_id)
            .await?
            .ok_or_else(|| StoreError::Conflict("plan not found".into()))?;
        let current = plan_from_head(&head)?;
        if current.status != change.from || current.revision != change.expected_revision {
            return Err(StoreError::Conflict("plan changed concurrently".into()));
        }
        let delete = built(
            Delete::builder()
                .table_name(self.main())
                .set_key(Some(key(
                    slot_pk(
                        t,
                        current.scenario_id,
                        current.from_version,
                        current.to_version,
                    ),
                    "SLOT",
                )))
                .condition_expression("attribute_not_exists(pk) OR plan_id = :pid")
                .expression_attribute_values(":pid", s(change.plan_id.to_string()))
                .build(),
        )?;
        let mut items = vec![self.tx_update(self.main(), head_key, &expr, Some(condition))?];
        if !change.to.is_live() {
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        if change.to == PlanStatus::Deployed {
            let mut stats = Expr::default();
            stats.set(TTL, ttl_av(change.at, self.retention.deployed_plan_days));
            items.push(self.tx_update(
                self.main(),
                key(plan_pk(t, change.plan_id), "STATS"),
                &stats,
                None,
            )?);
        }
        if change.from == PlanStatus::Deploying {
            // Off the sweep's list in the same step.
            let delete = built(
                Delete::builder()
                    .table_name(self.main())
                    .set_key(Some(deploying_key(t, change.plan_id)))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.transact(items)
            .await
            .map_err(|e| e.into_store("plan changed concurrently"))?;
        if change.to == PlanStatus::Deployed {
            self.expire_plan_parts(t, change.plan_id, &head, change.at)
                .await;
        }
        let mut plan = self.load_plan(t, &head).await?;
        crate::kv::apply_transition(&mut plan, change);
        Ok(plan)
    }

    async fn activate_plan(&self, a: &PlanActivation) -> Result<MigrationPlan, ActivationError> {
        let t = a.tenant;
        let head = self
            .plan_head(t, a.plan_id)
            .await?
            .ok_or(ActivationError::PlanChanged)?;
        let mut plan = self.load_plan(t, &head).await?;
        if plan.status != PlanStatus::Approved || plan.revision != a.expected_revision {
            return Err(ActivationError::PlanChanged);
        }
        let body = self.store_body(t, &a.target).await?;

        let mut plan_expr = Expr::default();
        plan_expr.set("status", s(status_str(PlanStatus::Deploying)));
        plan_expr.set("revision", n(a.expected_revision + 1));
        let (st, rev) = (plan_expr.name("status"), plan_expr.name("revision"));
        let (approved, expected) = (
            plan_expr.value(s(status_str(PlanStatus::Approved))),
            plan_expr.value(n(a.expected_revision)),
        );
        let mut scenario_expr = Expr::default();
        scenario_expr.set("current_version", n(a.target.version));
        let (cv, from) = (
            scenario_expr.name("current_version"),
            scenario_expr.value(n(a.from_version)),
        );
        let pk = scenario_pk(t, a.scenario_id);
        let mut version = key(pk.clone(), &version_sk(a.target.version));
        version.insert("version".into(), n(a.target.version));
        body.write_into(&mut version, "body");
        let mut registry = deploying_key(t, a.plan_id);
        registry.insert("tenant_id".into(), s(t.to_string()));
        registry.insert("plan_id".into(), s(a.plan_id.to_string()));
        let items = vec![
            self.tx_update(
                self.main(),
                key(plan_pk(t, a.plan_id), "HEAD"),
                &plan_expr,
                Some(format!("{st} = {approved} AND {rev} = {expected}")),
            )?,
            self.tx_update(
                self.main(),
                key(pk, "HEAD"),
                &scenario_expr,
                Some(format!("{cv} = {from}")),
            )?,
            self.tx_put(self.main(), version, None)?,
            self.tx_put(self.main(), registry, None)?,
        ];
        if let Err(e) = self.transact(items).await {
            self.delete_body(t, &body).await;
            return Err(if e.failed_at(0) {
                ActivationError::PlanChanged
            } else if e.failed_at(1) {
                ActivationError::ScenarioMoved
            } else {
                ActivationError::Store(e.into_store("activation"))
            });
        }
        plan.status = PlanStatus::Deploying;
        plan.revision = a.expected_revision + 1;
        Ok(plan)
    }

    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        let item = self
            .get_item(self.main(), key(plan_pk(tenant, plan_id), "STATS"))
            .await?;
        let mut stats = match item {
            Some(item) => stats_from(&item)?,
            None => PlanStats::default(),
        };
        stats.last_migration_at = self.last_event_time(tenant, plan_id).await?;
        Ok(stats)
    }

    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let pk = plan_pk(tenant, plan_id);
        // The stats item alone: `get_plan_stats` also queries the events.
        let stats = self.get_item(self.main(), key(pk.clone(), "STATS")).await?;
        if stats.is_some_and(|item| item.contains_key("marking_started_at")) {
            return Ok(false);
        }
        // Each chain at most once: a second starter (a resume racing the first)
        // keeps the chains already registered, and their progress.
        let puts: Vec<_> = chains
            .iter()
            .map(|chain| {
                let mut item = key(pk.clone(), &chain_sk(chain.step_id, chain.shard));
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
                let request = self
                    .client
                    .put_item()
                    .table_name(self.main())
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)");
                async move {
                    match retrying(|| request.clone().send()).await.map_err(sdk_error) {
                        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .collect();
        stream::iter(puts)
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        // The total is what is registered, whoever registered it.
        let registered = self.list_chains(tenant, plan_id).await?.len() as u64;
        let request = self
            .client
            .update_item()
            .table_name(self.main())
            .set_key(Some(key(pk, "STATS")))
            .update_expression(
                "SET chains_total = :n, marking_started_at = :at, last_progress_at = :at",
            )
            .condition_expression("attribute_not_exists(marking_started_at)")
            .expression_attribute_values(":n", n(registered))
            .expression_attribute_values(":at", s(time_key(&at)));
        match retrying(|| request.clone().send()).await.map_err(sdk_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn step_index_shards(&self) -> u32 {
        self.step_shards
    }

    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>> {
        let query = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", s(plan_pk(tenant, plan_id)))
            .expression_attribute_values(":c", s(CHAIN_PREFIX))
            .consistent_read(true);
        self.query_all(query)
            .await?
            .iter()
            .map(chain_from)
            .collect()
    }

    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        step_id: Uuid,
        shard: u32,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let pk = plan_pk(tenant, plan_id);
        let mut chain = Expr::default();
        chain.set("updated_at", s(time_key(&at)));
        chain.add("resumptions", 1);
        let (done, updated) = (chain.name("done"), chain.name("updated_at"));
        let (no, seen) = (
            chain.value(Av::Bool(false)),
            chain.value(s(time_key(&seen_updated_at))),
        );
        let condition = format!("{done} = {no} AND {updated} = {seen}");
        let mut stats = Expr::default();
        stats.add("resumptions", 1);
        stats.set("last_progress_at", s(time_key(&at)));
        let items = vec![
            self.tx_update(
                self.main(),
                key(pk.clone(), &chain_sk(step_id, shard)),
                &chain,
                Some(condition),
            )?,
            self.tx_update(self.main(), key(pk, "STATS"), &stats, None)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_at(0) => Ok(false),
            Err(e) => Err(e.into_store("claim chain")),
        }
    }

    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let query = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(DEPLOYING_PK))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        let items = self.query_some(query, None, limit).await?;
        items
            .iter()
            .map(|item| Ok((get_uuid(item, "tenant_id")?, get_uuid(item, "plan_id")?)))
            .collect()
    }

    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        let pk = plan_pk(page.tenant, page.plan_id);
        let mut ledger = key(pk.clone(), &format!("LEDGER#{}", page.page_id));
        ledger.insert(TTL.into(), ttl_av(page.at, self.retention.ledger_days));
        let mut chain = Expr::default();
        chain.set_or_remove("cursor", page.next_cursor.clone().map(s));
        chain.set("done", Av::Bool(page.completes_chain()));
        chain.set("updated_at", s(time_key(&page.at)));
        let (done, cursor) = (chain.name("done"), chain.name("cursor"));
        let no = chain.value(Av::Bool(false));
        let at_cursor = match &page.cursor {
            Some(c) => {
                let v = chain.value(s(c.clone()));
                format!("{cursor} = {v}")
            }
            None => format!("attribute_not_exists({cursor})"),
        };
        let chain_condition = format!("attribute_exists(pk) AND {done} = {no} AND {at_cursor}");
        let mut expr = Expr::default();
        expr.add("sessions_marked", page.sessions_marked);
        expr.add("pages_recorded", 1);
        if page.completes_chain() {
            expr.add("chains_done", 1);
        }
        for (hash, count) in &page.by_anchor {
            expr.add(&format!("{ANCHOR_PREFIX}{hash}"), *count);
        }
        expr.set("last_progress_at", s(time_key(&page.at)));
        let items = vec![
            self.tx_put(self.main(), ledger, Some("attribute_not_exists(pk)"))?,
            self.tx_update(
                self.main(),
                key(pk.clone(), &chain_sk(page.chain_step, page.chain_shard)),
                &chain,
                Some(chain_condition),
            )?,
            self.tx_update(self.main(), key(pk, "STATS"), &expr, None)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_at(0) || e.failed_at(1) => Ok(false),
            Err(e) => Err(e.into_store("record page")),
        }
    }

    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        let pk = plan_pk(tenant, plan_id);
        let mut expr = Expr::default();
        expr.add("pages_failed", 1);
        let items = vec![
            self.tx_put(
                self.main(),
                key(pk.clone(), &format!("FAILED#{page_id}")),
                Some("attribute_not_exists(pk)"),
            )?,
            self.tx_update(self.main(), key(pk, "STATS"), &expr, None)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_at(0) => Ok(false),
            Err(e) => Err(e.into_store("record failed page")),
        }
    }

    async fn put_session(&self, session: &Session) -> StoreResult<()> {
        let request = self
            .client
            .put_item()
            .table_name(&self.tables.sessions)
            .set_item(Some(session_item(session, self.step_shards)?));
        retrying(|| request.clone().send())
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// Read, decide with the shared rules, then put conditioned on the revision
    /// read (or on absence): a write that lost a race is decided again on what
    /// won, so the runtime never overwrites a flag set meanwhile.
    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError> {
        let (tenant, id) = (write.session.tenant_id, write.session.session_id.as_str());
        let mut attempt = 0;
        loop {
            let stored = self.get_session(tenant, id).await?;
            let next = merge_runtime_write(stored.as_ref(), write)?;
            let mut expr = Expr::default();
            let condition = match &stored {
                None => {
                    let pk = expr.name("pk");
                    format!("attribute_not_exists({pk})")
                }
                Some(old) => revision_condition(&mut expr, old.revision),
            };
            let request = self
                .client
                .put_item()
                .table_name(&self.tables.sessions)
                .set_item(Some(session_item(&next, self.step_shards)?))
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values());
            match retrying(|| request.clone().send()).await.map_err(sdk_error) {
                Ok(_) => {
                    return Ok(WrittenSession {
                        session: next,
                        created: stored.is_none(),
                    });
                }
                Err(StoreError::Conflict(_)) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>> {
        let item = self
            .get_item(
                &self.tables.sessions,
                HashMap::from([("pk".to_owned(), s(session_pk(tenant, session_id)))]),
            )
            .await?;
        item.as_ref().map(session_from).transpose()
    }

    async fn sessions_at_step(&self, q: &StepQuery) -> StoreResult<SessionPage> {
        const KEY: [&str; 3] = ["pk", "step_key", "session_id"];
        let query_id = step_query_id(q);
        let sk = step_key(q.tenant, q.scenario_id, q.version, q.step_id, q.shard);
        let start = q
            .cursor
            .as_deref()
            .map(|token| token_item(token, &query_id, &KEY, |k| k.get("step_key") == Some(&sk)))
            .transpose()?;
        let query = self
            .client
            .query()
            .table_name(&self.tables.sessions)
            .index_name(STEPS_INDEX)
            .key_condition_expression("step_key = :k")
            .expression_attribute_values(":k", s(sk.clone()))
            .limit(i32::try_from(q.limit.saturating_add(1)).unwrap_or(i32::MAX));
        let items = self
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

    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64> {
        // Every shard of the step.
        let mut total = 0;
        for shard in 0..self.step_shards {
            let query = self
                .client
                .query()
                .table_name(&self.tables.sessions)
                .index_name(STEPS_INDEX)
                .key_condition_expression("step_key = :k")
                .expression_attribute_values(
                    ":k",
                    s(step_key(tenant, scenario_id, version, step_id, shard)),
                );
            total += self.count_all(query).await?;
        }
        Ok(total)
    }

    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
    ) -> StoreResult<bool> {
        let request = self
            .client
            .update_item()
            .table_name(&self.tables.sessions)
            .key("pk", s(session_pk(tenant, session_id)))
            .update_expression(
                "SET pending_migration = :pm, revision = if_not_exists(revision, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND active_scenario_id = :sid \
                 AND active_scenario_version = :v AND active_step_id = :step \
                 AND attribute_not_exists(pending_migration) \
                 AND attribute_not_exists(pinned_version)",
            )
            .expression_attribute_values(":pm", pending_av(pending))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":sid", s(expected.scenario_id.to_string()))
            .expression_attribute_values(":v", n(expected.version))
            .expression_attribute_values(":step", s(expected.step_id.to_string()));
        match retrying(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(e) => match sdk_error(e) {
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Built up front: a mapping closure returning borrowed futures defeats the
        // compiler's `Send` inference for this future.
        let writes: Vec<_> = marks
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let write = self.mark_session(tenant, &m.session_id, &m.expected, &m.pending);
                async move { write.await.map(|marked| (i, marked)) }
            })
            .collect();
        // Unordered: one slow write must not hold the other slots idle (`buffered`
        // starts no new write until the oldest one finishes); results are put
        // back in input order.
        let done: Vec<(usize, bool)> = stream::iter(writes)
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        let mut marked = vec![false; marks.len()];
        for (i, m) in done {
            marked[i] = m;
        }
        Ok(marked)
    }

    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        let t = change.tenant;
        let pk = session_pk(t, &change.session_id);
        let Some(item) = self
            .get_item(
                &self.tables.sessions,
                HashMap::from([("pk".to_owned(), s(pk.clone()))]),
            )
            .await?
        else {
            return Ok(false);
        };
        let current = session_from(&item)?;
        if current.revision != change.expected_revision
            || !session_matches(&current, &change.expect)
        {
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
                    crate::step_shard(&change.session_id, self.step_shards),
                )),
            );
        }
        if let Some(pin) = change.pin_version {
            expr.set("pinned_version", n(pin));
        }
        if change.clear_flag {
            expr.set_or_remove("pending_migration", None);
        }
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
        let mut items = vec![self.tx_update(
            &self.tables.sessions,
            HashMap::from([("pk".to_owned(), s(pk))]),
            &expr,
            Some(condition),
        )?];
        if let Some(applied) = &change.applied {
            items.extend(self.applied_items(t, &applied.event, applied.was_flagged)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_at(0) => Ok(false),
            Err(e) => Err(e.into_store("apply session change")),
        }
    }

    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<crate::StepCounts> {
        if let Some(catch_up) = &self.counts_catch_up
            && let Err(e) = catch_up.catch_up().await
        {
            // The counters still answer, as fresh as their `counted_at` says.
            tracing::warn!(error = %e, "could not read the sessions stream before counting");
        }
        crate::dynamo_counts::read_counts(&self.client, self.main(), tenant, scenario_id, version)
            .await
    }

    async fn put_recount(&self, recount: &crate::Recount) -> StoreResult<()> {
        crate::dynamo_counts::put_recount(&self.client, self.main(), recount).await
    }

    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<crate::Recount>> {
        crate::dynamo_counts::get_recount(&self.client, self.main(), tenant, scenario_id, version)
            .await
    }

    async fn list_events(&self, q: &EventQuery) -> StoreResult<EventPage> {
        const KEY: [&str; 2] = ["pk", "sk"];
        let query_id = event_query_id(q);
        let pk = events_pk(q.tenant, q.plan_id);
        let start = q
            .next_token
            .as_deref()
            .map(|token| token_item(token, &query_id, &KEY, |k| k.get("pk") == Some(&pk)))
            .transpose()?;
        let query = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .consistent_read(true)
            .limit(i32::try_from(q.limit.saturating_add(1)).unwrap_or(i32::MAX));
        let items = self
            .query_some(query, start, q.limit.saturating_add(1))
            .await?;
        let (events, next_token) = page_of(items, q.limit, &KEY, &query_id, |item| {
            from_json::<AuditEvent>(get_s(item, "body")?.as_bytes())
        })?;
        Ok(EventPage { events, next_token })
    }
}

impl DynamoStore {
    async fn load_plan_without_policies(
        &self,
        tenant: Uuid,
        head: &Item,
    ) -> StoreResult<MigrationPlan> {
        let mut plan = plan_from_head(head)?;
        let body: PlanBody = self
            .load_body(tenant, &BodyRef::read(head, "body")?)
            .await?;
        plan.transformation_map = body.transformation_map;
        plan.summary = body.summary;
        Ok(plan)
    }

    /// The audit event Put and the stats ADD of one applied migration.
    fn applied_items(
        &self,
        t: Uuid,
        event: &AuditEvent,
        was_flagged: bool,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let body = String::from_utf8(to_json(event)?).map_err(|_| bad_item("event"))?;
        let mut item = key(
            events_pk(t, event.plan_id),
            &format!("{}#{}", time_key(&event.at), event.event_id),
        );
        item.insert("at".into(), s(time_key(&event.at)));
        item.insert("body".into(), s(body));
        item.insert(TTL.into(), ttl_av(event.at, self.retention.event_days));
        let mut expr = Expr::default();
        expr.add("migrations_applied", 1);
        if was_flagged {
            expr.add("flagged_applied", 1);
        }
        if let Some(scenario) = event.migration_scenario {
            expr.add(scenario_counter(scenario), 1);
        }
        if event.blocked_by_checkpoint {
            expr.add("checkpoint_blocks", 1);
        }
        Ok(vec![
            self.tx_put(self.main(), item, Some("attribute_not_exists(pk)"))?,
            self.tx_update(
                self.main(),
                key(plan_pk(t, event.plan_id), "STATS"),
                &expr,
                None,
            )?,
        ])
    }
}

fn scenario_counter(scenario: MigrationScenario) -> &'static str {
    scenario.as_str()
}

// ---------------------------------------------------------------------------
// tables
// ---------------------------------------------------------------------------

fn attr_def(name: &str) -> StoreResult<AttributeDefinition> {
    built(
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build(),
    )
}

fn key_elem(name: &str, kind: KeyType) -> StoreResult<KeySchemaElement> {
    built(
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build(),
    )
}

/// One table with one global secondary index, as `create_tables` makes them.
struct TableSpec<'a> {
    name: &'a str,
    key: &'a [(&'a str, KeyType)],
    index: &'a str,
    index_key: &'a [(&'a str, KeyType)],
    /// `None`: project every attribute; `Some`: only these non-key attributes.
    projected: Option<&'a [&'a str]>,
}

async fn create_table(client: &Client, spec: &TableSpec<'_>) -> StoreResult<()> {
    let schema = |keys: &[(&str, KeyType)]| {
        keys.iter()
            .map(|(name, kind)| key_elem(name, kind.clone()))
            .collect::<StoreResult<Vec<_>>>()
    };
    let projection = match spec.projected {
        None => Projection::builder().projection_type(ProjectionType::All),
        Some(fields) => Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(fields.iter().map(|f| (*f).to_owned()).collect())),
    };
    let index = built(
        GlobalSecondaryIndex::builder()
            .index_name(spec.index)
            .set_key_schema(Some(schema(spec.index_key)?))
            .projection(projection.build())
            .build(),
    )?;
    let definitions = spec
        .key
        .iter()
        .chain(spec.index_key)
        .map(|(name, _)| attr_def(name))
        .collect::<StoreResult<Vec<_>>>()?;
    let result = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(schema(spec.key)?))
        .global_secondary_indexes(index)
        .send()
        .await;
    create_if_missing(result)
}

/// Create both tables with their indexes (on-demand billing) unless they exist,
/// then wait until they and their indexes are ACTIVE. Idempotent.
pub async fn create_tables(client: &Client, tables: &TableNames) -> StoreResult<()> {
    use KeyType::{Hash, Range};
    create_table(
        client,
        &TableSpec {
            name: &tables.main,
            key: &[("pk", Hash), ("sk", Range)],
            index: PLANS_INDEX,
            index_key: &[("gsi1pk", Hash), ("gsi1sk", Range)],
            projected: Some(&SUMMARY_FIELDS),
        },
    )
    .await?;
    create_table(
        client,
        &TableSpec {
            name: &tables.sessions,
            key: &[("pk", Hash)],
            index: STEPS_INDEX,
            index_key: &[("step_key", Hash), ("session_id", Range)],
            projected: Some(&STEP_INDEX_FIELDS),
        },
    )
    .await?;
    for table in [&tables.main, &tables.sessions] {
        wait_active(client, table).await?;
    }
    // The session counts are fed by the sessions table's stream (crate::dynamo_counts).
    crate::dynamo_counts::ensure_stream(client, &tables.sessions).await?;
    // Retention: deployed plans, ledger items and audit events carry `ttl`.
    let ttl = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
        .attribute_name(TTL)
        .enabled(true)
        .build();
    match client
        .update_time_to_live()
        .table_name(&tables.main)
        .set_time_to_live_specification(built(ttl).ok())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Already enabled (a second `--init`).
        Err(e) if e.code() == Some("ValidationException") => Ok(()),
        Err(e) => Err(sdk_error(e)),
    }
}

fn create_if_missing<T, E, R>(result: Result<T, SdkError<E, R>>) -> StoreResult<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(sdk_error(e)),
    }
}

async fn wait_active(client: &Client, table: &str) -> StoreResult<()> {
    for _ in 0..600 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(sdk_error)?;
        if let Some(desc) = out.table {
            let indexes_active = desc
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if desc.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(StoreError::Unexpected(format!(
        "table {table} did not become ACTIVE"
    )))
}

// ---------------------------------------------------------------------------
// step-key backfill
// ---------------------------------------------------------------------------

/// What [`backfill_step_keys`] did to one page of the sessions table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackfillPage {
    /// Session items read.
    pub scanned: u64,
    /// Items whose `step_key` was rewritten to the sharded form.
    pub rewritten: u64,
    /// Items already carrying the right key.
    pub unchanged: u64,
    /// Items that moved (or whose key changed) between the read and the
    /// conditional write: whoever wrote them set the key; a later run catches
    /// any an old runtime wrote in the old form.
    pub raced: u64,
    /// Items without a position (`active_scenario_id`/`_version`/`_step_id`): not sessions of ours.
    pub skipped: u64,
}

impl std::ops::AddAssign for BackfillPage {
    fn add_assign(&mut self, other: Self) {
        self.scanned += other.scanned;
        self.rewritten += other.rewritten;
        self.unchanged += other.unchanged;
        self.raced += other.raced;
        self.skipped += other.skipped;
    }
}

/// One page of the one-off migration to the sharded step index: read up to
/// `page_size` session items from `resume_after` (a `pk` this function
/// returned, or the table's start) and rewrite each `step_key` that is not
/// `{t}#{scenario}#{version}#{step}#{shard}` for `shards` shards — items from
/// before sharding (no `#{shard}`), or from another shard count — with an
/// `UpdateItem` conditioned on the key and the position read, `concurrency`
/// in flight. Returns what it did and where to resume (`None`: the table is done).
///
/// It is the one `Scan` of the product: an operator's migration tool
/// (`migrations backfill-step-keys`), never on a request path. Safe to run
/// while runtimes write, to interrupt, and to run again.
pub async fn backfill_step_keys(
    client: &Client,
    tables: &TableNames,
    shards: u32,
    resume_after: Option<String>,
    page_size: usize,
    concurrency: usize,
) -> StoreResult<(BackfillPage, Option<String>)> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let table = tables.sessions.as_str();
    let scan = client
        .scan()
        .table_name(table)
        .projection_expression(
            "pk, session_id, step_key, active_scenario_id, active_scenario_version, active_step_id",
        )
        .limit(i32::try_from(page_size.max(1)).unwrap_or(i32::MAX))
        .consistent_read(true)
        .set_exclusive_start_key(resume_after.map(|pk| HashMap::from([("pk".to_owned(), s(pk))])));
    let out = retrying(|| scan.clone().send()).await.map_err(sdk_error)?;
    let next = match out.last_evaluated_key() {
        Some(key) => Some(get_s(key, "pk")?.to_owned()),
        None => None,
    };
    let mut page = BackfillPage::default();
    let mut writes = Vec::new();
    for item in out.items() {
        page.scanned += 1;
        let Some(wanted) = sharded_step_key(item, shards) else {
            page.skipped += 1;
            continue;
        };
        let current = opt_s(item, "step_key")?;
        if current == Some(wanted.as_str()) {
            page.unchanged += 1;
            continue;
        }
        let mut expr = Expr::default();
        expr.set("step_key", s(wanted));
        let key_now = match current {
            Some(old) => {
                let (k, v) = (expr.name("step_key"), expr.value(s(old)));
                format!("{k} = {v}")
            }
            None => format!("attribute_not_exists({})", expr.name("step_key")),
        };
        let mut condition = key_now;
        for attr in [
            "active_scenario_id",
            "active_scenario_version",
            "active_step_id",
        ] {
            let value = item.get(attr).cloned().ok_or_else(|| bad_item(attr))?;
            let (k, v) = (expr.name(attr), expr.value(value));
            condition.push_str(&format!(" AND {k} = {v}"));
        }
        let pk = item.get("pk").cloned().ok_or_else(|| bad_item("pk"))?;
        let request = client
            .update_item()
            .table_name(table)
            .key("pk", pk)
            .update_expression(expr.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values());
        writes.push(async move {
            match retrying(|| request.clone().send()).await.map_err(sdk_error) {
                Ok(_) => Ok(true),
                Err(StoreError::Conflict(_)) => Ok(false),
                Err(e) => Err(e),
            }
        });
    }
    let results: Vec<bool> = stream::iter(writes)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    for written in results {
        if written {
            page.rewritten += 1;
        } else {
            page.raced += 1;
        }
    }
    Ok((page, next))
}

/// The `step_key` a session item should carry with `shards` shards; `None`
/// for an item without a position.
fn sharded_step_key(item: &Item, shards: u32) -> Option<String> {
    let pk = opt_s(item, "pk").ok()??;
    let (tenant, from_pk) = pk.split_once('#')?;
    let tenant = Uuid::parse_str(tenant).ok()?;
    let session_id = opt_s(item, "session_id").ok()?.unwrap_or(from_pk);
    let scenario = Uuid::parse_str(opt_s(item, "active_scenario_id").ok()??).ok()?;
    let version: i64 = opt_n(item, "active_scenario_version").ok()??;
    let step = Uuid::parse_str(opt_s(item, "active_step_id").ok()??).ok()?;
    Some(step_key(
        tenant,
        scenario,
        version,
        step,
        crate::step_shard(session_id, shards),
    ))
}
