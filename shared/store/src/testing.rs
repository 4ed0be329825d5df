//! Test support shared by this crate's own tests, the end-to-end crate and its
//! benchmarks (feature `test-support`; no deployed binary turns it on):
//!
//! - when a local AWS emulator counts as present, and what its absence means
//!   ([`local_service_configured`]): a skip on a developer's machine, a failure
//!   under `FOCAL_REQUIRE_LOCAL_AWS=1` (tests/run.sh and CI), so a misconfigured
//!   run can never pass by skipping everything;
//! - fresh, uniquely named DynamoDB tables on DynamoDB Local
//!   ([`fresh_dynamo_tables`]), each in a database of its own on the emulator,
//!   so every test owns its data, tests run in parallel against one emulator
//!   and none pays for what the others wrote; and their deletion when the test
//!   is done ([`FreshTables::drop_after`], [`drop_tables`]), which frees the
//!   emulator's memory of their items;
//! - [`backend_matrix!`](crate::backend_matrix), which runs each test once per
//!   backend;
//! - [`FaultyStore`], a store that forwards every call to another and lets a
//!   test's [`StoreFaults`] hook fail the marking path's calls.
//!
//! The emulators are the ones `tests/services/start.sh` starts; the SDK finds them
//! through its own `AWS_ENDPOINT_URL_*` variables.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use backon::Retryable;
use futures::FutureExt;
use uuid::Uuid;

use crate::dynamo::sdk_error;
use crate::{DynamoStore, StoreResult, TableNames, create_tables, retry_backoff};

mod faults;
pub use faults::{FaultyStore, StoreFaults, StoreOp};

/// The endpoint of DynamoDB Local (read by the SDK itself).
pub const DYNAMODB_ENDPOINT: &str = "AWS_ENDPOINT_URL_DYNAMODB";
/// The endpoint of the local SQS (moto; read by the SDK itself).
pub const SQS_ENDPOINT: &str = "AWS_ENDPOINT_URL_SQS";
/// Set to `1` where every local service must be present (tests/run.sh, CI).
pub const REQUIRE_LOCAL_AWS: &str = "FOCAL_REQUIRE_LOCAL_AWS";

/// Whether the local service whose endpoint the variable `endpoint` names is
/// configured. When it is not, the caller skips its test (this says so on
/// stderr) — unless `FOCAL_REQUIRE_LOCAL_AWS=1`, where it panics: there a
/// missing emulator is a broken run, not a reason to skip.
pub fn local_service_configured(endpoint: &str) -> bool {
    let configured = std::env::var(endpoint).is_ok_and(|v| !v.is_empty());
    if !configured && std::env::var(REQUIRE_LOCAL_AWS).as_deref() == Ok("1") {
        panic!(
            "{REQUIRE_LOCAL_AWS}=1 but {endpoint} is not set: start the local services \
             (eval \"$(tests/services/start.sh)\") and point {endpoint} at them"
        );
    }
    if !configured {
        eprintln!("skipping: {endpoint} not set");
    }
    configured
}

/// [`local_service_configured`] for DynamoDB Local.
pub fn dynamo_configured() -> bool {
    local_service_configured(DYNAMODB_ENDPOINT)
}

/// [`local_service_configured`] for the local SQS.
pub fn sqs_configured() -> bool {
    local_service_configured(SQS_ENDPOINT)
}

/// Table names no other test uses: `{prefix}-main-{unique}` and
/// `{prefix}-sessions-{unique}` (the prefix says who made them when one is left
/// behind in the emulator).
pub fn unique_table_names(prefix: &str) -> TableNames {
    let unique = Uuid::new_v4().simple();
    TableNames {
        main: format!("{prefix}-main-{unique}"),
        sessions: format!("{prefix}-sessions-{unique}"),
    }
}

/// Create both tables (indexes, stream, TTL) under [`unique_table_names`]; for
/// callers that report errors rather than panic (the benchmarks).
pub async fn create_fresh_tables(client: &Client, prefix: &str) -> StoreResult<TableNames> {
    let tables = unique_table_names(prefix);
    create_tables(client, &tables).await?;
    Ok(tables)
}

/// Delete both tables, as a test's last step: one emulator serves the whole
/// suite, and holds every table's items in memory until it is deleted. A
/// table already gone counts as deleted; a table still being created or
/// updated is waited for ([`retry_backoff`]).
pub async fn drop_tables(client: &Client, tables: &TableNames) -> StoreResult<()> {
    for table in [&tables.main, &tables.sessions] {
        let request = client.delete_table().table_name(table);
        let deleted = (|| request.clone().send())
            .retry(retry_backoff())
            .when(|e| e.code() == Some("ResourceInUseException"))
            .await;
        match deleted {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(sdk_error(e)),
        }
    }
    Ok(())
}

/// Fresh tables on DynamoDB Local with the client and SDK configuration that
/// reach them. They are not deleted on drop: callers move the fields out, which
/// a `Drop` impl would forbid, and deleting is a request a `Drop` cannot await.
/// A test calls [`FreshTables::drop_tables`] last, or runs in
/// [`FreshTables::drop_after`].
#[derive(Clone)]
pub struct FreshTables {
    /// Signs with [`FreshTables::access_key_id`]: every client built from it
    /// reaches the tables' database.
    pub sdk: SdkConfig,
    pub client: Client,
    pub tables: TableNames,
    /// The access key that selects the tables' own database on DynamoDB Local.
    pub access_key_id: String,
}

impl FreshTables {
    /// The variables a process started for these tables (a function binary)
    /// needs to reach them: their names, and the key of their database.
    pub fn process_env(&self) -> [(&'static str, &str); 3] {
        [
            ("MIGRATIONS_TABLE", &self.tables.main),
            ("SESSIONS_TABLE", &self.tables.sessions),
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
        ]
    }

    /// A plain [`DynamoStore`] over these tables (default shards, no retention).
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client.clone(), self.tables.clone())
    }

    /// Delete these tables ([`drop_tables`]). Panics when they cannot be
    /// deleted, as [`fresh_dynamo_tables`] does when they cannot be created.
    pub async fn drop_tables(&self) {
        drop_tables(&self.client, &self.tables)
            .await
            .expect("delete DynamoDB tables");
    }

    /// Await `test`, then delete these tables — also when `test` panics, whose
    /// panic then carries on, so that a failing test leaves no tables behind
    /// either.
    pub async fn drop_after<T>(&self, test: impl Future<Output = T>) -> T {
        match AssertUnwindSafe(test).catch_unwind().await {
            Ok(value) => {
                self.drop_tables().await;
                value
            }
            Err(panic) => {
                // The test's own failure is the one to report, not a second
                // panic from the cleanup.
                if let Err(e) = drop_tables(&self.client, &self.tables).await {
                    eprintln!("could not delete {:?}: {e}", self.tables);
                }
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// Fresh tables for one test, or `None` (the test skips) when DynamoDB Local is
/// not configured — see [`local_service_configured`]. Panics when the emulator
/// is configured but the tables cannot be created.
///
/// The tables live in a database of their own: DynamoDB Local (started without
/// `-sharedDb`) keeps one database per access key, and [`FreshTables::sdk`]
/// signs with a key no other test uses. In one shared database every write to
/// a table with a stream costs more with every stream record any earlier test
/// left there (docs/testing.md, "One database per test", has the cause and the
/// figures). A process started for these tables (a function binary) gets
/// [`FreshTables::process_env`].
pub async fn fresh_dynamo_tables(prefix: &str) -> Option<FreshTables> {
    if !dynamo_configured() {
        return None;
    }
    let access_key_id = format!("fresh{}", Uuid::new_v4().simple());
    let sdk = signed_with(crate::sdk::load_sdk_config().await, &access_key_id);
    let client = Client::new(&sdk);
    let tables = create_fresh_tables(&client, prefix)
        .await
        .expect("create DynamoDB tables");
    Some(FreshTables {
        sdk,
        client,
        tables,
        access_key_id,
    })
}

/// `sdk` with static credentials under `access_key_id` (the emulators check no
/// secret).
fn signed_with(sdk: SdkConfig, access_key_id: &str) -> SdkConfig {
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        access_key_id,
        "test",
        None,
        None,
        "fresh-tables",
    );
    sdk.into_builder()
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
}

/// Run a test directly with its backend value: the runner
/// [`backend_matrix!`](crate::backend_matrix) uses when none is named.
pub async fn run_with_backend<B, F, Fut>(backend: B, test: F)
where
    F: FnOnce(B) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(backend).await;
}

/// One test per (backend × case): a module per backend, in it one
/// `#[tokio::test]` (multi-threaded, 2 workers) per case, named `backend::case`.
///
/// ```ignore
/// store::backend_matrix! {
///     run: with_app,                      // optional
///     backends: [
///         embedded => Backend::Embedded,
///         #[cfg(feature = "stream-poll")] // attributes go on the backend's module
///         dynamodb => Backend::Dynamo,
///     ],
///     tests_in: cases,                    // optional: where the cases live
///     tests: [full_lifecycle, bad_input_is_422],
/// }
/// ```
///
/// Each test calls `run(backend, case).await`, where `case` is the async fn of
/// that name in the invoking module (or in its submodule `tests_in`) and `run`
/// is an async fn of the invoking module that prepares the backend and calls
/// `case` with what the case takes — or skips when the backend's emulator is not
/// configured. Without `run:`, `case(backend).await` is called directly. Names
/// in the arguments resolve in the invoking module (each generated module
/// imports `super::*`).
#[macro_export]
macro_rules! backend_matrix {
    (
        $(run: $run:path,)?
        backends: [$($backends:tt)+],
        $(tests_in: $tests_in:ident,)?
        tests: [$($tests:tt)+] $(,)?
    ) => {
        $crate::backend_matrix!(
            @backends
            [$($run,)? $crate::testing::run_with_backend],
            [super $(:: $tests_in)?],
            [$($tests)+],
            $($backends)+
        );
    };
    // The runner: the one named, else `run_with_backend` (the first path given).
    (@backends [$run:path $(, $_default:path)?], $prefix:tt, $tests:tt,
        $($(#[$attr:meta])* $module:ident => $backend:expr),+ $(,)?
    ) => {
        $(
            $(#[$attr])*
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $crate::backend_matrix!(@tests $run, $backend, $prefix, $tests);
            }
        )+
    };
    // One test per case, recursively (the case list is nested in the backend list).
    (@tests $run:path, $backend:expr, [$($prefix:tt)+], [$test:ident $(, $rest:ident)* $(,)?]) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $run($backend, $($prefix)+ :: $test).await;
        }
        $crate::backend_matrix!(@tests $run, $backend, [$($prefix)+], [$($rest),*]);
    };
    (@tests $run:path, $backend:expr, $prefix:tt, []) => {};
}
