//! Marking throughput benchmark (target: ratio ≥ 0.8; docs/benchmarks.md):
//! sessions at one anchor through deploy → SQS → worker(s) → DynamoDB, with 1 and
//! with N shards of the step index, against the raw conditional-update throughput of the same
//! DynamoDB endpoint at the same total concurrency. A benchmark, not a test: it
//! prints figures and ratios.
//!
//! Needs DynamoDB Local and a local SQS (moto):
//!
//! ```sh
//! eval "$(tests/services/start.sh)"
//! cargo run -p e2e --example marking_bench -- --sessions 100000 --shards 1,8 --workers 2
//! ```
//! (`tests/bench/marking_shards.sh` runs it on its own emulators.)
//!
//! For each size it
//! 1. seeds that many sessions (or `--raw-sessions`) at one step of scenario R
//!    (never deployed) and, for each `--shards` value s, as many at the same
//!    step of a scenario S_s, their `step_key`s sharded s ways, same table,
//!    with `BatchWriteItem` as a runtime writes them (`runtime_items.rs`);
//! 2. raw pass over R's sessions at each total concurrency the product passes
//!    reach (`--concurrency` × s: s chains, each page with `MARK_CONCURRENCY`
//!    writes in flight): one `UpdateItem` per session with the marking's own
//!    condition, straight through the SDK. It writes `pending_migration` like
//!    marking does (so the step index's projected item is rewritten alike); the
//!    condition admits a flag of an earlier pass, so the next pass holds too;
//! 3. product pass over S_s for each s: `--workers` worker processes (this
//!    binary in `worker` mode: `api::aws::poll_queue`, what `migrations serve
//!    --queue sqs` runs, with `MARK_CONCURRENCY = --concurrency` and
//!    `STEP_INDEX_SHARDS = s`); the driver plans, approves and deploys through
//!    the HTTP router; the time runs from the deploy call until the driver
//!    sees the plan `deployed` (polling every 50 ms);
//! 4. the raw passes again: each baseline is the mean of the two passes at that
//!    concurrency, which bracket the product passes in time (the emulator's
//!    speed drifts on a busy machine);
//! 5. prints per s the rates, the ratio to raw at the same total concurrency,
//!    the speed-up over 1 shard, and the first worker's peak RSS (`VmHWM`).
//!
//! Fresh tables and queue per run; they are left behind in the in-memory emulators.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{AppState, Config};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};
use store::Store;
use store::dynamo::{DynamoStore, TableNames};
use uuid::Uuid;

#[path = "router_call.rs"]
mod router_call;
#[path = "runtime_items.rs"]
mod runtime_items;
#[path = "withdraw_pass.rs"]
mod withdraw_pass;
use router_call::{Error, call};
use runtime_items::RuntimeSession;
use withdraw_pass::{wait_for_status, withdraw_pass};

struct Args {
    sizes: Vec<usize>,
    concurrency: usize,
    page_size: usize,
    seed_concurrency: usize,
    shards: Vec<u32>,
    workers: usize,
    /// Sessions of the raw passes when fewer than `--sessions`: a rate needs
    /// no million writes, and at 10⁶ each raw pass would take as long as a
    /// product pass on the emulator.
    raw_sessions: Option<usize>,
    /// `--withdraw yes`: after each product pass, withdraw the deployment with
    /// the same workers and print the withdrawal's rate beside the marking's.
    withdraw: bool,
}

fn parse_args(raw: &[String]) -> Result<Args, Error> {
    let mut args = Args {
        sizes: vec![100_000],
        concurrency: Config::default().mark_concurrency,
        page_size: Config::default().mark_page_size,
        seed_concurrency: 32,
        shards: vec![1],
        workers: 1,
        raw_sessions: None,
        withdraw: false,
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sessions" => {
                args.sizes = value
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse())
                    .collect::<Result<_, _>>()?
            }
            "--concurrency" => args.concurrency = value.parse()?,
            "--page-size" => args.page_size = value.parse()?,
            "--seed-concurrency" => args.seed_concurrency = value.parse()?,
            "--shards" => {
                args.shards = value
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--workers" => args.workers = value.parse()?,
            "--raw-sessions" => args.raw_sessions = Some(value.replace('_', "").parse()?),
            "--withdraw" => args.withdraw = value == "yes",
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

fn bench_config(tables: &TableNames, queue_url: &str, args: &Args, shards: u32) -> Config {
    Config {
        main_table: tables.main.clone(),
        sessions_table: tables.sessions.clone(),
        marking_queue_url: Some(queue_url.to_owned()),
        mark_page_size: args.page_size,
        mark_concurrency: args.concurrency,
        step_index_shards: shards,
        // Always through the queue: the bench measures the fan-out path. (The
        // deploy decides from the session counts, which the bench does not
        // feed from the table's stream; every probed chain counts one, so a
        // threshold of 0 fans out whatever they say.)
        inline_mark_threshold: 0,
        mark_worker_messages: worker_messages(),
        ..Config::default()
    }
}

/// Chains one worker process holds at once: `MARK_WORKER_MESSAGES`, read by the
/// product's own parser (the script sets it; the worker processes inherit it).
fn worker_messages() -> usize {
    Config::from_lookup(|name| {
        (name == "MARK_WORKER_MESSAGES")
            .then(|| std::env::var(name).ok())
            .flatten()
    })
    .expect("MARK_WORKER_MESSAGES")
    .mark_worker_messages
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("worker") {
        return worker(&raw[1..]).await;
    }
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"] {
        if std::env::var(var).is_err() {
            return Err(format!(
                "{var} is not set: run `eval \"$(tests/services/start.sh)\"` first"
            )
            .into());
        }
    }
    let args = parse_args(&raw)?;
    let sdk = api::aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    println!(
        "marking bench: page size {}, MARK_CONCURRENCY {} per page, {} worker process(es) holding up to {} chain(s) each, shards {:?}",
        args.page_size,
        args.concurrency,
        args.workers,
        worker_messages(),
        args.shards
    );
    let mut rows = Vec::new();
    for &n in &args.sizes {
        rows.extend(run_size(&dynamo, &sqs, &args, n).await?);
    }
    println!();
    println!(
        "| sessions | shards | workers | total concurrency | deploy→deployed sessions/s | raw UpdateItem/s at that concurrency | ratio | speed-up vs 1 shard | worker peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let one = rows
            .iter()
            .find(|o| o.sessions == r.sessions && o.shards == 1)
            .map(|o| format!("{:.2}", r.product_rate / o.product_rate))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {one} | {:.1} MiB |",
            r.sessions,
            r.shards,
            args.workers,
            r.concurrency,
            r.product_rate,
            r.raw_rate,
            r.product_rate / r.raw_rate,
            r.worker_hwm_kib as f64 / 1024.0
        );
    }
    Ok(())
}

struct Row {
    sessions: usize,
    shards: u32,
    concurrency: usize,
    raw_rate: f64,
    product_rate: f64,
    worker_hwm_kib: u64,
}

/// Writes in flight when `shards` chains each mark a page with `concurrency`
/// writes: what the raw pass is compared at.
fn total_concurrency(args: &Args, shards: u32) -> usize {
    args.concurrency * shards.max(1) as usize
}

async fn run_size(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    args: &Args,
    n: usize,
) -> Result<Vec<Row>, Error> {
    let tables = store::testing::create_fresh_tables(dynamo, "bench").await?;
    let queue_url = api::aws::ensure_queue(sqs, &format!("{}-queue", tables.main), 5).await?;
    println!(
        "\n== {n} sessions (tables {} and {})",
        tables.main, tables.sessions
    );

    let tenant = Uuid::new_v4();
    let raw_scenario = Uuid::new_v4();
    let (v1, v2, anchor_step) = scenarios();
    // One app per shard count: its store writes step keys with its
    // own count, and deploy registers that many chains per step.
    let app_for = |shards: u32| {
        let store: Arc<dyn Store> = Arc::new(
            DynamoStore::new(dynamo.clone(), tables.clone()).with_step_index_shards(shards),
        );
        // The driver never processes messages: the queue only receives deploy's.
        let state =
            AppState::new(store, bench_config(&tables, &queue_url, args, shards)).with_queue(
                Arc::new(api::aws::SqsQueue::new(sqs.clone(), queue_url.clone())),
            );
        api::app(state)
    };
    let mut populations = Vec::new();
    for &shards in &args.shards {
        populations.push((shards, Uuid::new_v4()));
    }
    let started = Instant::now();
    let raw_app = app_for(1);
    expect(
        &call(
            &raw_app,
            tenant,
            "PUT",
            &format!("/scenarios/{raw_scenario}"),
            Some(v1.clone()),
        )
        .await?,
        201,
    )?;
    let raw_n = args.raw_sessions.unwrap_or(n).min(n);
    seed(
        dynamo,
        &tables,
        (tenant, raw_scenario, anchor_step),
        1,
        raw_n,
        args.seed_concurrency,
    )
    .await?;
    for &(shards, scenario) in &populations {
        let app = app_for(shards);
        expect(
            &call(
                &app,
                tenant,
                "PUT",
                &format!("/scenarios/{scenario}"),
                Some(v1.clone()),
            )
            .await?,
            201,
        )?;
        seed(
            dynamo,
            &tables,
            (tenant, scenario, anchor_step),
            shards,
            n,
            args.seed_concurrency,
        )
        .await?;
    }
    let seeded = started.elapsed();
    let puts = raw_n + n * populations.len();
    println!(
        "seeded {puts} sessions in {:.1} s ({:.0} items/s, BatchWriteItem)",
        seeded.as_secs_f64(),
        puts as f64 / seeded.as_secs_f64()
    );
    let raw = Raw {
        client: dynamo,
        tables: &tables,
        tenant,
        scenario: raw_scenario,
        step: anchor_step,
        n: raw_n,
    };
    let mut concurrencies: Vec<usize> = args
        .shards
        .iter()
        .map(|s| total_concurrency(args, *s))
        .collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let mut raw_before = HashMap::new();
    for &c in &concurrencies {
        raw_before.insert(c, raw.run("before", c).await?);
    }

    let mut products = Vec::new();
    for &(shards, scenario) in &populations {
        let app = app_for(shards);
        products.push((
            shards,
            product_pass(
                &app, args, &tables, &queue_url, tenant, scenario, &v2, n, shards,
            )
            .await?,
        ));
    }

    let mut rows = Vec::new();
    let mut raw_after = HashMap::new();
    for &c in &concurrencies {
        raw_after.insert(c, raw.run("after", c).await?);
    }
    for (shards, (product_rate, hwm)) in products {
        let c = total_concurrency(args, shards);
        let raw_rate = (raw_before[&c] + raw_after[&c]) / 2.0;
        println!(
            "{shards} shard(s): ratio {:.2} (product {product_rate:.0}/s vs raw mean {raw_rate:.0}/s at concurrency {c})",
            product_rate / raw_rate
        );
        rows.push(Row {
            sessions: n,
            shards,
            concurrency: c,
            raw_rate,
            product_rate,
            worker_hwm_kib: hwm,
        });
    }
    Ok(rows)
}

/// Plan, approve and deploy scenario `scenario`'s sessions with `--workers`
/// worker processes running; returns sessions/s from the deploy call to
/// `deployed`, and the first worker's peak RSS.
#[allow(clippy::too_many_arguments)]
async fn product_pass(
    app: &axum::Router,
    args: &Args,
    tables: &TableNames,
    queue_url: &str,
    tenant: Uuid,
    scenario: Uuid,
    v2: &Value,
    n: usize,
    shards: u32,
) -> Result<(f64, u64), Error> {
    let reply = call(
        app,
        tenant,
        "POST",
        &format!("/scenarios/{scenario}/migration-plan"),
        Some(json!({"new_scenario": v2})),
    )
    .await?;
    expect(&reply, 201)?;
    let plan_id = reply.1["id"].as_str().ok_or("plan id")?.to_owned();
    let reply = call(
        app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await?;
    expect(&reply, 200)?;

    let mut workers = Vec::new();
    for _ in 0..args.workers.max(1) {
        workers.push(
            tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    "worker",
                    &tables.main,
                    &tables.sessions,
                    queue_url,
                    &args.page_size.to_string(),
                    &args.concurrency.to_string(),
                    &shards.to_string(),
                ])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    let worker_pid = workers[0].id().ok_or("worker pid")?;
    // Let them build their clients and start polling before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The clock stops when the driver sees `deployed` (polled every 50 ms): a
    // little late, never early.
    let started = Instant::now();
    let reply = call(
        app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        None,
    )
    .await?;
    let deploy_call = started.elapsed();
    expect(&reply, 202)?;
    println!(
        "{shards} shard(s): deploy answered {} in {:.2} s (activation, probing the chains, first messages)",
        reply.0,
        deploy_call.as_secs_f64()
    );
    let status = wait_for_status(app, tenant, &plan_id, "deployed", &mut workers).await?;
    let elapsed = started.elapsed();
    if args.withdraw {
        withdraw_pass(app, tenant, &plan_id, n, elapsed, &mut workers).await?;
    }
    let hwm = proc_status_kib(worker_pid, "VmHWM:")?;
    for worker in &mut workers {
        worker.kill().await?;
    }
    let marked = status["sessions_marked"]
        .as_u64()
        .ok_or("sessions_marked")?;
    if marked != n as u64 {
        return Err(format!("marked {marked} of {n} sessions").into());
    }
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{shards} shard(s): {marked} sessions marked in {:.1} s = {rate:.0}/s ({} pages); first worker peak RSS {hwm} KiB",
        elapsed.as_secs_f64(),
        n.div_ceil(args.page_size),
    );
    Ok((rate, hwm))
}

/// V1: Welcome → Collect email → Done; V2 inserts an age check before Collect
/// email (a gap-fill anchor). Every session sits at Collect email.
fn scenarios() -> (Value, Value, Uuid) {
    let id = |n: u32| Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128);
    let step = |n: u32, name: &str, to: &[u32], fields: &[&str]| {
        json!({
            "id": id(n), "name": name,
            "transitions": to.iter().map(|t| json!({"to_step_id": id(*t)})).collect::<Vec<_>>(),
            "rule_ids": [], "collects_profile_fields": fields, "is_checkpoint": false,
            "is_entry": n == 1, "is_terminal": to.is_empty(),
            "performs_action": false, "is_required_action": false
        })
    };
    let v1 = json!({"name": "Bench flow", "version": 1, "entry_step_id": id(1), "steps": [
        step(1, "Welcome", &[2], &[]), step(2, "Collect email", &[3], &[]), step(3, "Done", &[], &[]),
    ]});
    let v2 = json!({"name": "Bench flow", "version": 2, "entry_step_id": id(1), "steps": [
        step(1, "Welcome", &[4], &[]), step(4, "Check age", &[2], &["age"]),
        step(2, "Collect email", &[3], &[]), step(3, "Done", &[], &[]),
    ]});
    (v1, v2, id(2))
}

fn session_id(scenario: Uuid, i: usize) -> String {
    format!("{}-{i:07}", scenario.simple())
}

/// Seeds `n` sessions of `scenario` at `step` as a runtime writes them, their
/// step keys sharded `shards` ways.
async fn seed(
    client: &aws_sdk_dynamodb::Client,
    tables: &TableNames,
    (tenant, scenario, step): (Uuid, Uuid, Uuid),
    shards: u32,
    n: usize,
    concurrency: usize,
) -> Result<(), Error> {
    runtime_items::seed(client, &tables.sessions, n, concurrency, |i| {
        let session_id = session_id(scenario, i);
        RuntimeSession {
            tenant,
            scenario,
            session_id: &session_id,
            step,
            shards,
            ordinal: i,
            checksum: None,
        }
        .item()
    })
    .await?;
    Ok(())
}

/// The raw pass: the condition of `DynamoStore::mark_session`, one `UpdateItem`
/// per session, writing `pending_migration` (see the module docs).
struct Raw<'a> {
    client: &'a aws_sdk_dynamodb::Client,
    tables: &'a TableNames,
    tenant: Uuid,
    scenario: Uuid,
    step: Uuid,
    n: usize,
}

impl Raw<'_> {
    /// One pass over every session, `concurrency` in flight; returns updates per second.
    async fn run(&self, label: &str, concurrency: usize) -> Result<f64, Error> {
        let pass = Uuid::new_v4().to_string();
        let flag = Av::M(HashMap::from([
            ("migration_plan_id".to_owned(), Av::S(pass.clone())),
            ("target_version".to_owned(), Av::N("2".into())),
            (
                "anchor_content_hash".to_owned(),
                Av::S("0123456789abcdef".into()),
            ),
            ("from_step_id".to_owned(), Av::S(self.step.to_string())),
            ("marked_at".to_owned(), Av::S(Utc::now().to_rfc3339())),
        ]));
        let updates = (0..self.n).map(|i| {
            self.client
                .update_item()
                .table_name(&self.tables.sessions)
                .key(
                    "pk",
                    Av::S(format!("{}#{}", self.tenant, session_id(self.scenario, i))),
                )
                .update_expression(
                    "SET pending_migration = :pm, revision = if_not_exists(revision, :zero) + :one",
                )
                .condition_expression(
                    "attribute_exists(pk) AND active_scenario_id = :sid \
                     AND active_scenario_version = :v AND active_step_id = :step \
                     AND (attribute_not_exists(pending_migration) \
                          OR pending_migration.migration_plan_id <> :pass) \
                     AND attribute_not_exists(pinned_version)",
                )
                .expression_attribute_values(":pm", flag.clone())
                .expression_attribute_values(":pass", Av::S(pass.clone()))
                .expression_attribute_values(":zero", Av::N("0".into()))
                .expression_attribute_values(":one", Av::N("1".into()))
                .expression_attribute_values(":sid", Av::S(self.scenario.to_string()))
                .expression_attribute_values(":v", Av::N("1".into()))
                .expression_attribute_values(":step", Av::S(self.step.to_string()))
                .send()
        });
        let started = Instant::now();
        let held = futures::stream::iter(updates)
            .buffer_unordered(concurrency)
            .filter(|r| std::future::ready(r.is_ok()))
            .count()
            .await;
        let elapsed = started.elapsed();
        if held != self.n {
            return Err(format!("raw pass: only {held} of {} updates held", self.n).into());
        }
        let rate = self.n as f64 / elapsed.as_secs_f64();
        println!(
            "raw {label}: {} conditional UpdateItem in {:.1} s = {rate:.0}/s at concurrency {}",
            self.n,
            elapsed.as_secs_f64(),
            concurrency
        );
        Ok(rate)
    }
}

fn expect(reply: &(u16, Value), status: u16) -> Result<(), Error> {
    if reply.0 != status {
        return Err(format!("expected {status}, got {}: {}", reply.0, reply.1).into());
    }
    Ok(())
}

/// A memory figure of a process (`VmHWM:` peak RSS, `VmRSS:` current), from `/proc/{pid}/status`.
fn proc_status_kib(pid: u32, field: &str) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

/// `worker MAIN_TABLE SESSIONS_TABLE QUEUE_URL PAGE_SIZE CONCURRENCY SHARDS`:
/// poll the queue and mark, like `migrations serve --queue sqs` (until killed).
async fn worker(args: &[String]) -> Result<(), Error> {
    let [main, sessions, url, page_size, concurrency, shards] = args else {
        return Err("worker MAIN SESSIONS QUEUE_URL PAGE_SIZE CONCURRENCY SHARDS".into());
    };
    let shards: u32 = shards.parse()?;
    let tables = TableNames {
        main: main.clone(),
        sessions: sessions.clone(),
    };
    let parsed = Args {
        sizes: vec![],
        concurrency: concurrency.parse()?,
        page_size: page_size.parse()?,
        seed_concurrency: 0,
        shards: vec![shards],
        workers: 1,
        raw_sessions: None,
        withdraw: false,
    };
    let config = bench_config(&tables, url, &parsed, shards);
    let sdk = api::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables)
        .with_step_index_shards(shards);
    let state = AppState::new(Arc::new(store), config)
        .with_queue(Arc::new(api::aws::SqsQueue::new(sqs.clone(), url.clone())));
    api::aws::poll_queue(state, sqs, url.clone()).await;
    Ok(())
}
