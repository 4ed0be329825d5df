//! How marking a page fails, and which failures a retry can cure.

use planning::PlanStatus;
use store::StoreError;
use uuid::Uuid;

use super::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum MarkingError {
    /// The message names a plan that does not exist (deleted, expired out of
    /// the table, or never created in this store).
    #[error("migration plan {plan_id} is gone")]
    PlanGone { plan_id: Uuid },
    /// The plan exists but no longer deploys (finished, or moved on): nothing
    /// is left to mark for it.
    #[error("migration plan {plan_id} is {status:?}, no longer deploying")]
    PlanNotDeploying { plan_id: Uuid, status: PlanStatus },
    /// The version a deploying plan migrates from is missing: the store lost
    /// data, which a retry may or may not see again — never silently dropped.
    #[error("version {version} that plan {plan_id} migrates from is missing")]
    FromVersionMissing { plan_id: Uuid, version: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl MarkingError {
    /// A failure no redelivery can cure: the plan is gone or done, or the
    /// message carries a cursor this store never issued.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MarkingError::PlanGone { .. }
                | MarkingError::PlanNotDeploying { .. }
                | MarkingError::Store(StoreError::InvalidToken)
        )
    }
}

pub type MarkingResult<T> = Result<T, MarkingError>;
