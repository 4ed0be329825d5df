//! The Lambda adapter: one endpoint group's router under `lambda_http`, with the
//! tenant binding of `crate::auth` in front of every route (docs/security.md).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use crate::auth::{AuthMode, Caller, Decision, TenantPolicy, canonical_uuid};
use crate::config::Config;
use crate::error::ApiError;
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

/// Who API Gateway says is calling: the SigV4-verified IAM principal
/// (`requestContext.authorizer.iam.userArn`), the JWT authorizer's claims
/// (`requestContext.authorizer.jwt.claims`), or nobody.
pub fn caller(context: Option<&RequestContext>, claim: &str) -> Caller {
    let authorizer = match context {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    let Some(authorizer) = authorizer else {
        return Caller::Anonymous;
    };
    if let Some(arn) = authorizer
        .iam
        .as_ref()
        .and_then(|iam| iam.user_arn.as_deref())
        .filter(|arn| !arn.trim().is_empty())
    {
        return Caller::Iam {
            arn: arn.trim().to_string(),
        };
    }
    if let Some(jwt) = authorizer.jwt.as_ref() {
        return Caller::Jwt {
            subject: jwt.claims.get("sub").cloned(),
            tenant_claim: jwt.claims.get(claim).cloned(),
        };
    }
    Caller::Anonymous
}

/// API Gateway's id of this request (the `apigw-requestid` it returns), for logs.
pub(crate) fn api_gateway_request_id(request: &Request) -> Option<String> {
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// What the tenant binding needs at request time.
struct Guard {
    policy: TenantPolicy,
    claim: String,
}

/// Bind the request to a tenant the caller may act for, or answer 403 before the
/// handler reads anything. The decision is logged with the principal, the tenant
/// and the route template (never the path, which may hold a session id).
async fn bind_tenant(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    // `GET /openapi.json` reads no tenant's data and needs no tenant (the route's
    // API Gateway authorization still applies). The path is the one the router
    // matches on.
    if crate::openapi::TENANTLESS_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let caller = caller(request.extensions().get::<RequestContext>(), &guard.claim);
    let header = request
        .headers()
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok());
    let requested = header.and_then(canonical_uuid);
    let mode = guard.policy.mode;
    match guard.policy.decide(&caller, header) {
        Decision::TrustHeader => {}
        Decision::Allow { tenant } => {
            tracing::info!(
                auth_mode = %mode,
                principal = %caller.principal(),
                %tenant,
                route = matched_route(&request),
                "tenant access allowed"
            );
            request
                .extensions_mut()
                .insert(AuthorizedTenant(tenant.to_string()));
        }
        Decision::InvalidHeader => {
            // The handler answers 422 for the header; should it ever take the header,
            // this matches no tenant.
            request
                .extensions_mut()
                .insert(AuthorizedTenant(String::new()));
        }
        Decision::Deny { reason } => {
            tracing::warn!(
                auth_mode = %mode,
                principal = %caller.principal(),
                tenant = requested.map(|t| t.to_string()).as_deref().unwrap_or("-"),
                route = matched_route(&request),
                reason = reason.as_str(),
                "tenant access denied"
            );
            return ApiError::Forbidden(reason.detail(mode)).into_response();
        }
    }
    next.run(request).await
}

/// API Gateway's route key (`POST /sessions/{session_id}/reconcile`): the route
/// template, never the path with its ids.
fn matched_route(request: &Request) -> &str {
    match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref().unwrap_or("-"),
        #[allow(unreachable_patterns)]
        _ => "-",
    }
}

/// One group's router as its Lambda serves it: `routes::finish` (body limit, JSON
/// 404/405, request id, panics) around the group's routes, each behind the tenant
/// binding of `state.config` (`AUTH_MODE`, `TENANT_CLAIM`, `IAM_TENANT_BINDINGS`).
pub fn http_app(group: fn() -> Router<AppState>, state: AppState) -> Router {
    let guard = Arc::new(Guard {
        policy: TenantPolicy::from_config(state.config()),
        claim: state.config().tenant_claim.clone(),
    });
    let routes = group().layer(middleware::from_fn_with_state(guard, bind_tenant));
    // One invocation is one request: its metrics leave as EMF lines after it.
    crate::metrics::emf::flush_each(crate::routes::finish(routes, state))
        // API Gateway's request id for the router's logs and `x-request-id`.
        .layer(middleware::map_request(|mut request: Request| async move {
            if let Some(id) = api_gateway_request_id(&request) {
                request
                    .extensions_mut()
                    .insert(crate::routes::PlatformRequestId(id));
            }
            request
        }))
}

/// Say once per cold start how tenants are authorised.
fn log_auth_mode(config: &Config) {
    let mode = config.auth_mode;
    tracing::info!(
        auth_mode = %mode,
        tenant_claim = %config.tenant_claim,
        iam_bindings = config.iam_tenant_bindings.len(),
        "tenant authorization"
    );
    match mode {
        AuthMode::Header => tracing::warn!(
            "AUTH_MODE=header: X-Tenant-ID is trusted as sent; for local runs and the \
             anonymous demo stack only"
        ),
        AuthMode::Iam if config.iam_tenant_bindings.is_empty() => tracing::warn!(
            "AUTH_MODE=iam without IAM_TENANT_BINDINGS: every request will be refused"
        ),
        _ => {}
    }
}

/// Serve one group (`api::scenarios_router`, …) as a Lambda: tracing, config
/// and SDK clients once per cold start, then the runtime loop.
pub async fn run(group: fn() -> Router<AppState>) -> Result<(), lambda_http::Error> {
    crate::telemetry::init(true);
    crate::metrics::emf::install();
    let config = Config::from_env()?;
    log_auth_mode(&config);
    let state = crate::aws::lambda_state(config).await;
    lambda_http::run(http_app(group, state)).await
}

/// Whether an invocation is the EventBridge schedule rather than an HTTP request.
pub fn is_scheduled_event(payload: &serde_json::Value) -> bool {
    payload.get("source").and_then(|v| v.as_str()) == Some("aws.events")
        || payload.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event")
}

/// One invocation of the deployments function: the EventBridge sweep, or an HTTP
/// request through `app` (its router from [`http_app`], tenant binding included).
pub async fn deployments_invocation(
    state: &AppState,
    app: Router,
    event: lambda_http::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_http::Error> {
    use lambda_http::request::LambdaRequest;
    use lambda_http::tower::ServiceExt;
    use lambda_http::{Adapter, LambdaEvent};

    let LambdaEvent { payload, context } = event;
    if is_scheduled_event(&payload) {
        let report = crate::services::deployments::sweep(state.deps(), chrono::Utc::now())
            .await
            .map_err(|e| lambda_http::Error::from(e.to_string()))?;
        tracing::info!(?report, "scheduled deployment sweep");
        crate::metrics::emf::flush();
        return Ok(serde_json::to_value(report)?);
    }
    let request: LambdaRequest = serde_json::from_value(payload)?;
    let response = Adapter::from(app)
        .oneshot(LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// The deployments function: its HTTP routes, and the periodic sweep that
/// resumes stalled deployments when EventBridge invokes it on a schedule.
pub async fn run_deployments() -> Result<(), lambda_http::Error> {
    use lambda_http::{LambdaEvent, service_fn};

    crate::telemetry::init(true);
    crate::metrics::emf::install();
    let config = Config::from_env()?;
    log_auth_mode(&config);
    let state = crate::aws::lambda_state(config).await;
    let app = http_app(crate::routes::deployments_router, state.clone());
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (state, app) = (state.clone(), app.clone());
        async move { deployments_invocation(&state, app, event).await }
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
