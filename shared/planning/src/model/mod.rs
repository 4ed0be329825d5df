//! Domain types, with the JSON names clients of the original FastAPI service
//! already use (docs/api.md says where this API differs).
//!
//! Inputs (`ScenarioInput` and everything a client posts) reject unknown fields;
//! stored/output types are lenient on read so that older items keep deserialising.
//!
//! One submodule per aggregate; every type is re-exported here, so
//! `planning::model::X` (and `planning::X`) name them all.

mod deployment;
mod forecast;
mod plan;
mod policy;
mod reconcile;
mod scenario;
mod session;
mod summary;
mod transformation;

pub use deployment::*;
pub use forecast::*;
pub use plan::*;
pub use policy::*;
pub use reconcile::*;
pub use scenario::*;
pub use session::*;
pub use summary::*;
pub use transformation::*;
