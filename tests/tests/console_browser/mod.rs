//! The operator console in real browsers: the same flow in headless Chromium
//! (through chromedriver) and in headless Firefox (through geckodriver), over
//! WebDriver with `fantoccini`, each against its own real `migrations serve` binary
//! on the embedded store. Everything is seeded through the public API; the
//! assertions are on what the pages show.
//!
//! Flow: open a plan by its deep link (tenant in the URL), see both diagrams and
//! the summary, change a policy and see the API's validation errors next to the
//! fields, fix it, approve, deploy, watch the progress view reach `deployed`,
//! preview a session (nothing written), and read the applied migration in the
//! events page; then a staged rollout (deploy at 30% with the slider, ramp to 100%,
//! withdraw, prepare the return plan), each step checked against the API. Screenshots go to `target/console-screenshots/` (`firefox-*.png`
//! for Firefox).
//!
//! Needs Debian's `chromium` and `chromium-driver`, `firefox-esr` and geckodriver
//! (tests/services/lib.sh installs them and exports CHROMIUM, CHROMEDRIVER, FIREFOX
//! and GECKODRIVER) and the `migrations` binary (`cargo build -p migrations`;
//! `tests/run.sh` builds every binary first). Each browser's test skips with a reason
//! when one of its tools is missing, unless `FOCAL_REQUIRE_BROWSER=1` (set by
//! `tests/run.sh`): then it fails.

mod driver;
mod operator_flow;
mod staged_rollout;

use std::path::{Path, PathBuf};

use driver::*;
use operator_flow::operator_flow;

/// One browser at a time: two browsers side by side on a small CI machine would
/// compete for the CPU and push the waits towards their limit.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn migrations_binary() -> Option<PathBuf> {
    tool(
        "MIGRATIONS_BIN",
        &target_dir().join("debug/migrations").to_string_lossy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reviews_tunes_approves_deploys_and_previews_in_chromium() {
    let Some(chromium) = tool("CHROMIUM", "/usr/bin/chromium") else {
        return;
    };
    let Some(chromedriver) = tool("CHROMEDRIVER", "/usr/bin/chromedriver") else {
        return;
    };
    let Some(migrations) = migrations_binary() else {
        return;
    };
    let _alone = ONE_BROWSER_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_server, base) = start_server(&migrations, data.path());
    let (_driver, driver_url) = start_driver(&chromedriver).await;
    let client = chromium_session(&driver_url, &chromium, profile.path()).await;
    operator_flow(Page { client, shots: "" }, &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reviews_tunes_approves_deploys_and_previews_in_firefox() {
    let Some(firefox) = tool("FIREFOX", "/usr/bin/firefox-esr") else {
        return;
    };
    // Where tests/services/lib.sh builds it.
    let cached =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/geckodriver/bin/geckodriver");
    let Some(geckodriver) = tool("GECKODRIVER", &cached.to_string_lossy()) else {
        return;
    };
    let Some(migrations) = migrations_binary() else {
        return;
    };
    let _alone = ONE_BROWSER_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let (_server, base) = start_server(&migrations, data.path());
    let (_driver, driver_url) = start_driver(&geckodriver).await;
    let client = firefox_session(&driver_url, &firefox).await;
    operator_flow(
        Page {
            client,
            shots: "firefox-",
        },
        &base,
    )
    .await;
}
