//! `kill -9` of `migrations serve` in the middle of a deploy, a ramp or a
//! withdrawal, inline and fanned out: after a restart on the same data folder
//! the walk finishes by itself (the sweep resumes every chain whose lease ran
//! out) with exact counts — every eligible session flagged once and
//! `sessions_marked` equal to the flags; or, for a withdrawal, no flag left and
//! `flags_withdrawn` equal to the flags there were.
//!
//! One data folder is seeded once (3,000 sessions at an anchor, an approved plan,
//! or a plan deployed at 30%) and copied for each trial; the kill lands at a
//! different moment in each.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, call_as, serve_command, spawn};

const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
const SCENARIO: &str = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
const SESSIONS: usize = 3_000;

fn step(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn start(data_dir: &Path, inline_threshold: u64) -> Server {
    let mut command = serve_command();
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("INLINE_MARK_THRESHOLD", inline_threshold.to_string())
        .env("MARK_PAGE_SIZE", "100")
        .env("DEPLOY_LEASE_SECONDS", "1")
        .env("DEPLOY_SWEEP_SECONDS", "1")
        .env("RUST_LOG", "error");
    spawn(command)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_as(base, TENANT, method, path, body).await
}

fn scenario(version: i64, with_age_check: bool) -> Value {
    let (a, b, c, d) = (step(1), step(2), step(3), step(4));
    let mut steps = vec![
        json!({"id": a, "name": "Welcome", "transitions": [{"to_step_id": if with_age_check { &d } else { &b }}]}),
        json!({"id": b, "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": c}]}),
        json!({"id": c, "name": "Done", "is_terminal": true}),
    ];
    if with_age_check {
        steps.push(json!({"id": d, "name": "Check age", "collects_profile_fields": ["age"], "transitions": [{"to_step_id": b}]}));
    }
    json!({"name": "Support flow", "version": version, "entry_step_id": a, "steps": steps})
}

/// A data folder with V1, 3,000 sessions at "Collect email" and an approved
/// plan; deployed at `deployed_at` percent when given.
async fn seed(dir: &Path, deployed_at: Option<u8>) -> String {
    let server = start(dir, 1_000);
    let base = server.base.clone();
    let (status, _) = call(
        &base,
        reqwest::Method::PUT,
        &format!("/scenarios/{SCENARIO}"),
        Some(scenario(1, false)),
    )
    .await;
    assert_eq!(status, 201);
    let session = json!({"channel": "web", "active_scenario_id": SCENARIO,
        "active_scenario_version": 1, "active_step_id": step(2)});
    let mut pending = futures_like::Pool::new(32);
    for i in 0..SESSIONS {
        let (base, session) = (base.clone(), session.clone());
        pending
            .push(tokio::spawn(async move {
                let (status, body) = call(
                    &base,
                    reqwest::Method::PUT,
                    &format!("/sessions/s-{i:05}"),
                    Some(session),
                )
                .await;
                assert_eq!(status, 201, "{body}");
            }))
            .await;
    }
    pending.drain().await;
    let (status, plan) = call(
        &base,
        reqwest::Method::POST,
        &format!("/scenarios/{SCENARIO}/migration-plan"),
        Some(json!({"new_scenario": scenario(2, true)})),
    )
    .await;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().expect("plan id").to_owned();
    let (status, _) = call(
        &base,
        reqwest::Method::POST,
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    if let Some(percent) = deployed_at {
        let (status, body) = call(
            &base,
            reqwest::Method::POST,
            &format!("/migration-plans/{plan_id}/deploy"),
            Some(json!({ "percent": percent })),
        )
        .await;
        assert!(matches!(status, 200 | 202), "{body}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, s) = call(
                &base,
                reqwest::Method::GET,
                &format!("/migration-plans/{plan_id}/deployment-status"),
                None,
            )
            .await;
            if s["status"] == "deployed" {
                break;
            }
            assert!(Instant::now() < deadline, "seed deploy stuck: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(server);
    plan_id
}

/// A bounded set of in-flight tasks (the test seeds and reads thousands).
mod futures_like {
    pub struct Pool {
        limit: usize,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }
    impl Pool {
        pub fn new(limit: usize) -> Self {
            Pool {
                limit,
                tasks: Vec::new(),
            }
        }
        pub async fn push(&mut self, task: tokio::task::JoinHandle<()>) {
            self.tasks.push(task);
            if self.tasks.len() >= self.limit {
                self.drain().await;
            }
        }
        pub async fn drain(&mut self) {
            for task in self.tasks.drain(..) {
                task.await.expect("task");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read seed dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

struct Trial {
    status_after_restart: String,
    marked_before_kill: u64,
    withdrawn_before_kill: u64,
}

/// What a trial does before the kill, and what it must end as.
#[derive(Clone, Copy)]
enum Action {
    /// Deploy an approved plan to every session.
    Deploy,
    /// Ramp a plan deployed at 30% to 100%.
    Ramp,
    /// Withdraw a plan deployed at 30%.
    Withdraw,
}

impl Action {
    fn request(self, plan_id: &str) -> (String, Option<Value>) {
        match self {
            Action::Deploy => (format!("/migration-plans/{plan_id}/deploy"), None),
            Action::Ramp => (
                format!("/migration-plans/{plan_id}/deploy"),
                Some(json!({"percent": 100})),
            ),
            Action::Withdraw => (format!("/migration-plans/{plan_id}/withdraw"), None),
        }
    }

    fn walking(self) -> &'static str {
        match self {
            Action::Withdraw => "withdrawing",
            Action::Deploy | Action::Ramp => "deploying",
        }
    }

    fn finished(self) -> &'static str {
        match self {
            Action::Withdraw => "withdrawn",
            Action::Deploy | Action::Ramp => "deployed",
        }
    }
}

async fn trial(
    seed_dir: &Path,
    plan_id: &str,
    action: Action,
    inline_threshold: u64,
    kill_after: Duration,
) -> Trial {
    let dir = tempfile::tempdir().expect("trial dir");
    copy_dir(seed_dir, dir.path());
    let server = start(dir.path(), inline_threshold);
    let base = server.base.clone();
    let (path, body) = action.request(plan_id);
    // Flags before the action: what a withdrawal must clear.
    let (_, before) = call(
        &base,
        reqwest::Method::GET,
        &format!("/migration-plans/{plan_id}/deployment-status"),
        None,
    )
    .await;
    let flagged_before = before["sessions_marked"].as_u64().unwrap_or(0);
    // The answer may never come: the server dies under it.
    let deploy = tokio::spawn(async move {
        let mut request = client()
            .post(format!("{base}{path}"))
            .header("X-Tenant-ID", TENANT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.map(|r| r.status().as_u16())
    });
    tokio::time::sleep(kill_after).await;
    server.kill_9();
    let _ = deploy.await;

    let server = start(dir.path(), inline_threshold);
    let base = server.base.clone();
    let status_path = format!("/migration-plans/{plan_id}/deployment-status");
    let (_, first) = call(&base, reqwest::Method::GET, &status_path, None).await;
    let status_after_restart = first["status"].as_str().unwrap_or("?").to_owned();
    let marked_before_kill = first["sessions_marked"].as_u64().unwrap_or(0);
    let withdrawn_before_kill = first["flags_withdrawn"].as_u64().unwrap_or(0);
    // A ramp that finished before the kill is `deployed` too, but at 100%.
    let untouched = match action {
        Action::Deploy => status_after_restart == "approved",
        Action::Ramp => status_after_restart == "deployed" && first["percent"] != 100,
        Action::Withdraw => status_after_restart == "deployed",
    };
    if untouched {
        // Killed before the first write: calling again is the operator's move.
        let (path, body) = action.request(plan_id);
        let (status, answer) = call(&base, reqwest::Method::POST, &path, body).await;
        assert!(matches!(status, 200 | 202), "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let (_, s) = call(&base, reqwest::Method::GET, &status_path, None).await;
        if s["status"] == action.finished() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still not {} after the restart: {s}",
            action.finished()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let expected_flags = match action {
        Action::Withdraw => {
            // Every flag there was is withdrawn, once; none is left.
            assert_eq!(done["flags_withdrawn"], flagged_before, "{done}");
            assert_eq!(done["migrations_pending"], 0, "{done}");
            0
        }
        Action::Deploy | Action::Ramp => {
            assert_eq!(done["sessions_marked"], SESSIONS, "{done}");
            SESSIONS
        }
    };

    // Every session carries this plan's flag once (none after a withdrawal).
    let flagged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut reads = futures_like::Pool::new(32);
    for i in 0..SESSIONS {
        let (base, flagged, plan_id) = (base.clone(), flagged.clone(), plan_id.to_owned());
        reads
            .push(tokio::spawn(async move {
                let (_, s) = call(
                    &base,
                    reqwest::Method::GET,
                    &format!("/sessions/s-{i:05}"),
                    None,
                )
                .await;
                if s["pending_migration"]["migration_plan_id"] == json!(plan_id) {
                    flagged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }))
            .await;
    }
    reads.drain().await;
    assert_eq!(
        flagged.load(std::sync::atomic::Ordering::Relaxed),
        expected_flags,
        "flags after the walk"
    );
    Trial {
        status_after_restart,
        marked_before_kill,
        withdrawn_before_kill,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_killed_anywhere_finishes_after_a_restart() {
    let seed_dir = tempfile::tempdir().expect("seed dir");
    let plan_id = seed(seed_dir.path(), None).await;
    killed_anywhere(
        seed_dir.path(),
        &plan_id,
        Action::Deploy,
        &[5, 60, 250, 700],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_or_a_withdrawal_killed_anywhere_finishes_after_a_restart() {
    let seed_dir = tempfile::tempdir().expect("seed dir");
    let plan_id = seed(seed_dir.path(), Some(30)).await;
    killed_anywhere(seed_dir.path(), &plan_id, Action::Ramp, &[40, 250]).await;
    killed_anywhere(seed_dir.path(), &plan_id, Action::Withdraw, &[40, 250]).await;
}

/// Trials of `action`, inline (threshold above the population) and fanned out
/// (below it), the kill landing after each of `kills_ms`.
async fn killed_anywhere(seed_dir: &Path, plan_id: &str, action: Action, kills_ms: &[u64]) {
    let mut stuck_midway = 0;
    let mut trials = 0;
    for (mode, threshold) in [("inline", 10_000u64), ("fan-out", 100)] {
        for kill_ms in kills_ms {
            let t = trial(
                seed_dir,
                plan_id,
                action,
                threshold,
                Duration::from_millis(*kill_ms),
            )
            .await;
            trials += 1;
            if t.status_after_restart == action.walking() {
                stuck_midway += 1;
            }
            eprintln!(
                "kill -9 trial: {} {mode} after {kill_ms} ms: after restart {} with {} marked, {} withdrawn; ended {}",
                action.walking(),
                t.status_after_restart,
                t.marked_before_kill,
                t.withdrawn_before_kill,
                action.finished()
            );
        }
    }
    eprintln!(
        "kill -9 trials ({}): {trials}, killed mid-walk: {stuck_midway}, stuck at the end: 0, lost or extra flags: 0",
        action.walking()
    );
    assert!(
        stuck_midway >= 1,
        "no kill landed mid-walk; the test proves nothing"
    );
}
