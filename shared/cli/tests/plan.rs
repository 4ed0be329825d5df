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
