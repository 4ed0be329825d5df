//! The harness of the browser tests: the `migrations serve` process and the
//! WebDriver process each browser test starts, the browser sessions, waiting on
//! a page, screenshots, and the API calls the flows seed and check with.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) const WAIT: Duration = Duration::from_secs(30);

pub(super) fn required() -> bool {
    std::env::var("FOCAL_REQUIRE_BROWSER").as_deref() == Ok("1")
}

/// `Some(path)` when the tool exists; otherwise skip (or fail when required).
pub(super) fn tool(env: &str, default: &str) -> Option<PathBuf> {
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

pub(super) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A child process stopped when the test ends, however it ends.
pub(super) struct Process(Child);

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

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(super) fn start_server(binary: &Path, data_dir: &Path) -> (Process, String) {
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
pub(super) async fn start_driver(binary: &Path) -> (Process, String) {
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
pub(super) struct Page {
    pub(super) client: Client,
    pub(super) shots: &'static str,
}

impl Deref for Page {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

pub(super) async fn connect(driver: &str, caps: serde_json::Map<String, Value>) -> Client {
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a WebDriver session")
}

pub(super) async fn chromium_session(driver: &str, chromium: &Path, profile: &Path) -> Client {
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
pub(super) async fn firefox_session(driver: &str, firefox: &Path) -> Client {
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
pub(super) async fn wait_text(c: &Page, css: &str, needle: &str) -> String {
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

pub(super) async fn wait_for(c: &Page, css: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(error) => {
            let _ = screenshot(c, "failure").await;
            panic!("{css} never appeared: {error}");
        }
    }
}

pub(super) async fn screenshot(c: &Page, name: &str) -> PathBuf {
    let dir = target_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let path = dir.join(format!("{}{name}.png", c.shots));
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("write screenshot");
    path
}

pub(super) async fn fill(c: &Page, css: &str, text: &str) {
    let field = wait_for(c, css).await;
    field.clear().await.expect("clear");
    if !text.is_empty() {
        field.send_keys(text).await.expect("type");
    }
}

pub(super) struct Api {
    pub(super) base: String,
    pub(super) tenant: Uuid,
    pub(super) http: reqwest::Client,
}

impl Api {
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
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

pub(super) fn step(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}
