//! `migrations plan` as a process: formats, the plan's JSON field names, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use planning::model::ScenarioInput;
use planning::testkit::{conversation, edit, scenario, step, uuid_n};

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("migrations-plan-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, s: &ScenarioInput) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(s).unwrap()).unwrap();
    p
}

fn plan(from: &Path, to: &Path, format: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrations"))
        .args(["plan", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(["--format", format])
        .output()
        .unwrap()
}

#[test]
fn json_plan_uses_the_spec_names() {
    let d = dir("json");
    let v1 = conversation(40, 1);
    let v2 = edit(&v1, 3, 2);
    let out = plan(
        &write(&d, "v1.json", &v1),
        &write(&d, "v2.json", &v2),
        "json",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "scenario_checksum_v1",
        "scenario_checksum_v2",
        "transformation_map",
        "anchor_policies",
        "summary",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in ["anchors", "deleted_nodes", "new_node_ids"] {
        assert!(
            json["transformation_map"].get(key).is_some(),
            "missing {key}"
        );
    }
    let anchor = &json["transformation_map"]["anchors"][0];
    for key in [
        "anchor_content_hash",
        "anchor_name",
        "anchor_node_id_v1",
        "anchor_node_id_v2",
        "upstream_changes",
        "downstream_changes",
        "migration_scenario",
    ] {
        assert!(anchor.get(key).is_some(), "missing anchor.{key}");
    }
    for key in [
        "total_anchors",
        "anchors_with_clean_graft",
        "anchors_with_gap_fill",
        "anchors_with_re_route",
        "nodes_deleted",
        "estimated_sessions_affected",
        "sessions_by_anchor",
        "warnings",
        "fields_to_collect",
    ] {
        assert!(json["summary"].get(key).is_some(), "missing summary.{key}");
    }
    assert_eq!(json["summary"]["estimated_sessions_affected"], 0);
}

#[test]
fn text_and_mermaid_formats() {
    let d = dir("formats");
    let v1 = conversation(30, 3);
    let v2 = edit(&v1, 2, 4);
    let (a, b) = (write(&d, "v1.json", &v1), write(&d, "v2.json", &v2));
    let text = plan(&a, &b, "text");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("SUMMARY") && text.contains("WARNINGS"));
    let mermaid = plan(&a, &b, "mermaid");
    assert!(mermaid.status.success());
    assert!(
        String::from_utf8(mermaid.stdout)
            .unwrap()
            .starts_with("flowchart TD")
    );
}

#[test]
fn invalid_input_exits_2_listing_every_problem_of_both_files() {
    let d = dir("invalid");
    let mut bad = scenario(0, vec![step("A").to_id(uuid_n(9)), step("")]);
    bad.entry_step_id = uuid_n(8);
    let a = write(&d, "bad.json", &bad);
    let b = d.join("not-json.json");
    std::fs::write(&b, "{ nope").unwrap();
    let out = plan(&a, &b, "json");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "bad.json: version:",
        "bad.json: entry_step_id:",
        "bad.json: steps.0.transitions.0.to_step_id:",
        "bad.json: steps.1.name:",
        "not-json.json: not a valid ScenarioInput",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn missing_file_exits_2() {
    let d = dir("missing");
    let out = plan(&d.join("nope.json"), &d.join("nope2.json"), "text");
    assert_eq!(out.status.code(), Some(2));
}

/// `--sessions` prints the forecast the API computes over the same sessions
/// in a store (the service's reads through the step index, in process).
#[test]
fn the_offline_forecast_is_the_api_forecast() {
    use planning::testkit::Rng;
    use planning::{MigrationPlan, PlanForecast, PlanStatus, ScenarioVersion, Session, StepVisit};
    use store::Store;

    let d = dir("forecast");
    let v1 = conversation(30, 5);
    let v2 = edit(&v1, 4, 5);
    let (tenant, scenario_id) = (uuid_n(7001), uuid_n(7002));
    let now = chrono::Utc::now();
    let mut rng = Rng::new(77);
    let sessions: Vec<Session> = (0..120)
        .map(|i| {
            let at = rng.below(v1.steps.len());
            let mut variables = std::collections::BTreeMap::new();
            if rng.one_in(2) {
                variables.insert("age".to_string(), serde_json::json!(20 + rng.below(30)));
            }
            Session {
                session_id: format!("cli-{i}"),
                tenant_id: tenant,
                channel: ["web", "sms"][rng.below(2)].into(),
                customer_id: None,
                active_scenario_id: scenario_id,
                active_scenario_version: 1,
                active_step_id: v1.steps[at].id,
                scenario_checksum: None,
                step_history: v1.steps[..at]
                    .iter()
                    .map(|s| StepVisit {
                        step_id: s.id,
                        step_name: s.name.clone(),
                        visited_at: now,
                        is_checkpoint: s.is_checkpoint,
                        checkpoint_description: None,
                    })
                    .collect(),
                variables,
                pending_migration: None,
                pinned_version: None,
                created_at: now,
                updated_at: now,
                revision: 1,
            }
        })
        .collect();
    let lines: Vec<String> = sessions
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    let sessions_path = d.join("sessions.jsonl");
    std::fs::write(&sessions_path, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_migrations"))
        .args(["plan", "--from"])
        .arg(write(&d, "v1.json", &v1))
        .arg("--to")
        .arg(write(&d, "v2.json", &v2))
        .arg("--sessions")
        .arg(&sessions_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let offline: PlanForecast = serde_json::from_value(printed["forecast"].clone()).unwrap();
    assert_eq!(offline.sessions_considered, 120);
    assert!(
        printed["summary"]["estimated_sessions_affected"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );

    let online = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = store::MemoryStore::new();
        let version = |input: &ScenarioInput| ScenarioVersion {
            id: scenario_id,
            tenant_id: tenant,
            name: input.name.clone(),
            description: input.description.clone(),
            version: input.version,
            entry_step_id: input.entry_step_id,
            steps: input.steps.clone(),
            checksum: planning::hash::scenario_checksum(input),
            created_at: now,
        };
        store.create_scenario(&version(&v1)).await.unwrap();
        for session in &sessions {
            store.put_session(session).await.unwrap();
        }
        let computed = planning::plan::compute_plan(&v1, &v2, &Default::default());
        let plan = MigrationPlan {
            id: uuid_n(7003),
            tenant_id: tenant,
            scenario_id,
            scenario_name: v2.name.clone(),
            from_version: 1,
            to_version: 2,
            scenario_checksum_v1: computed.scenario_checksum_v1,
            scenario_checksum_v2: computed.scenario_checksum_v2,
            transformation_map: computed.transformation_map,
            anchor_policies: computed.anchor_policies,
            summary: computed.summary,
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
        store.create_plan(&plan, &version(&v2)).await.unwrap();
        api::services::forecast::compute(&store, &api::Config::default(), plan, now, 1)
            .await
            .unwrap()
    });
    assert!(online.exact);
    assert_eq!(offline.outcomes, online.outcomes);
    assert_eq!(offline.fields_missing, online.fields_missing);
    assert_eq!(offline.by_anchor, online.by_anchor);
    assert!(
        online.outcomes.collect.value() + online.outcomes.teleport.value() > 0,
        "the sessions do migrate: {:?}",
        online.outcomes
    );
}
