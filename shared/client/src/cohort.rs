//! Which sessions a partial rollout reaches.
//!
//! A plan deployed at `percent` reaches the sessions whose bucket is below
//! `percent × 100`. The bucket is a stable hash of the plan and the session into
//! `0..10_000`, so a runtime can tell which version a new session starts on
//! without asking, and a ramp from 10% to 50% keeps the first 10% inside:
//!
//! ```text
//! bucket = u64_be(sha256("{plan_id}:{session_id}")[0..8]) mod 10_000
//! ```
//!
//! with `plan_id` in its lowercase hyphenated form and `session_id` as the API
//! carries it (UTF-8). Both the server and this crate use this one function.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Number of buckets: a percent is `percent × 100` of them.
pub const BUCKETS: u16 = 10_000;

/// The session's bucket in the plan's rollout, `0..10_000`.
pub fn bucket(plan_id: Uuid, session_id: &str) -> u16 {
    let mut hasher = Sha256::new();
    hasher.update(plan_id.hyphenated().to_string().as_bytes());
    hasher.update(b":");
    hasher.update(session_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below 10,000, so it fits.
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u16
}

/// Whether a rollout at `percent` (1–100) reaches the session.
pub fn in_cohort(plan_id: Uuid, session_id: &str, percent: u8) -> bool {
    bucket(plan_id, session_id) < u16::from(percent.min(100)) * 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_the_documented_hash() {
        // sha256("00000000-0000-0000-0000-000000000001:s-1"), first 8 bytes, mod 10,000,
        // computed independently (python3 hashlib) so a change of the formula shows here.
        let plan = Uuid::from_u128(1);
        let expected = {
            let d = Sha256::digest(b"00000000-0000-0000-0000-000000000001:s-1");
            u64::from_be_bytes(d[..8].try_into().unwrap()) % 10_000
        };
        assert_eq!(u64::from(bucket(plan, "s-1")), expected);
        assert_eq!(bucket(plan, "s-1"), KNOWN_S1);
    }

    const KNOWN_S1: u16 = 2225;

    #[test]
    fn cohorts_grow_with_the_percent_and_are_near_their_size() {
        let plan = Uuid::from_u128(0xfeed);
        let ids: Vec<String> = (0..20_000).map(|i| format!("session-{i}")).collect();
        let mut previous = 0usize;
        for percent in [1u8, 5, 10, 50, 99, 100] {
            let inside: Vec<&String> = ids.iter().filter(|s| in_cohort(plan, s, percent)).collect();
            // Monotone: every session inside at a smaller percent stays inside.
            assert!(inside.len() >= previous);
            previous = inside.len();
            let expected = ids.len() as f64 * f64::from(percent) / 100.0;
            // Within 4 standard deviations of a binomial draw.
            let sd = (ids.len() as f64 * f64::from(percent) / 100.0
                * (1.0 - f64::from(percent) / 100.0))
                .sqrt();
            assert!(
                (inside.len() as f64 - expected).abs() <= 4.0 * sd + 1.0,
                "{percent}%: {}",
                inside.len()
            );
        }
        assert_eq!(previous, ids.len());
        assert!(
            ids.iter()
                .all(|s| in_cohort(plan, s, 10) <= in_cohort(plan, s, 50))
        );
    }
}
