//! Hostile conditions: no source may crash (panic, stack overflow), hang or
//! exhaust the process when compiled or evaluated (the limits: docs/design.md,
//! "Conditions are bounded").
//!
//! Everything runs on a thread with a 2 MiB stack, the size of a tokio worker's:
//! a stack overflow aborts the whole test binary, so a run that finishes is the
//! assertion that none happened.

use std::collections::BTreeMap;
use std::thread;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use planning::conditions::{
    Condition, ConditionError, MAX_COMPREHENSION_NESTING, MAX_DEPTH, MAX_EXPRESSION_CHARS,
    MAX_NESTING,
};

const TOKIO_WORKER_STACK: usize = 2 << 20;

/// Runs `f` on a thread with a tokio worker's stack, failing the test on a panic.
fn on_worker_stack(f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(TOKIO_WORKER_STACK)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the check panicked");
}

fn bindings() -> BTreeMap<String, serde_json::Value> {
    let mut b = BTreeMap::new();
    b.insert(
        "session".to_string(),
        json!({
            "channel": "web",
            "age_days": 3,
            "current_step": "Welcome",
            "variables": {"tier": "gold", "xs": [1, 2, 3], "n": 1},
        }),
    );
    b.insert("a".to_string(), json!({"b": {"c": 1}}));
    b.insert("x".to_string(), json!(1));
    b
}

/// Compiles and, when that succeeds, evaluates `source`: the entry points every
/// caller uses. Panics (failing the test) only if the product panicked past
/// its own guard; any `Result` is fine.
fn compile_and_evaluate(source: &str) -> Result<bool, ConditionError> {
    let condition = Condition::compile(source)?;
    condition.evaluate(&bindings())
}

fn limit_named(result: Result<impl std::fmt::Debug, ConditionError>, name: &str) {
    match result {
        Err(e @ ConditionError::Limit { .. }) => {
            let message = e.to_string();
            assert!(message.contains(name), "{message}");
            assert_eq!(e.kind(), "value_error.cel.limit");
        }
        other => panic!("expected the {name} limit, got {other:?}"),
    }
}

// ----- the three failures the limits were set against ------------------------

#[test]
fn five_thousand_term_sum_is_refused_without_overflow() {
    on_worker_stack(|| {
        // The 10,003-character condition that overflowed a worker's stack.
        let source = format!("{} > 0", vec!["1"; 5_000].join("+"));
        assert_eq!(source.len(), 10_003);
        limit_named(compile_and_evaluate(&source), "max expression length");

        // The longest sum that fits the length limit: refused for its depth.
        let source = vec!["1"; MAX_EXPRESSION_CHARS / 2].join("+");
        limit_named(compile_and_evaluate(&source), "max expression depth");

        // A chain just at the depth limit compiles and evaluates.
        let source = format!("{} > 0", vec!["1"; MAX_DEPTH].join("+"));
        assert_eq!(compile_and_evaluate(&source), Ok(true));
        let source = format!("{} > 0", vec!["1"; MAX_DEPTH + 1].join("+"));
        limit_named(compile_and_evaluate(&source), "max expression depth");
    });
}

#[test]
fn syntax_error_past_column_65535_is_an_error_not_a_panic() {
    on_worker_stack(|| {
        let source = format!("{})", " ".repeat(70_000));
        limit_named(compile_and_evaluate(&source), "max expression length");
        // The same error within the length limit is a syntax error.
        let source = format!("{})", " ".repeat(MAX_EXPRESSION_CHARS - 1));
        assert!(matches!(
            compile_and_evaluate(&source),
            Err(ConditionError::Syntax(_))
        ));
    });
}

#[test]
fn seven_nested_comprehensions_are_refused() {
    on_worker_stack(|| {
        let digits = "[0,1,2,3,4,5,6,7,8,9]";
        let mut source = "true".to_string();
        for var in ["g", "f", "e", "d", "c", "b", "a"] {
            source = format!("{digits}.all({var}, {source})");
        }
        // 214 characters (the one that took 23 s had 221: same shape). Evaluated, ten
        // million iterations.
        let error = Condition::compile(&source).unwrap_err();
        assert_eq!(
            error,
            ConditionError::Limit {
                what: "the nesting of comprehensions (all, exists, exists_one, map, filter)",
                limit_name: "max comprehension nesting",
                actual: 7,
                limit: MAX_COMPREHENSION_NESTING as u64,
            }
        );
        // Two levels are allowed.
        let two = format!("{digits}.all(a, {digits}.exists(b, a + b >= 0))");
        assert_eq!(compile_and_evaluate(&two), Ok(true));
    });
}

#[test]
fn literal_non_boolean_conditions_are_refused() {
    for (source, kind) in [("1 + 1", "int"), ("\"x\"", "string"), ("[1]", "list")] {
        let error = Condition::compile(source).unwrap_err();
        assert_eq!(error, ConditionError::NotBoolean(kind.into()));
        assert_eq!(
            error.to_string(),
            format!("evaluates to {kind}, not a boolean")
        );
    }
}

// ----- the evaluation budget --------------------------------------------------

fn with_list(n: usize) -> BTreeMap<String, serde_json::Value> {
    let mut b = BTreeMap::new();
    b.insert("xs".to_string(), json!((0..n).collect::<Vec<_>>()));
    b.insert("s".to_string(), json!("x".repeat(100_000)));
    b
}

#[test]
fn nested_comprehensions_over_large_data_stop_at_the_budget() {
    on_worker_stack(|| {
        let c = Condition::compile("xs.all(a, xs.all(b, true))").unwrap();
        // 10⁸ iterations without a budget.
        assert_eq!(
            c.evaluate(&with_list(10_000)),
            Err(ConditionError::BudgetExceeded)
        );
        // Small data: well within.
        assert_eq!(c.evaluate(&with_list(10)), Ok(true));
        // The evaluator forgives an error next to `|| true`: the budget does not.
        let c = Condition::compile("xs.all(a, xs.all(b, true)) || true").unwrap();
        assert_eq!(
            c.evaluate(&with_list(10_000)),
            Err(ConditionError::BudgetExceeded)
        );
        // `map` and `filter` are charged as well.
        let c = Condition::compile("size(xs.map(a, xs.filter(b, b > a))) > 0").unwrap();
        assert_eq!(
            c.evaluate(&with_list(10_000)),
            Err(ConditionError::BudgetExceeded)
        );
        // The budget is per evaluation: the next one starts afresh.
        let c = Condition::compile("xs.exists(a, a == 5)").unwrap();
        assert_eq!(c.evaluate(&with_list(10)), Ok(true));
    });
}

#[test]
fn repeated_concatenation_of_a_large_string_stops_at_the_budget() {
    on_worker_stack(|| {
        // 20 × 100 KB, quadratic copying without a budget.
        let source = format!("size({}) > 0", vec!["s"; 20].join(" + "));
        let c = Condition::compile(&source).unwrap();
        assert_eq!(
            c.evaluate(&with_list(0)),
            Err(ConditionError::BudgetExceeded)
        );
        let c = Condition::compile("size(s + s) == 200000").unwrap();
        assert_eq!(c.evaluate(&with_list(0)), Ok(true));
    });
}

#[test]
fn regular_expressions_are_literal_bounded_and_charged() {
    on_worker_stack(|| {
        assert_eq!(
            compile_and_evaluate("session.channel.matches('^w')"),
            Ok(true)
        );
        assert_eq!(compile_and_evaluate("matches('abc', 'c$')"), Ok(true));
        // A pattern from data would be compiled for every session.
        assert!(matches!(
            Condition::compile("'x'.matches(session.channel)"),
            Err(ConditionError::Unsupported(_))
        ));
        // 80 ms to compile (and fail) at every call with `cel`'s own limit.
        limit_named(
            Condition::compile(r"'x'.matches('\\w{1000}')"),
            "max regex size",
        );
        assert!(matches!(
            Condition::compile("'x'.matches('(')"),
            Err(ConditionError::Syntax(_))
        ));
        // Each call costs REGEX_STEPS: ten use the whole budget.
        let calls = |n: usize| vec!["!'a'.matches('b')"; n].join(" && ");
        assert_eq!(compile_and_evaluate(&calls(9)), Ok(true));
        assert_eq!(
            compile_and_evaluate(&calls(11)),
            Err(ConditionError::BudgetExceeded)
        );
    });
}

// ----- deepest accepted shapes ------------------------------------------------

/// The deepest expressions the limits let through, of every kind the parser or
/// the evaluator recurses on, compile and evaluate on a worker's stack.
#[test]
fn deepest_accepted_expressions_fit_a_worker_stack() {
    on_worker_stack(|| {
        let n = MAX_NESTING;
        let d = MAX_DEPTH;
        let accepted = [
            format!("{}1{} == 1", "(".repeat(n), ")".repeat(n)),
            format!("size({}1{}) == 1", "[".repeat(n - 1), "]".repeat(n - 1)),
            format!("{}true{}", "!(".repeat(n), ")".repeat(n)),
            format!("{}1{} == 1", "-(".repeat(n), ")".repeat(n)),
            format!("{}1{} != null", "{1:".repeat(n), "}".repeat(n)),
            format!("{}true", "x == 1 ? false : ".repeat(n)),
            format!("{} > 0", vec!["1"; d].join("+")),
            format!("{} > 0", vec!["x"; d].join("*")),
            format!("a{} == 1", ".b".repeat(d - 1)),
            format!("a{} == 1", "[0]".repeat(d / 2)),
            format!("'a'{} > 0", ".size()".repeat(d / 2 - 1)),
            format!("{}true", "!".repeat(d)),
            // Chains inside nested brackets: the path adds up to the depth limit.
            format!("{}1{} > 0", "1+(".repeat(n), ")".repeat(n)),
            format!(
                "{}{}{} > 0",
                "(".repeat(n),
                vec!["1"; d - n].join("+"),
                ")".repeat(n)
            ),
        ];
        for source in &accepted {
            let c =
                Condition::compile(source).unwrap_or_else(|e| panic!("{source:.80}… refused: {e}"));
            // Any result: the point is that it returns.
            let _ = c.evaluate(&bindings());
        }
        // One more level or link of each kind is refused before parsing.
        let refused = [
            format!("{}1{} == 1", "(".repeat(n + 1), ")".repeat(n + 1)),
            format!("{}true", "x == 1 ? false : ".repeat(n + 1)),
            format!("a{} == 1", ".b".repeat(d)),
            format!("{}1{}", "f(".repeat(n + 1), ")".repeat(n + 1)),
        ];
        for source in &refused {
            assert!(
                matches!(
                    Condition::compile(source),
                    Err(ConditionError::Limit { .. })
                ),
                "{source:.80}"
            );
        }
    });
}

// ----- property tests ---------------------------------------------------------

/// Fragments that exercise the parser's recursion and its error recovery.
const ATOMS: &[&str] = &[
    "1",
    "x",
    "a.b",
    "'s'",
    "\"t\"",
    "true",
    "null",
    "2.5",
    "0x1F",
    "3u",
    "b'\\x41'",
    "r'\\'",
    "session.variables.xs",
    "[]",
    "{}",
    "size(x)",
    "'ab'.matches('^a+')",
];
const BINARY: &[&str] = &[
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", " in ",
];
const OPENERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("(", ")"),
    ("[", "]"),
    ("[", "]"),
    ("{1:", "}"),
    ("f(", ")"),
    ("a.b(", ")"),
    ("x[", "]"),
    ("-(", ")"),
    ("!(", ")"),
    ("x ? (", ") : 1"),
    ("[1,2].all(v, ", ")"),
    ("[1,2].map(v, ", ")"),
    ("session.variables.xs.exists(v, ", ")"),
];
const PREFIXES: &[&str] = &["!", "-", "a.", "x."];
const JUNK: &[char] = &[
    '(', ')', '[', ']', '{', '}', '+', '-', '*', '/', '%', '<', '>', '=', '!', '&', '|', '?', ':',
    ',', '.', '\'', '"', '`', '\\', ' ', '\n', '\r', '\t', 'r', 'b', 'x', 'u', 'U', 'e', '0', '1',
    '7', '_', 'i', 'n', '#', '@', 'é', '€', '😀', '\u{0}', '\u{feff}',
];

/// Half of the chains use one short operand and one tree-building operator:
/// the deepest trees that fit the length limit (2,048 terms of `1*1*…`),
/// compared to 0 so that they are evaluated.
const SHORT_ATOMS: &[&str] = &["1", "x", "2"];
const CHAIN_OPS: &[&str] = &["+", "-", "*", "%", "==", "<", "!="];

fn chain() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((0..ATOMS.len(), 0..BINARY.len()), 1..2_100),
        any::<bool>(),
    )
        .prop_map(|(links, uniform)| {
            let mut s = String::new();
            let op = CHAIN_OPS[links[0].1 % CHAIN_OPS.len()];
            for (i, (atom, random_op)) in links.iter().enumerate() {
                if i > 0 {
                    s.push_str(if uniform { op } else { BINARY[*random_op] });
                }
                s.push_str(if uniform {
                    SHORT_ATOMS[atom % SHORT_ATOMS.len()]
                } else {
                    ATOMS[*atom]
                });
            }
            if uniform {
                s.push_str(" > 0");
            }
            s
        })
}

/// Member chains: `x[0].b.size()(1)…`.
const LINKS: &[&str] = &["[0]", ".b", ".size()", "[x]", ".?c", "[?0]"];

fn member_chain() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0..LINKS.len(), 1..1_500),
        any::<bool>(),
    )
        .prop_map(|(links, uniform)| {
            let mut s = "x".to_string();
            for &l in &links {
                s.push_str(LINKS[if uniform { links[0] } else { l }]);
            }
            s.push_str(" == 1");
            s
        })
}

fn nested() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0..OPENERS.len(), 1..1_000),
        0..ATOMS.len(),
        any::<bool>(),
        0usize..50,
    )
        .prop_map(|(levels, atom, close_all, chain_len)| {
            let mut s = String::new();
            for &l in &levels {
                s.push_str(OPENERS[l].0);
                // Some links at every level, so chains and nesting add up.
                for _ in 0..(chain_len % 3) {
                    s.push_str("1+");
                }
            }
            s.push_str(ATOMS[atom]);
            for _ in 0..chain_len {
                s.push_str("+1");
            }
            let closing = if close_all {
                levels.len()
            } else {
                levels.len() / 2
            };
            for &l in levels.iter().rev().take(closing) {
                s.push_str(OPENERS[l].1);
            }
            s
        })
}

fn prefixed() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0..PREFIXES.len(), 1..3_000),
        0..ATOMS.len(),
    )
        .prop_map(|(prefixes, atom)| {
            let mut s: String = prefixes.iter().map(|&p| PREFIXES[p]).collect();
            s.push_str(ATOMS[atom]);
            s
        })
}

fn junk() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(JUNK.to_vec()), 0..6_000)
        .prop_map(|chars| chars.into_iter().collect())
}

fn long_strings() -> impl Strategy<Value = String> {
    (
        0usize..12_000,
        prop::sample::select(vec!['a', '(', '\'', '"', '\\', 'é', '\n']),
        prop::sample::select(vec!["'", "\"", "'''", "r'", "b\""]),
    )
        .prop_map(|(n, c, quote)| {
            let body: String = std::iter::repeat_n(c, n).collect();
            let close = quote.trim_start_matches(['r', 'b']);
            format!("{quote}{body}{close} == x")
        })
}

fn any_source() -> impl Strategy<Value = String> {
    prop_oneof![
        chain(),
        member_chain(),
        nested(),
        prefixed(),
        junk(),
        long_strings(),
        ".*",
        // Fragments glued at random: string delimiters meet operators.
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(ATOMS.to_vec()).prop_map(String::from),
                prop::sample::select(BINARY.to_vec()).prop_map(String::from),
                prop::sample::select(OPENERS.to_vec()).prop_map(|(o, _)| o.to_string()),
                prop::sample::select(OPENERS.to_vec()).prop_map(|(_, c)| c.to_string()),
                prop::sample::select(JUNK.to_vec()).prop_map(String::from),
            ],
            0..1_500
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn check(source: &str) -> Result<(), TestCaseError> {
    let outcome = compile_and_evaluate(source);
    // Never the engine's panic: every hostile source is refused by a limit or
    // the parser, or evaluates.
    prop_assert_ne!(&outcome, &Err(ConditionError::Internal), "{:.200}", source);
    if let Ok(c) = Condition::compile(source) {
        prop_assert!(source.chars().count() <= MAX_EXPRESSION_CHARS);
        prop_assert_eq!(c.source(), source);
    }
    Ok(())
}

fn run(cases: u32, strategy: impl Strategy<Value = String> + Send + 'static) {
    on_worker_stack(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, |s| check(&s)) {
            panic!("{e}");
        }
    });
}

#[test]
fn random_operator_chains() {
    run(200, chain());
}

#[test]
fn random_member_chains() {
    run(150, member_chain());
}

#[test]
fn random_nesting() {
    run(300, nested());
}

#[test]
fn random_prefix_chains() {
    run(150, prefixed());
}

#[test]
fn random_junk() {
    run(300, junk());
}

#[test]
fn random_long_strings() {
    run(100, long_strings());
}

#[test]
fn random_mixtures() {
    run(300, any_source());
}
