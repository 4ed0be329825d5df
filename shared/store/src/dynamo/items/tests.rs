//! Each item struct stores exactly the attributes the hand-written mapping
//! stored (the `old` module keeps that mapping): the same names, types (S, N,
//! M, BOOL), texts and numbers, absent `None`s left out; and reading either
//! item back gives the same domain value.

use chrono::TimeZone;
use planning::{MigrationWarning, Severity, StepVisit};
use serde_json::json;

use super::*;
use crate::dynamo::attr::*;

mod old;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, second).unwrap() + chrono::Duration::nanoseconds(123)
}

/// The stored form is what it was before `serde_dynamo`: the same
/// attribute names, S for the ids and the time (nanosecond RFC 3339), N for
/// the version — and it reads back.
#[test]
fn pending_migration_keeps_its_stored_form() {
    let pending = PendingMigration {
        migration_plan_id: Uuid::from_u128(1),
        target_version: 7,
        anchor_content_hash: "abc".into(),
        from_step_id: Uuid::from_u128(2),
        marked_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    };
    let expected = Av::M(HashMap::from([
        (
            "migration_plan_id".to_owned(),
            s(Uuid::from_u128(1).to_string()),
        ),
        ("target_version".to_owned(), n(7)),
        ("anchor_content_hash".to_owned(), s("abc")),
        ("from_step_id".to_owned(), s(Uuid::from_u128(2).to_string())),
        ("marked_at".to_owned(), s(time_key(&pending.marked_at))),
    ]));
    let stored = pending_av(&pending).expect("encode");
    assert_eq!(stored, expected);
    let item = HashMap::from([("pending_migration".to_owned(), stored)]);
    assert_eq!(pending_from(&item).expect("decode"), Some(pending));
}

fn rich_session() -> Session {
    Session {
        session_id: "s-1".into(),
        tenant_id: Uuid::from_u128(10),
        channel: "web".into(),
        customer_id: Some("c-9".into()),
        active_scenario_id: Uuid::from_u128(11),
        active_scenario_version: 3,
        active_step_id: Uuid::from_u128(12),
        scenario_checksum: Some("sum".into()),
        step_history: vec![
            StepVisit {
                step_id: Uuid::from_u128(13),
                step_name: "greet".into(),
                visited_at: at(1),
                is_checkpoint: true,
                checkpoint_description: Some("paid".into()),
            },
            StepVisit {
                step_id: Uuid::from_u128(12),
                step_name: String::new(),
                visited_at: at(2),
                is_checkpoint: false,
                checkpoint_description: None,
            },
        ],
        variables: BTreeMap::from([
            ("name".to_owned(), json!("Ann \"A\" ü")),
            ("n".to_owned(), json!(1.5)),
            ("big".to_owned(), json!(9_007_199_254_740_993u64)),
            ("nil".to_owned(), json!(null)),
            ("obj".to_owned(), json!({"b": [1, true], "a": {}})),
        ]),
        pending_migration: Some(PendingMigration {
            migration_plan_id: Uuid::from_u128(14),
            target_version: 4,
            anchor_content_hash: "h".into(),
            from_step_id: Uuid::from_u128(12),
            marked_at: at(3),
        }),
        pinned_version: Some(-2),
        created_at: at(4),
        updated_at: at(5),
        revision: 42,
    }
}

fn bare_session() -> Session {
    Session {
        customer_id: None,
        scenario_checksum: None,
        step_history: Vec::new(),
        variables: BTreeMap::new(),
        pending_migration: None,
        pinned_version: None,
        revision: 0,
        ..rich_session()
    }
}

#[test]
fn session_keeps_its_stored_form() {
    for session in [rich_session(), bare_session()] {
        for shards in [1, 8] {
            let stored = session_item(&session, shards).expect("encode");
            assert_eq!(
                stored,
                old::session_item(&session, shards).expect("old encode")
            );
            assert_eq!(session_from(&stored).expect("decode"), session);
            assert_eq!(old::session_from(&stored).expect("old decode"), session);
        }
    }
    // No NULL anywhere: a `None` is an absent attribute.
    let bare = session_item(&bare_session(), 1).expect("encode");
    assert!(!bare.values().any(|v| matches!(v, Av::Null(_))));
    for absent in [
        "customer_id",
        "scenario_checksum",
        "pending_migration",
        "pinned_version",
    ] {
        assert!(!bare.contains_key(absent), "{absent}");
    }
}

/// Items a runtime writes straight into the table (docs/runtime.md) may lack
/// what this store always writes, or carry NULLs: both mappings read them the same.
#[test]
fn session_reads_runtime_items_like_before() {
    let full = session_item(&rich_session(), 1).expect("encode");
    let mut minimal = full.clone();
    for name in [
        "step_history",
        "variables",
        "revision",
        "customer_id",
        "pinned_version",
    ] {
        minimal.remove(name);
    }
    let mut nulls = full.clone();
    for name in [
        "step_history",
        "variables",
        "revision",
        "customer_id",
        "scenario_checksum",
        "pending_migration",
        "pinned_version",
    ] {
        nulls.insert(name.to_owned(), Av::Null(true));
    }
    let mut extra = full.clone();
    extra.insert("runtime_field".to_owned(), s("kept"));
    // Not a map: read as no variables, as always.
    let mut odd_variables = full.clone();
    odd_variables.insert("variables".to_owned(), s("{}"));
    for item in [minimal, nulls, extra, odd_variables] {
        assert_eq!(
            session_from(&item).expect("decode"),
            old::session_from(&item).expect("old decode")
        );
    }
    // Malformed items are refused by both.
    for (name, value) in [
        ("active_scenario_version", s("3")),
        ("tenant_id", s("not-a-uuid")),
        ("created_at", s("yesterday")),
        ("variables", Av::M(HashMap::from([("x".to_owned(), n(1))]))),
        ("pending_migration", s("x")),
    ] {
        let mut bad = full.clone();
        bad.insert(name.to_owned(), value);
        assert!(session_from(&bad).is_err(), "{name}");
        assert!(old::session_from(&bad).is_err(), "{name}");
    }
}

#[test]
fn indexed_session_reads_like_before() {
    let q = StepQuery {
        tenant: Uuid::from_u128(10),
        scenario_id: Uuid::from_u128(11),
        version: 3,
        step_id: Uuid::from_u128(12),
        shard: 0,
        limit: 10,
        cursor: None,
    };
    for session in [rich_session(), bare_session()] {
        let full = session_item(&session, 1).expect("encode");
        // What the step index projects: the keys and STEP_INDEX_FIELDS.
        let projected: Item = full
            .into_iter()
            .filter(|(name, _)| {
                ["pk", "step_key", "session_id"].contains(&name.as_str())
                    || super::super::tables::STEP_INDEX_FIELDS.contains(&name.as_str())
            })
            .collect();
        let read = indexed_session_from(&projected, &q).expect("decode");
        assert_eq!(
            read,
            old::indexed_session_from(&projected, &q).expect("old")
        );
        assert_eq!(read.variables, session.variables);
        assert_eq!(read.pending_migration, session.pending_migration);
        assert_eq!(read.pinned_version, session.pinned_version);
    }
}

#[test]
fn stats_read_like_before() {
    let full = HashMap::from([
        ("pk".to_owned(), s("t#PLAN#p")),
        ("sk".to_owned(), s("STATS")),
        ("sessions_marked".to_owned(), n(10)),
        ("chains_total".to_owned(), n(2)),
        ("chains_done".to_owned(), n(1)),
        ("pages_recorded".to_owned(), n(3)),
        ("pages_failed".to_owned(), n(4)),
        ("migrations_applied".to_owned(), n(5)),
        ("flagged_applied".to_owned(), n(6)),
        ("clean_graft".to_owned(), n(7)),
        ("gap_fill".to_owned(), n(8)),
        ("re_route".to_owned(), n(9)),
        ("checkpoint_blocks".to_owned(), n(11)),
        ("marking_started_at".to_owned(), s(time_key(&at(1)))),
        ("last_progress_at".to_owned(), s(time_key(&at(2)))),
        ("resumptions".to_owned(), n(12)),
        (format!("{ANCHOR_PREFIX}h1"), n(6)),
        (format!("{ANCHOR_PREFIX}h2"), n(4)),
        ("ttl".to_owned(), n(1_800_000_000)),
    ]);
    let stats = stats_from(&full).expect("decode");
    assert_eq!(stats, old::stats_from(&full).expect("old"));
    assert_eq!(stats.resumptions, 12);
    assert_eq!(stats.sessions_by_anchor.len(), 2);
    let mut nulls = full.clone();
    nulls.insert("marking_started_at".to_owned(), Av::Null(true));
    nulls.insert("sessions_marked".to_owned(), Av::Null(true));
    let empty = HashMap::from([("pk".to_owned(), s("t#PLAN#p"))]);
    for item in [nulls, empty] {
        assert_eq!(
            stats_from(&item).expect("decode"),
            old::stats_from(&item).expect("old")
        );
    }
    let mut bad = full;
    bad.insert("chains_total".to_owned(), s("2"));
    assert!(stats_from(&bad).is_err());
    assert!(old::stats_from(&bad).is_err());
}

#[test]
fn chain_keeps_its_stored_form() {
    let pk = "t#PLAN#p".to_owned();
    for anchor in [Some("h".to_owned()), None] {
        let start = ChainStart {
            step_id: Uuid::from_u128(20),
            shard: 3,
            shards: 8,
            anchor_content_hash: anchor,
            pass: 0,
            percent: 100,
        };
        let stored = chain_item(pk.clone(), &start, at(1)).expect("encode");
        assert_eq!(stored, old::chain_item(pk.clone(), &start, at(1)));
        let chain = chain_from(&stored).expect("decode");
        assert_eq!(chain, old::chain_from(&stored).expect("old"));
        assert_eq!(
            (chain.step_id, chain.shard, chain.shards, chain.done),
            (start.step_id, 3, 8, false)
        );
        assert_eq!(chain.anchor_content_hash, start.anchor_content_hash);
        // As the update expressions leave it: a cursor, done, resumed.
        let mut moved = stored.clone();
        moved.insert("cursor".to_owned(), s("c"));
        moved.insert("done".to_owned(), Av::Bool(true));
        moved.insert("resumptions".to_owned(), n(2));
        assert!(chain_from(&moved).expect("decode").done);
        assert_eq!(
            chain_from(&moved).expect("decode"),
            old::chain_from(&moved).expect("old")
        );
        // Only BOOL true is done, as always.
        let mut odd_done = moved.clone();
        odd_done.insert("done".to_owned(), s("true"));
        assert_eq!(
            chain_from(&odd_done).expect("decode"),
            old::chain_from(&odd_done).expect("old")
        );
        // Registered before sharding: no shard, no shards.
        let mut unsharded = stored;
        unsharded.remove("shard");
        unsharded.remove("shards");
        let chain = chain_from(&unsharded).expect("decode");
        assert_eq!(chain, old::chain_from(&unsharded).expect("old"));
        assert_eq!((chain.shard, chain.shards), (0, 1));
    }
}

fn rich_plan() -> MigrationPlan {
    let mut plan = MigrationPlan {
        id: Uuid::from_u128(30),
        tenant_id: Uuid::from_u128(31),
        scenario_id: Uuid::from_u128(32),
        scenario_name: "Onboarding ü".into(),
        from_version: 1,
        to_version: 2,
        scenario_checksum_v1: "c1".into(),
        scenario_checksum_v2: "c2".into(),
        transformation_map: TransformationMap::default(),
        anchor_policies: Default::default(),
        summary: MigrationSummary::default(),
        status: PlanStatus::Deployed,
        created_at: at(1),
        created_by: Some("ann".into()),
        approved_at: Some(at(2)),
        approved_by: Some("bob".into()),
        rejected_at: Some(at(3)),
        rejected_by: Some("cid".into()),
        rejection_reason: Some("no".into()),
        deployed_at: Some(at(4)),
        expires_at: Some(at(5)),
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 6,
    };
    plan.summary.total_anchors = 5;
    plan.summary.estimated_sessions_affected = 1234;
    plan.summary.warnings = vec![MigrationWarning {
        severity: Severity::Warning,
        anchor_name: "a".into(),
        message: "m".into(),
        affected_sessions_estimate: 1,
    }];
    plan
}

fn bare_plan() -> MigrationPlan {
    MigrationPlan {
        status: PlanStatus::Pending,
        created_by: None,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: None,
        summary: MigrationSummary::default(),
        ..rich_plan()
    }
}

#[test]
fn plan_head_keeps_its_stored_form() {
    let inline = BodyRef::Inline(vec![1, 2, 3]);
    let blob = BodyRef::Blob {
        id: "b".into(),
        parts: 2,
    };
    for plan in [rich_plan(), bare_plan()] {
        for (body, policies, target) in [(&inline, &blob, &inline), (&blob, &inline, &blob)] {
            let stored = plan_head_item(&plan, body, policies, target).expect("encode");
            assert_eq!(stored, old::plan_head_item(&plan, body, policies, target));
            let read = plan_from_head(&stored).expect("decode");
            assert_eq!(read, old::plan_from_head(&stored).expect("old"));
            assert_eq!(
                read,
                MigrationPlan {
                    summary: MigrationSummary::default(),
                    ..plan.clone()
                }
            );
            // What the listing index projects.
            let projected: Item = stored
                .into_iter()
                .filter(|(name, _)| {
                    ["pk", "sk", "gsi1pk", "gsi1sk"].contains(&name.as_str())
                        || super::super::tables::SUMMARY_FIELDS.contains(&name.as_str())
                })
                .collect();
            let summary = summary_item(&projected).expect("summary");
            assert_eq!(summary, old::summary_item(&projected).expect("old summary"));
            assert_eq!(summary, MigrationPlanSummaryItem::of(&plan));
        }
    }
    let bare = plan_head_item(&bare_plan(), &inline, &inline, &inline).expect("encode");
    assert!(!bare.values().any(|v| matches!(v, Av::Null(_))));
}
