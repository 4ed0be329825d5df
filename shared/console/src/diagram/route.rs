//! `GET /migration-plans/{plan_id}/diagram`: the HTTP side of the diagrams. Loads
//! the plan, both of its versions and the live counts of its deleted steps from
//! the store (reads only), and answers the SVG [`super::render`] draws.
//!
//! The route's OpenAPI description sits on the handler, like the API crate's
//! routes, and [`openapi`] hands it out: the API crate cannot name this handler
//! (this crate depends on it), so the crates that have both merge it into the
//! API's part (`api::openapi::document_with`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::OpenApi;

use api::error::{ApiError, ApiResult};
use api::extract::{PathParams, QueryParams, Tenant};
use api::openapi::{NotFound, TenantRoutes};
use api::state::AppState;

use super::{DiagramError, DiagramRequest, MAX_RADIUS, Side};

/// The route's path, as axum, API Gateway and the OpenAPI document spell it.
pub const PATH: &str = "/migration-plans/{plan_id}/diagram";

/// The diagram is data, never a document that runs anything.
const SVG_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// The query, as text: `side` is checked by hand so its 422 can say what v1 and
/// v2 mean.
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
#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/diagram", tag = "plans", operation_id = "plan_diagram",
    summary = "One side of a plan as an SVG diagram",
    description = "The whole version, or the neighbourhood of one anchor (a breadth-first ball of `radius` transitions). Anchors, inserted, deleted and edited steps are marked; on `v1`, deleted steps carry their session counts.",
    params(
        ("plan_id" = uuid::Uuid, Path, description = "The plan's id"),
        ("side" = Option<Side>, Query, description = "v1 or v2 (default v2)"),
        ("anchor" = Option<String>, Query, description = "An anchor content hash (or edited step key) of the plan to centre on"),
        ("radius" = Option<u32>, Query, minimum = 0, maximum = 25, description = "Transitions around the anchor"),
    ),
    responses(
        (status = 200, description = "The diagram", content_type = "image/svg+xml", body = String),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn plan_diagram(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    QueryParams(query): QueryParams<DiagramQuery>,
) -> ApiResult<Response> {
    let plan_id = path.uuid("plan_id")?;
    let request = DiagramRequest {
        side: side(query.side.as_deref())?,
        anchor: query.anchor.as_deref(),
        radius: radius(query.radius)?,
    };
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
    let deleted_counts = if request.side == Side::V1 {
        let deleted = super::deleted_step_ids(&plan);
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
    let svg = super::render(&plan, &v1, &v2, &request, &deleted_counts).map_err(
        |DiagramError::UnknownAnchor| {
            ApiError::validation(
                &["query", "anchor"],
                "not an anchor (or edited step) of this plan",
                "value_error.anchor",
            )
        },
    )?;
    Ok(svg_response(svg))
}

/// `side`, V2 when absent.
fn side(text: Option<&str>) -> ApiResult<Side> {
    match text {
        None => Ok(Side::V2),
        Some(text) => Side::parse(text).ok_or_else(|| {
            ApiError::validation(
                &["query", "side"],
                "must be v1 (the version the plan migrates from) or v2 (the version it migrates to)",
                "value_error.enum",
            )
        }),
    }
}

/// `radius`: above [`MAX_RADIUS`] a 422, rather than a smaller drawing than the
/// caller asked for without a word.
fn radius(radius: Option<u32>) -> ApiResult<Option<u32>> {
    if radius.is_some_and(|r| r > MAX_RADIUS) {
        return Err(ApiError::validation(
            &["query", "radius"],
            format!("must be at most {MAX_RADIUS}"),
            "less_than_equal",
        ));
    }
    Ok(radius)
}

/// The SVG with headers that keep a browser from running or framing it, and
/// from storing it (it shows live session counts).
fn svg_response(svg: String) -> Response {
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
    response
}

/// The diagram route's part of the OpenAPI document: its operation, the
/// `DiagramSide` schema and the `NotFound` response it refers to. A tenant
/// route: [`TenantRoutes`] adds the `X-Tenant-ID` header and the answers every
/// tenant route can give (403, 422, 503), as to the API's own routes.
#[derive(OpenApi)]
#[openapi(
    paths(plan_diagram),
    components(schemas(Side), responses(NotFound)),
    modifiers(&TenantRoutes)
)]
struct DiagramApi;

/// The diagram route's OpenAPI description, to merge into the API's document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    DiagramApi::openapi()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// The whole document describes the route as this part does, as a tenant
    /// route, and every tenant route of the whole document takes the header.
    #[test]
    fn the_whole_document_describes_the_route_as_a_tenant_route() {
        let ours = serde_json::to_value(openapi()).unwrap();
        let doc = serde_json::to_value(api::openapi::document_with(openapi())).unwrap();
        let operation = &doc["paths"][PATH]["get"];
        assert_eq!(operation, &ours["paths"][PATH]["get"]);
        assert_eq!(operation["parameters"][0]["name"], "X-Tenant-ID");
        for status in ["200", "403", "404", "422", "503"] {
            assert!(operation["responses"][status].is_object(), "{status}");
        }
        assert_eq!(
            doc.pointer("/components/schemas/DiagramSide"),
            ours.pointer("/components/schemas/DiagramSide")
        );
        let api = serde_json::to_value(api::openapi::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), api["paths"].as_object().unwrap().len() + 1);
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let has_tenant = operation["parameters"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["name"] == "X-Tenant-ID"));
                assert_eq!(
                    has_tenant,
                    !api::openapi::TENANTLESS_PATHS.contains(&path.as_str()),
                    "{method} {path}"
                );
            }
        }
        // Every reference of the whole document resolves.
        let text = api::openapi::document_text(&api::openapi::document_with(openapi()));
        let references = text.split("\"$ref\": \"#/").skip(1);
        assert!(references.clone().count() > 20);
        for reference in references {
            let pointer = reference.split('"').next().unwrap();
            assert!(doc.pointer(&format!("/{pointer}")).is_some(), "{pointer}");
        }
    }

    /// The description's limits are the handler's.
    #[test]
    fn the_description_states_the_handlers_limits() {
        let ours = serde_json::to_value(openapi()).unwrap();
        let operation = &ours["paths"][PATH]["get"];
        assert_eq!(
            parameter(operation, "radius")["schema"]["maximum"],
            MAX_RADIUS
        );
        let side = &ours["components"]["schemas"]["DiagramSide"]["enum"];
        assert_eq!(
            side,
            &serde_json::json!([Side::V1.as_str(), Side::V2.as_str()])
        );
        for name in ["plan_id", "side", "anchor", "radius"] {
            parameter(operation, name);
        }
    }
}
