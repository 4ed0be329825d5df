//! Marking throughput benchmark (SPEC §11): sessions at one anchor through
//! deploy → SQS → worker → DynamoDB, against the raw conditional-update
//! throughput of the same DynamoDB endpoint at the same client concurrency.
//!
//! Needs DynamoDB Local and a local SQS (moto):
//!
//! ```sh
//! eval "$(tests/services/start.sh)"
//! cargo run --release -p api --example marking_bench -- --sessions 10000,100000
//! ```
//!
//! For each size it
//! 1. seeds that many sessions at one step of scenario S (the deployment's) and
//!    as many at the same step of scenario R (never deployed), same table,
//!    through `Store::put_session`;
//! 2. raw pass over R's sessions: one `UpdateItem` per session with the
//!    marking's own condition expression, `--concurrency` in flight
//!    (`buffer_unordered`, straight through the SDK). It sets a `bench_probe`
//!    attribute shaped like the flag rather than `pending_migration`: the same
//!    write (the `by_step` index projects every attribute, so the index item is
//!    rewritten alike) that keeps the condition true for the next pass;
//! 3. product pass over S's sessions: the worker runs in its own process (this
//!    binary in `worker` mode: `api::aws::poll_queue`, what `migrations serve
//!    --queue sqs` runs, with `MARK_CONCURRENCY = --concurrency`); the driver
//!    plans, approves and deploys through the HTTP router (plan generation counts
//!    the sessions too); the time runs from the deploy call until the driver
//!    sees the plan `deployed` (polling every 50 ms);
//! 4. the raw pass again: the baseline is the mean of the two raw passes, which
//!    bracket the product pass in time (the emulator's speed drifts on a busy machine);
//! 5. prints the rates, the ratio and the worker's peak RSS (`VmHWM`).
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
use planning::Session;
use serde_json::{Value, json};
use store::Store;
use store::dynamo::{DynamoStore, TableNames};
use tower::ServiceExt;
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    sizes: Vec<usize>,
    concurrency: usize,
    page_size: usize,
    seed_concurrency: usize,
}

fn parse_args(raw: &[String]) -> Result<Args, Error> {
    let mut args = Args {
        sizes: vec![100_000],
        concurrency: Config::default().mark_concurrency,
        page_size: Config::default().mark_page_size,
        seed_concurrency: 32,
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
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

fn tables_of(suffix: &str) -> TableNames {
    TableNames {
        main: format!("bench-main-{suffix}"),
        sessions: format!("bench-sessions-{suffix}"),
    }
}

fn bench_config(tables: &TableNames, queue_url: &str, args: &Args) -> Config {
    Config {
        main_table: tables.main.clone(),
        sessions_table: tables.sessions.clone(),
        marking_queue_url: Some(queue_url.to_owned()),
        mark_page_size: args.page_size,
        mark_concurrency: args.concurrency,
        ..Config::default()
    }
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
        "marking bench: page size {}, client concurrency {} (raw and worker alike)",
        args.page_size, args.concurrency
    );
    let mut rows = Vec::new();
    for &n in &args.sizes {
        rows.push(run_size(&dynamo, &sqs, &args, n).await?);
    }
    println!();
    println!(
        "| sessions | raw UpdateItem/s | deploy→queue→worker sessions/s | ratio | worker RSS idle | worker peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.1} MiB | {:.1} MiB |",
            r.sessions,
            r.raw_rate,
            r.product_rate,
            r.product_rate / r.raw_rate,
            r.worker_idle_kib as f64 / 1024.0,
            r.worker_hwm_kib as f64 / 1024.0
        );
    }
    Ok(())
}

struct Row {
    sessions: usize,
    raw_rate: f64,
    product_rate: f64,
    worker_idle_kib: u64,
    worker_hwm_kib: u64,
}

async fn run_size(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    args: &Args,
    n: usize,
) -> Result<Row, Error> {
    let suffix = Uuid::new_v4().simple().to_string();
    let tables = tables_of(&suffix);
    store::dynamo::create_tables(dynamo, &tables).await?;
    let queue_url = api::aws::ensure_queue(sqs, &format!("bench-{suffix}"), 5).await?;
    let config = bench_config(&tables, &queue_url, args);
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(dynamo.clone(), tables.clone()));
    // The driver never processes messages: the queue only receives deploy's.
    let state = AppState::new(store.clone(), config.clone()).with_queue(Arc::new(
        api::aws::SqsQueue::new(sqs.clone(), queue_url.clone()),
    ));
    let app = api::app(state);
    println!("\n== {n} sessions (tables *-{suffix})");

    let tenant = Uuid::new_v4();
    let (scenario, raw_scenario) = (Uuid::new_v4(), Uuid::new_v4());
    let (v1, v2, anchor_step) = scenarios();
    for id in [scenario, raw_scenario] {
        let path = format!("/scenarios/{id}");
        expect(
            &call(&app, tenant, "PUT", &path, Some(v1.clone())).await?,
            201,
        )?;
    }

    let started = Instant::now();
    for id in [scenario, raw_scenario] {
        seed(&store, tenant, id, anchor_step, n, args.seed_concurrency).await?;
    }
    let seeded = started.elapsed();
    println!(
        "seeded 2 x {n} sessions in {:.1} s ({:.0} PutItem/s)",
        seeded.as_secs_f64(),
        (2 * n) as f64 / seeded.as_secs_f64()
    );
    let raw = Raw {
        client: dynamo,
        tables: &tables,
        tenant,
        scenario: raw_scenario,
        step: anchor_step,
        n,
        concurrency: args.concurrency,
    };
    let raw_before = raw.run("before").await?;

    // The product: plan, approve, then the worker process and deploy.
    let reply = call(
        &app,
        tenant,
        "POST",
        &format!("/scenarios/{scenario}/migration-plan"),
        Some(json!({"new_scenario": v2})),
    )
    .await?;
    expect(&reply, 201)?;
    let plan_id = reply.1["id"].as_str().ok_or("plan id")?.to_owned();
    let reply = call(
        &app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await?;
    expect(&reply, 200)?;

    let mut worker = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "worker",
            &tables.main,
            &tables.sessions,
            &queue_url,
            &args.page_size.to_string(),
            &args.concurrency.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let worker_pid = worker.id().ok_or("worker pid")?;
    // Let it build its clients and start polling before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = proc_status_kib(worker_pid, "VmRSS:")?;

    // The clock stops when the driver sees `deployed` (polled every 50 ms): a
    // little late, never early.
    let started = Instant::now();
    let reply = call(
        &app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/deploy"),
        None,
    )
    .await?;
    let deploy_call = started.elapsed();
    let expected_status = if n as u64 > config.inline_mark_threshold {
        202
    } else {
        200
    };
    expect(&reply, expected_status)?;
    println!(
        "deploy answered {} in {:.2} s (activation, probing the chains, first message)",
        reply.0,
        deploy_call.as_secs_f64()
    );
    // Peak RSS once half the sessions are marked: the same as at the end when
    // memory is bounded by the page, not by the sessions done.
    let mut half_hwm = None;
    let status = loop {
        let reply = call(
            &app,
            tenant,
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await?;
        if reply.1["status"] == "deployed" {
            break reply.1;
        }
        if half_hwm.is_none() && reply.1["sessions_marked"].as_u64() >= Some(n as u64 / 2) {
            half_hwm = Some(proc_status_kib(worker_pid, "VmHWM:")?);
        }
        if let Some(code) = worker.try_wait()? {
            return Err(format!("the worker exited early: {code}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let hwm = proc_status_kib(worker_pid, "VmHWM:")?;
    worker.kill().await?;

    let marked = status["sessions_marked"]
        .as_u64()
        .ok_or("sessions_marked")?;
    if marked != n as u64 {
        return Err(format!("marked {marked} of {n} sessions").into());
    }
    let product_rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "product: {marked} sessions marked in {:.1} s = {product_rate:.0}/s ({} pages); worker RSS {idle} KiB idle, peak (VmHWM) {} KiB at half way, {hwm} KiB at the end",
        elapsed.as_secs_f64(),
        n.div_ceil(args.page_size),
        half_hwm.map_or_else(|| "-".to_owned(), |k| k.to_string()),
    );
    let raw_after = raw.run("after").await?;
    let raw_rate = (raw_before + raw_after) / 2.0;
    println!(
        "ratio {:.2} (product {product_rate:.0}/s vs raw mean {raw_rate:.0}/s)",
        product_rate / raw_rate
    );
    Ok(Row {
        sessions: n,
        raw_rate,
        product_rate,
        worker_idle_kib: idle,
        worker_hwm_kib: hwm,
    })
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

fn session(tenant: Uuid, scenario: Uuid, step: Uuid, i: usize) -> Session {
    let now = Utc::now();
    Session {
        session_id: session_id(scenario, i),
        tenant_id: tenant,
        channel: ["whatsapp", "web"][i % 2].into(),
        customer_id: Some(format!("cust-{i}")),
        active_scenario_id: scenario,
        active_scenario_version: 1,
        active_step_id: step,
        scenario_checksum: None,
        step_history: vec![],
        variables: [("email".to_owned(), json!(format!("c{i}@example.com")))]
            .into_iter()
            .collect(),
        pending_migration: None,
        pinned_version: None,
        created_at: now,
        updated_at: now,
        revision: 0,
    }
}

fn session_id(scenario: Uuid, i: usize) -> String {
    format!("{}-{i:07}", scenario.simple())
}

async fn seed(
    store: &Arc<dyn Store>,
    tenant: Uuid,
    scenario: Uuid,
    step: Uuid,
    n: usize,
    concurrency: usize,
) -> Result<(), Error> {
    let puts = (0..n).map(|i| {
        let store = store.clone();
        async move { store.put_session(&session(tenant, scenario, step, i)).await }
    });
    let failures = futures::stream::iter(puts)
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    if failures > 0 {
        return Err(format!("{failures} session writes failed").into());
    }
    Ok(())
}

/// The raw pass: the condition of `DynamoStore::mark_session`, one `UpdateItem`
/// per session, writing a flag-shaped `bench_probe` (see the module docs).
struct Raw<'a> {
    client: &'a aws_sdk_dynamodb::Client,
    tables: &'a TableNames,
    tenant: Uuid,
    scenario: Uuid,
    step: Uuid,
    n: usize,
    concurrency: usize,
}

impl Raw<'_> {
    /// One pass over every session; returns updates per second.
    async fn run(&self, label: &str) -> Result<f64, Error> {
        let flag = Av::M(HashMap::from([
            (
                "migration_plan_id".to_owned(),
                Av::S(Uuid::new_v4().to_string()),
            ),
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
                .update_expression("SET bench_probe = :pm")
                .condition_expression(
                    "attribute_exists(pk) AND active_scenario_id = :sid \
                     AND active_scenario_version = :v AND active_step_id = :step \
                     AND attribute_not_exists(pending_migration) \
                     AND attribute_not_exists(pinned_version)",
                )
                .expression_attribute_values(":pm", flag.clone())
                .expression_attribute_values(":sid", Av::S(self.scenario.to_string()))
                .expression_attribute_values(":v", Av::N("1".into()))
                .expression_attribute_values(":step", Av::S(self.step.to_string()))
                .send()
        });
        let started = Instant::now();
        let held = futures::stream::iter(updates)
            .buffer_unordered(self.concurrency)
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
            self.concurrency
        );
        Ok(rate)
    }
}

async fn call(
    app: &axum::Router,
    tenant: Uuid,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-tenant-id", tenant.to_string())
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
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

/// `worker MAIN_TABLE SESSIONS_TABLE QUEUE_URL PAGE_SIZE CONCURRENCY`: poll the
/// queue and mark, like `migrations serve --queue sqs` (until killed).
async fn worker(args: &[String]) -> Result<(), Error> {
    let [main, sessions, url, page_size, concurrency] = args else {
        return Err("worker MAIN SESSIONS QUEUE_URL PAGE_SIZE CONCURRENCY".into());
    };
    let tables = TableNames {
        main: main.clone(),
        sessions: sessions.clone(),
    };
    let parsed = Args {
        sizes: vec![],
        concurrency: concurrency.parse()?,
        page_size: page_size.parse()?,
        seed_concurrency: 0,
    };
    let config = bench_config(&tables, url, &parsed);
    let sdk = api::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let state = AppState::new(Arc::new(store), config)
        .with_queue(Arc::new(api::aws::SqsQueue::new(sqs.clone(), url.clone())));
    api::aws::poll_queue(state, sqs, url.clone()).await;
    Ok(())
}
