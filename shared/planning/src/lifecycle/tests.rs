//! The lifecycle's transitions, refusals and the history they record.

use super::*;
use crate::model::{MAX_ACTOR_CHARS, MAX_TRANSITIONS_KEPT};

const ALL: [PlanStatus; 11] = [
    PlanStatus::Pending,
    PlanStatus::Approved,
    PlanStatus::Deploying,
    PlanStatus::Deployed,
    PlanStatus::Paused,
    PlanStatus::Halted,
    PlanStatus::Withdrawing,
    PlanStatus::Withdrawn,
    PlanStatus::Rejected,
    PlanStatus::Superseded,
    PlanStatus::Expired,
];

fn commands() -> Vec<PlanCommand> {
    vec![
        PlanCommand::Approve {
            by: Some("ana".into()),
        },
        PlanCommand::Reject {
            by: None,
            reason: Some("no".into()),
        },
        PlanCommand::Deploy,
        PlanCommand::FinishDeploying,
        PlanCommand::Supersede,
        PlanCommand::Expire,
        PlanCommand::Pause,
        PlanCommand::Halt {
            reason: "exit rate".into(),
        },
        PlanCommand::Resume {
            to: PlanStatus::Deploying,
        },
        PlanCommand::Resume {
            to: PlanStatus::Deployed,
        },
        // Never a legal target: refused whatever the status.
        PlanCommand::Resume {
            to: PlanStatus::Approved,
        },
        PlanCommand::Ramp {
            percent: 50,
            pass: 1,
        },
        PlanCommand::Withdraw { pass: 1 },
        PlanCommand::FinishWithdrawing,
    ]
}

fn plan_in(status: PlanStatus) -> MigrationPlan {
    MigrationPlan {
        id: crate::testkit::uuid_n(1),
        tenant_id: crate::testkit::uuid_n(2),
        scenario_id: crate::testkit::uuid_n(3),
        scenario_name: "Onboarding".into(),
        from_version: 1,
        to_version: 2,
        scenario_checksum_v1: "a".into(),
        scenario_checksum_v2: "b".into(),
        transformation_map: Default::default(),
        anchor_policies: Default::default(),
        summary: Default::default(),
        status,
        created_at: now(),
        created_by: None,
        // A stale approver that an approval without one must remove.
        approved_at: None,
        approved_by: Some("someone earlier".into()),
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: None,
        paused_from: matches!(status, PlanStatus::Paused | PlanStatus::Halted)
            .then_some(PlanStatus::Deployed),
        guard: None,
        halt_reason: (status == PlanStatus::Halted).then(|| "exit rate".to_owned()),
        percent: Some(10),
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 4,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The whole table: every (status, command) pair is either the one legal
/// edge of the diagram above or refused.
#[test]
fn only_the_diagrams_edges_are_legal() {
    use PlanStatus::*;
    let legal = [
        (Pending, Approved),
        (Pending, Rejected),
        (Pending, Superseded),
        (Pending, Expired),
        (Approved, Deploying),
        (Approved, Superseded),
        (Approved, Expired),
        (Deploying, Deployed),
        (Deploying, Paused),
        (Deployed, Paused),
        (Paused, Deploying),
        (Paused, Deployed),
        (Deploying, Halted),
        (Deployed, Halted),
        (Halted, Deploying),
        (Halted, Deployed),
        (Deployed, Deploying),
        (Deploying, Withdrawing),
        (Deployed, Withdrawing),
        (Paused, Withdrawing),
        (Halted, Withdrawing),
        (Withdrawing, Withdrawn),
    ];
    let mut seen = Vec::new();
    for status in ALL {
        for command in commands() {
            match transition(status, command.clone(), now()) {
                Ok(change) => {
                    assert_eq!(change.from, status);
                    seen.push((status, change.to));
                }
                Err(e) => assert_eq!(e.status, status, "{command:?}"),
            }
        }
    }
    assert_eq!(seen.len(), legal.len(), "{seen:?}");
    for edge in legal {
        assert!(seen.contains(&edge), "{edge:?} missing from {seen:?}");
    }
    // Terminal states accept nothing; a deployed plan only pauses or ramps.
    for status in [Rejected, Superseded, Expired, Withdrawn] {
        assert!(seen.iter().all(|(from, _)| *from != status));
    }
    assert!(
        seen.iter().all(|(from, to)| *from != Deployed
            || matches!(to, Paused | Halted | Deploying | Withdrawing))
    );
}

#[test]
fn refusals_say_what_the_plan_is_and_what_was_needed() {
    let e = transition(
        PlanStatus::Approved,
        PlanCommand::Approve { by: None },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Plan is approved; only pending plans can be approved"
    );
    let e = transition(PlanStatus::Pending, PlanCommand::Deploy, now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Plan is pending; only approved plans can be deployed"
    );
    let e = check(PlanStatus::Deploying, &PlanCommand::EditPolicies).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Plan is deploying; only pending plans can be edited"
    );
    assert!(check(PlanStatus::Pending, &PlanCommand::EditPolicies).is_ok());
    assert!(transition(PlanStatus::Pending, PlanCommand::EditPolicies, now()).is_err());
}

/// `apply` and `stamped_fields` describe the same writes: a backend that
/// writes fields by name ends where one that applies in memory does.
#[test]
fn apply_and_stamped_fields_agree() {
    for (status, command) in [
        (
            PlanStatus::Pending,
            PlanCommand::Approve {
                by: Some("ana".into()),
            },
        ),
        (PlanStatus::Pending, PlanCommand::Approve { by: None }),
        (
            PlanStatus::Pending,
            PlanCommand::Reject {
                by: Some("bo".into()),
                reason: None,
            },
        ),
        (PlanStatus::Deploying, PlanCommand::FinishDeploying),
        (PlanStatus::Approved, PlanCommand::Expire),
        (PlanStatus::Deploying, PlanCommand::Pause),
        (
            PlanStatus::Deployed,
            PlanCommand::Halt {
                reason: "exit rate 0.3".into(),
            },
        ),
        (
            PlanStatus::Halted,
            PlanCommand::Resume {
                to: PlanStatus::Deployed,
            },
        ),
        (
            PlanStatus::Paused,
            PlanCommand::Resume {
                to: PlanStatus::Deployed,
            },
        ),
        (
            PlanStatus::Deployed,
            PlanCommand::Ramp {
                percent: 50,
                pass: 1,
            },
        ),
        (PlanStatus::Halted, PlanCommand::Withdraw { pass: 2 }),
        (PlanStatus::Withdrawing, PlanCommand::FinishWithdrawing),
    ] {
        let change = transition(status, command, now()).unwrap();
        let mut plan = plan_in(status);
        let before = serde_json::to_value(&plan).unwrap();
        change.apply(&mut plan);
        let after = serde_json::to_value(&plan).unwrap();
        assert_eq!(after["status"], change.to.as_str());
        assert_eq!(after["revision"], before["revision"].as_u64().unwrap() + 1);
        // The history is written whole by every backend (it needs the
        // records before it), not by name.
        let record = change.record(plan.revision);
        assert_eq!(plan.transitions, vec![record]);
        let mut by_name = before.clone();
        by_name["status"] = after["status"].clone();
        by_name["revision"] = after["revision"].clone();
        by_name["transitions"] = after["transitions"].clone();
        for field in change.stamped_fields() {
            by_name[field.name] = match field.value {
                Some(StampValue::Time(t)) => serde_json::to_value(t).unwrap(),
                Some(StampValue::Text(s)) => serde_json::Value::String(s),
                Some(StampValue::Number(n)) => serde_json::Value::from(n),
                None => serde_json::Value::Null,
            };
        }
        assert_eq!(by_name, after, "{change:?}");
    }
}

#[test]
fn only_leaving_the_live_states_frees_the_version_pair() {
    let t = now();
    let deploy = transition(PlanStatus::Approved, PlanCommand::Deploy, t).unwrap();
    assert!(!deploy.frees_version_pair() && !deploy.leaves_deploying());
    let finish = transition(PlanStatus::Deploying, PlanCommand::FinishDeploying, t).unwrap();
    assert!(!finish.frees_version_pair() && finish.leaves_deploying());
    let reject = transition(
        PlanStatus::Pending,
        PlanCommand::Reject {
            by: None,
            reason: None,
        },
        t,
    )
    .unwrap();
    assert!(reject.frees_version_pair());
    let expire = transition(PlanStatus::Approved, PlanCommand::Expire, t).unwrap();
    assert!(expire.frees_version_pair());
}

#[test]
fn the_history_names_the_actor_the_halt_reason_and_the_ramp() {
    let t = now();
    let approve = transition(
        PlanStatus::Pending,
        PlanCommand::Approve {
            by: Some("ana".into()),
        },
        t,
    )
    .unwrap();
    assert_eq!(approve.record(2).by.as_deref(), Some("ana"));
    // `by` on a command that names no actor; an approval keeps its own.
    let pause = transition(PlanStatus::Deployed, PlanCommand::Pause, t)
        .unwrap()
        .by(Some("bo".into()));
    assert_eq!(pause.record(5).by.as_deref(), Some("bo"));
    assert_eq!(
        approve.clone().by(None).record(2).by.as_deref(),
        Some("ana")
    );
    let halt = transition(
        PlanStatus::Deployed,
        PlanCommand::Halt {
            reason: "exit rate 0.30 > 0.05".into(),
        },
        t,
    )
    .unwrap();
    let record = halt.record(7);
    assert_eq!(
        (record.by, record.reason.as_deref(), record.revision),
        (None, Some("exit rate 0.30 > 0.05"), 7)
    );
    let ramp = transition(
        PlanStatus::Deployed,
        PlanCommand::Ramp {
            percent: 40,
            pass: 1,
        },
        t,
    )
    .unwrap();
    assert_eq!(ramp.record(9).percent, Some(40));
}

/// However often a rollout is paused and resumed, the plan keeps only the
/// newest records, in order, and no actor longer than the limit.
#[test]
fn the_history_is_bounded_and_keeps_the_newest() {
    let mut plan = plan_in(PlanStatus::Deployed);
    let long_name = "é".repeat(MAX_ACTOR_CHARS + 30);
    for round in 0..40 {
        let pause = transition(plan.status, PlanCommand::Pause, now())
            .unwrap()
            .by(Some(long_name.clone()));
        pause.apply(&mut plan);
        let resume = transition(
            plan.status,
            PlanCommand::Resume {
                to: PlanStatus::Deployed,
            },
            now(),
        )
        .unwrap()
        .by(Some(format!("round {round}")));
        resume.apply(&mut plan);
    }
    assert_eq!(plan.transitions.len(), MAX_TRANSITIONS_KEPT);
    let revisions: Vec<u64> = plan.transitions.iter().map(|r| r.revision).collect();
    let newest = plan.revision;
    let expected: Vec<u64> = (newest + 1 - MAX_TRANSITIONS_KEPT as u64..=newest).collect();
    assert_eq!(revisions, expected);
    let last = plan.transitions.last().unwrap();
    assert_eq!(last.by.as_deref(), Some("round 39"));
    let paused = &plan.transitions[plan.transitions.len() - 2];
    assert_eq!(paused.to, PlanStatus::Paused);
    assert_eq!(paused.by.as_ref().unwrap().chars().count(), MAX_ACTOR_CHARS);
}
