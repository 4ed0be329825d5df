//! Session counts per (tenant, scenario, version, step), kept as sessions move.
//!
//! Plan generation, the plan summary and deploy's inline/fan-out decision need to
//! know how many sessions sit at each step of a scenario version. Paging the step
//! index for that is linear in sessions (15 s at 10⁵ on DynamoDB Local), so every
//! backend keeps counters instead and [`crate::Store::session_counts`] reads them
//! in one range read / one Query: O(steps), whatever the number of sessions.
//!
//! - **Embedded and in-memory**: the counters are keys
//!   `{t}/COUNT/{scenario}/{v}/{step}` changed in the same transaction as every
//!   session write that creates a session or moves it (`kv::counts`). Exact.
//! - **DynamoDB**: the sessions table is shared with the runtime, which writes
//!   items straight into it, so the counts come from the table's change stream:
//!   each record becomes deltas (−1 at the old position, +1 at the new), a batch
//!   is aggregated ([`aggregate`]) and applied to counter items in the main table
//!   exactly once ([`crate::dynamo::counts`]). As fresh as the stream consumer.
//!
//! This module holds the part both kinds share, pure and free of any backend:
//! positions, deltas, aggregation, sequence numbers. Each backend's counters
//! live with the backend (`kv::counts`, [`crate::dynamo::counts`]), which
//! depends on this module and never the other way round.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use planning::Session;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The session counts of one scenario version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Sessions per step; steps without sessions are left out.
    pub by_step: BTreeMap<Uuid, u64>,
    /// How fresh the counts are. Embedded and in-memory stores: the time of the
    /// read (they are exact). DynamoDB: the creation time of the latest stream
    /// record applied to this version's counters (`None`: none ever was); changes
    /// made after it may not be counted yet (stream lag).
    pub counted_at: Option<DateTime<Utc>>,
}

impl StepCounts {
    pub fn total(&self) -> u64 {
        self.by_step.values().sum()
    }
}

/// An exact recount of one scenario version's sessions, made by paging the step
/// index (asynchronously, for audits): what the counters are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recount {
    pub tenant: Uuid,
    pub scenario_id: Uuid,
    pub version: i64,
    /// Sessions per step (steps without sessions left out).
    pub by_step: BTreeMap<Uuid, u64>,
    /// When the recount was asked for and when its last page was read: every
    /// session that stayed put between the two is counted exactly.
    pub requested_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The counters as read right after the recount finished, for comparison.
    pub counters: StepCounts,
}

/// A sessions-table item as a change stream shows it (an old or a new image),
/// whichever SDK type holds its attributes: the Streams API's records that
/// `migrations serve` reads, or the Lambda events the `count-sessions` function
/// gets. Both read the counter keys through [`CountKey::of_image`] and
/// [`FlagKey::of_image`], so they cannot disagree on what an image counts as.
pub trait SessionImage {
    /// A string or number attribute's text.
    fn text(&self, name: &str) -> Option<&str>;
    /// A string attribute inside a map attribute.
    fn text_in(&self, map: &str, name: &str) -> Option<&str>;
}

/// Where a session is counted: one counter per (tenant, scenario, version, step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    pub tenant: Uuid,
    pub scenario_id: Uuid,
    pub version: i64,
    pub step_id: Uuid,
}

impl CountKey {
    pub fn of(session: &Session) -> Self {
        CountKey {
            tenant: session.tenant_id,
            scenario_id: session.active_scenario_id,
            version: session.active_scenario_version,
            step_id: session.active_step_id,
        }
    }

    /// The counter position of a sessions-table item, from its attributes: the
    /// tenant from `pk` = `{t}#{session_id}`, and `active_scenario_id`,
    /// `active_scenario_version` (a number's text), `active_step_id`. `None` when
    /// any is missing or malformed: such an item is not a countable session.
    pub fn from_item_attributes(
        pk: Option<&str>,
        scenario_id: Option<&str>,
        version: Option<&str>,
        step_id: Option<&str>,
    ) -> Option<Self> {
        let (tenant, _) = pk?.split_once('#')?;
        Some(CountKey {
            tenant: Uuid::parse_str(tenant).ok()?,
            scenario_id: Uuid::parse_str(scenario_id?).ok()?,
            version: version?.trim().parse().ok()?,
            step_id: Uuid::parse_str(step_id?).ok()?,
        })
    }

    /// The counter of a stream image (`None` when it is not a countable session).
    pub fn of_image(image: &impl SessionImage) -> Option<Self> {
        Self::from_item_attributes(
            image.text("pk"),
            image.text("active_scenario_id"),
            image.text("active_scenario_version"),
            image.text("active_step_id"),
        )
    }

    /// The scenario version this counter belongs to.
    pub fn version_of(&self) -> VersionKey {
        VersionKey {
            tenant: self.tenant,
            scenario_id: self.scenario_id,
            version: self.version,
        }
    }
}

/// Where a flagged session is counted for its plan's drain: one counter per
/// (tenant, plan, UTC day of the session's last activity). A session without
/// a flag has none. Its last activity is `updated_at`, which the runtime's
/// writes and reconciles move and marking does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlagKey {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    pub day: NaiveDate,
}

impl FlagKey {
    pub fn of(session: &Session) -> Option<Self> {
        let flag = session.pending_migration.as_ref()?;
        Some(FlagKey {
            tenant: session.tenant_id,
            plan_id: flag.migration_plan_id,
            day: session.updated_at.date_naive(),
        })
    }

    /// The flag counter of a stream image (`None` without a flag).
    pub fn of_image(image: &impl SessionImage) -> Option<Self> {
        Self::from_item_attributes(
            image.text("pk"),
            image.text_in("pending_migration", "migration_plan_id"),
            image.text("updated_at"),
        )
    }

    /// The counter of a sessions-table item, from its attributes: the tenant
    /// from `pk`, the flag's `migration_plan_id`, and `updated_at` (RFC 3339,
    /// its date is the day). `None` without a flag, or when any is malformed.
    pub fn from_item_attributes(
        pk: Option<&str>,
        plan_id: Option<&str>,
        updated_at: Option<&str>,
    ) -> Option<Self> {
        let (tenant, _) = pk?.split_once('#')?;
        Some(FlagKey {
            tenant: Uuid::parse_str(tenant).ok()?,
            plan_id: Uuid::parse_str(plan_id?).ok()?,
            day: DateTime::parse_from_rfc3339(updated_at?)
                .ok()?
                .with_timezone(&Utc)
                .date_naive(),
        })
    }
}

/// One (tenant, scenario, version): the unit a counts read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionKey {
    pub tenant: Uuid,
    pub scenario_id: Uuid,
    pub version: i64,
}

/// One change of a session item, as a change stream reports it: where the item
/// was before (`None`: created) and after (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The stream's sequence number (decimal digits), increasing within a shard.
    pub sequence_number: String,
    /// When the change was made (the record's approximate creation time).
    pub at: DateTime<Utc>,
    pub old: Option<CountKey>,
    pub new: Option<CountKey>,
    /// The flag counter before and after (`None`: no flag).
    pub old_flag: Option<FlagKey>,
    pub new_flag: Option<FlagKey>,
}

/// Width sequence numbers are padded to: DynamoDB Streams' are 21 to 40 digits.
const SEQUENCE_WIDTH: usize = 48;

/// A sequence number as a string whose order is numeric order (zero-padded);
/// `None` when it is not made of decimal digits.
pub fn sequence_key(sequence_number: &str) -> Option<String> {
    let digits = sequence_number.trim_start_matches('0');
    if sequence_number.is_empty()
        || !sequence_number.bytes().all(|b| b.is_ascii_digit())
        || digits.len() > SEQUENCE_WIDTH
    {
        return None;
    }
    Some(format!("{digits:0>SEQUENCE_WIDTH$}"))
}

/// The aggregated effect of consecutive stream records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deltas {
    /// Net change per counter; counters whose changes cancel out are left out.
    pub by_key: BTreeMap<CountKey, i64>,
    /// The same for the flag counters.
    pub by_flag: BTreeMap<FlagKey, i64>,
    /// The latest record time per scenario version touched (cancelled-out
    /// changes included: the counts are as of that time).
    pub counted_at: BTreeMap<VersionKey, DateTime<Utc>>,
    /// The sequence key ([`sequence_key`]) of the last record taken, which the
    /// shard's checkpoint moves to.
    pub last_sequence: Option<String>,
    /// Records taken (after the checkpoint).
    pub records: usize,
}

impl Deltas {
    fn take(&mut self, record: &ChangeRecord, sequence: String) {
        if record.old != record.new {
            for (key, delta) in [(record.old, -1), (record.new, 1)] {
                let Some(key) = key else { continue };
                let entry = self.by_key.entry(key).or_insert(0);
                *entry += delta;
                if *entry == 0 {
                    self.by_key.remove(&key);
                }
            }
        }
        if record.old_flag != record.new_flag {
            for (key, delta) in [(record.old_flag, -1), (record.new_flag, 1)] {
                let Some(key) = key else { continue };
                let entry = self.by_flag.entry(key).or_insert(0);
                *entry += delta;
                if *entry == 0 {
                    self.by_flag.remove(&key);
                }
            }
        }
        for key in [record.old, record.new].into_iter().flatten() {
            let at = self.counted_at.entry(key.version_of()).or_insert(record.at);
            *at = (*at).max(record.at);
        }
        self.last_sequence = Some(sequence);
        self.records += 1;
    }

    /// Counter items this writes: one per non-zero delta. (A version whose
    /// changes all cancelled out keeps its older `counted_at`: its counts did
    /// not change, so they are still right as of then.)
    pub fn items_touched(&self) -> usize {
        self.by_key.len() + self.by_flag.len()
    }
}

/// Records in sequence order after `checkpoint` (a sequence key), in groups of
/// consecutive records whose aggregated deltas write at most `max_items` items
/// each (a group always holds at least one record). Records at or below the
/// checkpoint, and records without a valid sequence number, are skipped: they
/// were applied already (a redelivery) or cannot be placed.
pub fn aggregate(
    records: &[ChangeRecord],
    checkpoint: Option<&str>,
    max_items: usize,
) -> Vec<Deltas> {
    let mut ordered: Vec<(String, &ChangeRecord)> = records
        .iter()
        .filter_map(|r| sequence_key(&r.sequence_number).map(|k| (k, r)))
        .filter(|(k, _)| checkpoint.is_none_or(|c| k.as_str() > c))
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    ordered.dedup_by(|a, b| a.0 == b.0);
    let mut groups = Vec::new();
    let mut current = Deltas::default();
    for (sequence, record) in ordered {
        let mut next = current.clone();
        next.take(record, sequence.clone());
        if next.items_touched() > max_items.max(2) && current.records > 0 {
            groups.push(std::mem::take(&mut current));
            current.take(record, sequence);
        } else {
            current = next;
        }
    }
    if current.records > 0 {
        groups.push(current);
    }
    groups
}

/// A stable hash (FNV-1a) of a stream shard id, to spread counter writes.
pub fn shard_hash(shard_id: &str) -> u64 {
    shard_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(step: u8, version: i64) -> CountKey {
        CountKey {
            tenant: Uuid::from_u128(1),
            scenario_id: Uuid::from_u128(2),
            version,
            step_id: Uuid::from_u128(u128::from(step)),
        }
    }

    fn record(seq: u64, old: Option<CountKey>, new: Option<CountKey>) -> ChangeRecord {
        ChangeRecord {
            sequence_number: seq.to_string(),
            at: DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
            old,
            new,
            old_flag: None,
            new_flag: None,
        }
    }

    #[test]
    fn a_flag_moves_with_the_day_of_last_activity_and_goes_with_the_flag() {
        let flag = |day: u32| {
            Some(FlagKey {
                tenant: Uuid::from_u128(1),
                plan_id: Uuid::from_u128(9),
                day: NaiveDate::from_ymd_opt(2026, 12, day).unwrap(),
            })
        };
        let with = |seq, old_flag, new_flag| ChangeRecord {
            old_flag,
            new_flag,
            ..record(seq, Some(key(1, 1)), Some(key(1, 1)))
        };
        let records = [
            with(1, None, flag(1)),    // marked: +1 on the 1st
            with(2, flag(1), flag(1)), // marked again, same activity: nothing
            with(3, flag(1), flag(3)), // the customer came back on the 3rd
            with(4, None, flag(3)),    // another session marked, last active the 3rd
            with(5, flag(3), None),    // one applied (or withdrawn)
        ];
        let groups = aggregate(&records, None, 100);
        assert_eq!(groups.len(), 1);
        let deltas = &groups[0];
        assert_eq!(deltas.by_flag.get(&flag(1).unwrap()), None, "+1 −1");
        assert_eq!(deltas.by_flag.get(&flag(3).unwrap()), Some(&1));
        assert_eq!(deltas.items_touched(), 1, "the step did not move");
        let session_item = FlagKey::from_item_attributes(
            Some("00000000-0000-0000-0000-000000000001#s-1"),
            Some("00000000-0000-0000-0000-000000000009"),
            Some("2026-12-03T23:59:59.999999999Z"),
        );
        assert_eq!(session_item, flag(3));
        assert_eq!(
            FlagKey::from_item_attributes(
                Some("x#s"),
                Some("not a uuid"),
                Some("2026-12-03T00:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn sequence_keys_order_numerically() {
        let a = sequence_key("999").unwrap();
        let b = sequence_key("1000").unwrap();
        assert!(a < b);
        assert_eq!(sequence_key("000123"), sequence_key("123"));
        assert_eq!(sequence_key(""), None);
        assert_eq!(sequence_key("12a"), None);
        assert_eq!(sequence_key("-1"), None);
    }

    #[test]
    fn item_attributes_give_the_position() {
        let t = Uuid::from_u128(7);
        let (s, step) = (Uuid::from_u128(8), Uuid::from_u128(9));
        let pk = format!("{t}#wa-42#x");
        let k = CountKey::from_item_attributes(
            Some(&pk),
            Some(&s.to_string()),
            Some("3"),
            Some(&step.to_string()),
        )
        .unwrap();
        assert_eq!(
            (k.tenant, k.scenario_id, k.version, k.step_id),
            (t, s, 3, step)
        );
        assert_eq!(
            CountKey::from_item_attributes(
                Some("no-tenant"),
                Some(&s.to_string()),
                Some("3"),
                Some(&step.to_string())
            ),
            None
        );
        assert_eq!(
            CountKey::from_item_attributes(
                Some(&pk),
                Some(&s.to_string()),
                None,
                Some(&step.to_string())
            ),
            None
        );
    }

    #[test]
    fn a_hot_step_is_one_delta_per_batch() {
        let records: Vec<_> = (1..=500)
            .map(|i| record(i, None, Some(key(1, 1))))
            .collect();
        let groups = aggregate(&records, None, 99);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].by_key, BTreeMap::from([(key(1, 1), 500)]));
        assert_eq!(groups[0].records, 500);
        assert_eq!(groups[0].last_sequence, sequence_key("500"));
    }

    #[test]
    fn moves_cancel_and_the_checkpoint_skips_what_was_applied() {
        let records = vec![
            record(3, Some(key(1, 1)), Some(key(2, 1))),
            record(1, None, Some(key(1, 1))),
            record(2, None, Some(key(1, 1))),
            record(4, Some(key(2, 1)), Some(key(1, 1))),
            record(5, Some(key(1, 1)), None),
        ];
        let all = aggregate(&records, None, 99);
        assert_eq!(all[0].by_key, BTreeMap::from([(key(1, 1), 1)]));
        let after_two = aggregate(&records, sequence_key("2").as_deref(), 99);
        assert_eq!(after_two[0].by_key, BTreeMap::from([(key(1, 1), -1)]));
        assert_eq!(after_two[0].records, 3);
        assert!(aggregate(&records, sequence_key("5").as_deref(), 99).is_empty());
    }

    #[test]
    fn moves_that_cancel_write_nothing() {
        let records = vec![
            record(1, Some(key(1, 1)), Some(key(2, 1))),
            record(2, Some(key(2, 1)), Some(key(1, 1))),
        ];
        let groups = aggregate(&records, None, 99);
        assert!(groups[0].by_key.is_empty());
        assert_eq!(groups[0].items_touched(), 0);
        assert_eq!(groups[0].counted_at.len(), 1);
    }

    fn apply(counts: &mut BTreeMap<CountKey, i64>, groups: &[Deltas]) {
        for g in groups {
            for (k, d) in &g.by_key {
                *counts.entry(*k).or_insert(0) += d;
            }
        }
    }

    proptest! {
        /// Whatever the grouping limit, the redeliveries and the order records
        /// arrive in, the groups sum to the net effect of each record once, and
        /// every group writes at most the limit.
        #[test]
        fn groups_sum_to_each_record_once(
            moves in proptest::collection::vec((0u8..4, 0u8..6, 1i64..3), 1..120),
            limit in 2usize..12,
            cut in 0usize..120,
        ) {
            // Sessions (first of each tuple) moving between positions, in order.
            let mut at: BTreeMap<u8, CountKey> = BTreeMap::new();
            let mut records = Vec::new();
            let mut expected: BTreeMap<CountKey, i64> = BTreeMap::new();
            for (i, (session, step, version)) in moves.iter().enumerate() {
                let new = if *step == 5 { None } else { Some(key(*step, *version)) };
                let old = at.get(session).copied();
                if let Some(o) = old { *expected.entry(o).or_insert(0) -= 1; }
                if let Some(n) = new { *expected.entry(n).or_insert(0) += 1; at.insert(*session, n); } else { at.remove(session); }
                records.push(record(i as u64 + 1, old, new));
            }
            expected.retain(|_, n| *n != 0);
            // First delivery: up to `cut`; then a redelivery overlapping it.
            let cut = cut.min(records.len());
            let first = aggregate(&records[..cut], None, limit);
            for g in &first { prop_assert!(g.items_touched() <= limit.max(2)); }
            let checkpoint = first.last().and_then(|g| g.last_sequence.clone());
            let mut shuffled = records.clone();
            shuffled.reverse();
            let second = aggregate(&shuffled, checkpoint.as_deref(), limit);
            for g in &second { prop_assert!(g.items_touched() <= limit.max(2)); }
            let mut counts = BTreeMap::new();
            apply(&mut counts, &first);
            apply(&mut counts, &second);
            counts.retain(|_, n| *n != 0);
            prop_assert_eq!(counts, expected);
        }
    }
}
