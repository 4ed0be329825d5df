//! Sessions written the way a conversation runtime writes them, for the emulator
//! benchmarks (`scale`, `marking_bench`): the item format docs/runtime.md documents
//! (`step_key` with the FNV-1a shard of the session id), in `BatchWriteItem`s of
//! 25. At 10⁶ sessions this is what makes seeding minutes rather than hours
//! (one `PutItem` per session through the store ran at ~400/s here).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as Av, PutRequest, WriteRequest};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use uuid::Uuid;

use crate::router_call::Error;

/// Where one seeded session sits and how its step key is sharded.
pub struct RuntimeSession<'a> {
    pub tenant: Uuid,
    pub scenario: Uuid,
    pub session_id: &'a str,
    pub step: Uuid,
    pub shards: u32,
    /// Varies the channel, customer and e-mail between sessions.
    pub ordinal: usize,
    pub checksum: Option<&'a str>,
}

impl RuntimeSession<'_> {
    /// The item a runtime writes (docs/runtime.md, "Writing session items straight
    /// into the table").
    pub fn item(&self) -> Result<WriteRequest, Error> {
        let (t, id, i) = (self.tenant, self.session_id, self.ordinal);
        let shard = store::step_shard(id, self.shards);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let s = |v: String| Av::S(v);
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("{t}#{id}"))),
            ("session_id".to_owned(), s(id.to_owned())),
            ("tenant_id".to_owned(), s(t.to_string())),
            ("channel".to_owned(), s(["whatsapp", "web"][i % 2].into())),
            ("customer_id".to_owned(), s(format!("cust-{i}"))),
            (
                "active_scenario_id".to_owned(),
                s(self.scenario.to_string()),
            ),
            ("active_scenario_version".to_owned(), Av::N("1".into())),
            ("active_step_id".to_owned(), s(self.step.to_string())),
            (
                "step_key".to_owned(),
                s(store::dynamo::step_key(
                    t,
                    self.scenario,
                    1,
                    self.step,
                    shard,
                )),
            ),
            ("step_history".to_owned(), s("[]".into())),
            (
                "variables".to_owned(),
                Av::M(HashMap::from([(
                    "email".to_owned(),
                    s(format!("\"c{i}@example.com\"")),
                )])),
            ),
            ("created_at".to_owned(), s(now.clone())),
            ("updated_at".to_owned(), s(now)),
            ("revision".to_owned(), Av::N("1".into())),
        ]);
        if let Some(checksum) = self.checksum {
            item.insert("scenario_checksum".to_owned(), s(checksum.to_owned()));
        }
        Ok(WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(item)).build()?)
            .build())
    }
}

/// Writes items `0..n` (built by `item`) in batches of 25, `concurrency`
/// batches in flight; returns how long it took.
pub async fn seed(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    n: usize,
    concurrency: usize,
    item: impl Fn(usize) -> Result<WriteRequest, Error>,
) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut batches = Vec::with_capacity(n.div_ceil(25));
    for first in (0..n).step_by(25) {
        let items = (first..(first + 25).min(n))
            .map(&item)
            .collect::<Result<Vec<_>, _>>()?;
        batches.push(items);
    }
    let failures = futures::stream::iter(batches)
        .map(|items| batch_write(client, table, items))
        .buffer_unordered(concurrency.max(1))
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    if failures > 0 {
        return Err(format!("{failures} batches failed").into());
    }
    Ok(started.elapsed())
}

/// One `BatchWriteItem`, retrying what comes back unprocessed.
async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut items: Vec<WriteRequest>,
) -> Result<(), Error> {
    for attempt in 0..20u32 {
        let out = client
            .batch_write_item()
            .request_items(table, items)
            .send()
            .await?;
        match out.unprocessed_items.and_then(|mut u| u.remove(table)) {
            Some(rest) if !rest.is_empty() => {
                items = rest;
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
            _ => return Ok(()),
        }
    }
    Err("BatchWriteItem: items still unprocessed after 20 attempts".into())
}
