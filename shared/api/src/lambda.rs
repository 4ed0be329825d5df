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

#[cfg(test)]
mod tests {
    use super::*;

    fn context_with_claims(claims: serde_json::Value) -> RequestContext {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
                "domainPrefix": "example", "requestId": "r", "routeKey": "GET /x", "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            }
        });
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
        request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .expect("request context")
    }

    #[test]
    fn reads_the_configured_tenant_claim() {
        let ctx = context_with_claims(serde_json::json!({"tenant_id": "t-1", "sub": "user"}));
        assert_eq!(tenant_claim(&ctx, "tenant_id").as_deref(), Some("t-1"));
        assert_eq!(tenant_claim(&ctx, "custom:tenant"), None);
    }
}
