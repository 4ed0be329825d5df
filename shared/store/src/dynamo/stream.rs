//! Reading the sessions table's stream with the DynamoDB Streams API, for
//! `migrations serve --store dynamodb` (on AWS the `count-sessions` Lambda gets
//! the same records from its event source mapping). Both apply them with
//! [`CountsApplier`], so they count the same, exactly once.
//!
//! Each pass lists the stream's shards, and reads each one from its checkpoint
//! (or from its oldest record, `TRIM_HORIZON`, when it has none) up to where it
//! currently ends. A child shard is read only once its parent is finished
//! (closed and read to its end), as the stream's ordering requires.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use chrono::{DateTime, Utc};

use super::counts::{Applied, CatchUp, CountsApplier, ensure_stream};
use crate::counts::{ChangeRecord, CountKey, FlagKey, SessionImage};
use crate::{StoreError, StoreResult, TableNames};

fn streams_error<E, R>(err: aws_sdk_dynamodbstreams::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodbstreams::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err).to_string(),
    };
    match err.code() {
        Some("LimitExceededException" | "ThrottlingException") => StoreError::Throttled(message),
        _ => StoreError::Unexpected(message),
    }
}

impl SessionImage for HashMap<String, AttributeValue> {
    fn text(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            AttributeValue::S(v) | AttributeValue::N(v) => Some(v.as_str()),
            _ => None,
        }
    }

    fn text_in(&self, map: &str, name: &str) -> Option<&str> {
        match self.get(map)? {
            AttributeValue::M(inner) => inner.text(name),
            _ => None,
        }
    }
}

/// A Streams API record as a [`ChangeRecord`] (`None` without a sequence number).
pub fn change_record(record: &Record) -> Option<ChangeRecord> {
    let change = record.dynamodb()?;
    let at = change
        .approximate_creation_date_time()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now);
    Some(ChangeRecord {
        sequence_number: change.sequence_number()?.to_owned(),
        at,
        old: change.old_image.as_ref().and_then(CountKey::of_image),
        new: change.new_image.as_ref().and_then(CountKey::of_image),
        old_flag: change.old_image.as_ref().and_then(FlagKey::of_image),
        new_flag: change.new_image.as_ref().and_then(FlagKey::of_image),
    })
}

/// A Streams client from the SDK configuration. The SDK reads
/// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`; without it, an `AWS_ENDPOINT_URL_DYNAMODB`
/// override is used for Streams too (DynamoDB Local serves both on one endpoint).
pub fn streams_client(sdk: &aws_config::SdkConfig) -> StreamsClient {
    let mut config = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_none()
        && let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
    {
        config = config.endpoint_url(endpoint);
    }
    StreamsClient::from_conf(config.build())
}

/// Polls the sessions table's stream and applies it to the session counts.
pub struct StreamPoller {
    dynamo: aws_sdk_dynamodb::Client,
    streams: StreamsClient,
    sessions_table: String,
    applier: CountsApplier,
    /// Closed shards read to their end.
    finished: HashSet<String>,
    /// The stream's ARN, found (and the stream turned on if needed) by the
    /// first pass: a pass runs every 500 ms and before every counts read, and
    /// the ARN only changes if the stream is turned off and on again — then
    /// reading it fails, and the next pass looks it up afresh.
    stream_arn: Option<String>,
}

impl StreamPoller {
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        streams: StreamsClient,
        tables: &TableNames,
    ) -> Self {
        StreamPoller {
            applier: CountsApplier::new(dynamo.clone(), tables.main.clone()),
            dynamo,
            streams,
            sessions_table: tables.sessions.clone(),
            finished: HashSet::new(),
            stream_arn: None,
        }
    }

    /// One pass over every shard; returns what was applied.
    pub async fn poll_once(&mut self) -> StoreResult<Applied> {
        let arn = match self.stream_arn.take() {
            Some(arn) => arn,
            None => ensure_stream(&self.dynamo, &self.sessions_table).await?,
        };
        let applied = self.poll_stream(&arn).await;
        // Kept only while the stream answers (see `stream_arn`).
        if applied.is_ok() {
            self.stream_arn = Some(arn);
        }
        applied
    }

    async fn poll_stream(&mut self, arn: &str) -> StoreResult<Applied> {
        let mut shards = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(streams_error)?;
            let Some(description) = out.stream_description else {
                break;
            };
            shards.extend(description.shards.unwrap_or_default());
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        let known: HashSet<String> = shards
            .iter()
            .filter_map(|s| s.shard_id().map(str::to_owned))
            .collect();
        let mut total = Applied::default();
        // A pass reads what was written before it began, and a little more (the
        // records' times are the server's clock, rounded down to the second):
        // under a steady flow of runtime writes a pass that read to the stream's
        // moving end would never finish, and a counts read waiting on it (a
        // deploy's) would wait for ever.
        let until = Utc::now() + chrono::Duration::seconds(2);
        // Parents first: a pass reads every shard whose parent is finished (or gone).
        let mut progressed = true;
        while progressed {
            progressed = false;
            for shard in &shards {
                let Some(id) = shard.shard_id() else { continue };
                if self.finished.contains(id) {
                    continue;
                }
                if let Some(parent) = shard.parent_shard_id()
                    && known.contains(parent)
                    && !self.finished.contains(parent)
                {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                let (applied, finished) = self.read_shard(arn, id, until).await?;
                total += applied;
                if closed && finished {
                    self.finished.insert(id.to_owned());
                    progressed = true;
                }
            }
        }
        Ok(total)
    }

    /// Read one shard from its checkpoint to where it currently ends; `true`
    /// when the shard is closed and read to its end.
    async fn read_shard(
        &mut self,
        arn: &str,
        shard: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<(Applied, bool)> {
        let mut total = Applied::default();
        let mut iterator = Some(self.iterator_from_checkpoint(arn, shard).await?);
        while let Some(it) = iterator.take() {
            let out = match self
                .streams
                .get_records()
                .shard_iterator(&it)
                .limit(1000)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
                    if matches!(e.code(), Some("ExpiredIteratorException")) {
                        // Start again from the checkpoint next pass.
                        return Ok((total, false));
                    }
                    return Err(streams_error(e));
                }
            };
            let mut records: Vec<ChangeRecord> =
                out.records().iter().filter_map(change_record).collect();
            let newer = records.iter().position(|r| r.at > until);
            if let Some(first_newer) = newer {
                records.truncate(first_newer);
            }
            if !records.is_empty() {
                total += self.applier.apply(shard, &records).await?;
            }
            if newer.is_some() {
                // The rest is the next pass's (from the checkpoint just written).
                return Ok((total, false));
            }
            match out.next_shard_iterator {
                // Caught up for now: the next pass starts again from the checkpoint.
                Some(_) if out.records().is_empty() => return Ok((total, false)),
                Some(next) => iterator = Some(next),
                None => return Ok((total, true)),
            }
        }
        Ok((total, false))
    }

    async fn iterator_from_checkpoint(&self, arn: &str, shard: &str) -> StoreResult<String> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard);
        let request = match self.applier.checkpoint(shard).await? {
            Some(c) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(c.sequence_number),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = request.send().await.map_err(streams_error)?;
        out.shard_iterator
            .ok_or_else(|| StoreError::Unexpected(format!("no iterator for shard {shard}")))
    }
}

/// A [`StreamPoller`] shared between a background loop and the store's
/// counts reads ([`crate::DynamoStore::with_counts_catch_up`]); one pass at a time.
pub struct SharedPoller(tokio::sync::Mutex<StreamPoller>);

impl SharedPoller {
    pub fn new(poller: StreamPoller) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SharedPoller(tokio::sync::Mutex::new(poller)))
    }

    /// Poll every `every` until the process ends; errors are logged and retried.
    pub async fn run(self: std::sync::Arc<Self>, every: std::time::Duration) {
        loop {
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "reading the sessions stream failed; retrying");
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[async_trait::async_trait]
impl CatchUp for SharedPoller {
    async fn catch_up(&self) -> StoreResult<()> {
        self.0.lock().await.poll_once().await.map(|_| ())
    }
}
