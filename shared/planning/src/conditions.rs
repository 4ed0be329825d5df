//! Transition conditions and scope-filter expressions in CEL (Common Expression Language).
//!
//! A condition is *machine-evaluable* when it compiles as CEL. Natural-language
//! conditions ("customer seems upset") do not compile and are never taken
//! automatically: callers report them instead.
//!
//! Conditions come from operators (policies) and scenario authors (transitions),
//! so nothing in one may crash, hang or exhaust the process. [`Condition::compile`]
//! refuses, before the parser sees it, a source longer than
//! [`MAX_EXPRESSION_CHARS`], nested deeper than [`MAX_NESTING`], with a chain of
//! operators longer than [`MAX_DEPTH`] or more than [`MAX_OPERATORS`] operators:
//! the parser and the evaluator recurse on all of these, and a 5,000-term sum
//! overflowed the stack of a tokio worker. It refuses comprehensions nested more
//! than [`MAX_COMPREHENSION_NESTING`] deep (each level multiplies the work: seven
//! levels over ten elements are 10⁷ iterations), conditions that are certainly
//! not boolean (`1 + 1`, `"x"`, `[1]`), and `matches()` patterns that are not
//! literals or compile to more than [`MAX_REGEX_BYTES`]. [`Condition::evaluate`]
//! stops after [`MAX_EVALUATION_STEPS`]. A panic of the `cel` crate in either is caught and
//! becomes an error. The limits are the same wherever a condition is compiled:
//! policies are refused when saved (422), transition conditions over a limit are
//! not machine-evaluable (reported like natural-language ones).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock, Once};

use cel::{Context, Env, IdedExpr, Value};

mod ast;
mod error;
mod limits;
mod prescan;

pub use error::ConditionError;
pub use limits::{
    MAX_COMPREHENSION_NESTING, MAX_DEPTH, MAX_EVALUATION_STEPS, MAX_EXPRESSION_CHARS, MAX_NESTING,
    MAX_OPERATORS, MAX_REGEX_BYTES, REGEX_STEPS,
};

/// Error messages quote values and source lines: keep reasons and 422 bodies short.
const MAX_MESSAGE_CHARS: usize = 500;

/// The standard environment is built once: building it per evaluation would
/// dominate the cost of a reconcile decision. It adds the budget functions.
static STDLIB: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    ast::add_budget_functions(&mut env);
    Arc::new(env)
});

/// A compiled CEL expression.
pub struct Condition {
    source: String,
    /// The parsed tree, instrumented to charge the evaluation budget.
    expr: IdedExpr,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish()
    }
}

impl Condition {
    pub fn compile(source: &str) -> Result<Self, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError::Syntax("empty expression".into()));
        }
        // Cheap byte check first: at most MAX bytes is at most MAX chars.
        if source.len() > MAX_EXPRESSION_CHARS {
            let chars = source.chars().count();
            if chars > MAX_EXPRESSION_CHARS {
                return Err(ConditionError::limit(
                    "the expression's length in characters",
                    "max expression length",
                    chars,
                    MAX_EXPRESSION_CHARS,
                ));
            }
        }
        let shape = prescan::scan(source);
        if shape.nesting > MAX_NESTING {
            return Err(ConditionError::limit(
                "the nesting of brackets and conditionals",
                "max nesting depth",
                shape.nesting,
                MAX_NESTING,
            ));
        }
        if shape.depth > MAX_DEPTH {
            return Err(ConditionError::limit(
                "the longest chain of operators",
                "max expression depth",
                shape.depth,
                MAX_DEPTH,
            ));
        }
        if shape.raw_operators > MAX_OPERATORS {
            return Err(ConditionError::limit(
                "the number of operator and bracket characters",
                "max operators",
                shape.raw_operators,
                MAX_OPERATORS,
            ));
        }
        let parsed = guarded(|| {
            // `cel`'s own recursion guard is a backstop to the scan above.
            STDLIB
                .parser()
                .max_recursion_depth(MAX_NESTING as u16 + 1)
                .parse(source)
                .map_err(|e| ConditionError::Syntax(truncate(e.to_string())))
        })??;
        let measured = ast::measure(&parsed);
        // The scan bounds the tree; this is the exact check, before anything
        // recurses over the tree to evaluate it.
        if measured.depth > 2 * MAX_DEPTH + 4 * MAX_NESTING {
            return Err(ConditionError::limit(
                "the depth of the expression tree",
                "max expression depth",
                measured.depth,
                2 * MAX_DEPTH + 4 * MAX_NESTING,
            ));
        }
        if measured.comprehensions > MAX_COMPREHENSION_NESTING {
            return Err(ConditionError::limit(
                "the nesting of comprehensions (all, exists, exists_one, map, filter)",
                "max comprehension nesting",
                measured.comprehensions,
                MAX_COMPREHENSION_NESTING,
            ));
        }
        ast::check_regexes(&parsed)?;
        if let Some(kind) = ast::non_boolean_type(&parsed) {
            return Err(ConditionError::NotBoolean(kind.to_string()));
        }
        let mut expr = parsed;
        ast::instrument(&mut expr);
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate with each entry of `bindings` as a top-level variable, within
    /// [`MAX_EVALUATION_STEPS`].
    pub fn evaluate(
        &self,
        bindings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<bool, ConditionError> {
        guarded(|| {
            let mut context = Context::with_env(STDLIB.clone());
            for (name, value) in bindings {
                context.add_variable_from_value(name.as_str(), json_to_cel(value));
            }
            ast::arm_budget(MAX_EVALUATION_STEPS);
            let outcome = Value::resolve(&self.expr, &context);
            if ast::budget_exhausted() {
                return Err(ConditionError::BudgetExceeded);
            }
            match outcome {
                Ok(Value::Bool(b)) => Ok(b),
                Ok(other) => Err(ConditionError::NotBoolean(truncate(format!("{other:?}")))),
                Err(e) => Err(ConditionError::Evaluation(truncate(e.to_string()))),
            }
        })?
    }
}

/// True when `source` compiles as CEL (an empty condition is an unconditional
/// transition, not a machine-evaluable one).
pub(crate) fn is_machine_evaluable(source: &str) -> bool {
    Condition::compile(source).is_ok()
}

fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

thread_local! {
    /// Set while [`guarded`] runs on this thread: its panics are expected and
    /// reported as errors, not printed.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into [`ConditionError::Internal`]. Parse and
/// evaluation only touch their own values and the immutable environment, so
/// nothing is left half-updated by an unwind.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ConditionError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        // Chain to the hook in place (the default one prints the message),
        // except for the panics caught here.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.get() {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET_PANICS.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.set(was_quiet);
    result.map_err(|_| ConditionError::Internal)
}

/// Convert JSON to a CEL value. Integral numbers become `int` so that
/// `age >= 18` works whether the runtime sent `18` or `18.0`-free JSON.
fn json_to_cel(value: &serde_json::Value) -> Value {
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
        // Certainly not boolean: refused when compiled.
        for (source, kind) in [
            ("1 + 1", "int"),
            ("'x'", "string"),
            ("[1]", "list"),
            ("{'a': 1}", "map"),
            ("-x", "a number, string, bytes or list"),
            ("size(x)", "int"),
            ("x.map(i, i)", "list"),
            ("c ? 1 : true", "int"),
        ] {
            assert_eq!(
                Condition::compile(source).unwrap_err(),
                ConditionError::NotBoolean(kind.into()),
                "{source}"
            );
        }
        // Only known when evaluated.
        let c = Condition::compile("x").unwrap();
        assert!(matches!(
            c.evaluate(&bindings(&[("x", json!(2))])),
            Err(ConditionError::NotBoolean(_))
        ));
        for source in ["x.all(i, i)", "x[0]", "c ? a : b", "true", "a in b"] {
            assert!(Condition::compile(source).is_ok(), "{source}");
        }
    }
}
