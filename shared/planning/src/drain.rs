//! How fast a rollout's flagged sessions migrate, and when the last will have:
//! computed from per-minute counts of applied migrations, never from the
//! pending sessions themselves (a flagged session migrates only when its
//! conversation comes back, so the pending set is read by nobody).

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::model::{AppliedInMinute, Drain, PendingByLastActivity, PendingOnDay, PlanStatus};

/// Minutes the drain looks back over.
pub const DRAIN_WINDOW_MINUTES: i64 = 60;

/// The start of the minute `at` falls in: the key of its per-minute count.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::minutes(1)).unwrap_or(at)
}

/// The first minute of the window that ends at `now` (the window holds the
/// current minute and the 59 before it).
pub fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    minute_of(now) - Duration::minutes(DRAIN_WINDOW_MINUTES - 1)
}

/// The drain of a plan with `pending` flagged sessions, from the per-minute
/// counts of its applied flagged migrations (any order; minutes outside the
/// window are ignored). The ETA extrapolates the last hour's rate and is given
/// only while the plan applies migrations and some remain.
pub fn drain(
    status: PlanStatus,
    pending: u64,
    per_minute: &[AppliedInMinute],
    now: DateTime<Utc>,
) -> Drain {
    let (start, end) = (window_start(now), minute_of(now));
    let mut in_window: Vec<AppliedInMinute> = per_minute
        .iter()
        .filter(|m| m.minute >= start && m.minute <= end && m.applied > 0)
        .cloned()
        .collect();
    in_window.sort_by_key(|m| m.minute);
    let applied_last_hour: u64 = in_window.iter().map(|m| m.applied).sum();
    let eta = (status.applies_migrations() && pending > 0 && applied_last_hour > 0).then(|| {
        // pending / (applied per hour) hours, in whole seconds, rounded up.
        let seconds = (pending as u128 * 3600).div_ceil(applied_last_hour as u128);
        now + Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000))
    });
    Drain {
        applied_last_hour,
        eta,
        applied_per_minute: in_window,
        pending_by_last_activity: PendingByLastActivity::default(),
    }
}

/// The pending sessions by the age of their last activity, from per-day
/// counts (any order; a day after `now`'s, from a clock ahead, counts as
/// today). Whole UTC days: a session last active yesterday at 23:59 is "1 to
/// 7 days" at 00:01.
pub fn pending_by_last_activity(
    days: &[PendingOnDay],
    now: DateTime<Utc>,
) -> PendingByLastActivity {
    let today = now.date_naive();
    let mut buckets = PendingByLastActivity::default();
    for PendingOnDay { day, sessions } in days {
        let age = (today - *day).num_days();
        let bucket = match age {
            ..=0 => &mut buckets.under_1d,
            1..=6 => &mut buckets.from_1d_to_7d,
            7..=29 => &mut buckets.from_7d_to_30d,
            _ => &mut buckets.over_30d,
        };
        *bucket += sessions;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, s).unwrap()
    }

    fn minute(h: u32, m: u32, applied: u64) -> AppliedInMinute {
        AppliedInMinute {
            minute: at(h, m, 0),
            applied,
        }
    }

    #[test]
    fn the_window_is_the_current_minute_and_the_59_before() {
        let now = at(10, 30, 45);
        assert_eq!(minute_of(now), at(10, 30, 0));
        assert_eq!(window_start(now), at(9, 31, 0));
        let counts = [
            minute(9, 30, 1000), // 61 minutes ago: out
            minute(9, 31, 7),
            minute(10, 30, 5),
            minute(10, 31, 999), // the future (a clock ahead): out
        ];
        let d = drain(PlanStatus::Deployed, 0, &counts, now);
        assert_eq!(d.applied_last_hour, 12);
        assert_eq!(
            d.applied_per_minute,
            vec![minute(9, 31, 7), minute(10, 30, 5)]
        );
        assert_eq!(d.eta, None, "nothing pending: no ETA");
    }

    #[test]
    fn the_eta_extrapolates_the_last_hour() {
        let now = at(12, 0, 0);
        // 120 migrated in the last hour, 240 still flagged: two hours left.
        let counts = [minute(11, 10, 100), minute(11, 50, 20)];
        let d = drain(PlanStatus::Deployed, 240, &counts, now);
        assert_eq!(d.eta, Some(at(14, 0, 0)));
        // Rounded up to the second: 1 left at 7 an hour is 514.29 s.
        let d = drain(PlanStatus::Deploying, 1, &[minute(11, 59, 7)], now);
        assert_eq!(d.eta, Some(now + Duration::seconds(515)));
    }

    #[test]
    fn no_eta_without_a_rate_or_while_stopped() {
        let now = at(12, 0, 0);
        assert_eq!(drain(PlanStatus::Deployed, 50, &[], now).eta, None);
        let counts = [minute(11, 30, 10)];
        for stopped in [
            PlanStatus::Paused,
            PlanStatus::Halted,
            PlanStatus::Withdrawing,
        ] {
            let d = drain(stopped, 50, &counts, now);
            assert_eq!((d.eta, d.applied_last_hour), (None, 10), "{stopped:?}");
        }
    }

    #[test]
    fn pending_sessions_fall_in_buckets_by_the_day_of_their_last_activity() {
        let now = at(0, 1, 0); // just after midnight: yesterday is already a day ago
        let day = |days_ago: i64| PendingOnDay {
            day: now.date_naive() - Duration::days(days_ago),
            sessions: 1 << days_ago.clamp(0, 40),
        };
        let days: Vec<PendingOnDay> = [-1, 0, 1, 6, 7, 29, 30, 40].into_iter().map(day).collect();
        let b = pending_by_last_activity(&days, now);
        // -1 (a clock ahead) counts as today, with 0.
        assert_eq!(b.under_1d, 1 + 1);
        assert_eq!(b.from_1d_to_7d, (1 << 1) + (1 << 6));
        assert_eq!(b.from_7d_to_30d, (1 << 7) + (1 << 29));
        assert_eq!(b.over_30d, (1 << 30) + (1 << 40));
        assert_eq!(
            pending_by_last_activity(&[], now),
            PendingByLastActivity::default()
        );
    }
}
