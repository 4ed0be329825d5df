//! Whether condition texts compile as CEL, remembered across plans: compiling is the
//! most expensive part of a small plan, and the same conditions come back with every
//! version of a scenario. Bounded, because a long-lived process sees every tenant's;
//! `quick_cache` evicts the entries least worth keeping when it is full.

use std::sync::LazyLock;

use quick_cache::sync::Cache;

use crate::conditions::is_machine_evaluable;

const CEL_VALIDITY_CAPACITY: usize = 4_096;

static CEL_VALIDITY: LazyLock<Cache<String, bool>> =
    LazyLock::new(|| Cache::new(CEL_VALIDITY_CAPACITY));

/// [`is_machine_evaluable`], memoised. The memo only saves work: the answer is the
/// same with or without it.
pub(super) fn is_valid_cel(text: &str) -> bool {
    if let Some(known) = CEL_VALIDITY.get(text) {
        return known;
    }
    let valid = is_machine_evaluable(text);
    CEL_VALIDITY.insert(text.to_owned(), valid);
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_gives_the_compiler_answer() {
        for text in ["age >= 18", "age >=", "true", "1 +", "'a' == 'a'"] {
            let expected = is_machine_evaluable(text);
            assert_eq!(is_valid_cel(text), expected, "{text}");
            // The second call is answered from the memo.
            assert_eq!(is_valid_cel(text), expected, "{text}");
        }
    }

    #[test]
    fn the_memo_stays_bounded() {
        for n in 0..CEL_VALIDITY_CAPACITY * 2 {
            is_valid_cel(&format!("x == {n}"));
        }
        assert!(CEL_VALIDITY.len() <= CEL_VALIDITY_CAPACITY);
        assert!(is_valid_cel("x == 1"));
    }
}
