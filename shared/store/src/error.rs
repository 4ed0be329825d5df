//! The error of every store operation, shared by all backends: the one piece
//! of the crate every other module may depend on, so it depends on none.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write did not hold (state changed underneath, or the item exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend asked us to slow down; retrying later is safe.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A session change that applies a migration required this plan to be
    /// applying migrations (`deploying` or `deployed`), and it was not: an
    /// operator paused it between the decision and the write.
    #[error("plan {0} is not applying migrations")]
    PlanNotApplying(uuid::Uuid),
    /// A pagination token that this store did not issue (or issued for another query).
    #[error("invalid pagination token")]
    InvalidToken,
    /// Anything else: a bug or an outage. Never shown to API clients verbatim.
    #[error("storage failure: {0}")]
    Unexpected(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
