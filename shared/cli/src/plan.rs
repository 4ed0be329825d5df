//! `migrations plan --from V1.json --to V2.json [--format json|text|mermaid]
//! [--sessions SESSIONS.jsonl]`.
//!
//! Offline: no session store, so the summary carries no session counts unless
//! `--sessions` gives the sessions (JSON lines, one session as `GET
//! /sessions/{id}` returns it per line): then the summary counts them and the
//! output adds the outcome forecast the API would answer for the same sessions
//! (`forecast` in JSON, a table in text). Exit codes: 0 plan printed, 2
//! unreadable or invalid input (every problem on stderr), 1 output could not be
//! written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use planning::forecast::{Forecaster, StratumRead, StratumTally, finish};
use planning::model::ScenarioInput;
use planning::plan::{SessionCounts, compute_plan};
use planning::reconcile::{PreparedPlan, PreparedScenario};
use planning::validate::validate_scenario;
use planning::{MigrationPlan, PlanForecast, PlanStatus, Session};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The current version (ScenarioInput JSON).
    #[arg(long)]
    pub from: PathBuf,
    /// The proposed version (ScenarioInput JSON).
    #[arg(long)]
    pub to: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Sessions to forecast (JSON lines: one session per line, as `GET
    /// /sessions/{id}` returns it); those on the `--from` version are counted
    /// and forecast.
    #[arg(long)]
    pub sessions: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
    Mermaid,
}

pub fn run(args: PlanArgs) -> ExitCode {
    // Read and check both files before giving up, so one run shows every problem.
    let v1 = load(&args.from);
    let v2 = load(&args.to);
    let (Some(v1), Some(v2)) = (v1, v2) else {
        return ExitCode::from(2);
    };

    let sessions = match &args.sessions {
        None => None,
        Some(path) => match load_sessions(path, v1.version) {
            Some(sessions) => Some(sessions),
            None => return ExitCode::from(2),
        },
    };
    let mut counts = SessionCounts::new();
    for session in sessions.iter().flatten() {
        *counts.entry(session.active_step_id).or_default() += 1;
    }
    let plan = compute_plan(&v1, &v2, &counts);
    let forecast = sessions.map(|sessions| forecast(&plan, &v1, &v2, &sessions));
    let rendered = match args.format {
        Format::Json if forecast.is_some() => {
            let mut value = serde_json::to_value(&plan).unwrap_or_default();
            value["forecast"] = serde_json::to_value(&forecast).unwrap_or_default();
            match serde_json::to_string_pretty(&value) {
                Ok(s) => s + "\n",
                Err(e) => {
                    eprintln!("error: could not serialise the plan: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        Format::Json => match serde_json::to_string_pretty(&plan) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            Err(e) => {
                eprintln!("error: could not serialise the plan: {e}");
                return ExitCode::from(1);
            }
        },
        Format::Text => {
            let mut text = planning::render::text(&plan, &v1, &v2);
            if let Some(forecast) = &forecast {
                text.push_str(&forecast_text(forecast));
            }
            text
        }
        Format::Mermaid => planning::render::mermaid(&plan, &v2),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write the plan: {e}");
            ExitCode::from(1)
        }
    }
}

/// The scenario in `path`, or `None` after printing every problem with it.
fn load(path: &Path) -> Option<ScenarioInput> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{shown}: cannot read: {e}");
            return None;
        }
    };
    let scenario: ScenarioInput = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{shown}: not a valid ScenarioInput: {e}");
            return None;
        }
    };
    match validate_scenario(&scenario) {
        Ok(()) => Some(scenario),
        Err(issues) => {
            for issue in &issues {
                eprintln!("{shown}: {issue}");
            }
            eprintln!("{shown}: {} problem(s)", issues.len());
            None
        }
    }
}

/// The forecast of the plan over `sessions` (all on the from-version), as
/// `GET /migration-plans/{id}/forecast` computes it: every session decided.
fn forecast(
    computed: &planning::PlanComputation,
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    sessions: &[Session],
) -> PlanForecast {
    let now = chrono::Utc::now();
    let plan = MigrationPlan {
        id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        scenario_id: uuid::Uuid::nil(),
        scenario_name: v2.name.clone(),
        from_version: v1.version,
        to_version: v2.version,
        scenario_checksum_v1: computed.scenario_checksum_v1.clone(),
        scenario_checksum_v2: computed.scenario_checksum_v2.clone(),
        transformation_map: computed.transformation_map.clone(),
        anchor_policies: computed.anchor_policies.clone(),
        summary: computed.summary.clone(),
        status: PlanStatus::Pending,
        created_at: now,
        created_by: None,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: None,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    };
    let prepared = PreparedPlan::new(plan);
    let (from, to) = (
        PreparedScenario::new(v1.clone()),
        PreparedScenario::new(v2.clone()),
    );
    let forecaster = Forecaster::new(&prepared, &from, &to, now);
    let reads: Vec<StratumRead> = forecaster
        .strata()
        .iter()
        .map(|stratum| {
            let mut tally = StratumTally::default();
            for session in sessions
                .iter()
                .filter(|s| s.active_step_id == stratum.step.step_id)
            {
                tally.add(&forecaster.outcome(stratum, session));
            }
            StratumRead {
                stratum: stratum.clone(),
                counted: tally.sessions,
                tally,
                complete: true,
            }
        })
        .collect();
    finish(uuid::Uuid::nil(), 1, now, &reads)
}

/// The forecast as a few lines of text.
fn forecast_text(forecast: &PlanForecast) -> String {
    let o = &forecast.outcomes;
    let mut out = format!(
        "\nForecast over {} sessions\n  continue {} (excluded by scope {}, pinned {}), teleport {}, collect {}, execute_action {}, exit_scenario {}; blocked by a checkpoint {}\n",
        forecast.sessions_considered,
        o.continue_.value(),
        o.excluded_by_scope.value(),
        o.pinned.value(),
        o.teleport.value(),
        o.collect.value(),
        o.execute_action.value(),
        o.exit_scenario.value(),
        o.blocked_by_checkpoint.value(),
    );
    for anchor in forecast.by_anchor.iter().filter(|a| a.sessions.value() > 0) {
        let a = &anchor.outcomes;
        out.push_str(&format!(
            "  {}: {} sessions — continue {}, teleport {}, collect {}, execute_action {}, exit_scenario {}\n",
            anchor.anchor_name,
            anchor.sessions.value(),
            a.continue_.value(),
            a.teleport.value(),
            a.collect.value(),
            a.execute_action.value(),
            a.exit_scenario.value(),
        ));
    }
    if !forecast.fields_missing.is_empty() {
        let fields: Vec<String> = forecast
            .fields_missing
            .iter()
            .map(|(field, n)| format!("{field} {}", n.value()))
            .collect();
        out.push_str(&format!("  fields asked: {}\n", fields.join(", ")));
    }
    out
}

/// The sessions of `path` (JSON lines) on version `from_version`, or `None`
/// after printing every unreadable line.
fn load_sessions(path: &Path, from_version: i64) -> Option<Vec<Session>> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{shown}: cannot read: {e}");
            return None;
        }
    };
    let mut sessions = Vec::new();
    let mut problems = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Session>(line) {
            Ok(session) if session.active_scenario_version == from_version => {
                sessions.push(session)
            }
            Ok(_) => {}
            Err(e) => {
                problems += 1;
                eprintln!("{shown}:{}: not a session: {e}", n + 1);
            }
        }
    }
    if problems > 0 {
        eprintln!("{shown}: {problems} problem(s)");
        return None;
    }
    Some(sessions)
}
