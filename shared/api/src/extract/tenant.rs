//! The caller's tenant: the required `X-Tenant-ID` header, checked against the
//! tenant an authorizer bound to the request (if any).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;

/// The caller's tenant, from the required `X-Tenant-ID` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant(pub Uuid);

/// The tenant an authorizer vouched for (e.g. a JWT claim), put into the request
/// extensions by the Lambda adapter. When present, `X-Tenant-ID` must match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedTenant(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let loc = ["header", "X-Tenant-ID"];
        let raw = parts
            .headers
            .get("x-tenant-id")
            .ok_or_else(|| ApiError::validation(&loc, "Field required", "missing"))?;
        let text = raw.to_str().map_err(|_| {
            ApiError::validation(&loc, "Input should be a valid UUID", "uuid_parsing")
        })?;
        // The canonical hyphenated form only: one tenant, one spelling (in logs,
        // in authorizer claims, in keys).
        let text = text.trim();
        let tenant = (text.len() == 36)
            .then(|| Uuid::parse_str(text).ok())
            .flatten()
            .ok_or_else(|| {
                ApiError::validation(&loc, "Input should be a valid UUID", "uuid_parsing")
            })?;
        if let Some(AuthorizedTenant(claimed)) = parts.extensions.get::<AuthorizedTenant>() {
            let matches = Uuid::parse_str(claimed).is_ok_and(|c| c == tenant);
            if !matches {
                return Err(ApiError::Forbidden(
                    "X-Tenant-ID does not match the authenticated tenant".into(),
                ));
            }
        }
        Ok(Tenant(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn tenant_of(Tenant(t): Tenant) -> String {
        t.to_string()
    }

    async fn status_for(header: Option<&str>, authorized: Option<&str>) -> (u16, String) {
        let app = Router::new().route("/", get(tenant_of));
        let mut request = HttpRequest::builder().uri("/");
        if let Some(h) = header {
            request = request.header("X-Tenant-ID", h);
        }
        let mut request = request.body(Body::empty()).unwrap();
        if let Some(claim) = authorized {
            request
                .extensions_mut()
                .insert(AuthorizedTenant(claim.to_string()));
        }
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";

    #[tokio::test]
    async fn tenant_header_is_required_and_must_be_a_uuid() {
        let (status, body) = status_for(None, None).await;
        assert_eq!(status, 422);
        assert!(body.contains("X-Tenant-ID"), "{body}");
        assert_eq!(status_for(Some("acme"), None).await.0, 422);
        assert_eq!(
            status_for(Some(TENANT), None).await,
            (200, TENANT.to_string())
        );
    }

    #[tokio::test]
    async fn an_authorized_tenant_claim_must_match_the_header() {
        assert_eq!(status_for(Some(TENANT), Some(TENANT)).await.0, 200);
        let other = "11111111-1111-4111-8111-111111111111";
        let (status, body) = status_for(Some(TENANT), Some(other)).await;
        assert_eq!(status, 403);
        assert!(body.contains("does not match"), "{body}");
        // A claim that is not even a UUID never matches.
        assert_eq!(status_for(Some(TENANT), Some("admin")).await.0, 403);
    }
}
