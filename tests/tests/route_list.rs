//! One route list. The HTTP routes are written down in four places:
//! the axum routers (one per Lambda), the OpenAPI document, the SAM template's
//! API Gateway routes (infra/template.yaml) and the cargo-lambda watch router
//! (`[workspace.metadata.lambda.watch.router]` in Cargo.toml). This test fails
//! when they disagree on a method, a path or the function that serves it.
//!
//! axum cannot list its routes, so the list is the OpenAPI document's paths plus
//! the console's pages and assets (HTML, CSS and JS, not API operations: see
//! [`non_api_routes`]); every route of that list must be in the template and the
//! watch router with the same function, and that function's router must answer
//! it (anything but its unknown-route 404 or a 405).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_yaml::Value as Yaml;
use tower::ServiceExt;

/// (method, path): paths with `{name}` parameters; a greedy parameter is `{+}`.
type RouteKey = (String, String);

/// Routes only `migrations serve` has: not behind API Gateway (there Lambda and
/// API Gateway report health), so not in the template or the watch router.
const SERVE_ONLY: [(&str, &str); 1] = [("GET", "/health")];

/// Routes only `migrations serve` has that are not operations of the tenant API
/// either: the process's own metrics as Prometheus text (like the console's
/// pages, not in the OpenAPI document). On Lambda the metrics leave as EMF log lines.
const SERVE_ONLY_NOT_API: [(&str, &str); 1] = [("GET", api::metrics::prometheus::PATH)];

/// The console's pages: routes of the console function, not API operations, so
/// not in the OpenAPI document. Taken from the console crate's own route
/// constants; its assets (`console::ASSET_ROUTES`) live under the greedy page
/// route `/console/{*page}`, which is how API Gateway routes them.
fn non_api_routes() -> Vec<(RouteKey, &'static str)> {
    console::PAGE_ROUTES
        .iter()
        .map(|path| (("GET".to_string(), normalise(path)), "console-fn"))
        .collect()
}

/// One spelling for the greedy parameter: axum's `{*page}`, API Gateway's `{proxy+}`.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with("{*") || (segment.starts_with('{') && segment.ends_with("+}")) {
                "{+}".to_string()
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The whole document: the API's routes and the console's diagram route.
fn document() -> serde_json::Value {
    serde_json::to_value(api::openapi::document_with(console::openapi())).unwrap()
}

fn openapi_routes() -> BTreeSet<RouteKey> {
    let doc = document();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.insert((method.to_uppercase(), normalise(path)));
        }
    }
    routes
}

/// The text of a CloudFormation tag (`!Sub "…"`, `!GetAtt X.Arn`) or a plain string.
fn tag_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Tagged(tagged) => match &tagged.value {
            Yaml::String(s) => Some(s.clone()),
            // `!GetAtt [X, Arn]`
            Yaml::Sequence(parts) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            _ => None,
        },
        _ => None,
    }
}

/// Every API Gateway route of the template → the binary of the function behind it.
fn template_routes() -> BTreeMap<RouteKey, String> {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    let template: Yaml = serde_yaml::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let resource = |name: &str| resources.get(Yaml::String(name.to_string())).cloned();
    let mut routes = BTreeMap::new();
    for (name, body) in resources {
        if body["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let name = name.as_str().unwrap();
        let props = &body["Properties"];
        let key = props["RouteKey"].as_str().unwrap();
        let (method, path) = key.split_once(' ').unwrap();
        // `!Sub integrations/${ScenariosIntegration}` → ScenariosIntegration
        let target = tag_text(&props["Target"]).unwrap_or_default();
        let integration = target
            .split("${")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_else(|| panic!("{name}: unexpected Target {target:?}"));
        let integration =
            resource(integration).unwrap_or_else(|| panic!("{name}: no {integration}"));
        // `!GetAtt ScenariosFunction.Arn` (or a `!Sub` naming it)
        let uri = tag_text(&integration["Properties"]["IntegrationUri"]).unwrap_or_default();
        let function = uri
            .trim_start_matches("${")
            .split(['.', '}'])
            .next()
            .unwrap()
            .rsplit("${")
            .next()
            .unwrap()
            .to_string();
        let function = resource(&function).unwrap_or_else(|| panic!("{name}: no {function}"));
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: the function has no BuildProperties.Binary"))
            .to_string();
        let previous = routes.insert((method.to_string(), normalise(path)), binary);
        assert!(previous.is_none(), "{key} is routed twice in the template");
    }
    routes
}

/// `[workspace.metadata.lambda.watch.router]` → the function of each route.
fn watch_routes() -> BTreeMap<RouteKey, String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("watch router");
    let mut routes = BTreeMap::new();
    for (path, entries) in router {
        for entry in entries.as_array().expect("an array of routes") {
            let method = entry["method"].as_str().unwrap().to_uppercase();
            let function = entry["function"].as_str().unwrap().to_string();
            let previous = routes.insert((method.clone(), normalise(path)), function);
            assert!(
                previous.is_none(),
                "{method} {path} twice in the watch router"
            );
        }
    }
    routes
}

fn state() -> api::AppState {
    api::AppState::new(Arc::new(store::MemoryStore::new()), api::Config::default())
}

/// The router `migrations serve` runs (shared/cli/src/serve): the API, the
/// console and the metrics scrape.
fn serve_router() -> Router {
    let (_, scrape) = api::metrics::prometheus::recorder();
    api::routes::app_with(state(), console::openapi)
        .merge(console::router(state()))
        .merge(api::metrics::prometheus::router(scrape))
}

/// The router each Lambda serves, by binary name (what the template and the
/// watch router name).
fn function_router(binary: &str) -> Option<Router> {
    let state = state();
    Some(match binary {
        "scenarios" => api::finish(api::routes::scenarios_router_with(console::openapi), state),
        "sessions" => api::finish(api::sessions_router(), state),
        "plans" => api::finish(api::plans_router(), state),
        "deployments" => api::finish(api::deployments_router(), state),
        "console-fn" => console::router(state),
        _ => return None,
    })
}

/// A concrete path for a route: ids as UUIDs, versions as numbers.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{version}" => "1".to_string(),
            "{+}" => "plans".to_string(),
            s if s.starts_with('{') => "3fa85f64-5717-4562-b3fc-2c963f66afa6".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `router` has the route: its answer is neither a 405 nor the 404 of
/// an unknown route (`{"detail": "Not Found"}` from `routes::finish`, or an
/// empty 404 from a router without that fallback) — a 404 naming an object is
/// the route answering.
async fn answers(router: Router, method: &str, path: &str) -> Result<u16, String> {
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(concrete(path))
        .header("X-Tenant-ID", "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c")
        .header("content-type", "application/json")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let unknown = status == 405
        || (status == 404 && (body.is_empty() || &body[..] == br#"{"detail":"Not Found"}"#));
    if unknown {
        Err(format!("{status} {}", String::from_utf8_lossy(&body)))
    } else {
        Ok(status)
    }
}

#[tokio::test]
async fn routers_openapi_template_and_watch_router_agree() {
    let documented = openapi_routes();
    let template = template_routes();
    let watch = watch_routes();
    let serve_only: BTreeSet<RouteKey> = SERVE_ONLY
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let html = non_api_routes();

    // Every route of the deployed API, with its function, from the template.
    let mut problems = Vec::new();
    for (route, function) in &template {
        match watch.get(route) {
            None => problems.push(format!(
                "{route:?} ({function}) is in the template, not in the watch router"
            )),
            Some(f) if f != function => problems.push(format!(
                "{route:?}: the template routes it to {function}, the watch router to {f}"
            )),
            Some(_) => {}
        }
    }
    for (route, function) in &watch {
        if !template.contains_key(route) {
            problems.push(format!(
                "{route:?} ({function}) is in the watch router, not in the template"
            ));
        }
    }

    // The list: OpenAPI operations (less the serve-only ones) and the console's pages.
    let mut expected: BTreeSet<RouteKey> = documented.difference(&serve_only).cloned().collect();
    for (route, function) in &html {
        expected.insert(route.clone());
        if template.get(route).is_some_and(|f| f != function) {
            problems.push(format!(
                "{route:?} is a console page, routed to {:?}",
                template[route]
            ));
        }
    }
    let deployed: BTreeSet<RouteKey> = template.keys().cloned().collect();
    for route in expected.difference(&deployed) {
        problems.push(format!(
            "{route:?} is documented (OpenAPI or a console page) but not routed in the template"
        ));
    }
    for route in deployed.difference(&expected) {
        problems.push(format!("{route:?} is routed in the template but not in the OpenAPI document (nor a console page)"));
    }
    for route in &serve_only {
        if !documented.contains(route) {
            problems.push(format!(
                "{route:?} (serve only) is not in the OpenAPI document"
            ));
        }
        if deployed.contains(route) {
            problems.push(format!(
                "{route:?} is serve-only but routed in the template"
            ));
        }
    }

    // Each function's router answers each of its routes; no other function's does
    // (a route served by the wrong Lambda would 404 behind API Gateway).
    let functions: BTreeSet<&String> = template.values().collect();
    for (route, function) in &template {
        let Some(router) = function_router(function) else {
            problems.push(format!(
                "{route:?}: no router known for function {function}"
            ));
            continue;
        };
        if let Err(answer) = answers(router, &route.0, &route.1).await {
            problems.push(format!(
                "{route:?}: the {function} router does not answer it ({answer})"
            ));
        }
        for other in functions.iter().filter(|f| *f != &function) {
            if let Some(router) = function_router(other)
                && let Ok(status) = answers(router, &route.0, &route.1).await
            {
                problems.push(format!(
                    "{route:?} belongs to {function} but the {other} router answers it too ({status})"
                ));
            }
        }
    }

    // The metrics scrape: served by `migrations serve` alone, outside the API's contract.
    for (method, path) in SERVE_ONLY_NOT_API {
        let route = (method.to_string(), path.to_string());
        if documented.contains(&route) {
            problems.push(format!("{route:?} is in the OpenAPI document"));
        }
        if template.contains_key(&route) || watch.contains_key(&route) {
            problems.push(format!("{route:?} is routed to a Lambda"));
        }
        for function in &functions {
            if let Some(router) = function_router(function)
                && let Ok(status) = answers(router, method, path).await
            {
                problems.push(format!(
                    "{route:?}: the {function} router answers it ({status})"
                ));
            }
        }
    }
    let serve_only_not_api = SERVE_ONLY_NOT_API.map(|(m, p)| (m.to_string(), p.to_string()));

    // `migrations serve` (api::app + the console + the scrape) answers every route,
    // serve-only ones included.
    for route in expected
        .iter()
        .chain(&serve_only)
        .chain(&serve_only_not_api)
    {
        if let Err(answer) = answers(serve_router(), &route.0, &route.1).await {
            problems.push(format!(
                "{route:?}: migrations serve's router does not answer it ({answer})"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "the route lists disagree:\n{}",
        problems.join("\n")
    );
    // The list is not vacuous: every group is there.
    for function in [
        "scenarios",
        "sessions",
        "plans",
        "deployments",
        "console-fn",
    ] {
        assert!(
            functions.iter().any(|f| *f == function),
            "no route of {function}"
        );
    }
    assert!(template.len() >= 20, "{} routes", template.len());
}

/// The scenarios function and `migrations serve` serve the whole document, the
/// one `migrations openapi` prints.
#[tokio::test]
async fn the_whole_document_is_served() {
    let expected = api::openapi::document_text(&api::openapi::document_with(console::openapi()));
    for router in [
        function_router("scenarios").unwrap(),
        api::routes::app_with(state(), console::openapi),
    ] {
        let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 21)
            .await
            .unwrap();
        assert!(
            body == expected.as_bytes(),
            "a different document is served"
        );
    }
    assert!(expected.contains("/migration-plans/{plan_id}/diagram"));
}

#[tokio::test]
async fn an_unknown_route_is_caught() {
    // The check above would see a route missing from a router.
    let router = function_router("plans").unwrap();
    assert!(
        answers(router, "GET", "/migration-plans/{plan_id}/nope")
            .await
            .is_err()
    );
    let router = function_router("plans").unwrap();
    assert!(
        answers(router, "DELETE", "/migration-plans/{plan_id}")
            .await
            .is_err()
    );
    let router = function_router("plans").unwrap();
    assert!(
        answers(router, "GET", "/migration-plans/{plan_id}")
            .await
            .is_ok()
    );
    // A greedy parameter is one spelling everywhere.
    assert_eq!(
        normalise("/console/{*page}"),
        normalise("/console/{proxy+}")
    );
}
