//! Partial rollouts: the scenario keeps its version while a plan reaches part
//! of its sessions; a ramp widens it (or makes the plan's version current at
//! 100%) in the same atomic step as the plan's change; each marking pass has its
//! own chains.

use std::sync::Arc;

use chrono::Duration;
use planning::lifecycle::{PlanCommand, transition as lifecycle_transition};
use planning::{MigrationPlan, PartialRollout, PlanStatus};
use store::{
    ActivationError, ChainKey, ChainStart, MarkedPage, PlanActivation, PlanTransition, RolloutMove,
    Store, StoreError,
};
use uuid::Uuid;

use super::fixtures::*;

fn ramp_to(plan: &MigrationPlan, percent: u8, expected_revision: u64) -> PlanTransition {
    PlanTransition {
        tenant: plan.tenant_id,
        plan_id: plan.id,
        expected_revision,
        change: lifecycle_transition(
            PlanStatus::Deployed,
            PlanCommand::Ramp {
                percent,
                pass: plan.rollout_pass + 1,
            },
            t0() + Duration::hours(4),
        )
        .expect("legal"),
        rollout: Some(RolloutMove {
            scenario_id: plan.scenario_id,
            from_version: plan.from_version,
            to_version: plan.to_version,
            percent,
            withdraw: false,
        }),
    }
}

/// Scenario V1, a plan to V2 approved, and its activation at `percent`
/// (not yet sent).
pub(super) async fn approved_v1_to_v2(
    s: &Arc<dyn Store>,
    tenant: Uuid,
    sid: Uuid,
    percent: u8,
) -> (MigrationPlan, PlanActivation) {
    s.create_scenario(&scenario(tenant, sid, 1, 3))
        .await
        .expect("create");
    let v2 = scenario(tenant, sid, 2, 4);
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    s.create_plan(&p, &v2).await.expect("plan");
    s.transition_plan(&transition(
        &p,
        PlanStatus::Pending,
        0,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    let activation = PlanActivation {
        tenant,
        plan_id: p.id,
        expected_revision: 1,
        scenario_id: sid,
        from_version: 1,
        target: v2,
        at: t0() + Duration::hours(2),
        guard: None,
        percent,
        by: Some("ana".into()),
    };
    (p, activation)
}

pub async fn a_partial_rollout_keeps_the_version_until_it_ramps_to_100(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (p, activation) = approved_v1_to_v2(&s, tenant, sid, 10).await;
    let deploying = s.activate_plan(&activation).await.expect("activate");
    assert_eq!(deploying.percent, Some(10));
    let head = s
        .get_scenario_head(tenant, sid)
        .await
        .expect("head")
        .expect("scenario");
    assert_eq!(head.current_version, 1, "the version stays below 100%");
    assert_eq!(
        head.rollout,
        Some(PartialRollout {
            plan_id: p.id,
            to_version: 2,
            percent: 10
        })
    );
    assert_eq!(
        s.get_current_scenario(tenant, sid)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert!(
        s.get_scenario_version(tenant, sid, 2)
            .await
            .unwrap()
            .is_some(),
        "V2 archived"
    );
    let header = s.get_plan_header(tenant, p.id).await.unwrap().unwrap();
    assert_eq!((header.percent, header.rollout_pass), (Some(10), 0));

    // A second plan from the same version cannot deploy beside it.
    let other = plan(tenant, sid, 1, 3, t0(), 2);
    s.create_plan(&other, &scenario(tenant, sid, 3, 5))
        .await
        .expect("plan");
    s.transition_plan(&transition(
        &other,
        PlanStatus::Pending,
        0,
        PlanStatus::Approved,
    ))
    .await
    .expect("approve");
    let beside = s
        .activate_plan(&PlanActivation {
            plan_id: other.id,
            target: scenario(tenant, sid, 3, 5),
            percent: 100,
            ..activation.clone()
        })
        .await;
    assert!(
        matches!(beside, Err(ActivationError::ScenarioMoved)),
        "{beside:?}"
    );

    // Deployed at 10%, then ramped to 50%: the plan is deploying again in a new
    // pass and the scenario's rollout widened, in one step.
    let deployed = s
        .transition_plan(&transition(
            &deploying,
            PlanStatus::Deploying,
            2,
            PlanStatus::Deployed,
        ))
        .await
        .expect("finish");
    let ramped = s
        .transition_plan(&ramp_to(&deployed, 50, 3))
        .await
        .expect("ramp");
    assert_eq!(
        (ramped.status, ramped.percent, ramped.rollout_pass),
        (PlanStatus::Deploying, Some(50), 1)
    );
    let header = s.get_plan_header(tenant, p.id).await.unwrap().unwrap();
    assert_eq!(
        (header.percent, header.rollout_pass, header.revision),
        (Some(50), 1, 4)
    );
    assert!(
        s.list_deploying(1000)
            .await
            .unwrap()
            .contains(&(tenant, p.id)),
        "a ramp is the sweep's again"
    );
    let head = s.get_scenario_head(tenant, sid).await.unwrap().unwrap();
    assert_eq!(
        (head.current_version, head.rollout.map(|r| r.percent)),
        (1, Some(50))
    );
    // A replayed ramp (same revision) changes nothing.
    assert!(matches!(
        s.transition_plan(&ramp_to(&deployed, 50, 3)).await,
        Err(StoreError::Conflict(_))
    ));

    // To 100%: V2 becomes current and the partial rollout is gone.
    let deployed = s
        .transition_plan(&transition(
            &ramped,
            PlanStatus::Deploying,
            4,
            PlanStatus::Deployed,
        ))
        .await
        .expect("finish");
    s.transition_plan(&ramp_to(&deployed, 100, 5))
        .await
        .expect("ramp to 100");
    let head = s.get_scenario_head(tenant, sid).await.unwrap().unwrap();
    assert_eq!((head.current_version, head.rollout), (2, None));
    assert_eq!(
        s.get_current_scenario(tenant, sid)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );

    // A ramp of a plan whose scenario holds no partial rollout of it changes nothing.
    let full = s.get_plan_header(tenant, p.id).await.unwrap().unwrap();
    let finished = s
        .transition_plan(&transition(
            &full,
            PlanStatus::Deploying,
            6,
            PlanStatus::Deployed,
        ))
        .await
        .expect("finish");
    assert!(matches!(
        s.transition_plan(&ramp_to(&finished, 100, 7)).await,
        Err(StoreError::Conflict(_))
    ));
    // (The plan's head is not read back here: a deployed plan dated in the past
    // is already expired, and another case's sweep may delete it.)
    let head = s.get_scenario_head(tenant, sid).await.unwrap().unwrap();
    assert_eq!((head.current_version, head.rollout), (2, None));
}

/// Each marking pass registers its own chains and counts on the totals of the
/// passes before it; only the first start of a pass starts it.
pub async fn each_marking_pass_has_its_own_chains(s: Arc<dyn Store>) {
    let (tenant, plan_id, step) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let start = |pass: u32, percent: u8| ChainStart {
        step_id: step,
        shard: 0,
        shards: 1,
        anchor_content_hash: None,
        pass,
        percent,
    };
    let at = t0();
    assert!(
        s.start_marking(tenant, plan_id, 0, &[start(0, 10)], at)
            .await
            .unwrap()
    );
    let page = |pass: u32, id: &str| MarkedPage {
        tenant,
        plan_id,
        page_id: id.into(),
        chain_step: step,
        chain_shard: 0,
        chain_pass: pass,
        cursor: None,
        next_cursor: None,
        sessions_marked: 2,
        flags_withdrawn: 0,
        by_anchor: Default::default(),
        at,
    };
    assert!(s.record_marking_page(&page(0, "a")).await.unwrap());
    let stats = s.get_plan_stats(tenant, plan_id).await.unwrap();
    assert_eq!(
        (stats.chains_total, stats.chains_done, stats.marking_pass),
        (1, 1, 0)
    );

    // Pass 1: a chain of its own on the same step, at its first page again.
    assert!(
        s.start_marking(tenant, plan_id, 1, &[start(1, 50)], at)
            .await
            .unwrap()
    );
    assert!(
        !s.start_marking(tenant, plan_id, 1, &[start(1, 50)], at)
            .await
            .unwrap()
    );
    let chains = s.list_chains(tenant, plan_id).await.unwrap();
    assert_eq!(chains.len(), 2);
    let second = chains.iter().find(|c| c.pass == 1).expect("pass 1 chain");
    assert_eq!(
        (second.percent, second.done, second.cursor.clone()),
        (50, false, None)
    );
    let stats = s.get_plan_stats(tenant, plan_id).await.unwrap();
    assert_eq!(
        (stats.chains_total, stats.chains_done, stats.marking_pass),
        (2, 1, 1)
    );
    // A pass-0 page replayed never moves the pass-1 chain.
    assert!(!s.record_marking_page(&page(0, "a")).await.unwrap());
    assert!(s.record_marking_page(&page(1, "p1#a")).await.unwrap());
    let stats = s.get_plan_stats(tenant, plan_id).await.unwrap();
    assert_eq!((stats.chains_done, stats.sessions_marked), (2, 4));
    // Claiming is per pass too: the pass-1 chain is done, the claim fails.
    let key = ChainKey {
        step_id: step,
        shard: 0,
        pass: 1,
    };
    assert!(!s.claim_chain(tenant, plan_id, key, at, at).await.unwrap());
    // An earlier pass never restarts.
    assert!(
        !s.start_marking(tenant, plan_id, 0, &[start(0, 10)], at)
            .await
            .unwrap()
    );
}

/// An outcome report counts once per session and plan, against the plan that
/// last migrated the session, and only within the window.
pub async fn outcome_reports_count_once_against_the_migrating_plan(s: Arc<dyn Store>) {
    use std::collections::BTreeMap;

    use planning::MigrationScenario;
    use store::{
        AppliedMigration, OutcomeRecorded, OutcomeReport, SessionChange, SessionExpectation,
    };

    let tenant = Uuid::new_v4();
    let (sid, plan_id, step) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let migrated_at = t0() + Duration::hours(3);
    for id in ["ok-1", "bad-1", "never"] {
        let mut x = session(tenant, id, sid, 1, step);
        if id != "never" {
            x.pending_migration = Some(pending(plan_id, step));
        }
        s.put_session(&x).await.expect("put");
    }
    for id in ["ok-1", "bad-1"] {
        let applied = SessionChange {
            tenant,
            session_id: id.into(),
            expect: SessionExpectation::FlaggedBy(plan_id),
            expected_revision: 0,
            new_position: None,
            pin_version: None,
            clear_flag: true,
            set_variables: BTreeMap::new(),
            at: migrated_at,
            applied: Some(AppliedMigration {
                event: event(
                    tenant,
                    plan_id,
                    id,
                    migrated_at,
                    MigrationScenario::CleanGraft,
                    false,
                ),
                was_flagged: true,
            }),
            require_applying: Vec::new(),
            expect_head: None,
        };
        assert!(s.apply_session_change(&applied).await.expect("apply"));
    }
    let report = |id: &str, ok: bool, window_start| OutcomeReport {
        tenant,
        session_id: id.into(),
        ok,
        window_start,
        at: migrated_at + Duration::hours(1),
    };
    let window = migrated_at - Duration::hours(72);
    // Reports racing each other: one counts, the rest find it reported.
    let mut racers = Vec::new();
    for _ in 0..4 {
        let (s, r) = (Arc::clone(&s), report("bad-1", false, window));
        racers.push(tokio::spawn(async move { s.report_outcome(&r).await }));
    }
    let mut counted = 0;
    for racer in racers {
        match racer.await.expect("join").expect("report") {
            OutcomeRecorded::Counted { plan_id: p } => {
                assert_eq!(p, plan_id);
                counted += 1;
            }
            OutcomeRecorded::AlreadyReported { plan_id: p } => assert_eq!(p, plan_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counted, 1);
    assert_eq!(
        s.report_outcome(&report("ok-1", true, window))
            .await
            .unwrap(),
        OutcomeRecorded::Counted { plan_id }
    );
    // Outside the window, or never migrated: nothing to count.
    let late = migrated_at + Duration::minutes(1);
    assert_eq!(
        s.report_outcome(&report("ok-1", false, late))
            .await
            .unwrap(),
        OutcomeRecorded::NoRecentMigration
    );
    assert_eq!(
        s.report_outcome(&report("never", false, window))
            .await
            .unwrap(),
        OutcomeRecorded::NoRecentMigration
    );
    // Another tenant sees no migration of these sessions.
    let mut foreign = report("ok-1", false, window);
    foreign.tenant = Uuid::new_v4();
    assert_eq!(
        s.report_outcome(&foreign).await.unwrap(),
        OutcomeRecorded::NoRecentMigration
    );
    let stats = s.get_plan_stats(tenant, plan_id).await.unwrap();
    assert_eq!((stats.reported_outcomes, stats.reported_failures), (2, 1));
}

/// A withdrawal clears only its plan's flags, and a repeat of the same page
/// (a lost answer, a redelivery) recognises its own clearing — also after a
/// runtime write came in between.
pub async fn withdrawn_flags_clear_once(s: Arc<dyn Store>) {
    use store::{SessionPrecondition, SessionUnmark};

    let tenant = Uuid::new_v4();
    let (sid, plan_id, other, step) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let mut ours = session(tenant, "ours", sid, 1, step);
    ours.pending_migration = Some(pending(plan_id, step));
    let mut theirs = session(tenant, "theirs", sid, 1, step);
    theirs.pending_migration = Some(pending(other, step));
    for x in [&ours, &theirs] {
        s.put_session(x).await.expect("put");
    }
    let unmark = |id: &str, unmark_id: &str| SessionUnmark {
        session_id: id.into(),
        plan_id,
        unmark_id: unmark_id.into(),
    };
    let page = [
        unmark("ours", "page-a"),
        unmark("theirs", "page-a"),
        unmark("nobody", "page-a"),
    ];
    assert_eq!(
        s.unmark_sessions(tenant, &page, 4).await.unwrap(),
        vec![true, false, false]
    );
    let cleared = s.get_session(tenant, "ours").await.unwrap().unwrap();
    assert_eq!(cleared.pending_migration, None);
    assert_eq!(cleared.revision, ours.revision + 1);
    let kept = s.get_session(tenant, "theirs").await.unwrap().unwrap();
    assert_eq!(
        kept.pending_migration, theirs.pending_migration,
        "another plan's flag stays"
    );
    // The runtime writes the session; the same page again still counts its
    // clearing, another page does not.
    s.write_session(&runtime_write(&cleared, SessionPrecondition::None))
        .await
        .expect("runtime write");
    assert_eq!(
        s.unmark_sessions(tenant, &page[..1], 1).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        s.unmark_sessions(tenant, &[unmark("ours", "page-b")], 1)
            .await
            .unwrap(),
        vec![false]
    );
}

/// A withdrawal may overtake a marking page: the page's flags are cleared,
/// then a delivery of the page that read it before writes its marks. None of
/// them is set again — each still counts as the page's (it did mark it) — while
/// another page's mark flags the session as before.
pub async fn a_page_never_flags_again_what_a_withdrawal_cleared(s: Arc<dyn Store>) {
    use store::{SessionMark, SessionPosition, SessionUnmark};

    let tenant = Uuid::new_v4();
    let (sid, plan_id, step) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for id in ["a", "b"] {
        s.put_session(&session(tenant, id, sid, 1, step))
            .await
            .expect("put");
    }
    let mark = |id: &str, mark_id: &str| SessionMark {
        session_id: id.into(),
        expected: SessionPosition {
            scenario_id: sid,
            version: 1,
            step_id: step,
        },
        pending: pending(plan_id, step),
        mark_id: mark_id.into(),
    };
    let page = [mark("a", "page-1"), mark("b", "page-1")];
    assert_eq!(
        s.mark_sessions(tenant, &page, 2).await.unwrap(),
        vec![true, true]
    );
    let unmark = SessionUnmark {
        session_id: "a".into(),
        plan_id,
        unmark_id: "withdrawal-1".into(),
    };
    assert_eq!(
        s.unmark_sessions(tenant, &[unmark], 1).await.unwrap(),
        vec![true]
    );
    // A late delivery of page-1: both count, only "b" is (still) flagged.
    assert_eq!(
        s.mark_sessions(tenant, &page, 2).await.unwrap(),
        vec![true, true]
    );
    let a = s.get_session(tenant, "a").await.unwrap().unwrap();
    assert_eq!(a.pending_migration, None, "not flagged again");
    let b = s.get_session(tenant, "b").await.unwrap().unwrap();
    assert_eq!(b.pending_migration, Some(pending(plan_id, step)));
    // A runtime write in between changes nothing about it.
    s.write_session(&runtime_write(&a, store::SessionPrecondition::None))
        .await
        .expect("runtime write");
    assert_eq!(
        s.mark_sessions(tenant, &page[..1], 1).await.unwrap(),
        vec![true]
    );
    let a = s.get_session(tenant, "a").await.unwrap().unwrap();
    assert_eq!(
        a.pending_migration, None,
        "not flagged after a runtime write"
    );
    // Another page (another plan's, a later deployment's) marks it.
    assert_eq!(
        s.mark_sessions(tenant, &[mark("a", "page-2")], 1)
            .await
            .unwrap(),
        vec![true]
    );
    let a = s.get_session(tenant, "a").await.unwrap().unwrap();
    assert_eq!(a.pending_migration, Some(pending(plan_id, step)));
}

/// The end of a withdrawal gives the scenario back: a partial rollout's
/// record is dropped; a version that had become current yields to the
/// from-version again.
pub async fn a_finished_withdrawal_gives_the_version_back(s: Arc<dyn Store>) {
    for percent in [10u8, 100] {
        let tenant = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let (p, activation) = approved_v1_to_v2(&s, tenant, sid, percent).await;
        let deploying = s.activate_plan(&activation).await.expect("activate");
        let at = t0() + Duration::hours(3);
        let step = |plan: &MigrationPlan, command: PlanCommand, rollout| PlanTransition {
            tenant,
            plan_id: plan.id,
            expected_revision: plan.revision,
            change: lifecycle_transition(plan.status, command, at).expect("legal"),
            rollout,
        };
        let withdrawing = s
            .transition_plan(&step(&deploying, PlanCommand::Withdraw { pass: 1 }, None))
            .await
            .expect("withdraw");
        assert_eq!(
            (withdrawing.status, withdrawing.rollout_pass),
            (PlanStatus::Withdrawing, 1)
        );
        assert!(
            s.list_deploying(1000)
                .await
                .unwrap()
                .contains(&(tenant, p.id))
        );
        let back = RolloutMove {
            scenario_id: sid,
            from_version: 1,
            to_version: 2,
            percent,
            withdraw: true,
        };
        let withdrawn = s
            .transition_plan(&step(
                &withdrawing,
                PlanCommand::FinishWithdrawing,
                Some(back),
            ))
            .await
            .expect("finish");
        assert_eq!(withdrawn.status, PlanStatus::Withdrawn);
        assert!(
            !s.list_deploying(1000)
                .await
                .unwrap()
                .contains(&(tenant, p.id))
        );
        let head = s.get_scenario_head(tenant, sid).await.unwrap().unwrap();
        assert_eq!(
            (head.current_version, head.rollout),
            (1, None),
            "at {percent}%"
        );
        assert!(
            s.get_scenario_version(tenant, sid, 2)
                .await
                .unwrap()
                .is_some(),
            "V2 stays stored"
        );
    }
}

/// Every status change lands in the plan's history with who asked for it, in
/// the same write as the change; however many pauses and resumes follow, the
/// plan keeps only the newest records, in order.
pub async fn the_history_keeps_each_change_and_who_asked(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (p, activation) = approved_v1_to_v2(&s, tenant, sid, 10).await;
    let mut plan = s.activate_plan(&activation).await.expect("activate");
    let at = t0();
    let step = async |plan: &MigrationPlan, command: PlanCommand, by: &str| {
        let change = lifecycle_transition(plan.status, command, at)
            .expect("legal")
            .by((!by.is_empty()).then(|| by.to_string()));
        s.transition_plan(&PlanTransition {
            tenant,
            plan_id: plan.id,
            expected_revision: plan.revision,
            change,
            rollout: None,
        })
        .await
        .expect("transition")
    };
    plan = step(&plan, PlanCommand::FinishDeploying, "").await;
    plan = step(&plan, PlanCommand::Pause, "bo").await;
    let stored = s.get_plan(tenant, p.id).await.unwrap().unwrap();
    let seen: Vec<_> = stored
        .transitions
        .iter()
        .map(|r| (r.from, r.to, r.revision, r.by.as_deref(), r.percent))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                PlanStatus::Pending,
                PlanStatus::Approved,
                1,
                Some("bob"),
                None
            ),
            (
                PlanStatus::Approved,
                PlanStatus::Deploying,
                2,
                Some("ana"),
                Some(10)
            ),
            (PlanStatus::Deploying, PlanStatus::Deployed, 3, None, None),
            (
                PlanStatus::Deployed,
                PlanStatus::Paused,
                4,
                Some("bo"),
                None
            ),
        ]
    );
    assert_eq!(stored.transitions, plan.transitions, "the write returns it");
    for round in 0..30 {
        let resume = PlanCommand::Resume {
            to: PlanStatus::Deployed,
        };
        plan = step(&plan, resume, &format!("resume {round}")).await;
        plan = step(&plan, PlanCommand::Pause, &format!("pause {round}")).await;
    }
    // The header (what the status routes read) carries it too.
    let header = s.get_plan_header(tenant, p.id).await.unwrap().unwrap();
    assert_eq!(header.transitions.len(), planning::MAX_TRANSITIONS_KEPT);
    let revisions: Vec<u64> = header.transitions.iter().map(|r| r.revision).collect();
    let first = header.revision + 1 - planning::MAX_TRANSITIONS_KEPT as u64;
    assert_eq!(revisions, (first..=header.revision).collect::<Vec<_>>());
    let last = header.transitions.last().unwrap();
    assert_eq!(
        (last.to, last.by.as_deref()),
        (PlanStatus::Paused, Some("pause 29"))
    );
}
