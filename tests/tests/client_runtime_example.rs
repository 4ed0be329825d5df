//! The client's example runtime (shared/client/examples/runtime.rs) against a
//! real `migrations serve` on the embedded store: it records sessions,
//! publishes version 2 through a plan, reconciles one message per session
//! (answering `collect`) and must report every session on version 2.
//!
//! The binaries are the ones `tests/run.sh` builds (`cargo build --workspace
//! --bins --examples`); when one is missing the test builds it with cargo,
//! so it never passes without running the example.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn target_debug() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("debug")
}

/// `path`, built with `cargo build <args>` first when it is not there.
fn built(path: PathBuf, args: &[&str]) -> PathBuf {
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .arg("build")
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build {args:?} failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runtime_brings_every_session_to_the_new_version() {
    let migrations = built(
        target_debug().join("migrations"),
        &["-p", "migrations", "--bin", "migrations"],
    );
    let example = built(
        target_debug().join("examples").join("runtime"),
        &["-p", "focal-migrations-client", "--example", "runtime"],
    );
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = tokio::process::Command::new(&migrations)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start migrations serve");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve printed its address in time")
        .expect("read stdout")
        .expect("a line");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();

    let run = tokio::process::Command::new(&example)
        .args(["--url", &url, "--sessions", "4"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the example finished in time")
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("deployed: 5 sessions marked"), "{stdout}");
    for id in ["rt-0", "rt-1", "rt-2", "rt-3", "rt-done"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id}: ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{stdout}"));
        // The age check was inserted upstream of both steps: asked, answered, migrated.
        assert!(
            line.contains("collect [\"age\"]") && line.contains("now at version 2"),
            "{line}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l == "ok: 5 sessions reached version 2 (5 migrations applied)"),
        "{stdout}"
    );
    server.kill().await.expect("stop the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runtime_fails_loudly_without_a_server() {
    let example = built(
        target_debug().join("examples").join("runtime"),
        &["-p", "focal-migrations-client", "--example", "runtime"],
    );
    // A server that answers every request with a 404: the first call fails
    // with a 4xx, which is never retried, so the example stops at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new()).await;
    });
    let output = tokio::process::Command::new(&example)
        .args(["--url", &url])
        .output()
        .await
        .expect("run the example");
    server.abort();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("surprise: publishing version 1") && stderr.contains("404"),
        "{stderr}"
    );
}
