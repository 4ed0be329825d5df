//! The Lambda adapter: one endpoint group's router under `lambda_http`.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use lambda_http::request::RequestContext;

use crate::config::Config;
use crate::extract::AuthorizedTenant;
use crate::state::AppState;

/// The tenant claim of an HTTP API JWT authorizer, when there is one.
pub fn tenant_claim(context: &RequestContext, claim: &str) -> Option<String> {
    match context {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get(claim).cloned()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Serve one group (`api::scenarios_router`, …) as a Lambda: tracing, config
/// and SDK clients once per cold start, then the runtime loop.
pub async fn run(group: fn() -> Router<AppState>) -> Result<(), lambda_http::Error> {
    crate::telemetry::init(true);
    let config = Config::from_env()?;
    let claim = config.tenant_claim.clone();
    let state = crate::aws::lambda_state(config).await;
    let app = crate::routes::finish(group(), state).layer(middleware::from_fn(
        move |mut request: Request, next: Next| {
            let claim = claim.clone();
            async move {
                let tenant = request
                    .extensions()
                    .get::<RequestContext>()
                    .and_then(|ctx| tenant_claim(ctx, &claim));
                if let Some(tenant) = tenant {
                    request.extensions_mut().insert(AuthorizedTenant(tenant));
                }
                let response: Response = next.run(request).await;
                response
            }
        },
    ));
    lambda_http::run(app).await
}
