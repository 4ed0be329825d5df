//! Lambda for the deployments endpoint group; everything but the wiring lives in the `api` crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    api::lambda::run_deployments().await
}
