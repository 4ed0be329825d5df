//! The operator console over HTTP, as `migrations serve` mounts it (the API
//! router merged with `console::router`), on the embedded store and DynamoDB
//! Local: the pages and assets (no tenant, strict security headers), and
//! `GET /migration-plans/{plan_id}/diagram` (tenant-bound, SVG, located 422s).

use crate::common::*;
use serde_json::{Value, json};
use uuid::Uuid;

struct Console {
    base: String,
    tenant: Uuid,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A console on a fresh store of `backend`, with the DynamoDB tables to drop
/// when the case is done.
async fn spawn(backend: Backend) -> Option<(Console, Option<store::testing::FreshTables>)> {
    let (store, dir, tables) = fresh_store_and_tables(backend).await?;
    let state = api::local_queue::InProcessQueue::attach(api::AppState::new(store, test_config()));
    let app = api::app(state.clone()).merge(console::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let console = Console {
        base: format!("http://{address}"),
        tenant: Uuid::new_v4(),
        http: reqwest::Client::new(),
        _dir: dir,
        server,
    };
    Some((console, tables))
}

impl Console {
    async fn get(&self, path: &str, tenant: Option<Uuid>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = tenant {
            request = request.header("X-Tenant-ID", t.to_string());
        }
        request.send().await.expect("GET")
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Tenant-ID", self.tenant.to_string())
            .json(&body)
            .send()
            .await
            .expect("call");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// The runner of this file's cases: a console served on a fresh store of
/// `backend`, whose DynamoDB tables go when the case ends, also when it fails.
async fn with_console<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Console) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some((c, tables)) = spawn(backend).await {
        drop_tables_after(tables, case(c)).await;
    }
}

store::backend_matrix! {
    run: with_console,
    backends: [embedded => Backend::Embedded, dynamodb => Backend::Dynamo],
    tests: [
        pages_and_assets_need_no_tenant_and_forbid_third_parties,
        diagram_draws_both_sides_with_counts_and_escapes_names,
        diagram_refuses_bad_queries_other_tenants_and_unknown_plans,
    ],
}

async fn pages_and_assets_need_no_tenant_and_forbid_third_parties(c: Console) {
    for path in [
        "/",
        "/console",
        "/console/plans",
        "/console/plans/3fa85f64-5717-4562-b3fc-2c963f66afa6/progress",
    ] {
        let response = c.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(r#"<script type="module" src="/console/assets/console.js"></script>"#)
        );
        // Nothing from elsewhere: every URL in the shell is our own.
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
    }
    // Every script module is served as JavaScript, none writes markup, and the
    // API client sends the tenant header.
    let mut scripts = String::new();
    for path in console::ASSET_ROUTES.iter().filter(|p| p.ends_with(".js")) {
        let js = c.get(path, None).await;
        assert_eq!(js.status(), 200, "{path}");
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{path}"
        );
        let script = js.text().await.unwrap();
        assert!(
            !script.contains("innerHTML"),
            "{path}: text only, never markup"
        );
        scripts.push_str(&script);
    }
    assert!(scripts.contains("'X-Tenant-ID'"));
    let css = c.get("/console/assets/console.css", None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    // The API's JSON 404 is still the fallback.
    let missing = c.get("/nothing-here", None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"detail": "Not Found"})
    );
}

/// V1: Welcome → Old <b>step</b> → Done; V2 drops the old step and inserts an age
/// check. Two sessions wait at the deleted step.
async fn seeded(c: &Console) -> String {
    let scenario = Uuid::new_v4();
    let mut old = step_json(2, "Old <b>step</b> & \"quoted\"", &[(3, "")]);
    old["collects_profile_fields"] = json!(["email"]);
    c.json(
        reqwest::Method::PUT,
        &format!("/scenarios/{scenario}"),
        json!({"name": "Flow", "version": 1, "entry_step_id": step(1), "steps": [
            step_json(1, "Welcome", &[(2, "")]), old, step_json(3, "Done", &[]),
        ]}),
    )
    .await;
    for id in ["d1", "d2"] {
        c.json(
            reqwest::Method::PUT,
            &format!("/sessions/{id}"),
            session_at(scenario, 1, step(2), "web"),
        )
        .await;
    }
    let mut check = step_json(4, "Check age", &[(3, "")]);
    check["collects_profile_fields"] = json!(["age"]);
    check["is_checkpoint"] = json!(true);
    let plan = c
        .json(
            reqwest::Method::POST,
            &format!("/scenarios/{scenario}/migration-plan"),
            json!({"new_scenario": {"name": "Flow", "version": 2, "entry_step_id": step(1), "steps": [
                step_json(1, "Welcome", &[(4, "")]), check, step_json(3, "Done", &[]),
            ]}}),
        )
        .await;
    plan["id"].as_str().unwrap().to_string()
}

async fn svg(c: &Console, path: &str) -> String {
    let response = c.get(path, Some(c.tenant)).await;
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(
        response.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    response.text().await.unwrap()
}

async fn diagram_draws_both_sides_with_counts_and_escapes_names(c: Console) {
    let plan_id = seeded(&c).await;
    let v1 = svg(&c, &format!("/migration-plans/{plan_id}/diagram?side=v1")).await;
    assert!(v1.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(v1.contains(r#"data-kind="deleted""#), "{v1}");
    assert!(
        v1.contains("2 sessions"),
        "live count on the deleted step: {v1}"
    );
    assert!(!v1.contains("<b>"), "user text must be escaped: {v1}");
    assert!(v1.contains("Old &lt;b&gt;step&lt;/b&gt; &amp; &quot;quoted&quot;"));
    // Side defaults to v2.
    let v2 = svg(&c, &format!("/migration-plans/{plan_id}/diagram")).await;
    assert!(v2.contains(r#"data-side="v2""#));
    assert!(
        v2.contains("+ Check age") && v2.contains("⚑ checkpoint"),
        "{v2}"
    );
    // Centred on an anchor, radius 1: the anchor and its neighbours only.
    let anchors = c
        .get(
            &format!("/migration-plans/{plan_id}/anchors"),
            Some(c.tenant),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let done = anchors["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["anchor_name"] == "Done")
        .expect("Done is an anchor")["anchor_content_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let near = svg(
        &c,
        &format!("/migration-plans/{plan_id}/diagram?side=v2&anchor={done}&radius=1"),
    )
    .await;
    assert!(near.contains("2 of 3 steps within 1 transitions"), "{near}");
    assert!(!near.contains(">Welcome<"));
}

async fn diagram_refuses_bad_queries_other_tenants_and_unknown_plans(c: Console) {
    let plan_id = seeded(&c).await;
    let path = format!("/migration-plans/{plan_id}/diagram");
    for (query, loc) in [
        ("?side=v3", json!(["query", "side"])),
        ("?radius=99", json!(["query", "radius"])),
        ("?radius=-1", json!(["query", "radius"])),
        ("?anchor=feedfacefeedface", json!(["query", "anchor"])),
    ] {
        let response = c.get(&format!("{path}{query}"), Some(c.tenant)).await;
        assert_eq!(response.status(), 422, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"], loc, "{query}: {body}");
    }
    assert_eq!(
        c.get(&path, None).await.status(),
        422,
        "tenant header required"
    );
    assert_eq!(
        c.get(&path, Some(Uuid::new_v4())).await.status(),
        404,
        "another tenant's plan"
    );
    let unknown = format!("/migration-plans/{}/diagram", Uuid::new_v4());
    assert_eq!(c.get(&unknown, Some(c.tenant)).await.status(), 404);
    assert_eq!(
        c.get("/migration-plans/not-a-uuid/diagram", Some(c.tenant))
            .await
            .status(),
        422
    );
}
