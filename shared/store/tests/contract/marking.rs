//! Marking: the conditional flag on a session, a page of flags at once, and the
//! ledger of marked pages with its chains, counters and resumptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use store::{
    ChainKey, ChainStart, MarkedPage, PageClaim, PlanStats, SessionMark, SessionPosition, Store,
};
use uuid::Uuid;

use super::fixtures::*;

pub async fn marking_is_conditional(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
    let plan_id = Uuid::new_v4();
    let fresh = session(tenant, "fresh", sid, 1, step_a);
    let moved = session(tenant, "moved", sid, 1, step_b);
    let mut flagged = session(tenant, "flagged", sid, 1, step_a);
    flagged.pending_migration = Some(pending(Uuid::new_v4(), step_a));
    let mut pinned = session(tenant, "pinned", sid, 1, step_a);
    pinned.pinned_version = Some(1);
    let newer = session(tenant, "newer", sid, 2, step_a);
    for x in [&fresh, &moved, &flagged, &pinned, &newer] {
        s.put_session(x).await.expect("put");
    }
    let pos = SessionPosition {
        scenario_id: sid,
        version: 1,
        step_id: step_a,
    };
    let flag = pending(plan_id, step_a);
    let mut results = Vec::new();
    for id in ["fresh", "moved", "flagged", "pinned", "newer", "missing"] {
        results.push(
            s.mark_session(tenant, id, &pos, &flag, "mark-a")
                .await
                .expect("mark"),
        );
    }
    assert_eq!(results, vec![true, false, false, false, false, false]);
    let mut expected = fresh.clone();
    expected.pending_migration = Some(flag.clone());
    expected.revision = 1;
    assert_eq!(
        s.get_session(tenant, "fresh").await.expect("get"),
        Some(expected),
        "only pending_migration (and the revision) change"
    );
    assert!(
        !s.mark_session(
            tenant,
            "fresh",
            &pos,
            &pending(Uuid::new_v4(), step_a),
            "mark-b"
        )
        .await
        .expect("mark"),
        "an already-flagged session is not re-marked"
    );
    // The same mark again (a retry after a lost answer, another delivery of the
    // same page): the flag is recognised as this mark's, and nothing is written.
    assert!(
        s.mark_session(tenant, "fresh", &pos, &flag, "mark-a")
            .await
            .expect("mark again"),
        "a repeated mark finds its own flag"
    );
    assert_eq!(
        s.get_session(tenant, "fresh")
            .await
            .expect("get")
            .expect("fresh")
            .revision,
        1,
        "a repeated mark writes nothing"
    );
    for x in [&moved, &flagged, &pinned, &newer] {
        assert_eq!(
            s.get_session(tenant, &x.session_id)
                .await
                .expect("get")
                .as_ref(),
            Some(x)
        );
    }
    // Another scenario at the same step/version does not match either.
    let mut other = pos.clone();
    other.scenario_id = Uuid::new_v4();
    assert!(
        !s.mark_session(tenant, "moved", &other, &flag, "mark-a")
            .await
            .expect("mark")
    );
}

pub async fn mark_sessions_page(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
    let plan_id = Uuid::new_v4();
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = format!("m-{i:02}");
        let at = if i % 5 == 0 { step_b } else { step_a };
        s.put_session(&session(tenant, &id, sid, 1, at))
            .await
            .expect("put");
        ids.push(id);
    }
    ids.push("missing".into());
    let pos = SessionPosition {
        scenario_id: sid,
        version: 1,
        step_id: step_a,
    };
    let marks: Vec<SessionMark> = ids
        .iter()
        .map(|id| SessionMark {
            session_id: id.clone(),
            expected: pos.clone(),
            pending: pending(plan_id, step_a),
            mark_id: "page-1".into(),
        })
        .collect();
    let marked = s.mark_sessions(tenant, &marks, 4).await.expect("mark page");
    let expected: Vec<bool> = (0..41).map(|i| i < 40 && i % 5 != 0).collect();
    assert_eq!(marked, expected, "one result per input, in order");
    let again = s
        .mark_sessions(tenant, &marks, 4)
        .await
        .expect("mark again");
    assert_eq!(
        again, marked,
        "the same page again finds its own flags: the same answers"
    );
    let other_page: Vec<SessionMark> = marks
        .iter()
        .map(|m| SessionMark {
            mark_id: "page-2".into(),
            ..m.clone()
        })
        .collect();
    let other = s
        .mark_sessions(tenant, &other_page, 4)
        .await
        .expect("mark as another page");
    assert!(
        other.iter().all(|m| !m),
        "another page's marks find no flag of theirs"
    );
    let x = s
        .get_session(tenant, "m-01")
        .await
        .expect("get")
        .expect("s");
    let mut want = session(tenant, "m-01", sid, 1, step_a);
    want.pending_migration = Some(pending(plan_id, step_a));
    want.revision = 1;
    assert_eq!(x, want, "only pending_migration (and the revision) change");
    assert!(
        s.get_session(tenant, "m-05")
            .await
            .expect("get")
            .is_some_and(|x| x.pending_migration.is_none())
    );
    assert_eq!(
        s.mark_sessions(tenant, &[], 4).await.expect("empty page"),
        Vec::<bool>::new()
    );
}

pub async fn record_marking_page_is_idempotent(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let plan_id = Uuid::new_v4();
    // Two shards of one step: two chains, each with its own cursor.
    let step = Uuid::from_u128(1);
    let (chain_0, chain_1) = (0, 1);
    assert_eq!(
        s.get_plan_stats(tenant, plan_id).await.expect("stats"),
        PlanStats::default()
    );
    let started = t0();
    let chains = [
        ChainStart {
            step_id: step,
            shard: chain_0,
            shards: 2,
            anchor_content_hash: Some("h1".into()),
            pass: 0,
            percent: 100,
        },
        ChainStart {
            step_id: step,
            shard: chain_1,
            shards: 2,
            anchor_content_hash: None,
            pass: 0,
            percent: 100,
        },
    ];
    assert!(
        s.start_marking(tenant, plan_id, 0, &chains, started)
            .await
            .expect("start")
    );
    let page = MarkedPage {
        tenant,
        plan_id,
        page_id: "anchor-0/cursor-start".into(),
        chain_step: step,
        chain_shard: chain_0,
        chain_pass: 0,
        cursor: None,
        next_cursor: Some("abc".into()),
        sessions_marked: 3,
        flags_withdrawn: 0,
        by_anchor: BTreeMap::from([("h1".to_owned(), 2), ("h/2 #x".to_owned(), 1)]),
        at: started + Duration::seconds(1),
    };
    assert!(s.record_marking_page(&page).await.expect("record"));
    let after_first = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert!(!s.record_marking_page(&page).await.expect("record again"));
    // Another walk of the same chain from the same place, under another page
    // id (its read saw other sessions): the chain has moved on, so no.
    let other_walk = MarkedPage {
        page_id: "anchor-0/another-read".into(),
        ..page.clone()
    };
    assert!(!s.record_marking_page(&other_walk).await.expect("record"));
    assert_eq!(
        s.get_plan_stats(tenant, plan_id).await.expect("stats"),
        after_first,
        "a second recording changes nothing"
    );
    let last = MarkedPage {
        page_id: "anchor-0/cursor-abc".into(),
        cursor: Some("abc".into()),
        next_cursor: None,
        sessions_marked: 4,
        flags_withdrawn: 0,
        by_anchor: BTreeMap::from([("h1".to_owned(), 4)]),
        ..page.clone()
    };
    assert!(s.record_marking_page(&last).await.expect("record"));
    assert!(
        !s.start_marking(tenant, plan_id, 0, &chains[..1], t0() + Duration::days(1))
            .await
            .expect("start again"),
        "only the first start counts"
    );
    assert!(
        s.record_failed_page(tenant, plan_id, "p9")
            .await
            .expect("fail")
    );
    assert!(
        !s.record_failed_page(tenant, plan_id, "p9")
            .await
            .expect("fail")
    );
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(
        stats,
        PlanStats {
            sessions_marked: 7,
            flags_withdrawn: 0,
            sessions_by_anchor: BTreeMap::from([("h1".to_owned(), 6), ("h/2 #x".to_owned(), 1)]),
            chains_total: 2,
            chains_done: 1,
            pages_recorded: 2,
            pages_failed: 1,
            marking_started_at: Some(started),
            last_progress_at: Some(started + Duration::seconds(1)),
            ..PlanStats::default()
        }
    );
    let mut chains_now = s.list_chains(tenant, plan_id).await.expect("chains");
    chains_now.sort_by_key(|c| (c.step_id, c.shard));
    assert_eq!(chains_now.len(), 2);
    assert_eq!(
        chains_now
            .iter()
            .map(|c| (c.step_id, c.shard, c.shards))
            .collect::<Vec<_>>(),
        vec![(step, 0, 2), (step, 1, 2)],
        "each shard's chain registered apart, with the plan's shard count"
    );
    assert!(chains_now[0].done && chains_now[0].cursor.is_none());
    assert!(!chains_now[1].done, "the other shard's chain did not move");
    assert!(chains_now[1].cursor.is_none());
    assert_eq!(chains_now[1].anchor_content_hash, None);
    assert_eq!(chains_now[1].updated_at, started);
    // Concurrent duplicates: one recording.
    let dup = MarkedPage {
        page_id: "anchor-1/cursor-start".into(),
        chain_step: step,
        chain_shard: chain_1,
        chain_pass: 0,
        ..page.clone()
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, dup) = (Arc::clone(&s), dup.clone());
        tasks.push(tokio::spawn(
            async move { s.record_marking_page(&dup).await },
        ));
    }
    let mut recorded = 0;
    for task in tasks {
        if task.await.expect("join").expect("record") {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(stats.sessions_marked, 10);
    assert_eq!(stats.pages_recorded, 3);
    // A stalled chain is claimed once for the same observation.
    let chain = s
        .list_chains(tenant, plan_id)
        .await
        .expect("chains")
        .into_iter()
        .find(|c| c.step_id == step && c.shard == chain_1)
        .expect("chain 1");
    let resume_at = t0() + Duration::hours(1);
    let mut claims = Vec::new();
    for _ in 0..4 {
        let s = Arc::clone(&s);
        let seen = chain.updated_at;
        claims.push(tokio::spawn(async move {
            s.claim_chain(
                tenant,
                plan_id,
                ChainKey {
                    step_id: step,
                    shard: chain_1,
                    pass: 0,
                },
                seen,
                resume_at,
            )
            .await
        }));
    }
    let mut claimed = 0;
    for c in claims {
        if c.await.expect("join").expect("claim") {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1, "one resumer takes a stalled chain");
    assert!(
        !s.claim_chain(
            tenant,
            plan_id,
            ChainKey {
                step_id: step,
                shard: chain_0,
                pass: 0
            },
            started,
            resume_at
        )
        .await
        .expect("claim"),
        "a finished chain is never resumed"
    );
    let stats = s.get_plan_stats(tenant, plan_id).await.expect("stats");
    assert_eq!(stats.resumptions, 1);
    // Another tenant's stats are untouched.
    assert_eq!(
        s.get_plan_stats(Uuid::new_v4(), plan_id)
            .await
            .expect("stats"),
        PlanStats::default()
    );
}

/// A mark knows its own flag by its mark id: while the flag is pending, after a
/// reconcile applied it, and after a runtime write that kept it — but not after
/// a write that dropped it, and never another mark's flag.
pub async fn a_mark_recognises_its_own_flag(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_new) = (Uuid::new_v4(), Uuid::new_v4());
    let plan_id = Uuid::new_v4();
    let pos = SessionPosition {
        scenario_id: sid,
        version: 1,
        step_id: step_a,
    };
    let flag = pending(plan_id, step_a);
    for id in ["applied", "kept", "dropped"] {
        s.put_session(&session(tenant, id, sid, 1, step_a))
            .await
            .expect("put");
        assert!(
            s.mark_session(tenant, id, &pos, &flag, "page-1")
                .await
                .expect("mark")
        );
    }
    // A runtime write that keeps the flag (it never writes the flag itself).
    let mut kept = s
        .get_session(tenant, "kept")
        .await
        .expect("get")
        .expect("kept");
    kept.variables
        .insert("email".into(), serde_json::json!("a@b.c"));
    s.write_session(&runtime_write(&kept, store::SessionPrecondition::None))
        .await
        .expect("runtime write");
    // A move to another scenario drops the flag.
    let mut dropped = session(tenant, "dropped", Uuid::new_v4(), 1, step_a);
    dropped
        .variables
        .insert("moved".into(), serde_json::json!(true));
    s.write_session(&runtime_write(&dropped, store::SessionPrecondition::None))
        .await
        .expect("move");
    // A reconcile applies the first one's flag.
    let at = t0() + Duration::days(1);
    let applied = clean_graft_to_v2(tenant, "applied", plan_id, true, 1, step_new, at);
    assert!(s.apply_session_change(&applied).await.expect("apply"));
    let again = |id: &'static str, mark: &'static str| {
        let (s, pos, flag) = (Arc::clone(&s), pos.clone(), flag.clone());
        async move {
            s.mark_session(tenant, id, &pos, &flag, mark)
                .await
                .expect("mark again")
        }
    };
    assert!(
        again("applied", "page-1").await,
        "applied since: still this mark's"
    );
    assert!(again("kept", "page-1").await, "kept by a runtime write");
    assert!(!again("dropped", "page-1").await, "dropped by a move");
    assert!(!again("applied", "page-2").await, "another mark's flag");
    assert!(!again("kept", "page-2").await, "another mark's flag");
    let kept = s
        .get_session(tenant, "kept")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(kept.pending_migration, Some(flag), "the flag is untouched");
    assert_eq!(
        kept.revision, 2,
        "mark and runtime write; the repeats wrote nothing"
    );
}

/// The first claim of a page is the page's claim, whoever asks later.
pub async fn the_first_claim_of_a_page_holds(s: Arc<dyn Store>) {
    let claim = |ids: &[&str], next: Option<&str>| PageClaim {
        tenant: Uuid::nil(),
        plan_id: Uuid::nil(),
        page_id: "step#0#start".into(),
        session_ids: ids.iter().map(|id| id.to_string()).collect(),
        next_cursor: next.map(str::to_owned),
        at: t0(),
    };
    let (tenant, plan_id) = (Uuid::new_v4(), Uuid::new_v4());
    let first = PageClaim {
        tenant,
        plan_id,
        ..claim(&["a", "b", "c"], Some("cursor-1"))
    };
    assert_eq!(s.claim_page(&first).await.expect("claim"), first);
    let later = PageClaim {
        tenant,
        plan_id,
        at: t0() + Duration::seconds(5),
        ..claim(&["b", "c", "d"], Some("cursor-2"))
    };
    assert_eq!(s.claim_page(&later).await.expect("claim again"), first);
    // Another plan's page of the same id is its own.
    let other = PageClaim {
        tenant,
        plan_id: Uuid::new_v4(),
        ..claim(&[], None)
    };
    assert_eq!(s.claim_page(&other).await.expect("other plan"), other);
}
