//! Requests and their failures: SDK errors mapped to [`StoreError`], retries
//! of requests that collide with a transaction, paging reads, transactions.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, Select, TransactWriteItem, Update,
    WriteRequest,
};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

use super::DynamoStore;
use super::attr::{Item, has_s};
use super::expr::Expr;
use crate::{StoreError, StoreResult};

/// Retries of a request that lost a race ([`retry_backoff`]).
pub const CONFLICT_RETRIES: u32 = 12;

/// The error codes with which DynamoDB pushes back on load.
const THROTTLING_CODES: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

pub(super) fn classify(code: Option<&str>, message: String) -> StoreError {
    match code {
        Some("ConditionalCheckFailedException") => StoreError::Conflict(message),
        Some(code) if THROTTLING_CODES.contains(&code) => StoreError::Throttled(message),
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

/// How requests that lost a race are retried (a collision with a transaction,
/// a condition that moved, unprocessed batch items): up to
/// 12 more attempts ([`CONFLICT_RETRIES`]), the k-th after 3 ms × 2^(k-1) (at most
/// 110 ms) plus a random jitter of up to as much again, so that writers that
/// collided do not collide again in step. On average about the waits of the
/// hand-written backoff this replaced (uniform up to 5 ms × 2^k, at most 320 ms).
pub fn retry_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(3))
        .with_max_delay(Duration::from_millis(110))
        .with_max_times(CONFLICT_RETRIES as usize)
        .with_jitter()
}

/// The waits of one retried operation ([`retry_backoff`]); `None` once the
/// retries are used up.
pub(crate) fn retry_delays() -> ExponentialBackoff {
    retry_backoff().build()
}

/// Run a single-item request, retrying while it collides with a transaction.
pub(super) async fn retrying<T, E, R, Fut>(op: impl FnMut() -> Fut) -> Result<T, SdkError<E, R>>
where
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    op.retry(retry_backoff())
        .when(|e: &SdkError<E, R>| e.code() == Some("TransactionConflictException"))
        .await
}

/// The attribute a conditional write stamps with its own random id, so that a
/// retry of it can tell its own earlier success from someone else's write.
///
/// Why: when DynamoDB applied a write but the answer was lost on the way back,
/// the SDK (or our own loop, or a redelivered message) sends it again, and the
/// retry fails the very condition the first attempt made false. With
/// `ReturnValuesOnConditionCheckFailure = ALL_OLD` the failure carries the
/// item as it stands; if it carries this write's id, the write is ours and
/// succeeded. No extra read, and exact: ids are random per logical write.
pub(super) const WRITE_ID: &str = "write_id";

/// A fresh id for one logical conditional write ([`WRITE_ID`]).
pub(super) fn new_write_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The write id a reconcile stamps on a session, apart from [`WRITE_ID`]: the
/// runtime's `PUT` stamps that one, and a reconcile landing between a `PUT`
/// whose answer was lost and its retry must not erase it, or the retry would
/// take its own applied write for someone else's and answer 412.
pub(super) const RECONCILE_WRITE_ID: &str = "reconcile_write_id";

/// Whether `item` (what a failed condition found) was written by the write
/// `write_id` (ids are random per write, so either attribute is exact).
fn written_by(item: &Item, write_id: &str) -> bool {
    has_s(item, WRITE_ID, write_id) || has_s(item, RECONCILE_WRITE_ID, write_id)
}

/// The item a single-item conditional write found when its condition failed
/// (sent with `ReturnValuesOnConditionCheckFailure = ALL_OLD`).
pub(super) trait ConditionFailure {
    fn found_item(&self) -> Option<&Item>;
}

impl ConditionFailure for UpdateItemError {
    fn found_item(&self) -> Option<&Item> {
        match self {
            UpdateItemError::ConditionalCheckFailedException(e) => e.item(),
            _ => None,
        }
    }
}

impl ConditionFailure for PutItemError {
    fn found_item(&self) -> Option<&Item> {
        match self {
            PutItemError::ConditionalCheckFailedException(e) => e.item(),
            _ => None,
        }
    }
}

/// The item a failed condition found, if the error is a condition failure.
pub(super) fn found_item<E: ConditionFailure, R>(err: &SdkError<E, R>) -> Option<&Item> {
    err.as_service_error()
        .and_then(ConditionFailure::found_item)
}

/// The item the failed condition found when it is the write `write_id`'s own:
/// an earlier attempt of this very write, applied with its answer lost.
pub(super) fn own_write<'e, E: ConditionFailure, R>(
    err: &'e SdkError<E, R>,
    write_id: &str,
) -> Option<&'e Item> {
    found_item(err).filter(|item| written_by(item, write_id))
}

/// Every conditional single-item write asks for the item it found on failure.
pub(super) const ALL_OLD_ON_FAILURE: ReturnValuesOnConditionCheckFailure =
    ReturnValuesOnConditionCheckFailure::AllOld;

/// One item of a cancelled transaction: its cancellation code, and the item
/// its condition found (conditions are sent with `ALL_OLD` on failure).
pub(super) struct Cancelled {
    code: String,
    item: Option<Item>,
}

/// Whether a request failed on the way rather than on its merits: no answer
/// (connection, timeout), throttled, or a server error. Such a write may or may
/// not have been applied.
pub(super) fn transient<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) | SdkError::TimeoutError(_) => {
            true
        }
        SdkError::ServiceError(_) => err.code().is_some_and(|code| {
            THROTTLING_CODES.contains(&code)
                || matches!(code, "InternalServerError" | "ServiceUnavailable")
        }),
        _ => false,
    }
}

/// How a write that recognises its own success ([`WRITE_ID`]) is retried once
/// the SDK's own attempts are used up: 8 more rounds, 50 ms doubling to 2 s, with jitter.
pub fn same_write_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(8)
        .with_jitter()
}

/// Run a single-item write that recognises its own earlier success (it
/// carries a write id, checked on condition failure), retrying while it
/// collides with a transaction and — with the same id — while it fails on
/// the way. Sending it again is safe precisely because a replay of an applied
/// write is recognised, so one lost answer does not fail the caller's larger
/// operation (a marking page, a runtime write).
pub(super) async fn retrying_same_write<T, E, R, Fut>(
    op: impl FnMut() -> Fut,
) -> Result<T, SdkError<E, R>>
where
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    op.retry(same_write_backoff())
        .when(|e: &SdkError<E, R>| transient(e) || e.code() == Some("TransactionConflictException"))
        .await
}

/// Why a transaction did not commit.
pub(super) enum TxError {
    /// Cancelled because conditions failed: per-item reasons.
    Failed(Vec<Cancelled>),
    Store(StoreError),
}

impl TxError {
    /// Whether the condition of item `i` of the transaction failed.
    pub(super) fn failed_at(&self, i: usize) -> bool {
        matches!(self, TxError::Failed(reasons) if reasons.get(i).is_some_and(|r| r.code == "ConditionalCheckFailed"))
    }

    /// The item the failed condition of item `i` found.
    pub(super) fn found_at(&self, i: usize) -> Option<&Item> {
        match self {
            TxError::Failed(reasons) => reasons.get(i).and_then(|r| r.item.as_ref()),
            TxError::Store(_) => None,
        }
    }

    /// Whether the condition of item `i` failed on what the write `write_id`
    /// itself wrote: the transaction committed on an earlier attempt whose
    /// answer was lost (transactions are all-or-nothing, so one item of ours
    /// means all of them).
    pub(super) fn own_write_at(&self, i: usize, write_id: &str) -> bool {
        self.failed_at(i)
            && self
                .found_at(i)
                .is_some_and(|item| written_by(item, write_id))
    }

    /// Whether DynamoDB answered that the transaction was cancelled, so that
    /// surely nothing of it was written (any other error may follow a commit
    /// whose answer was lost).
    pub(super) fn cancelled(&self) -> bool {
        matches!(self, TxError::Failed(_))
    }

    pub(super) fn into_store(self, what: &str) -> StoreError {
        match self {
            TxError::Failed(reasons) => {
                let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
                StoreError::Conflict(format!("{what}: condition failed ({})", codes.join(",")))
            }
            TxError::Store(e) => e,
        }
    }
}

/// One failed attempt of a transaction: whether to try again, and what it
/// failed with (returned once the retries are used up).
pub(super) struct TxFailure {
    retry: bool,
    /// Failed on the way ([`transient`]): it may have committed.
    transient: bool,
    error: TxError,
}

fn tx_failure<R>(err: SdkError<TransactWriteItemsError, R>) -> TxFailure
where
    R: std::fmt::Debug,
{
    let reasons: Option<Vec<Cancelled>> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| Cancelled {
                    code: r.code().unwrap_or("None").to_owned(),
                    item: r.item().cloned(),
                })
                .collect(),
        ),
        _ => None,
    };
    let Some(reasons) = reasons else {
        return TxFailure {
            retry: err.code() == Some("TransactionConflictException"),
            transient: transient(&err),
            error: TxError::Store(sdk_error(err)),
        };
    };
    if reasons.iter().any(|r| r.code == "ConditionalCheckFailed") {
        return TxFailure {
            retry: false,
            transient: false,
            error: TxError::Failed(reasons),
        };
    }
    let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
    if codes.contains(&"TransactionConflict") {
        return TxFailure {
            retry: true,
            transient: false,
            error: TxError::Store(StoreError::Conflict(
                "transaction conflict persisted".into(),
            )),
        };
    }
    let message = format!("transaction cancelled: {}", codes.join(","));
    let throttled = codes
        .iter()
        .any(|c| c.contains("Throughput") || c.contains("Throttl"));
    TxFailure {
        retry: false,
        transient: false,
        error: TxError::Store(if throttled {
            StoreError::Throttled(message)
        } else {
            StoreError::Unexpected(message)
        }),
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl DynamoStore {
    pub(super) fn main(&self) -> &str {
        &self.tables.main
    }

    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut delays = retry_delays();
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
                    match delays.next() {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => {
                            return Err(StoreError::Throttled("unprocessed batch items".into()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// All items of a query, following `LastEvaluatedKey`.
    pub(super) async fn query_all(
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
    pub(super) async fn query_some(
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
    pub(super) async fn count_all(
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

    pub(super) async fn get_item(&self, table: &str, key: Item) -> StoreResult<Option<Item>> {
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

    /// Run a transaction, retrying while it collides with another one.
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        self.transact_retrying(items, retry_backoff(), false).await
    }

    /// [`Self::transact`] for a transaction that recognises its own commit (an
    /// item of it carries a [`WRITE_ID`] and a condition its replay would fail):
    /// also retried, as it is, while it fails on the way.
    pub(super) async fn transact_same_write(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), TxError> {
        self.transact_retrying(items, same_write_backoff(), true)
            .await
    }

    async fn transact_retrying(
        &self,
        items: Vec<TransactWriteItem>,
        backoff: ExponentialBuilder,
        on_the_way_too: bool,
    ) -> Result<(), TxError> {
        let (client, items) = (&self.client, &items);
        let attempt = move || async move {
            client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(tx_failure)
        };
        attempt
            .retry(backoff)
            .when(|failed: &TxFailure| failed.retry || (on_the_way_too && failed.transient))
            .await
            .map_err(|failed| failed.error)
    }

    pub(super) fn tx_put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let put = built(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_return_values_on_condition_check_failure(condition.map(|_| ALL_OLD_ON_FAILURE))
                .set_condition_expression(condition.map(str::to_owned))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn tx_update(
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
                .set_return_values_on_condition_check_failure(
                    condition.as_ref().map(|_| ALL_OLD_ON_FAILURE),
                )
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A transaction item that writes nothing and holds only if `condition`
    /// holds on the item at `key` (its names and values from `expr`).
    pub(super) fn tx_check(
        &self,
        table: &str,
        key: Item,
        expr: &Expr,
        condition: String,
    ) -> StoreResult<TransactWriteItem> {
        let check = built(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build(),
        )?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_retries_twelve_times_within_its_bounds() {
        let delays: Vec<Duration> = retry_delays().collect();
        assert_eq!(delays.len(), CONFLICT_RETRIES as usize);
        for (k, delay) in delays.iter().enumerate() {
            let base = Duration::from_millis((3u64 << k).min(110));
            assert!(*delay >= base && *delay <= base * 2, "retry {k}: {delay:?}");
        }
    }
}
