//! Requests and their failures: SDK errors mapped to [`StoreError`], retries
//! of requests that collide with a transaction, paging reads, transactions.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, Select, TransactWriteItem, Update, WriteRequest};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

use super::expr::Expr;
use super::{DynamoStore, Item};
use crate::{StoreError, StoreResult};

/// Retries of a request that lost a race ([`retry_backoff`]).
pub const CONFLICT_RETRIES: u32 = 12;

pub(super) fn classify(code: Option<&str>, message: String) -> StoreError {
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

pub(super) fn bad_item(what: &str) -> StoreError {
    StoreError::Unexpected(format!("malformed item: {what}"))
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

/// Why a transaction did not commit.
pub(super) enum TxError {
    /// Cancelled because conditions failed: per-item cancellation codes.
    Failed(Vec<String>),
    Store(StoreError),
}

impl TxError {
    /// Whether the condition of item `i` of the transaction failed.
    pub(super) fn failed_at(&self, i: usize) -> bool {
        matches!(self, TxError::Failed(codes) if codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed"))
    }

    pub(super) fn into_store(self, what: &str) -> StoreError {
        match self {
            TxError::Failed(codes) => {
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
    error: TxError,
}

fn tx_failure<R>(err: SdkError<TransactWriteItemsError, R>) -> TxFailure
where
    R: std::fmt::Debug,
{
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
        return TxFailure {
            retry: err.code() == Some("TransactionConflictException"),
            error: TxError::Store(sdk_error(err)),
        };
    };
    if codes.iter().any(|c| c == "ConditionalCheckFailed") {
        return TxFailure {
            retry: false,
            error: TxError::Failed(codes),
        };
    }
    if codes.iter().any(|c| c == "TransactionConflict") {
        return TxFailure {
            retry: true,
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
            .retry(retry_backoff())
            .when(|failed: &TxFailure| failed.retry)
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
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
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
