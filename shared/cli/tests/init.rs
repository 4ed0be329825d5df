//! `migrations init` as a real process: against DynamoDB Local and moto it creates
//! the tables and the marking queue, and a second run finds them and still exits 0;
//! an unreachable endpoint is an error (exit 1), not a silent success.

use std::process::{Command, Output};

fn init(main: &str, sessions: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrations"))
        .arg("init")
        .args(args)
        .env("MIGRATIONS_TABLE", main)
        .env("SESSIONS_TABLE", sessions)
        .env_remove("MARKING_QUEUE_URL")
        .output()
        .expect("run migrations init")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Drops the test's tables when the test ends, also after a failed assertion:
/// DynamoDB Local holds every table's items in memory until it is deleted.
struct DropTables(Vec<String>);

impl Drop for DropTables {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        // A runtime of its own, on a thread of its own: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let sdk = store::sdk::load_sdk_config().await;
                let client = aws_sdk_dynamodb::Client::new(&sdk);
                for name in names {
                    let _ = client.delete_table().table_name(name).send().await;
                }
            });
        })
        .join();
    }
}

#[test]
fn creates_the_tables_and_the_queue_then_finds_them() {
    let dynamo = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty());
    let sqs = std::env::var("AWS_ENDPOINT_URL_SQS").is_ok_and(|v| !v.is_empty());
    if !(dynamo && sqs) {
        assert_ne!(
            std::env::var("FOCAL_REQUIRE_LOCAL_AWS").as_deref(),
            Ok("1"),
            "FOCAL_REQUIRE_LOCAL_AWS=1 but the local AWS endpoints are not set"
        );
        eprintln!("skipping: DynamoDB Local / SQS endpoints not set");
        return;
    }
    let suffix = std::process::id();
    let main = format!("init-main-{suffix}");
    let sessions = format!("init-sessions-{suffix}");
    let _drop = DropTables(vec![main.clone(), sessions.clone()]);

    let first = init(&main, &sessions, &["--queue", "sqs"]);
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("table {main}: created (MIGRATIONS_TABLE")),
        "{}",
        text(&first)
    );
    assert!(
        stdout.contains(&format!("table {sessions}: created (SESSIONS_TABLE")),
        "{}",
        text(&first)
    );
    // The queue's name is fixed (`serve --queue sqs --init` uses it too): created by
    // whichever ran first against this emulator.
    assert!(
        stdout.contains("queue focal-marking: created")
            || stdout.contains("queue focal-marking: found"),
        "{}",
        text(&first)
    );
    assert!(
        stdout.contains("MARKING_QUEUE_URL=http"),
        "{}",
        text(&first)
    );

    let second = init(&main, &sessions, &["--queue", "sqs"]);
    assert!(second.status.success(), "{}", text(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains(&format!("table {main}: found")),
        "{}",
        text(&second)
    );
    assert!(
        stdout.contains(&format!("table {sessions}: found")),
        "{}",
        text(&second)
    );
    assert!(
        stdout.contains("queue focal-marking: found"),
        "{}",
        text(&second)
    );

    // Without `--queue sqs`: the tables only.
    let tables_only = init(&main, &sessions, &[]);
    assert!(tables_only.status.success(), "{}", text(&tables_only));
    let stdout = String::from_utf8_lossy(&tables_only.stdout);
    assert_eq!(stdout.lines().count(), 2, "{}", text(&tables_only));
    assert!(!stdout.contains("queue"), "{}", text(&tables_only));
}

#[test]
fn an_unreachable_endpoint_is_an_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = Command::new(env!("CARGO_BIN_EXE_migrations"))
        .arg("init")
        .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("MIGRATIONS_TABLE", "init-unreachable-main")
        .env("SESSIONS_TABLE", "init-unreachable-sessions")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(output.stdout.is_empty(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot read table init-unreachable-main"),
        "{}",
        text(&output)
    );
}
