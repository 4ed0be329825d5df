//! Scale benchmark: a tenant with a million sessions in flight, on
//! DynamoDB Local and the local SQS (moto). A benchmark, not a test: it prints
//! figures; nothing here is timed against a limit.
//!
//! ```sh
//! eval "$(tests/services/start.sh)"
//! cargo run --release -p e2e --example scale -- --sessions 1000000
//! ```
//!
//! 1. **Seed** `--sessions` items straight into the sessions table with
//!    `BatchWriteItem`, as a conversation runtime would (the item format the
//!    docs/runtime.md documents, `step_key` with its shard computed by the runtime's
//!    FNV-1a rule), 90 % of them at one step ("Collect email"), the rest spread
//!    over the two others.
//! 2. **Count** them from the table's change stream with the code of the
//!    `count-sessions` Lambda (`store::dynamo::stream`, as `migrations serve
//!    --store dynamodb` runs it): records/s until the stream is drained, and the
//!    counter writes that took (a hot step is one write per batch, not per session).
//! 3. **Plan generation** end to end through the HTTP router (`POST
//!    …/migration-plan`, which reads the counts: O(steps)), three times (the plan
//!    is rejected in between to free the version pair); and, with `--baseline`,
//!    the old way of counting in the same run: paging the step index with
//!    `Select=COUNT` (O(sessions)).
//! 4. **Reconcile latency**: the plan is approved and deployed (fan-out: the
//!    marking messages wait in the queue, no worker runs, so sessions are
//!    reconciled as late arrivals), then `--callers` concurrent callers each
//!    `POST /sessions/{id}/reconcile` distinct sessions at the anchor,
//!    `--reconciles` in all: p50, p90, p99, max.
//!
//! Marking throughput with 1 vs N shards is `tests/bench/marking_bench.rs`
//! (`tests/bench/marking_shards.sh`). Fresh tables and queue per run; they are
//! left behind in the in-memory emulators.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{AppState, Config};
use aws_sdk_dynamodb::types::WriteRequest;
use futures::StreamExt;
use serde_json::{Value, json};
use store::Store;
use store::dynamo::DynamoStore;
use store::dynamo::stream::{StreamPoller, streams_client};
use uuid::Uuid;

#[path = "router_call.rs"]
mod router_call;
#[path = "runtime_items.rs"]
mod runtime_items;
use router_call::{Error, call};
use runtime_items::RuntimeSession;

struct Args {
    sessions: usize,
    shards: u32,
    seed_concurrency: usize,
    callers: usize,
    reconciles: usize,
    baseline: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        sessions: 1_000_000,
        shards: store::DEFAULT_STEP_INDEX_SHARDS,
        seed_concurrency: 16,
        callers: 100,
        reconciles: 5_000,
        baseline: false,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        if flag == "--baseline" {
            args.baseline = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.replace('_', "").parse::<usize>();
        match flag.as_str() {
            "--sessions" => args.sessions = number()?,
            "--shards" => args.shards = value.parse()?,
            "--seed-concurrency" => args.seed_concurrency = number()?,
            "--callers" => args.callers = number()?,
            "--reconciles" => args.reconciles = number()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"] {
        if std::env::var(var).is_err() {
            return Err(format!(
                "{var} is not set: run `eval \"$(tests/services/start.sh)\"` first"
            )
            .into());
        }
    }
    let args = parse_args()?;
    let sdk = api::aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let tables = store::testing::create_fresh_tables(&dynamo, "scale").await?;
    let queue_url = api::aws::ensure_queue(&sqs, &format!("{}-queue", tables.main), 5).await?;
    let store: Arc<dyn Store> = Arc::new(
        DynamoStore::new(dynamo.clone(), tables.clone()).with_step_index_shards(args.shards),
    );
    let config = Config {
        main_table: tables.main.clone(),
        sessions_table: tables.sessions.clone(),
        marking_queue_url: Some(queue_url.clone()),
        step_index_shards: args.shards,
        // Every forecast trial below computes (none is served from the cache).
        forecast_cache_seconds: 0,
        ..Config::default()
    };
    let app = api::app(
        AppState::new(store.clone(), config)
            .with_queue(Arc::new(api::aws::SqsQueue::new(sqs.clone(), queue_url))),
    );
    println!(
        "scale bench: {} sessions, {} step-index shards, tables {} and {}",
        args.sessions, args.shards, tables.main, tables.sessions
    );

    let tenant = Uuid::new_v4();
    let scenario = Uuid::new_v4();
    let (v1, v2, steps) = scenarios();
    let created = call(
        &app,
        tenant,
        "PUT",
        &format!("/scenarios/{scenario}"),
        Some(v1),
    )
    .await?;
    expect(&created, 201)?;
    let checksum = created.1["checksum"].as_str().map(str::to_owned);

    // 1. Seed, as a runtime writes: BatchWriteItem of the documented item format.
    let population = Population {
        tenant,
        scenario,
        steps,
        checksum,
        shards: args.shards,
    };
    let seeded = runtime_items::seed(
        &dynamo,
        &tables.sessions,
        args.sessions,
        args.seed_concurrency,
        |i| population.item(i),
    )
    .await?;
    let seeded = seeded.as_secs_f64();
    println!(
        "seeded {} sessions in {seeded:.1} s ({:.0} items/s, BatchWriteItem, concurrency {})",
        args.sessions,
        args.sessions as f64 / seeded,
        args.seed_concurrency
    );

    // 2. Count them from the change stream.
    let mut poller = StreamPoller::new(dynamo.clone(), streams_client(&sdk), &tables);
    let started = Instant::now();
    let (mut records, mut transactions, mut counter_writes, mut idle) = (0, 0, 0, 0);
    while idle < 3 {
        let applied = poller.poll_once().await?;
        records += applied.records;
        transactions += applied.transactions;
        counter_writes += applied.counter_writes;
        if applied.records == 0 {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            idle = 0;
        }
    }
    let counting = started.elapsed().as_secs_f64();
    println!(
        "stream drained: {records} records in {counting:.1} s ({:.0} records/s), {transactions} transactions, {counter_writes} counter writes",
        records as f64 / counting
    );
    let counts = store.session_counts(tenant, scenario, 1).await?;
    println!(
        "counters say {} sessions ({:?}); counted_at {:?}",
        counts.total(),
        counts.by_step.values().collect::<Vec<_>>(),
        counts.counted_at
    );
    if counts.total() != args.sessions as u64 {
        return Err(format!(
            "counters say {} sessions, {} were written",
            counts.total(),
            args.sessions
        )
        .into());
    }

    // 3. Plan generation, three times; the old index count as the baseline.
    let mut plan_ms = Vec::new();
    let mut plan_id = String::new();
    for trial in 0..3 {
        let started = Instant::now();
        let reply = call(
            &app,
            tenant,
            "POST",
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": v2})),
        )
        .await?;
        plan_ms.push(started.elapsed().as_secs_f64() * 1e3);
        expect(&reply, 201)?;
        let affected = reply.1["summary"]["estimated_sessions_affected"].as_u64();
        plan_id = reply.1["id"].as_str().ok_or("plan id")?.to_owned();
        if trial < 2 {
            let rejected = call(
                &app,
                tenant,
                "POST",
                &format!("/migration-plans/{plan_id}/reject"),
                Some(json!({"reason": "benchmark trial", "rejected_by": "bench"})),
            )
            .await?;
            expect(&rejected, 200)?;
        } else {
            println!(
                "plan summary: estimated_sessions_affected {affected:?}, sessions_counted_at {}",
                reply.1["summary"]["sessions_counted_at"]
            );
        }
    }
    plan_ms.sort_by(f64::total_cmp);
    println!(
        "POST …/migration-plan at {} sessions: median {:.0} ms (trials {:?} ms)",
        args.sessions,
        plan_ms[1],
        plan_ms.iter().map(|m| m.round()).collect::<Vec<_>>()
    );
    if args.baseline {
        let started = Instant::now();
        let paged = store
            .count_sessions_at_steps(tenant, scenario, 1, &steps, 4)
            .await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "baseline, paging the step index with Select=COUNT: {} sessions in {secs:.1} s ({:.0}x the median plan generation)",
            paged.values().sum::<u64>(),
            secs * 1e3 / plan_ms[1]
        );
    }

    // 4. The outcome forecast of the plan (pending), three times: sampled above
    //    FORECAST_EXACT_LIMIT, within API Gateway's 29 s?
    let mut forecast_ms = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let reply = call(
            &app,
            tenant,
            "GET",
            &format!("/migration-plans/{plan_id}/forecast"),
            None,
        )
        .await?;
        forecast_ms.push(started.elapsed().as_secs_f64() * 1e3);
        expect(&reply, 200)?;
        println!(
            "forecast: exact {}, sessions_considered {}, sample_size {}, outcomes {}",
            reply.1["exact"],
            reply.1["sessions_considered"],
            reply.1["sample_size"],
            reply.1["outcomes"]
        );
    }
    forecast_ms.sort_by(f64::total_cmp);
    println!(
        "GET …/forecast at {} sessions: median {:.0} ms (trials {:?} ms; API Gateway allows 29,000)",
        args.sessions,
        forecast_ms[1],
        forecast_ms.iter().map(|m| m.round()).collect::<Vec<_>>()
    );

    // 5. Reconcile latency with concurrent callers.
    expect(
        &call(
            &app,
            tenant,
            "POST",
            &format!("/migration-plans/{plan_id}/approve"),
            Some(json!({"approved_by": "bench"})),
        )
        .await?,
        200,
    )?;
    let deployed = call(
        &app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        None,
    )
    .await?;
    println!("deploy answered {} ({})", deployed.0, deployed.1["status"]);
    let hot: Vec<usize> = (0..args.sessions)
        .filter(|i| population.step_of(*i) == steps[1])
        .take(args.reconciles)
        .collect();
    let started = Instant::now();
    let latencies = futures::stream::iter(hot.into_iter().map(|i| {
        let app = app.clone();
        let id = population.session_id(i);
        async move {
            let t0 = Instant::now();
            let reply = call(
                &app,
                tenant,
                "POST",
                &format!("/sessions/{id}/reconcile"),
                None,
            )
            .await;
            (t0.elapsed(), reply)
        }
    }))
    .buffer_unordered(args.callers.max(1))
    .collect::<Vec<_>>()
    .await;
    let wall = started.elapsed().as_secs_f64();
    let mut actions: HashMap<String, usize> = HashMap::new();
    let mut ms = Vec::new();
    for (elapsed, reply) in latencies {
        let (status, body) = reply?;
        let action = if status == 200 {
            body["action"].as_str().unwrap_or("?").to_owned()
        } else {
            format!("HTTP {status}")
        };
        *actions.entry(action).or_default() += 1;
        ms.push(elapsed.as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    println!(
        "reconcile, {} callers, {} sessions: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} reconciles/s; actions {actions:?}",
        args.callers,
        ms.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        ms[ms.len() - 1],
        ms.len() as f64 / wall
    );
    Ok(())
}

/// The seeded sessions: who they are and where they sit.
struct Population {
    tenant: Uuid,
    scenario: Uuid,
    steps: [Uuid; 3],
    checksum: Option<String>,
    shards: u32,
}

impl Population {
    fn session_id(&self, i: usize) -> String {
        format!("{}-{i:07}", self.scenario.simple())
    }

    /// 90 % at "Collect email" (the hot step), 5 % at each of the others.
    fn step_of(&self, i: usize) -> Uuid {
        match i % 20 {
            0 => self.steps[0],
            1 => self.steps[2],
            _ => self.steps[1],
        }
    }

    fn item(&self, i: usize) -> Result<WriteRequest, Error> {
        let session_id = self.session_id(i);
        RuntimeSession {
            tenant: self.tenant,
            scenario: self.scenario,
            session_id: &session_id,
            step: self.step_of(i),
            shards: self.shards,
            ordinal: i,
            checksum: self.checksum.as_deref(),
        }
        .item()
    }
}

/// V1 Welcome → Collect email → Done; V2 inserts "Check age" (collects `age`)
/// before Collect email: sessions at Collect email are a gap fill.
fn scenarios() -> (Value, Value, [Uuid; 3]) {
    let id = |n: u32| Uuid::from_u128(0x5ca1e000_0000_4000_8000_000000000000 | n as u128);
    let step = |n: u32, name: &str, to: &[u32], fields: &[&str]| {
        json!({
            "id": id(n), "name": name,
            "transitions": to.iter().map(|t| json!({"to_step_id": id(*t)})).collect::<Vec<_>>(),
            "rule_ids": [], "collects_profile_fields": fields, "is_checkpoint": false,
            "is_entry": n == 1, "is_terminal": to.is_empty(),
            "performs_action": false, "is_required_action": false
        })
    };
    let v1 = json!({"name": "Scale flow", "version": 1, "entry_step_id": id(1), "steps": [
        step(1, "Welcome", &[2], &[]), step(2, "Collect email", &[3], &[]), step(3, "Done", &[], &[]),
    ]});
    let v2 = json!({"name": "Scale flow", "version": 2, "entry_step_id": id(1), "steps": [
        step(1, "Welcome", &[4], &[]), step(4, "Check age", &[2], &["age"]),
        step(2, "Collect email", &[3], &[]), step(3, "Done", &[], &[]),
    ]});
    (v1, v2, [id(1), id(2), id(3)])
}

fn expect(reply: &(u16, Value), status: u16) -> Result<(), Error> {
    if reply.0 != status {
        return Err(format!("expected {status}, got {}: {}", reply.0, reply.1).into());
    }
    Ok(())
}
