//! Lambda for the operator console. The pages and assets hold no data and need no
//! tenant; the diagram route is an API route like any other, behind the tenant
//! binding of `AUTH_MODE` (see `api::lambda::http_app`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    api::telemetry::init(true);
    // Both routers flush the metrics after each request (`http_app` the diagram's).
    api::metrics::emf::install();
    let config = api::Config::from_env()?;
    let state = api::aws::lambda_state(config).await;
    let diagram = api::lambda::http_app(console::api_router, state);
    let pages = api::metrics::emf::flush_each(api::routes::catch_panics(console::pages_router()));
    lambda_http::run(diagram.merge(pages)).await
}
