//! The operator console: review, tune, approve, deploy and watch a migration in a
//! browser.
//!
//! Two parts, both served by `migrations serve` and by the `console` Lambda:
//! - [`pages_router`]: the console itself — one HTML shell, a stylesheet and a
//!   script (a few ES modules) written in this project and compiled into the
//!   binary ([`assets`]). Nothing is fetched from elsewhere at runtime. The script
//!   talks to the public API only, with the `X-Tenant-ID` the operator entered
//!   (and a bearer token on JWT stacks). These routes need no tenant.
//! - [`api_router`]: `GET /migration-plans/{plan_id}/diagram`, a public API route
//!   (tenant required like every other) answering one side of a plan as SVG
//!   ([`diagram`]). Its OpenAPI description is [`openapi`].

pub mod assets;
pub mod diagram;

use axum::Router;
use axum::routing::get;

use api::state::AppState;

pub use diagram::route::DiagramQuery;

/// Where the console's pages live (the HTML shell answers each; the script
/// reads the path). Kept in step with infra/template.yaml and the watch router.
pub const PAGE_ROUTES: [&str; 3] = ["/", "/console", "/console/{*page}"];
/// The console's assets (behind API Gateway they are under the greedy page route).
pub const ASSET_ROUTES: [&str; assets::ASSETS.len()] = assets::paths();
/// The console's API route.
pub const DIAGRAM_ROUTE: &str = diagram::route::PATH;

/// The console's pages and assets; no tenant needed (they hold no data).
pub fn pages_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for path in PAGE_ROUTES {
        router = router.route(path, get(|| async { assets::index() }));
    }
    for asset in &assets::ASSETS {
        router = router.route(asset.path, get(move || async move { asset.response() }));
    }
    router
}

/// The console's API route (tenant required).
pub fn api_router() -> Router<AppState> {
    Router::new().route(DIAGRAM_ROUTE, get(diagram::route::plan_diagram))
}

/// Everything of the console, for `migrations serve`: pages and the diagram
/// route, with the API's request id and panic handling, without a fallback (so
/// it merges with `api::app`, whose JSON 404 stays the fallback).
pub fn router(state: AppState) -> Router {
    api::routes::catch_panics(pages_router().merge(api_router())).with_state(state)
}

/// The OpenAPI description of the console's API route: the part of the API's
/// document that `api::openapi::document_with` merges (the API crate cannot name
/// this crate's handler: this crate depends on the API's).
pub fn openapi() -> utoipa::openapi::OpenApi {
    diagram::route::openapi()
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> (Response<Body>, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = pages_router::<()>().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let text = String::from_utf8(to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        (Response::from_parts(parts, Body::empty()), text)
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_revalidated() {
        for asset in &assets::ASSETS {
            let (response, body) = get(asset.path).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
            let expected = if asset.path.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(
                header(&response, "content-type"),
                expected,
                "{}",
                asset.path
            );
            assert_eq!(header(&response, "cache-control"), "no-cache");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
            assert_eq!(body, asset.body);
        }
        assert!(ASSET_ROUTES.contains(&"/console/assets/console.js"));
        assert!(ASSET_ROUTES.contains(&"/console/assets/console.css"));
    }

    #[tokio::test]
    async fn every_page_is_the_shell_loading_the_entry_module() {
        for path in [
            "/",
            "/console",
            "/console/plans/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        ] {
            let (response, body) = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                "text/html; charset=utf-8"
            );
            // Module scripts are same-origin scripts: `script-src 'self'` covers
            // them and their preloads.
            assert!(header(&response, "content-security-policy").contains("script-src 'self'"));
            assert!(
                body.contains(
                    r#"<script type="module" src="/console/assets/console.js"></script>"#
                )
            );
        }
    }
}
