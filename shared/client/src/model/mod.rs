//! The API's request and response types, with the JSON names of the OpenAPI
//! document (`migrations openapi`, or `GET /openapi.json`), one Rust type per
//! component schema of the same name (`HTTPValidationError` is
//! [`HttpValidationError`]).
//!
//! The client keeps its own types rather than the server's so that a runtime
//! does not compile the server. They do not reject fields they do not know,
//! so a newer server's additions do not break an older runtime. The e2e test
//! `client_contract` checks them against the document both ways: what the
//! client sends validates against the request schemas, and every field of
//! every live response survives a round trip through these types.
//!
//! One file per aggregate, every type re-exported here: `model::Session`,
//! `model::MigrationPlan`, … wherever they are defined.

mod deployment;
mod diff;
mod forecast;
mod meta;
mod plan;
mod scenario;
mod session;

pub use deployment::*;
pub use diff::*;
pub use forecast::*;
pub use meta::*;
pub use plan::*;
pub use scenario::*;
pub use session::*;
