//! Why a condition could not be used: the error of compiling or evaluating one,
//! with the `type` its 422 entry carries.

use super::limits::MAX_EVALUATION_STEPS;

/// Why a condition could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("not a valid CEL expression: {0}")]
    Syntax(String),
    #[error("could not evaluate: {0}")]
    Evaluation(String),
    #[error("evaluates to {0}, not a boolean")]
    NotBoolean(String),
    /// Over one of the limits of this module; the message names it.
    #[error("{what} is {actual}; the limit ({limit_name}) is {limit}")]
    Limit {
        what: &'static str,
        limit_name: &'static str,
        actual: u64,
        limit: u64,
    },
    #[error(
        "evaluation budget exceeded: more than {MAX_EVALUATION_STEPS} steps (limit: max evaluation steps)"
    )]
    BudgetExceeded,
    /// A construct this module refuses (a `matches()` pattern that is not a literal).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The `cel` crate panicked on this expression.
    #[error("the CEL engine failed on this expression")]
    Internal,
}

impl ConditionError {
    /// The `type` of a 422 entry about this error.
    pub fn kind(&self) -> &'static str {
        match self {
            ConditionError::Limit { .. } | ConditionError::BudgetExceeded => {
                "value_error.cel.limit"
            }
            ConditionError::NotBoolean(_) => "value_error.cel.not_boolean",
            _ => "value_error.cel",
        }
    }

    /// A [`ConditionError::Limit`] from the `usize` counts the checks measure.
    pub(super) fn limit(
        what: &'static str,
        limit_name: &'static str,
        actual: usize,
        limit: usize,
    ) -> Self {
        ConditionError::Limit {
            what,
            limit_name,
            actual: actual as u64,
            limit: limit as u64,
        }
    }
}
