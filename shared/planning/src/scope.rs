//! Scope filters: which sessions an anchor policy applies to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::conditions::{Condition, ConditionError};
use crate::model::{ScopeFilter, Session};

/// Most custom conditions in one scope filter. Each may be compiled on every
/// reconcile of a session under the policy (about 5 µs a character, up to
/// [`crate::conditions::MAX_EXPRESSION_CHARS`] characters), and all of them are
/// evaluated per session at deploy: real filters have a handful.
pub const MAX_CUSTOM_CONDITIONS: usize = 16;

/// A scope filter with its custom conditions compiled once, for evaluating many sessions.
#[derive(Debug)]
pub struct CompiledScope<'a> {
    filter: &'a ScopeFilter,
    conditions: Vec<Condition>,
}

/// A custom condition that does not compile, with its position in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCondition {
    pub index: usize,
    pub error: ConditionError,
}

impl<'a> CompiledScope<'a> {
    pub fn compile(filter: &'a ScopeFilter) -> Result<Self, Vec<InvalidCondition>> {
        compile_conditions(filter).map(|conditions| CompiledScope { filter, conditions })
    }

    /// Whether `session`, currently at the step named `current_step_name`, is in scope.
    /// A custom condition that fails to evaluate (e.g. a variable the session lacks,
    /// or over the evaluation budget) excludes the session: migrating someone the
    /// operator did not clearly include is the riskier mistake.
    pub fn includes(&self, session: &Session, current_step_name: &str, now: DateTime<Utc>) -> bool {
        self.check(session, current_step_name, now) == Inclusion::Included
    }

    /// [`CompiledScope::includes`], telling a condition that could not be
    /// evaluated apart from one that was false, for the reason of a decision.
    pub fn check(
        &self,
        session: &Session,
        current_step_name: &str,
        now: DateTime<Utc>,
    ) -> Inclusion {
        check_scope(
            self.filter,
            &self.conditions,
            session,
            current_step_name,
            now,
        )
    }
}

/// The custom conditions of a filter, compiled; every one that does not compile.
pub(crate) fn compile_conditions(
    filter: &ScopeFilter,
) -> Result<Vec<Condition>, Vec<InvalidCondition>> {
    let mut conditions = Vec::with_capacity(filter.custom_conditions.len());
    let mut invalid = Vec::new();
    for (index, source) in filter.custom_conditions.iter().enumerate() {
        match Condition::compile(source) {
            Ok(c) => conditions.push(c),
            Err(error) => invalid.push(InvalidCondition { index, error }),
        }
    }
    if invalid.is_empty() {
        Ok(conditions)
    } else {
        Err(invalid)
    }
}

/// [`CompiledScope::check`] over a filter and its conditions compiled earlier
/// (reconcile keeps them with the prepared plan: compiled once per process).
pub(crate) fn check_scope(
    f: &ScopeFilter,
    conditions: &[Condition],
    session: &Session,
    current_step_name: &str,
    now: DateTime<Utc>,
) -> Inclusion {
    if !f.include_channels.is_empty() && !f.include_channels.contains(&session.channel) {
        return Inclusion::Excluded;
    }
    if f.exclude_channels.contains(&session.channel) {
        return Inclusion::Excluded;
    }
    let at_step = |names: &Vec<String>| names.iter().any(|n| n == current_step_name);
    if !f.include_current_nodes.is_empty() && !at_step(&f.include_current_nodes) {
        return Inclusion::Excluded;
    }
    if at_step(&f.exclude_current_nodes) {
        return Inclusion::Excluded;
    }
    let age_days = session_age_days(session, now);
    if let Some(max) = f.max_session_age_days
        && age_days > max
    {
        return Inclusion::Excluded;
    }
    if let Some(min) = f.min_session_age_days
        && age_days < min
    {
        return Inclusion::Excluded;
    }
    if conditions.is_empty() {
        return Inclusion::Included;
    }
    let bindings = session_bindings(session, current_step_name, age_days);
    for (index, condition) in conditions.iter().enumerate() {
        match condition.evaluate(&bindings) {
            Ok(true) => {}
            Ok(false) => return Inclusion::Excluded,
            Err(error) => return Inclusion::NotEvaluated { index, error },
        }
    }
    Inclusion::Included
}

/// Whether a session is in a scope, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inclusion {
    Included,
    /// Left out by the channel, step or age bounds, or a condition that is false.
    Excluded,
    /// Left out because custom condition `index` could not be evaluated.
    NotEvaluated {
        index: usize,
        error: ConditionError,
    },
}

/// Whole days since the session started (never negative).
pub(crate) fn session_age_days(session: &Session, now: DateTime<Utc>) -> i64 {
    (now - session.created_at).num_days().max(0)
}

/// The CEL view of a session: `session.channel`, `session.age_days`,
/// `session.variables`, `session.current_step`.
pub(crate) fn session_bindings(
    session: &Session,
    current_step_name: &str,
    age_days: i64,
) -> BTreeMap<String, serde_json::Value> {
    let mut bindings = BTreeMap::new();
    bindings.insert(
        "session".to_string(),
        json!({
            "channel": session.channel,
            "age_days": age_days,
            "variables": session.variables,
            "current_step": current_step_name,
        }),
    );
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use uuid::Uuid;

    fn session(channel: &str, age_days: i64, now: DateTime<Utc>) -> Session {
        Session {
            session_id: "s1".into(),
            tenant_id: Uuid::nil(),
            channel: channel.into(),
            customer_id: None,
            active_scenario_id: Uuid::nil(),
            active_scenario_version: 1,
            active_step_id: Uuid::nil(),
            scenario_checksum: None,
            step_history: vec![],
            variables: [("tier".to_string(), json!("gold"))].into_iter().collect(),
            pending_migration: None,
            pinned_version: None,
            created_at: now - Duration::days(age_days),
            updated_at: now,
            revision: 0,
        }
    }

    #[test]
    fn empty_filter_includes_everyone() {
        let now = Utc::now();
        let f = ScopeFilter::default();
        let scope = CompiledScope::compile(&f).unwrap();
        assert!(scope.includes(&session("web", 100, now), "Welcome", now));
    }

    #[test]
    fn channels_and_steps() {
        let now = Utc::now();
        let f = ScopeFilter {
            include_channels: vec!["whatsapp".into()],
            exclude_current_nodes: vec!["Payment".into()],
            ..Default::default()
        };
        let scope = CompiledScope::compile(&f).unwrap();
        assert!(scope.includes(&session("whatsapp", 1, now), "Welcome", now));
        assert!(!scope.includes(&session("web", 1, now), "Welcome", now));
        assert!(!scope.includes(&session("whatsapp", 1, now), "Payment", now));
    }

    #[test]
    fn age_bounds() {
        let now = Utc::now();
        let f = ScopeFilter {
            max_session_age_days: Some(10),
            min_session_age_days: Some(2),
            ..Default::default()
        };
        let scope = CompiledScope::compile(&f).unwrap();
        assert!(scope.includes(&session("web", 5, now), "A", now));
        assert!(!scope.includes(&session("web", 11, now), "A", now));
        assert!(!scope.includes(&session("web", 1, now), "A", now));
    }

    #[test]
    fn custom_conditions_in_cel() {
        let now = Utc::now();
        let f = ScopeFilter {
            custom_conditions: vec![
                "session.variables.tier == 'gold'".into(),
                "session.current_step != 'Done'".into(),
            ],
            ..Default::default()
        };
        let scope = CompiledScope::compile(&f).unwrap();
        assert!(scope.includes(&session("web", 1, now), "A", now));
        assert!(!scope.includes(&session("web", 1, now), "Done", now));
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_excludes_and_says_why() {
        let now = Utc::now();
        let f = ScopeFilter {
            custom_conditions: vec![
                "session.variables.tier == 'gold'".into(),
                "session.variables.missing == 1".into(),
            ],
            ..Default::default()
        };
        let scope = CompiledScope::compile(&f).unwrap();
        let s = session("web", 1, now);
        assert!(!scope.includes(&s, "A", now));
        assert!(matches!(
            scope.check(&s, "A", now),
            Inclusion::NotEvaluated {
                index: 1,
                error: ConditionError::Evaluation(_)
            }
        ));
        // A false condition is a plain exclusion.
        let f = ScopeFilter {
            custom_conditions: vec!["session.variables.tier == 'silver'".into()],
            ..Default::default()
        };
        let scope = CompiledScope::compile(&f).unwrap();
        assert_eq!(scope.check(&s, "A", now), Inclusion::Excluded);
    }

    #[test]
    fn invalid_custom_condition_is_reported_with_its_index() {
        let f = ScopeFilter {
            custom_conditions: vec!["true".into(), "this is ((( not cel".into()],
            ..Default::default()
        };
        let errors = CompiledScope::compile(&f).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
    }
}
