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

/// API Gateway's id of this request (the `apigw-requestid` it returns), for logs.
pub(crate) fn api_gateway_request_id(request: &Request) -> Option<String> {
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// One group's router with the Lambda's tenant binding in front of it.
fn http_app(group: fn() -> Router<AppState>, state: AppState, claim: String) -> Router {
    crate::routes::finish(group(), state).layer(middleware::from_fn(
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
    ))
}

/// Serve one group (`api::scenarios_router`, …) as a Lambda: tracing, config
/// and SDK clients once per cold start, then the runtime loop.
pub async fn run(group: fn() -> Router<AppState>) -> Result<(), lambda_http::Error> {
    crate::telemetry::init(true);
    let config = Config::from_env()?;
    let claim = config.tenant_claim.clone();
    let state = crate::aws::lambda_state(config).await;
    lambda_http::run(http_app(group, state, claim)).await
}

/// Whether an invocation is the EventBridge schedule rather than an HTTP request.
pub fn is_scheduled_event(payload: &serde_json::Value) -> bool {
    payload.get("source").and_then(|v| v.as_str()) == Some("aws.events")
        || payload.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event")
}

/// The deployments function: its HTTP routes, and the periodic sweep that
/// resumes stalled deployments when EventBridge invokes it on a schedule.
pub async fn run_deployments() -> Result<(), lambda_http::Error> {
    use lambda_http::request::LambdaRequest;
    use lambda_http::tower::ServiceExt;
    use lambda_http::{Adapter, LambdaEvent, service_fn};

    crate::telemetry::init(true);
    let config = Config::from_env()?;
    let claim = config.tenant_claim.clone();
    let state = crate::aws::lambda_state(config).await;
    let app = http_app(crate::routes::deployments_router, state.clone(), claim);
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (state, app) = (state.clone(), app.clone());
        async move {
            let LambdaEvent { payload, context } = event;
            if is_scheduled_event(&payload) {
                let report = crate::services::deployments::sweep(&state, chrono::Utc::now())
                    .await
                    .map_err(|e| lambda_http::Error::from(e.to_string()))?;
                tracing::info!(?report, "scheduled deployment sweep");
                return Ok::<_, lambda_http::Error>(serde_json::to_value(report)?);
            }
            let request: LambdaRequest = serde_json::from_value(payload)?;
            let response = Adapter::from(app)
                .oneshot(LambdaEvent::new(request, context))
                .await?;
            Ok(serde_json::to_value(response)?)
        }
    });
    lambda_http::lambda_runtime::run(handler).await
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
    fn tells_the_schedule_from_http() {
        let scheduled = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {}
        });
        assert!(is_scheduled_event(&scheduled));
        assert!(!is_scheduled_event(
            &serde_json::json!({"version": "2.0", "rawPath": "/x"})
        ));
    }

    #[test]
    fn reads_the_configured_tenant_claim() {
        let ctx = context_with_claims(serde_json::json!({"tenant_id": "t-1", "sub": "user"}));
        assert_eq!(tenant_claim(&ctx, "tenant_id").as_deref(), Some("t-1"));
        assert_eq!(tenant_claim(&ctx, "custom:tenant"), None);
    }
}
