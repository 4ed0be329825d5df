//! Lambda for the sessions endpoint group; everything but the wiring lives in the `api` crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    api::lambda::run(api::sessions_router).await
}
