//! Checks on a parsed condition, and the instrumentation that makes its
//! evaluation count its work.

use std::cell::Cell;

use cel::ExecutionError;
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, LiteralValue};
use cel::common::types::{CelInt, DYN_TYPE, INT_TYPE};
use cel::common::value::CowVal;
use cel::{Env, IdedExpr};

use super::error::ConditionError;
use super::limits::{MAX_REGEX_BYTES, REGEX_STEPS};

/// The evaluator's extra functions. Their names start with `@`, which no CEL
/// identifier can: a condition cannot call them itself.
pub(crate) const CHARGE_RANGE: &str = "@charge_range";
pub(crate) const CHARGE_SIZE: &str = "@charge_size";
pub(crate) const CHARGE_FIXED: &str = "@charge_fixed";

/// Registers the budget functions on `env`.
pub(crate) fn add_budget_functions(env: &mut Env) {
    env.add_overload(
        CHARGE_RANGE,
        "charge_range",
        vec![DYN_TYPE, INT_TYPE],
        charge_range,
    )
    .expect("a new function name");
    env.add_overload(CHARGE_SIZE, "charge_size", vec![DYN_TYPE], charge_size)
        .expect("a new function name");
    env.add_overload(
        CHARGE_FIXED,
        "charge_fixed",
        vec![DYN_TYPE, INT_TYPE],
        charge_fixed,
    )
    .expect("a new function name");
}

/// What [`measure`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Measure {
    /// Nodes on the longest root-to-leaf path.
    pub depth: usize,
    /// The most comprehensions (`all`, `exists`, `exists_one`, `map`,
    /// `filter`) running one inside the body of another.
    pub comprehensions: usize,
}

/// Walks the tree with an explicit stack: it is called before anything else
/// trusts the tree's depth.
pub(crate) fn measure(root: &IdedExpr) -> Measure {
    let mut out = Measure::default();
    let mut stack: Vec<(&IdedExpr, usize, usize)> = vec![(root, 1, 0)];
    while let Some((e, depth, comprehensions)) = stack.pop() {
        out.depth = out.depth.max(depth);
        let d = depth + 1;
        match &e.expr {
            Expr::Call(call) => {
                stack.extend(call.target.iter().map(|t| (t.as_ref(), d, comprehensions)));
                stack.extend(call.args.iter().map(|a| (a, d, comprehensions)));
            }
            Expr::Comprehension(c) => {
                let inner = comprehensions + 1;
                out.comprehensions = out.comprehensions.max(inner);
                stack.extend([
                    (&c.iter_range, d, comprehensions),
                    (&c.accu_init, d, comprehensions),
                    (&c.result, d, comprehensions),
                    (&c.loop_cond, d, inner),
                    (&c.loop_step, d, inner),
                ]);
            }
            Expr::List(list) => stack.extend(list.elements.iter().map(|x| (x, d, comprehensions))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    push_entry(&mut stack, &entry.expr, d, comprehensions);
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    push_entry(&mut stack, &entry.expr, d, comprehensions);
                }
            }
            Expr::Select(select) => stack.push((&select.operand, d, comprehensions)),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    out
}

fn push_entry<'a>(
    stack: &mut Vec<(&'a IdedExpr, usize, usize)>,
    entry: &'a EntryExpr,
    depth: usize,
    comprehensions: usize,
) {
    match entry {
        EntryExpr::MapEntry(m) => {
            stack.push((&m.key, depth, comprehensions));
            stack.push((&m.value, depth, comprehensions));
        }
        EntryExpr::StructField(f) => stack.push((&f.value, depth, comprehensions)),
    }
}

/// The type of `e` when it is certainly not `bool`, read off its outermost
/// form: a literal, a list or map, arithmetic, a conversion, `map()` or
/// `filter()`. `None` when it is or may be a boolean (a variable, a field, an
/// index, a comparison…). Recursion is bounded by the depth already checked.
pub(crate) fn non_boolean_type(e: &IdedExpr) -> Option<&'static str> {
    match &e.expr {
        Expr::Literal(literal) => match literal {
            LiteralValue::Boolean(_) => None,
            LiteralValue::Bytes(_) => Some("bytes"),
            LiteralValue::Double(_) => Some("double"),
            LiteralValue::Int(_) => Some("int"),
            LiteralValue::Null => Some("null"),
            LiteralValue::String(_) => Some("string"),
            LiteralValue::UInt(_) => Some("uint"),
        },
        Expr::List(_) => Some("list"),
        Expr::Map(_) => Some("map"),
        Expr::Struct(_) => Some("a message"),
        // `map()` and `filter()` accumulate a list; `all()` and `exists()` a bool.
        Expr::Comprehension(c) => matches!(c.accu_init.expr, Expr::List(_)).then_some("list"),
        Expr::Call(call) => call_type(call),
        Expr::Ident(_) | Expr::Select(_) | Expr::Unspecified => None,
    }
}

fn call_type(call: &CallExpr) -> Option<&'static str> {
    use cel::common::ast::operators as op;
    let name = call.func_name.as_str();
    if [
        op::ADD,
        op::SUBSTRACT,
        op::MULTIPLY,
        op::DIVIDE,
        op::MODULO,
        op::NEGATE,
    ]
    .contains(&name)
    {
        // The operands' type when one is known ("int" for `1 + 1`), else any
        // of the types arithmetic produces.
        return call
            .args
            .iter()
            .find_map(non_boolean_type)
            .or(Some("a number, string, bytes or list"));
    }
    if name == op::CONDITIONAL {
        // A conditional is a boolean only if both branches may be.
        return call.args.iter().skip(1).find_map(non_boolean_type);
    }
    match name {
        "size" => Some("int"),
        "int" => Some("int"),
        "uint" => Some("uint"),
        "double" => Some("double"),
        "string" => Some("string"),
        "bytes" => Some("bytes"),
        "type" => Some("type"),
        _ => None,
    }
}

/// The text and pattern operands of a `matches()` call, receiver form
/// (`s.matches(p)`) or global (`matches(s, p)`).
fn matches_operands(call: &CallExpr) -> Option<(&IdedExpr, &IdedExpr)> {
    if call.func_name != "matches" {
        return None;
    }
    match (call.target.as_deref(), call.args.as_slice()) {
        (Some(text), [pattern]) => Some((text, pattern)),
        (None, [text, pattern]) => Some((text, pattern)),
        _ => None,
    }
}

/// Every `matches()` pattern is a string literal that compiles within
/// [`MAX_REGEX_BYTES`]: the evaluator compiles it at each call, so a pattern from
/// a variable, or a huge one, would cost tens of milliseconds per session.
pub(crate) fn check_regexes(e: &IdedExpr) -> Result<(), ConditionError> {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.expr {
            Expr::Call(call) => {
                if let Some((_, pattern)) = matches_operands(call) {
                    let Expr::Literal(LiteralValue::String(p)) = &pattern.expr else {
                        return Err(ConditionError::Unsupported(
                            "matches() takes a string literal as its pattern".into(),
                        ));
                    };
                    let built = regex::RegexBuilder::new(p.inner())
                        .size_limit(MAX_REGEX_BYTES)
                        .build();
                    match built {
                        Ok(_) => {}
                        Err(regex::Error::CompiledTooBig(_)) => {
                            return Err(ConditionError::Limit {
                                what: "the compiled size of a matches() pattern, in bytes",
                                limit_name: "max regex size",
                                actual: MAX_REGEX_BYTES as u64 + 1,
                                limit: MAX_REGEX_BYTES as u64,
                            });
                        }
                        Err(other) => {
                            return Err(ConditionError::Syntax(format!(
                                "invalid regular expression in matches(): {other}"
                            )));
                        }
                    }
                }
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            }
            Expr::Comprehension(c) => stack.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]),
            Expr::List(list) => stack.extend(list.elements.iter()),
            Expr::Map(map) => map
                .entries
                .iter()
                .for_each(|e| entry_children(&e.expr, &mut stack)),
            Expr::Struct(s) => s
                .entries
                .iter()
                .for_each(|e| entry_children(&e.expr, &mut stack)),
            Expr::Select(select) => stack.push(&select.operand),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    Ok(())
}

fn entry_children<'a>(entry: &'a EntryExpr, stack: &mut Vec<&'a IdedExpr>) {
    match entry {
        EntryExpr::MapEntry(m) => stack.extend([&m.key, &m.value]),
        EntryExpr::StructField(f) => stack.push(&f.value),
    }
}

/// The nodes of `e` evaluated once per iteration when `e` is a comprehension's
/// body: a nested comprehension's own body is charged by that comprehension.
fn weight(e: &IdedExpr) -> u64 {
    1 + match &e.expr {
        Expr::Call(call) => {
            call.target.as_deref().map_or(0, weight) + call.args.iter().map(weight).sum::<u64>()
        }
        Expr::Comprehension(c) => weight(&c.iter_range) + weight(&c.accu_init) + weight(&c.result),
        Expr::List(list) => list.elements.iter().map(weight).sum(),
        Expr::Map(map) => map.entries.iter().map(|e| entry_weight(&e.expr)).sum(),
        Expr::Struct(s) => s.entries.iter().map(|e| entry_weight(&e.expr)).sum(),
        Expr::Select(select) => weight(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

fn entry_weight(entry: &EntryExpr) -> u64 {
    match entry {
        EntryExpr::MapEntry(m) => weight(&m.key) + weight(&m.value),
        EntryExpr::StructField(f) => weight(&f.value),
    }
}

/// Rewrites the tree so that evaluating it charges the budget:
/// - a comprehension's range `r` becomes `@charge_range(r, w)`: before the
///   loop runs, it charges its number of elements times `w`, the nodes of its
///   body (charged up front, so a loop that would exceed the budget never starts);
/// - `a + b` becomes `@charge_size(a + b)`: it charges the size of the result,
///   so repeated concatenation of large strings or lists stops early;
/// - `s.matches(p)` becomes `@charge_size(s).matches(@charge_fixed(p, REGEX_STEPS))`:
///   the text by its size and the pattern's compile, before the call runs.
///
/// The accumulator steps the macros generate (`@result + [x]`) are left as
/// they are: the evaluator recognises them to append in place.
pub(crate) fn instrument(e: &mut IdedExpr) {
    let charge_result = match &mut e.expr {
        Expr::Call(call) => {
            if let Some(t) = call.target.as_deref_mut() {
                instrument(t);
            }
            call.args.iter_mut().for_each(instrument);
            let operands = match (call.target.as_deref_mut(), call.args.as_mut_slice()) {
                (Some(text), [pattern]) => Some((text, pattern)),
                (None, [text, pattern]) => Some((text, pattern)),
                _ => None,
            };
            if call.func_name == "matches"
                && let Some((text, pattern)) = operands
            {
                // Before the call: the text by its size, the pattern a fixed
                // REGEX_STEPS for the compile.
                let inner = std::mem::take(text);
                *text = call_of(CHARGE_SIZE, inner.id, vec![inner]);
                let inner = std::mem::take(pattern);
                *pattern = call_of(CHARGE_FIXED, inner.id, vec![inner, int(REGEX_STEPS)]);
            }
            let accumulates = matches!(
                call.args.first().map(|a| &a.expr),
                Some(Expr::Ident(name)) if name.starts_with('@')
            );
            call.func_name == cel::common::ast::operators::ADD
                && call.target.is_none()
                && !accumulates
        }
        Expr::Comprehension(c) => {
            let ComprehensionExpr {
                iter_range,
                accu_init,
                loop_cond,
                loop_step,
                result,
                ..
            } = c.as_mut();
            for part in [iter_range, accu_init, loop_cond, loop_step, result] {
                instrument(part);
            }
            let body = (weight(&c.loop_cond) + weight(&c.loop_step)).max(1);
            let range = std::mem::take(&mut c.iter_range);
            c.iter_range = call_of(CHARGE_RANGE, range.id, vec![range, int(body)]);
            false
        }
        Expr::List(list) => {
            list.elements.iter_mut().for_each(instrument);
            false
        }
        Expr::Map(map) => {
            map.entries
                .iter_mut()
                .for_each(|e| instrument_entry(&mut e.expr));
            false
        }
        Expr::Struct(s) => {
            s.entries
                .iter_mut()
                .for_each(|e| instrument_entry(&mut e.expr));
            false
        }
        Expr::Select(select) => {
            instrument(&mut select.operand);
            false
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    };
    if charge_result {
        let inner = std::mem::take(e);
        *e = call_of(CHARGE_SIZE, inner.id, vec![inner]);
    }
}

fn int(value: u64) -> IdedExpr {
    IdedExpr {
        id: 0,
        expr: Expr::Literal(LiteralValue::Int(CelInt::from(
            i64::try_from(value).unwrap_or(i64::MAX),
        ))),
    }
}

fn call_of(func_name: &str, id: u64, args: Vec<IdedExpr>) -> IdedExpr {
    IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: func_name.to_string(),
            target: None,
            args,
        }),
    }
}

fn instrument_entry(entry: &mut EntryExpr) {
    match entry {
        EntryExpr::MapEntry(m) => {
            instrument(&mut m.key);
            instrument(&mut m.value);
        }
        EntryExpr::StructField(f) => instrument(&mut f.value),
    }
}

// ----- the budget -------------------------------------------------------------

thread_local! {
    /// Steps left to the evaluation running on this thread. Evaluation is
    /// synchronous and never re-entrant, so one counter per thread is exact.
    static STEPS_LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Set once the budget ran out: the evaluator may swallow the error (as in
    /// `error || true`), the result is then still refused.
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// Starts an evaluation with `steps` to spend.
pub(crate) fn arm_budget(steps: u64) {
    STEPS_LEFT.set(steps);
    EXHAUSTED.set(false);
}

/// Whether the evaluation that just ran went over its budget.
pub(crate) fn budget_exhausted() -> bool {
    EXHAUSTED.get()
}

fn charge(steps: u64) -> Result<(), ExecutionError> {
    let left = STEPS_LEFT.get();
    if EXHAUSTED.get() || steps > left {
        STEPS_LEFT.set(0);
        EXHAUSTED.set(true);
        return Err(ExecutionError::function_error(
            "budget",
            "evaluation budget exceeded",
        ));
    }
    STEPS_LEFT.set(left - steps);
    Ok(())
}

fn size_of(v: &CowVal<'_, '_>) -> u64 {
    v.as_sizer()
        .map(|s| u64::try_from(*s.size().inner()).unwrap_or(0))
        .unwrap_or(0)
}

/// `@charge_range(range, weight)`: charges `size(range) × weight`, returns `range`.
fn charge_range<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let weight = args
        .pop()
        .and_then(|w| w.downcast_ref::<CelInt>().map(|i| *i.inner()))
        .and_then(|w| u64::try_from(w).ok())
        .unwrap_or(1);
    let range = args.pop().ok_or(ExecutionError::MissingArgumentOrTarget)?;
    charge(size_of(&range).saturating_mul(weight))?;
    Ok(range)
}

/// `@charge_fixed(value, steps)`: charges `steps`, returns `value`.
fn charge_fixed<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let steps = args
        .pop()
        .and_then(|w| w.downcast_ref::<CelInt>().map(|i| *i.inner()))
        .and_then(|w| u64::try_from(w).ok())
        .unwrap_or(1);
    let value = args.pop().ok_or(ExecutionError::MissingArgumentOrTarget)?;
    charge(steps)?;
    Ok(value)
}

/// `@charge_size(value)`: charges 1 step, plus one per list or map element, or
/// per 64 characters of a string or bytes; returns `value`.
fn charge_size<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or(ExecutionError::MissingArgumentOrTarget)?;
    let size = size_of(&value);
    let per_element = matches!(value.get_type().name(), "list" | "map");
    charge(1 + if per_element { size } else { size / 64 })?;
    Ok(value)
}
