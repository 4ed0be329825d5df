//! Lambda for the scenarios endpoint group; everything but the wiring lives in the `api` crate.
//! Its `GET /openapi.json` serves the whole document: the API's routes and the
//! console's diagram route (`console::openapi`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    api::lambda::run(|| api::routes::scenarios_router_with(console::openapi)).await
}
