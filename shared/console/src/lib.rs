//! The operator console: review, tune, approve, deploy and watch a migration in a
//! browser.
//!
//! Two parts, both served by `migrations serve` and by the `console` Lambda:
//! - [`pages_router`]: the console itself — one HTML shell, a stylesheet and a
//!   script written in this project and compiled into the binary
//!   (`include_str!`). Nothing is fetched from elsewhere at runtime. The script
//!   talks to the public API only, with the `X-Tenant-ID` the operator entered
//!   (and a bearer token on JWT stacks). These routes need no tenant.
//! - [`api_router`]: `GET /migration-plans/{plan_id}/diagram`, a public API route
//!   (tenant required like every other) answering one side of a plan as SVG.

pub mod diagram;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use api::error::{ApiError, ApiResult};
use api::extract::{PathParams, QueryParams, Tenant};
use api::state::AppState;

use diagram::{DiagramError, DiagramRequest, Side};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const CONSOLE_JS: &str = include_str!("../assets/console.js");
const CONSOLE_CSS: &str = include_str!("../assets/console.css");

/// Where the console's pages live (the HTML shell answers each; the script
/// reads the path). Kept in step with infra/template.yaml and the watch router.
pub const PAGE_ROUTES: [&str; 3] = ["/", "/console", "/console/{*page}"];
/// The console's assets.
pub const ASSET_ROUTES: [&str; 2] = ["/console/assets/console.js", "/console/assets/console.css"];
/// The console's API route.
pub const DIAGRAM_ROUTE: &str = "/migration-plans/{plan_id}/diagram";

/// Only our own script, styles and API: no inline script, no third party, no
/// framing (clickjacking an approve button).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";
/// The diagram is data, never a document that runs anything.
const SVG_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str, csp: Option<&'static str>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets change with the binary: revalidate rather than serve a stale script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(csp) = csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        INDEX_HTML,
        Some(CONTENT_SECURITY_POLICY),
    )
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS, None)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS, None)
}

/// The console's pages and assets; no tenant needed (they hold no data).
pub fn pages_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for path in PAGE_ROUTES {
        router = router.route(path, get(index));
    }
    router
        .route(ASSET_ROUTES[0], get(script))
        .route(ASSET_ROUTES[1], get(stylesheet))
}

/// The console's API route (tenant required).
pub fn api_router() -> Router<AppState> {
    Router::new().route(DIAGRAM_ROUTE, get(plan_diagram))
}

/// Everything of the console, for `migrations serve`: pages and the diagram
/// route, with the API's request id and panic handling, without a fallback (so
/// it merges with `api::app`, whose JSON 404 stays the fallback).
pub fn router(state: AppState) -> Router {
    api::routes::catch_panics(pages_router().merge(api_router())).with_state(state)
}

#[derive(Debug, Deserialize)]
pub struct DiagramQuery {
    #[serde(default)]
    pub side: Option<String>,
    #[serde(default)]
    pub anchor: Option<String>,
    #[serde(default)]
    pub radius: Option<u32>,
}

/// `GET /migration-plans/{plan_id}/diagram?side=v1|v2&anchor=&radius=`.
async fn plan_diagram(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    QueryParams(query): QueryParams<DiagramQuery>,
) -> ApiResult<Response> {
    let plan_id = path.uuid("plan_id")?;
    let side = match query.side.as_deref() {
        None => Side::V2,
        Some(text) => Side::parse(text).ok_or_else(|| {
            ApiError::validation(
                &["query", "side"],
                "must be v1 (the version the plan migrates from) or v2 (the version it migrates to)",
                "value_error.enum",
            )
        })?,
    };
    if query.radius.is_some_and(|r| r > diagram::MAX_RADIUS) {
        return Err(ApiError::validation(
            &["query", "radius"],
            format!("must be at most {}", diagram::MAX_RADIUS),
            "less_than_equal",
        ));
    }
    let store = state.store();
    // Read only: the diagram does not care about expiry (`plans::load` would write it).
    let plan = store
        .get_plan(tenant, plan_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Migration plan", plan_id))?;
    let v1 = store
        .get_scenario_version(tenant, plan.scenario_id, plan.from_version)
        .await?
        .ok_or_else(|| ApiError::Unexpected("the plan's from-version vanished".into()))?
        .definition();
    let v2 = store
        .get_plan_target(tenant, plan_id)
        .await?
        .ok_or_else(|| ApiError::Unexpected("the plan's target version vanished".into()))?
        .definition();
    // Live counts on deleted steps: the session counters (one read, O(steps)),
    // never a page of sessions inside the request.
    let deleted_counts = if side == Side::V1 {
        let deleted = diagram::deleted_step_ids(&plan);
        if deleted.is_empty() {
            BTreeMap::new()
        } else {
            let mut counts = store
                .session_counts(tenant, plan.scenario_id, plan.from_version)
                .await?
                .by_step;
            counts.retain(|step, _| deleted.contains(step));
            counts
        }
    } else {
        BTreeMap::new()
    };
    let request = DiagramRequest {
        side,
        anchor: query.anchor.as_deref(),
        radius: query.radius,
    };
    let svg = diagram::render(&plan, &v1, &v2, &request, &deleted_counts).map_err(
        |DiagramError::UnknownAnchor| {
            ApiError::validation(
                &["query", "anchor"],
                "not an anchor (or edited step) of this plan",
                "value_error.anchor",
            )
        },
    )?;
    let mut response = (StatusCode::OK, svg).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SVG_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
