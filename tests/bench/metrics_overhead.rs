//! What the metrics cost on the reconcile path: `POST /sessions/{id}/reconcile`
//! through the sessions router in process (handler, service, in-memory store,
//! the HTTP-metrics layer), with no recorder, with the Prometheus recorder of
//! `migrations serve`, and with the EMF recorder of the Lambdas (plus the
//! per-invocation flush into a buffer, as `emf::flush_after` does to stdout).
//!
//! ```sh
//! cargo run --release -p e2e --example metrics_overhead -- [--sessions 200] [--rounds 15]
//! ```
//!
//! The configurations alternate round by round in one process, so the ratios
//! compare like with like; only the EMF rounds come last (its recorder is
//! process-global and cannot be removed), against the same run's baseline.
//! Prints medians per call and the ratios; asserts nothing about time.

use std::sync::Arc;
use std::time::Instant;

use api::{AppState, Config};
use serde_json::json;
use uuid::Uuid;

#[path = "router_call.rs"]
mod router_call;
use router_call::{Error, call};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One round: every session reconciled once; seconds per call.
async fn round(app: &axum::Router, tenant: Uuid, sessions: &[String], flush: bool) -> f64 {
    let started = Instant::now();
    for id in sessions {
        let (status, _) = call(
            app,
            tenant,
            "POST",
            &format!("/sessions/{id}/reconcile"),
            Some(json!({})),
        )
        .await
        .expect("reconcile");
        assert_eq!(status, 200);
        if flush {
            std::hint::black_box(api::metrics::emf::take_lines());
        }
    }
    started.elapsed().as_secs_f64() / sessions.len() as f64
}

fn step(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}

fn scenario(version: i64, steps: u32) -> serde_json::Value {
    let steps: Vec<_> = (1..=steps)
        .map(|i| {
            json!({"id": step(i), "name": format!("Step {i} v{}", if i == 3 { version } else { 1 }),
                   "transitions": if i < steps { json!([{"to_step_id": step(i + 1)}]) } else { json!([]) },
                   "is_terminal": i == steps})
        })
        .collect();
    json!({"name": "Bench flow", "version": version, "entry_step_id": step(1), "steps": steps})
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (mut sessions_n, mut rounds) = (200usize, 15usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or("a flag needs a value")?;
        match flag.as_str() {
            "--sessions" => sessions_n = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let state = AppState::new(Arc::new(store::MemoryStore::new()), Config::default());
    let app = api::app(state);
    let tenant = Uuid::new_v4();
    let scenario_id = Uuid::new_v4();
    let (status, _) = call(
        &app,
        tenant,
        "PUT",
        &format!("/scenarios/{scenario_id}"),
        Some(scenario(1, 8)),
    )
    .await?;
    assert_eq!(status, 201);
    let sessions: Vec<String> = (0..sessions_n).map(|i| format!("bench-{i}")).collect();
    for id in &sessions {
        let session = json!({"channel": "whatsapp", "active_scenario_id": scenario_id,
            "active_scenario_version": 1, "active_step_id": step(5), "step_history": [], "variables": {}});
        let (status, _) = call(
            &app,
            tenant,
            "PUT",
            &format!("/sessions/{id}"),
            Some(session),
        )
        .await?;
        assert_eq!(status, 201);
    }
    let (status, plan) = call(
        &app,
        tenant,
        "POST",
        &format!("/scenarios/{scenario_id}/migration-plan"),
        Some(json!({"new_scenario": scenario(2, 8)})),
    )
    .await?;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().ok_or("plan id")?.to_string();
    for action in ["approve", "deploy"] {
        let (status, body) = call(
            &app,
            tenant,
            "POST",
            &format!("/migration-plans/{plan_id}/{action}"),
            None,
        )
        .await?;
        assert_eq!(status, 200, "{body}");
    }
    // The first reconcile of each session applies its migration (a write); the
    // rounds measure the steady state every later customer turn takes: read,
    // decide, answer.
    round(&app, tenant, &sessions, false).await;
    round(&app, tenant, &sessions, false).await;

    let (prometheus, handle) = api::metrics::prometheus::recorder();
    let (mut none, mut prom) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        none.push(round(&app, tenant, &sessions, false).await);
        let guard = metrics::set_default_local_recorder(&prometheus);
        prom.push(round(&app, tenant, &sessions, false).await);
        drop(guard);
    }
    let text = handle.render();
    assert!(
        text.contains("focal_migrations_reconciles_total"),
        "the recorder recorded"
    );

    api::metrics::emf::install();
    let mut emf = Vec::new();
    for _ in 0..rounds {
        emf.push(round(&app, tenant, &sessions, true).await);
    }
    let (none, prom, emf) = (median(none), median(prom), median(emf));
    println!(
        "reconcile through the router, {sessions_n} sessions x {rounds} rounds, median per call:"
    );
    println!("  no recorder             {:>8.2} µs", none * 1e6);
    println!(
        "  Prometheus (serve)      {:>8.2} µs  ratio {:.3}",
        prom * 1e6,
        prom / none
    );
    println!(
        "  EMF + flush (Lambda)    {:>8.2} µs  ratio {:.3}",
        emf * 1e6,
        emf / none
    );
    Ok(())
}
