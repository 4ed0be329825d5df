//! A small conversation runtime against a live focal-migrations server:
//!
//! ```sh
//! cargo run -p focal-migrations-client --example runtime -- --url http://127.0.0.1:8080
//! ```
//!
//! Under a fresh tenant it publishes a flow (Welcome → Collect email → Done),
//! records sessions waiting in it, publishes version 2 (an age check before
//! "Collect email") through a migration plan — generate, approve, deploy —
//! then sends one customer message per session through
//! `reconcile_on_message`, answering `collect` with the fields asked for, and
//! checks that every session reached version 2. It prints what happened and
//! exits non-zero on any surprise.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use focal_migrations_client::model::{
    ApprovePlanRequest, GenerateMigrationPlanRequest, KnownField, PlanStatus, ScenarioInput,
    SessionInput, StepInput, TransitionInput,
};
use focal_migrations_client::{Client, Decision};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Sessions waiting at "Collect email" (one more waits at "Done").
    #[arg(long, default_value_t = 5)]
    sessions: usize,
}

/// Whatever should not have happened, with what it was.
type Surprise = String;

fn step(name: &str, id: Uuid, next: Option<Uuid>, collects: &[&str]) -> StepInput {
    StepInput {
        checkpoint_description: None,
        collects_profile_fields: collects.iter().map(|f| f.to_string()).collect(),
        description: None,
        id,
        is_checkpoint: false,
        is_entry: false,
        is_required_action: false,
        is_terminal: next.is_none(),
        name: name.into(),
        performs_action: false,
        rule_ids: vec![],
        transitions: next
            .map(|to| TransitionInput {
                condition_fields: vec![],
                condition_text: None,
                priority: 0,
                to_step_id: to,
            })
            .into_iter()
            .collect(),
    }
}

struct Steps {
    welcome: Uuid,
    email: Uuid,
    done: Uuid,
    age: Uuid,
}

fn version_1(s: &Steps) -> ScenarioInput {
    ScenarioInput {
        description: None,
        entry_step_id: s.welcome,
        name: "Support flow".into(),
        steps: vec![
            step("Welcome", s.welcome, Some(s.email), &[]),
            step("Collect email", s.email, Some(s.done), &["email"]),
            step("Done", s.done, None, &[]),
        ],
        version: 1,
    }
}

fn version_2(s: &Steps) -> ScenarioInput {
    ScenarioInput {
        version: 2,
        steps: vec![
            step("Welcome", s.welcome, Some(s.age), &[]),
            step("Check age", s.age, Some(s.email), &["age"]),
            step("Collect email", s.email, Some(s.done), &["email"]),
            step("Done", s.done, None, &[]),
        ],
        ..version_1(s)
    }
}

/// What the simulated customer answers when asked for a field.
fn customer_answer(session_id: &str, field: &str) -> serde_json::Value {
    match field {
        "age" => json!(30 + session_id.len()),
        "email" => json!(format!("{session_id}@example.com")),
        other => json!(format!("{other} of {session_id}")),
    }
}

/// One customer message: reconcile (answering `collect` as the customer would
/// and reconciling again), then say what the runtime would do with the turn.
async fn on_message(
    client: &Client,
    session_id: &str,
) -> Result<(String, BTreeMap<String, KnownField>), Surprise> {
    let mut known: BTreeMap<String, KnownField> = BTreeMap::new();
    let mut story = Vec::new();
    // Collect twice in a row for the same fields would mean the answers were
    // not taken: a surprise, not a loop.
    for _ in 0..3 {
        let reconciled = client
            .reconcile_on_message(session_id, &known)
            .await
            .map_err(|e| format!("{session_id}: reconcile failed: {e}"))?;
        let migration = reconciled
            .migration()
            .map(|m| format!(" ({m:?})"))
            .unwrap_or_default();
        match reconciled.decision {
            Decision::Collect { fields, .. } => {
                if fields.iter().any(|f| known.contains_key(f)) {
                    return Err(format!("{session_id}: asked again for {fields:?}"));
                }
                story.push(format!("collect {fields:?}{migration}"));
                for field in fields {
                    let answer = customer_answer(session_id, &field);
                    known.insert(field, KnownField::Plain(answer));
                }
            }
            Decision::Continue => {
                story.push(format!("continue{migration}"));
                return Ok((story.join(" → "), known));
            }
            Decision::Teleport { step_id, .. } => {
                story.push(format!("teleport to {step_id}{migration}"));
                return Ok((story.join(" → "), known));
            }
            Decision::ExecuteAction {
                action_ids,
                then_step_id,
            } => {
                story.push(format!(
                    "execute {action_ids:?} then {then_step_id}{migration}"
                ));
                return Ok((story.join(" → "), known));
            }
            Decision::ExitScenario { .. } => {
                return Err(format!(
                    "{session_id}: restarted (exit_scenario) though its step survives in version 2"
                ));
            }
        }
    }
    Err(format!("{session_id}: still collecting after 3 rounds"))
}

async fn run(args: &Args) -> Result<(), Surprise> {
    let tenant = Uuid::new_v4();
    let client = Client::builder(&args.url, tenant)
        .build()
        .map_err(|e| e.to_string())?;
    let scenario = Uuid::new_v4();
    let steps = Steps {
        welcome: Uuid::new_v4(),
        email: Uuid::new_v4(),
        done: Uuid::new_v4(),
        age: Uuid::new_v4(),
    };
    println!("tenant {tenant}, scenario {scenario}");

    client
        .put_scenario(scenario, &version_1(&steps))
        .await
        .map_err(|e| format!("publishing version 1: {e}"))?;
    let mut sessions: Vec<String> = (0..args.sessions).map(|i| format!("rt-{i}")).collect();
    for id in &sessions {
        let session = SessionInput::at("web", scenario, 1, steps.email);
        client
            .create_session(id, &session)
            .await
            .map_err(|e| format!("recording {id}: {e}"))?;
    }
    sessions.push("rt-done".into());
    client
        .create_session("rt-done", &SessionInput::at("web", scenario, 1, steps.done))
        .await
        .map_err(|e| format!("recording rt-done: {e}"))?;
    println!("recorded {} sessions on version 1", sessions.len());

    let plan = client
        .create_plan(
            scenario,
            &GenerateMigrationPlanRequest {
                created_by: Some("runtime example".into()),
                new_scenario: version_2(&steps),
            },
        )
        .await
        .map_err(|e| format!("planning version 2: {e}"))?;
    println!(
        "plan {}: {} anchors, {} sessions affected",
        plan.id, plan.summary.total_anchors, plan.summary.estimated_sessions_affected
    );
    client
        .approve_plan(
            plan.id,
            &ApprovePlanRequest {
                approved_by: Some("runtime example".into()),
            },
        )
        .await
        .map_err(|e| format!("approving: {e}"))?;
    let deployed = client
        .deploy_plan(plan.id)
        .await
        .map_err(|e| format!("deploying: {e}"))?;
    // A large deployment marks in the background: wait for it.
    let mut status = deployed.status;
    for _ in 0..100 {
        if status != PlanStatus::Deploying {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = client
            .deployment_status(plan.id)
            .await
            .map_err(|e| format!("deployment status: {e}"))?
            .status;
    }
    if status != PlanStatus::Deployed {
        return Err(format!("the plan is {status:?}, not deployed"));
    }
    println!("deployed: {} sessions marked", deployed.sessions_marked);

    for id in &sessions {
        let (story, answered) = on_message(&client, id).await?;
        let session = client
            .get_session(id)
            .await
            .map_err(|e| format!("reading {id}: {e}"))?
            .value;
        if session.active_scenario_version != 2 {
            return Err(format!(
                "{id}: still on version {} after its message ({story})",
                session.active_scenario_version
            ));
        }
        if session.pending_migration.is_some() {
            return Err(format!("{id}: still flagged after its message"));
        }
        // What the customer answered is on the session now.
        for field in answered.keys() {
            if !session.variables.contains_key(field) {
                return Err(format!("{id}: {field} was answered but not recorded"));
            }
        }
        let at = [
            (steps.welcome, "Welcome"),
            (steps.age, "Check age"),
            (steps.email, "Collect email"),
            (steps.done, "Done"),
        ]
        .into_iter()
        .find(|(step, _)| *step == session.active_step_id)
        .map_or("an unknown step", |(_, name)| name);
        println!("{id}: {story}; now at version 2, \"{at}\"");
    }

    let after = client
        .deployment_status(plan.id)
        .await
        .map_err(|e| format!("deployment status: {e}"))?;
    let applied = after.migrations_applied + after.migrations_applied_unflagged;
    if applied != sessions.len() as u64 || after.migrations_pending != 0 {
        return Err(format!(
            "the deployment counts {applied} migrations applied and {} pending for {} sessions",
            after.migrations_pending,
            sessions.len()
        ));
    }
    println!(
        "ok: {} sessions reached version 2 ({} migrations applied)",
        sessions.len(),
        applied
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(surprise) => {
            eprintln!("surprise: {surprise}");
            ExitCode::FAILURE
        }
    }
}
