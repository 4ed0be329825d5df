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

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// One browser at a time: two browsers side by side on a small CI machine would
/// compete for the CPU and push the waits towards their limit.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn required() -> bool {
    std::env::var("FOCAL_REQUIRE_BROWSER").as_deref() == Ok("1")
}

/// `Some(path)` when the tool exists; otherwise skip (or fail when required).
fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if path.is_file() {
        return Some(path);
    }
    let reason = format!("{} not found (set {env} or install it)", path.display());
    if required() {
        panic!("FOCAL_REQUIRE_BROWSER=1 but {reason}");
    }
    eprintln!("skipping the console browser test: {reason}");
    None
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A child process stopped when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    /// SIGTERM first: a WebDriver server then closes its browser (geckodriver killed
    /// outright leaves Firefox running when a failed test never closed its session);
    /// SIGKILL when it has not exited after a few seconds.
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_server(binary: &Path, data_dir: &Path) -> (Process, String) {
    let mut child = Command::new(binary)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data_dir)
        // More than 10 sessions go through the in-process marking queue: the staged
        // rollout's deploy, ramp and withdrawal answer 202 and the page polls them
        // to their end, as on AWS.
        .env("INLINE_MARK_THRESHOLD", "10")
        .env("MARK_PAGE_SIZE", "4")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn migrations serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Process(child), base)
}

/// Starts a WebDriver server (chromedriver or geckodriver; both take `--port=N`)
/// and waits until it answers; its URL.
async fn start_driver(binary: &Path) -> (Process, String) {
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let process = Process(child);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "{} did not start",
            binary.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (process, url)
}

/// A browser session and the prefix of its screenshots' names.
struct Page {
    client: Client,
    shots: &'static str,
}

impl Deref for Page {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

async fn connect(driver: &str, caps: serde_json::Map<String, Value>) -> Client {
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a WebDriver session")
}

async fn chromium_session(driver: &str, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1500,1500",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    connect(driver, caps).await
}

/// Headless Firefox in the fresh temporary profile geckodriver creates, with the
/// background services that would reach the network at startup turned off.
async fn firefox_session(driver: &str, firefox: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "moz:firefoxOptions".into(),
        json!({
            "binary": firefox,
            "args": ["-headless"],
            "prefs": {
                "app.update.auto": false,
                "app.update.enabled": false,
                "browser.shell.checkDefaultBrowser": false,
                "browser.startup.homepage_override.mstone": "ignore",
                "browser.newtabpage.enabled": false,
                "browser.safebrowsing.malware.enabled": false,
                "browser.safebrowsing.phishing.enabled": false,
                "browser.safebrowsing.downloads.enabled": false,
                "browser.safebrowsing.downloads.remote.enabled": false,
                "browser.search.update": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "datareporting.healthreport.uploadEnabled": false,
                "extensions.update.enabled": false,
                "extensions.getAddons.cache.enabled": false,
                "network.captive-portal-service.enabled": false,
                "network.connectivity-service.enabled": false,
                "network.dns.disablePrefetch": true,
                "network.prefetch-next": false,
                "toolkit.telemetry.enabled": false,
                "toolkit.telemetry.unified": false,
                "toolkit.telemetry.server": ""
            }
        }),
    );
    let client = connect(driver, caps).await;
    // The same viewport as Chromium's --window-size, for comparable screenshots.
    client
        .set_window_size(1500, 1500)
        .await
        .expect("window size");
    client
}

/// Wait until the element at `css` shows text containing `needle`; its text.
async fn wait_text(c: &Page, css: &str, needle: &str) -> String {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < WAIT {
        if let Ok(element) = c.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = screenshot(c, "failure").await;
    panic!("{css} never showed {needle:?}; last text: {last:?}");
}

async fn wait_for(c: &Page, css: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(error) => {
            let _ = screenshot(c, "failure").await;
            panic!("{css} never appeared: {error}");
        }
    }
}

async fn screenshot(c: &Page, name: &str) -> PathBuf {
    let dir = target_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let path = dir.join(format!("{}{name}.png", c.shots));
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("write screenshot");
    path
}

async fn fill(c: &Page, css: &str, text: &str) {
    let field = wait_for(c, css).await;
    field.clear().await.expect("clear");
    if !text.is_empty() {
        field.send_keys(text).await.expect("type");
    }
}

struct Api {
    base: String,
    tenant: Uuid,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Tenant-ID", self.tenant.to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API call");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

fn step(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}

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

/// The whole operator flow in one browser session, against a fresh server at `base`.
async fn operator_flow(c: Page, base: &str) {
    // ----- seed through the public API ------------------------------------------
    let api = Api {
        base: base.to_string(),
        tenant: Uuid::new_v4(),
        http: reqwest::Client::new(),
    };
    let scenario = Uuid::new_v4();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    api.call(
        put.clone(),
        &format!("/scenarios/{scenario}"),
        Some(json!({
            "name": "Support <flow>", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for (id, at, channel) in [
        ("wa-42", 2, "whatsapp"),
        ("web-7", 2, "web"),
        ("web-8", 1, "web"),
    ] {
        api.call(
            put.clone(),
            &format!("/sessions/{id}"),
            Some(json!({
                "channel": channel, "active_scenario_id": scenario, "active_scenario_version": 1,
                "active_step_id": step(at), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"created_by": "ops@example.com", "new_scenario": {
                "name": "Support <flow>", "version": 2, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(4)}]},
                    {"id": step(4), "name": "Check age", "collects_profile_fields": ["age"], "transitions": [{"to_step_id": step(2)}]},
                    {"id": step(2), "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let plan_id = plan["id"].as_str().unwrap().to_string();

    // ----- the landing page without a tenant asks for one -----------------------
    c.goto(&format!("{base}/")).await.unwrap();
    wait_text(&c, "main", "Enter your tenant ID").await;

    // ----- review, by deep link ----------------------------------------------------
    c.goto(&format!(
        "{base}/console/plans/{plan_id}?tenant={}",
        api.tenant
    ))
    .await
    .unwrap();
    let title = wait_text(&c, "main h1", "v1 → v2").await;
    // The scenario name is user input: shown as text, never as markup.
    assert!(title.contains("Support <flow>"), "{title}");
    wait_text(&c, "main h1 .badge", "pending").await;
    wait_text(&c, "#summary-numbers", "Sessions affected").await;
    wait_for(&c, "#diagram-v1 svg g.step").await;
    wait_for(&c, "#diagram-v2 svg g.step[data-kind=\"inserted\"]").await;
    let v2 = wait_text(&c, "#diagram-v2 svg", "+ Check age").await;
    assert!(
        v2.contains("gap fill") || v2.contains("clean graft"),
        "{v2}"
    );
    wait_text(&c, "#fields", "age").await;
    wait_text(&c, "#anchors-table", "Collect email").await;
    // The forecast, before the Approve button: the two sessions at "Collect
    // email" will be asked their age, the one at "Welcome" goes on.
    wait_text(&c, "#forecast-basis", "revision 1").await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"collect\"] td.num",
        "2",
    )
    .await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"continue\"] td.num",
        "1",
    )
    .await;
    wait_text(&c, "#forecast-fields", "age: 2 sessions").await;
    wait_text(&c, "#forecast-anchors", "Collect email").await;
    let before_approve = c
        .execute(
            "return Boolean(document.getElementById('forecast').compareDocumentPosition(document.getElementById('approve-button')) & Node.DOCUMENT_POSITION_FOLLOWING);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        before_approve,
        json!(true),
        "the forecast comes before the Approve button"
    );
    let review_shot = screenshot(&c, "review").await;

    // Centre the diagrams on an anchor: the neighbourhood is drawn.
    let centre = wait_for(&c, "#anchors-table tbody tr button").await;
    centre.click().await.unwrap();
    wait_text(&c, "#diagram-v2 svg", "within 3 transitions of").await;
    // Keyboard: an anchor of the diagram is a button; Enter centres on it.
    let done = c
        .find(Locator::XPath(
            "//div[@id='diagram-v1']//*[local-name()='g'][@data-anchor][.//*[local-name()='text'][.='Done']]",
        ))
        .await
        .expect("the Done anchor in the V1 diagram");
    assert_eq!(done.attr("role").await.unwrap().as_deref(), Some("button"));
    done.send_keys("\u{E007}")
        .await
        .expect("Enter on the anchor");
    wait_text(&c, "#diagram-v1 svg", "transitions of “Done”").await;

    // ----- policies: a 422 shown next to its fields, then fixed ------------------
    let edit = c
        .find(Locator::XPath(
            "//table[@id='anchors-table']//tr[th[contains(., 'Collect email')]]//button[contains(@class,'edit-policy')]",
        ))
        .await
        .expect("the Edit policy button of Collect email");
    edit.click().await.unwrap();
    wait_for(&c, "#policy-form").await;
    fill(&c, "#f-scope_filter-min_session_age_days", "10").await;
    fill(&c, "#f-scope_filter-max_session_age_days", "5").await;
    fill(
        &c,
        "#f-scope_filter-custom_conditions",
        "variables.age >>> 3",
    )
    .await;
    c.find(Locator::Css("#save-policy"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let min_error = wait_text(
        &c,
        "#f-scope_filter-min_session_age_days-error",
        "must not exceed max_session_age_days",
    )
    .await;
    assert!(!min_error.is_empty());
    wait_text(
        &c,
        "#f-scope_filter-custom_conditions-error",
        "Condition 1:",
    )
    .await;
    let invalid = c
        .find(Locator::Css("#f-scope_filter-min_session_age_days"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    screenshot(&c, "policy-errors").await;

    fill(&c, "#f-scope_filter-min_session_age_days", "").await;
    fill(&c, "#f-scope_filter-max_session_age_days", "").await;
    fill(&c, "#f-scope_filter-custom_conditions", "").await;
    fill(&c, "#f-scope_filter-include_channels", "whatsapp, web").await;
    c.find(Locator::Css("#save-policy"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#messages", "Policy of Collect email saved").await;
    wait_text(&c, "#anchors-table", "channels: whatsapp, web").await;
    // The saved policy is a new plan revision: the forecast is read again.
    wait_text(&c, "#forecast-basis", "revision 2").await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"collect\"] td.num",
        "2",
    )
    .await;
    let stored = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}"),
            None,
        )
        .await;
    let policies = stored["anchor_policies"].as_object().unwrap();
    assert!(
        policies
            .values()
            .any(|p| p["scope_filter"]["include_channels"] == json!(["whatsapp", "web"])),
        "{policies:?}"
    );

    // ----- approve, deploy, watch the progress ----------------------------------------
    fill(&c, "#approved-by", "lead@example.com").await;
    c.find(Locator::Css("#approve-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "main h1 .badge", "approved").await;
    wait_for(&c, "#deploy-button").await.click().await.unwrap();
    wait_text(&c, "main h1", "Deployment progress").await;
    wait_text(&c, ".deploy-status", "deployed").await;
    let status = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(status["status"], "deployed");
    let marked = status["sessions_marked"].as_u64().unwrap();
    assert!(marked >= 1, "{status}");
    wait_text(
        &c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked}"),
    )
    .await;
    let progress_shot = screenshot(&c, "progress").await;

    // ----- pause and resume, each behind a confirmation that gives the count -------------
    wait_for(&c, "#pause-button").await.click().await.unwrap();
    wait_text(&c, "#pause-says", "stay on their version").await;
    wait_for(&c, "#pause-confirm").await.click().await.unwrap();
    wait_text(&c, ".deploy-status", "paused").await;
    wait_text(&c, "#progress", "Rollout paused").await;
    let paused = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    wait_for(&c, "#resume-button").await.click().await.unwrap();
    wait_text(&c, "#resume-says", "migrate on their next message").await;
    wait_for(&c, "#resume-confirm").await.click().await.unwrap();
    wait_text(&c, ".deploy-status", "deployed").await;
    let resumed = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(resumed["status"], "deployed", "{resumed}");

    // ----- session preview: what reconcile would do, nothing written ------------------
    let before = api
        .call(reqwest::Method::GET, "/sessions/wa-42", None)
        .await;
    c.goto(&format!("{base}/console/preview?session_id=wa-42"))
        .await
        .unwrap();
    let action = wait_text(&c, "#preview-action", "collect").await;
    assert_eq!(action, "collect");
    let answer = wait_text(&c, "#preview-answer", "age").await;
    assert!(answer.contains("gap fill"), "{answer}");
    wait_text(&c, "#preview-result", "Nothing was changed").await;
    wait_text(&c, "#preview-session-now", "Collect email").await;
    screenshot(&c, "preview").await;
    // With the age known, the preview says the session continues on V2.
    fill(&c, "#preview-known", r#"{"age": 34}"#).await;
    c.find(Locator::Css("#preview-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#preview-action", "continue").await;
    let after = api
        .call(reqwest::Method::GET, "/sessions/wa-42", None)
        .await;
    assert_eq!(before, after, "a preview changed the session");
    assert!(after["pending_migration"].is_object());

    // ----- events: a real reconcile, then the page lists it ----------------------------
    api.call(
        post.clone(),
        "/sessions/wa-42/reconcile",
        Some(json!({"known_fields": {"age": 34}})),
    )
    .await;
    c.goto(&format!("{base}/console/plans/{plan_id}/events"))
        .await
        .unwrap();
    let events = wait_text(&c, "#events-table", "wa-42").await;
    assert!(events.contains("v1 → v2"), "{events}");
    c.goto(&format!("{base}/console/plans/{plan_id}/progress"))
        .await
        .unwrap();
    wait_text(&c, "#progress-numbers", "Migrations applied\n1").await;

    // ----- a rollout guard halts: the banner with its reason, the figures -----------------
    // A second scenario whose V2 keeps nothing: every migrated session exits.
    let guarded = Uuid::new_v4();
    api.call(
        put.clone(),
        &format!("/scenarios/{guarded}"),
        Some(json!({
            "name": "Guarded", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for i in 0..3 {
        api.call(
            put.clone(),
            &format!("/sessions/guarded-{i}"),
            Some(json!({
                "channel": "web", "active_scenario_id": guarded, "active_scenario_version": 1,
                "active_step_id": step(2), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let guarded_plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{guarded}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Guarded", "version": 2, "entry_step_id": step(7),
                "steps": [{"id": step(7), "name": "Brand new", "is_terminal": true}]
            }})),
        )
        .await;
    let guarded_id = guarded_plan["id"].as_str().unwrap().to_string();
    api.call(
        post.clone(),
        &format!("/migration-plans/{guarded_id}/approve"),
        None,
    )
    .await;
    api.call(
        post.clone(),
        &format!("/migration-plans/{guarded_id}/deploy"),
        Some(json!({"guard": {"max_exit_rate": 0.1, "max_reported_failure_rate": 0.9, "min_sessions": 2}})),
    )
    .await;
    for i in 0..2 {
        api.call(
            post.clone(),
            &format!("/sessions/guarded-{i}/reconcile"),
            Some(json!({})),
        )
        .await;
    }
    // The runtime reports one of the two migrated sessions failed: 1 of 2 applied.
    let outcome = api
        .call(
            post.clone(),
            "/sessions/guarded-0/outcome",
            Some(json!({"ok": false, "reason": "customer gave up"})),
        )
        .await;
    assert_eq!(outcome["counted"], true, "{outcome}");
    c.goto(&format!("{base}/console/plans/{guarded_id}/progress"))
        .await
        .unwrap();
    wait_text(&c, ".deploy-status", "halted").await;
    let reported = wait_text(&c, "#reported-outcomes", "1, of which 1 failed").await;
    assert!(reported.contains("1 of 2 applied migrations"), "{reported}");
    let failure_row = wait_text(
        &c,
        "#guard-figures tr:nth-child(2)",
        "Reported failure rate",
    )
    .await;
    assert!(
        failure_row.contains("0.500") && failure_row.contains("0.9"),
        "{failure_row}"
    );
    wait_text(
        &c,
        "#halt-banner",
        "exit rate 1.000 exceeded max_exit_rate 0.1: 2 of 2",
    )
    .await;
    let figures = wait_text(&c, "#guard-figures", "Exit rate").await;
    assert!(
        figures.contains("1.000") && figures.contains("0.1"),
        "{figures}"
    );
    wait_for(&c, "#resume-button").await;
    screenshot(&c, "halted").await;

    // ----- a partial rollout: deploy at 30% with the slider, ramp, withdraw, return plan ---
    staged_rollout(&c, &api, base).await;

    // ----- reject, with a reason ---------------------------------------------------------
    let next = api
        .call(
            post.clone(),
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Support <flow>", "version": 3, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let next_id = next["id"].as_str().unwrap().to_string();
    c.goto(&format!("{base}/console/plans/{next_id}"))
        .await
        .unwrap();
    wait_text(&c, "main h1", "v2 → v3").await;
    wait_for(&c, "#reject-button").await.click().await.unwrap();
    wait_text(&c, "#reject-reason-error", "Give a reason").await;
    fill(&c, "#reject-reason", "Drops the email step <on purpose?>").await;
    wait_for(&c, "#reject-button").await.click().await.unwrap();
    wait_text(&c, "main h1 .badge", "rejected").await;
    wait_text(&c, "main", "Drops the email step <on purpose?>").await;

    // ----- the plans list: per scenario, status filter ---------------------------------
    c.goto(&format!("{base}/console/plans?scenario_id={scenario}"))
        .await
        .unwrap();
    wait_text(&c, "#plans-table", "deployed").await;
    c.find(Locator::Css("#filter-status"))
        .await
        .unwrap()
        .select_by_value("pending")
        .await
        .unwrap();
    c.find(Locator::Css("form[role=search] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#plans-results", "No plans match").await;

    c.client.close().await.unwrap();
    for shot in [review_shot, progress_shot] {
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "{shot:?}");
    }
}

/// A staged rollout through the console: the review's slider deploys 30% (the
/// cohort said next to it), the progress page shows the percent and ramps to
/// 100% behind a confirmation naming it, then withdraws the rollout behind a
/// confirmation giving the flagged sessions it clears; the withdrawn banner gives
/// the API's exact `flags_withdrawn`, and "Prepare a return plan" generates the
/// from-version's content as the next version, opened for review.
async fn staged_rollout(c: &Page, api: &Api, base: &str) {
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    let staged = Uuid::new_v4();
    api.call(
        put.clone(),
        &format!("/scenarios/{staged}"),
        Some(json!({
            "name": "Staged", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for i in 0..40 {
        api.call(
            put.clone(),
            &format!("/sessions/staged-{i}"),
            Some(json!({
                "channel": "web", "active_scenario_id": staged, "active_scenario_version": 1,
                "active_step_id": step(2), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{staged}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Staged", "version": 2, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                    {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(5)}]},
                    {"id": step(5), "name": "Survey", "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let summary = api
        .call(
            get.clone(),
            &format!("/migration-plans/{plan_id}/summary"),
            None,
        )
        .await;
    let eligible = summary["estimated_sessions_affected"].as_u64().unwrap();
    assert!(eligible >= 20, "{summary}");
    api.call(
        post.clone(),
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await;
    let status = || async {
        api.call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await
    };

    // The slider: 100% by default, moved to 30% with the keyboard.
    c.goto(&format!("{base}/console/plans/{plan_id}"))
        .await
        .unwrap();
    wait_text(
        c,
        "#deploy-cohort",
        &format!("100% — ≈ {eligible} of {eligible} eligible sessions"),
    )
    .await;
    c.execute("document.getElementById('deploy-percent').focus();", vec![])
        .await
        .unwrap();
    let mut keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E011}' })
        .then(KeyAction::Up { value: '\u{E011}' });
    for _ in 1..30 {
        keys = keys
            .then(KeyAction::Down { value: '\u{E014}' })
            .then(KeyAction::Up { value: '\u{E014}' });
    }
    c.perform_actions(keys)
        .await
        .expect("Home, then 29 × Right");
    c.release_actions().await.unwrap();
    let cohort = (eligible * 30 + 50) / 100;
    wait_text(
        c,
        "#deploy-cohort",
        &format!("30% — ≈ {cohort} of {eligible} eligible sessions"),
    )
    .await;
    wait_text(c, "#deploy-explain", "marks only that cohort").await;
    screenshot(c, "deploy-percent").await;
    wait_for(c, "#deploy-button").await.click().await.unwrap();
    wait_text(c, "main h1", "Deployment progress").await;
    wait_text(c, ".deploy-status", "deployed").await;
    wait_text(c, "#rollout-percent", "reaches 30% of the sessions").await;
    let partial = status().await;
    assert_eq!(partial["status"], "deployed", "{partial}");
    assert_eq!(partial["percent"], 30, "{partial}");
    let marked_at_30 = partial["sessions_marked"].as_u64().unwrap();
    assert!(marked_at_30 > 0 && marked_at_30 < eligible, "{partial}");
    wait_text(c, "#progress-numbers", "Rollout\n30%").await;
    wait_text(
        c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked_at_30}"),
    )
    .await;
    screenshot(c, "partial").await;
    // The review says how far the plan is rolled out and where to steer it.
    c.goto(&format!("{base}/console/plans/{plan_id}"))
        .await
        .unwrap();
    wait_text(c, "#actions", "rolled out to 30% of the sessions").await;
    wait_for(c, "#actions a[href$=\"/progress\"]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "#rollout-percent", "reaches 30% of the sessions").await;

    // Ramp to 100%, behind a confirmation that names the percent.
    fill(c, "#ramp-percent", "100").await;
    wait_for(c, "#ramp-button").await.click().await.unwrap();
    wait_text(c, "#ramp-says", "Ramping to 100%").await;
    let confirm = wait_text(c, "#ramp-confirm", "ramp to 100%").await;
    assert!(confirm.starts_with("Confirm"), "{confirm}");
    wait_for(c, "#ramp-confirm").await.click().await.unwrap();
    wait_text(c, "#rollout-percent", "every session (100%)").await;
    wait_text(c, ".deploy-status", "deployed").await;
    let full = status().await;
    assert_eq!(full["status"], "deployed", "{full}");
    assert_eq!(full["percent"], 100, "{full}");
    let marked = full["sessions_marked"].as_u64().unwrap();
    assert!(marked > marked_at_30, "{full}");
    wait_text(
        c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked}"),
    )
    .await;
    assert!(
        c.find(Locator::Css("#ramp-button")).await.is_err(),
        "no ramp at 100%"
    );

    // One session migrates before the withdrawal: it stays on V2.
    api.call(
        post.clone(),
        "/sessions/staged-0/reconcile",
        Some(json!({})),
    )
    .await;
    c.goto(&format!("{base}/console/plans/{plan_id}/progress"))
        .await
        .unwrap();
    wait_text(c, "#progress-numbers", "Migrations applied\n1").await;
    let before = status().await;
    let pending = before["migrations_pending"].as_u64().unwrap();
    assert_eq!(pending, marked - 1, "{before}");

    // Withdraw, behind a confirmation giving the flagged sessions it clears.
    wait_for(c, "#withdraw-button").await.click().await.unwrap();
    let says = wait_text(
        c,
        "#withdraw-says",
        &format!("{pending} flagged sessions not yet migrated"),
    )
    .await;
    assert!(
        says.contains("Sessions already migrated stay on the new version"),
        "{says}"
    );
    // Whether the page showed the withdrawing banner on its way (the walk through
    // the queue may end before the first status read after the 202).
    c.execute(
        "window.sawWithdrawing = false; new MutationObserver(() => { if (document.getElementById('withdrawing-banner')) window.sawWithdrawing = true; }).observe(document.getElementById('main'), { childList: true, subtree: true });",
        vec![],
    )
    .await
    .unwrap();
    wait_for(c, "#withdraw-confirm")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, ".deploy-status", "withdrawn").await;
    let saw = c
        .execute("return window.sawWithdrawing;", vec![])
        .await
        .unwrap();
    eprintln!("{}withdrawing banner seen before withdrawn: {saw}", c.shots);
    let withdrawn = status().await;
    assert_eq!(withdrawn["status"], "withdrawn", "{withdrawn}");
    let cleared = withdrawn["flags_withdrawn"].as_u64().unwrap();
    assert_eq!(cleared, pending, "{withdrawn}");
    let banner = wait_text(
        c,
        "#withdrawn-banner",
        &format!("Rollout withdrawn: {cleared} flags cleared"),
    )
    .await;
    assert!(
        banner.contains("Sessions migrated before the withdrawal stay on the new version (1)"),
        "{banner}"
    );
    wait_text(
        c,
        "#progress-numbers",
        &format!("Flags withdrawn\n{cleared}"),
    )
    .await;
    assert!(
        c.find(Locator::Css("#withdraw-button")).await.is_err(),
        "no withdraw once withdrawn"
    );
    screenshot(c, "withdrawn").await;

    // The return plan: V1's content as version 3, an ordinary plan to review.
    wait_for(c, "#return-plan-button")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "Staged: v1 → v3").await;
    wait_text(c, "main h1 .badge", "pending").await;
    let plans = api
        .call(
            get.clone(),
            &format!("/migration-plans?scenario_id={staged}"),
            None,
        )
        .await;
    let back: Vec<&Value> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] != json!(plan_id))
        .collect();
    assert_eq!(back.len(), 1, "{plans}");
    assert_eq!(back[0]["from_version"], 1, "{plans}");
    assert_eq!(back[0]["to_version"], 3, "{plans}");
    assert_eq!(back[0]["status"], "pending", "{plans}");
    let url = c.current_url().await.unwrap();
    assert!(
        url.path().ends_with(&format!(
            "/console/plans/{}",
            back[0]["id"].as_str().unwrap()
        )),
        "{url}"
    );
    // The plans list finds the withdrawn plan by its status.
    c.goto(&format!(
        "{base}/console/plans?scenario_id={staged}&status=withdrawn"
    ))
    .await
    .unwrap();
    let listed = wait_text(c, "#plans-table", "withdrawn").await;
    assert!(!listed.contains("pending"), "{listed}");
    let session = api.call(get, "/sessions/staged-0", None).await;
    assert_eq!(session["active_scenario_version"], 2, "{session}");
}
