//! The limits every condition is held to, wherever it is compiled or
//! evaluated (see the module documentation of `conditions` for why each exists).
//! A leaf: the error type and the tree checks both read these numbers.

/// Longest accepted source, in characters. Real conditions are a few dozen
/// characters; 4,096 leaves room for long allow-lists (`x in [...]`) while
/// bounding everything that grows with the source (parse time, tree size, the
/// position in a syntax error).
pub const MAX_EXPRESSION_CHARS: usize = 4_096;
/// Deepest nesting of brackets (parentheses, lists, maps, call arguments,
/// indexes) and conditionals (`a ? b : c ? …`). The parser recurses about ten
/// functions deep per level (~6 KB of stack optimised).
pub const MAX_NESTING: usize = 32;
/// Most operators on one path of the expression: a chain such as `a + b + …`,
/// `a == b == …`, `a.b.c…` or `a[0][0]…` is a tree as deep as it is long for
/// the parser and the evaluator (~1.5 KB of stack per link). `&&` and `||`
/// do not count: they are balanced. Brackets count with their contents.
pub const MAX_DEPTH: usize = 128;
/// Most operator and bracket characters (`+-*/%<>=!.([{?`, and the word `in`)
/// in the raw source, string literals included: a bound on any chain that does
/// not depend on reading the source exactly as the parser does.
pub const MAX_OPERATORS: usize = 1_024;
/// Most comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) inside
/// one another's body: `items.exists(i, i.tags.exists(t, t == 'x'))` is 2.
pub const MAX_COMPREHENSION_NESTING: usize = 2;
/// Work one evaluation may do: each comprehension charges its number of
/// elements times the nodes of its body (up front), each `+` the size of its
/// result (an element of a list or map, or 64 characters of a string, is one
/// step), each `matches()` [`REGEX_STEPS`] plus its text's size. Everything
/// else is bounded by the source length. About 10 ms of loops, or 100 ms of
/// regular expressions.
pub const MAX_EVALUATION_STEPS: u64 = 100_000;
/// Most bytes a `matches()` pattern may compile to (the `regex` crate's
/// `size_limit`; its default is 10 MiB). `cel` compiles the pattern at every
/// call: within this limit a compile takes at most ~10 ms (`\w{10}` is ~1 MiB
/// of Unicode classes; `\w{1000}` would take 80 ms to fail).
pub const MAX_REGEX_BYTES: usize = 1 << 20;
/// Steps each `matches()` call costs (charged before it runs): ten calls use
/// the whole budget.
pub const REGEX_STEPS: u64 = 10_000;
