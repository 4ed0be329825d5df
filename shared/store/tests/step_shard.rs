//! The step-index shard hash: runtimes in other languages compute it too
//! (docs/runtime.md, "Writing session items straight into the table"), so it
//! must never change, always land in range, and spread session ids evenly
//! enough that no shard runs hot.

use proptest::prelude::*;
use store::step_shard;

/// Published FNV-1a (32-bit) vectors and the documented example: a change to
/// the hash would silently move every runtime-written session to another
/// shard, so these are fixed forever.
#[test]
fn known_values_never_change() {
    // shards = 2^32 would be the raw hash; u32::MAX is the closest we can ask,
    // and every value below is under it.
    assert_eq!(step_shard("", u32::MAX), 0x811C_9DC5);
    assert_eq!(step_shard("a", u32::MAX), 0xE40C_292C);
    assert_eq!(step_shard("foobar", u32::MAX), 0xBF9C_F968);
    // The example of docs/runtime.md.
    assert_eq!(step_shard("3f2b8a1e-0c1d-4c3e-9a4b-7d5e6f708192", 8), 2);
    assert_eq!(step_shard("sess-000", 8), 6);
}

#[test]
fn zero_shards_counts_as_one() {
    assert_eq!(step_shard("anything", 0), 0);
    assert_eq!(step_shard("anything", 1), 0);
}

proptest! {
    #[test]
    fn stable_and_in_range(id in ".{0,64}", shards in 1u32..=256) {
        let shard = step_shard(&id, shards);
        prop_assert!(shard < shards);
        prop_assert_eq!(shard, step_shard(&id.clone(), shards));
    }

    /// Roughly uniform: 4,000 ids of one shape (a random prefix and a
    /// counter, like many runtimes' ids) put between half and one and a half
    /// times the mean into every shard.
    #[test]
    fn roughly_uniform(prefix in "[a-z0-9-]{0,24}", shards in 2u32..=32) {
        let ids = 4_000u32;
        let mut counts = vec![0u32; shards as usize];
        for i in 0..ids {
            counts[step_shard(&format!("{prefix}{i}"), shards) as usize] += 1;
        }
        let mean = f64::from(ids) / f64::from(shards);
        for (shard, n) in counts.iter().enumerate() {
            let ratio = f64::from(*n) / mean;
            prop_assert!(
                (0.5..=1.5).contains(&ratio),
                "shard {shard} of {shards} holds {n} of {ids} ids ({ratio:.2} x mean)"
            );
        }
    }

    /// UUIDs (what the runtime mostly uses) spread within 25 % of the mean.
    #[test]
    fn uuids_spread_evenly(seed in any::<u128>(), shards in 2u32..=16) {
        let ids = 8_000u128;
        let mut counts = vec![0u32; shards as usize];
        for i in 0..ids {
            let id = uuid::Uuid::from_u128(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            counts[step_shard(&id.to_string(), shards) as usize] += 1;
        }
        let mean = 8_000.0 / f64::from(shards);
        for n in &counts {
            prop_assert!((f64::from(*n) / mean - 1.0).abs() <= 0.25, "{counts:?}");
        }
    }
}
