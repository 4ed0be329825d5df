//! One in-process request to the whole router, for the emulator benchmarks
//! (`marking_bench`, `scale`): a tenant header, an optional JSON body, the status
//! and JSON reply back (`null` when the reply is not JSON).

use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub async fn call(
    app: &axum::Router,
    tenant: Uuid,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-tenant-id", tenant.to_string())
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
