//! Transition conditions and scope-filter expressions in CEL (Common Expression Language).
//!
//! A condition is *machine-evaluable* when it compiles as CEL. Natural-language
//! conditions ("customer seems upset") do not compile and are never taken
//! automatically: callers report them instead.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};

/// The standard environment is built once: building it per evaluation would
/// dominate the cost of a reconcile decision.
static STDLIB: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression.
pub struct Condition {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish()
    }
}

/// Why a condition could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("not a valid CEL expression: {0}")]
    Syntax(String),
    #[error("could not evaluate: {0}")]
    Evaluation(String),
    #[error("evaluates to {0}, not a boolean")]
    NotBoolean(String),
}

impl Condition {
    pub fn compile(source: &str) -> Result<Self, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError::Syntax("empty expression".into()));
        }
        let program = STDLIB
            .compile(source)
            .map_err(|e| ConditionError::Syntax(e.to_string()))?;
        Ok(Condition {
            source: source.to_string(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate with each entry of `bindings` as a top-level variable.
    pub fn evaluate(
        &self,
        bindings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<bool, ConditionError> {
        let mut context = Context::with_env(STDLIB.clone());
        for (name, value) in bindings {
            context.add_variable_from_value(name.as_str(), json_to_cel(value));
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ConditionError::NotBoolean(format!("{other:?}"))),
            Err(e) => Err(ConditionError::Evaluation(e.to_string())),
        }
    }
}

/// True when `source` compiles as CEL (an empty condition is an unconditional
/// transition, not a machine-evaluable one).
pub fn is_machine_evaluable(source: &str) -> bool {
    Condition::compile(source).is_ok()
}

/// Convert JSON to a CEL value. Integral numbers become `int` so that
/// `age >= 18` works whether the runtime sent `18` or `18.0`-free JSON.
pub fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(map) => {
            let entries: std::collections::HashMap<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect();
            Value::Map(entries.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bindings(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn comparison_on_a_bound_field() {
        let c = Condition::compile("age >= 18").unwrap();
        assert!(c.evaluate(&bindings(&[("age", json!(21))])).unwrap());
        assert!(!c.evaluate(&bindings(&[("age", json!(17))])).unwrap());
    }

    #[test]
    fn nested_session_fields() {
        let c =
            Condition::compile("session.channel == 'whatsapp' && session.age_days > 3").unwrap();
        let b = bindings(&[("session", json!({"channel": "whatsapp", "age_days": 5}))]);
        assert!(c.evaluate(&b).unwrap());
    }

    #[test]
    fn natural_language_is_not_machine_evaluable() {
        assert!(!is_machine_evaluable(
            "customer seems upset about the price"
        ));
        assert!(!is_machine_evaluable(""));
        assert!(is_machine_evaluable("country == 'FR'"));
    }

    #[test]
    fn missing_variable_is_an_evaluation_error() {
        let c = Condition::compile("age >= 18").unwrap();
        assert!(matches!(
            c.evaluate(&BTreeMap::new()),
            Err(ConditionError::Evaluation(_))
        ));
    }

    #[test]
    fn non_boolean_result_is_rejected() {
        let c = Condition::compile("1 + 1").unwrap();
        assert!(matches!(
            c.evaluate(&BTreeMap::new()),
            Err(ConditionError::NotBoolean(_))
        ));
    }
}
