//! Every call of the client, in the order a tenant's life makes them, and the
//! scenarios they publish.

use std::collections::BTreeMap;

use chrono::Utc;
use focal_migrations_client::model::*;
use focal_migrations_client::{
    Client, Decision, DiagramQuery, ErrorBody, ListPlans, Page, Precondition,
};
use serde_json::json;
use uuid::Uuid;

use crate::common::*;

fn step_input(name: &str, id: Uuid, next: Option<Uuid>, collects: &[&str]) -> StepInput {
    StepInput {
        checkpoint_description: None,
        collects_profile_fields: collects.iter().map(|f| f.to_string()).collect(),
        description: Some(format!("{name}, described")),
        id,
        is_checkpoint: false,
        is_entry: false,
        is_required_action: false,
        is_terminal: next.is_none(),
        name: name.into(),
        performs_action: false,
        rule_ids: vec![],
        transitions: next
            .map(|to| TransitionInput {
                condition_fields: vec![],
                condition_text: Some(String::new()),
                priority: 0,
                to_step_id: to,
            })
            .into_iter()
            .collect(),
    }
}

/// V1: Welcome(1) → Collect email(2) → Done(3); V2 inserts Check age(4), collecting `age`.
fn flow(version: i64) -> ScenarioInput {
    let steps = if version == 1 {
        vec![
            step_input("Welcome", step(1), Some(step(2)), &[]),
            step_input("Collect email", step(2), Some(step(3)), &["email"]),
            step_input("Done", step(3), None, &[]),
        ]
    } else {
        vec![
            step_input("Welcome", step(1), Some(step(4)), &[]),
            step_input("Check age", step(4), Some(step(2)), &["age"]),
            step_input("Collect email", step(2), Some(step(3)), &["email"]),
            step_input("Done", step(3), None, &[]),
        ]
    };
    ScenarioInput {
        description: Some("the client's contract flow".into()),
        entry_step_id: step(1),
        name: "Support flow".into(),
        steps,
        version,
    }
}

/// Every call of the client, in the order a tenant's life makes them.
pub(super) async fn call_everything(client: &Client) {
    let health = client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    let served = client.openapi_document().await.expect("openapi");
    assert!(served["paths"].is_object());

    let scenario = Uuid::new_v4();
    client.put_scenario(scenario, &flow(1)).await.expect("v1");
    assert_eq!(
        client
            .get_scenario(scenario)
            .await
            .expect("current")
            .version,
        1
    );
    // No partial rollout: every session starts on the current version.
    assert_eq!(
        client
            .get_scenario_for_session(scenario, "new-session")
            .await
            .expect("for a session")
            .version,
        1
    );
    let v1 = client
        .get_scenario_version(scenario, 1)
        .await
        .expect("version 1");
    assert_eq!(v1.steps.len(), 3);

    let mut waiting = SessionInput::at("whatsapp", scenario, 1, step(2));
    waiting.customer_id = Some("cust-1".into());
    waiting.variables.insert("email".into(), json!("a@b.c"));
    waiting.step_history.push(StepVisit {
        checkpoint_description: None,
        is_checkpoint: false,
        step_id: step(1),
        step_name: Some("Welcome".into()),
        visited_at: Utc::now(),
    });
    let created = client.create_session("c-1", &waiting).await.expect("c-1");
    assert_eq!(created.revision, Some(1));
    client
        .put_session(
            "c-2",
            &SessionInput::at("web", scenario, 1, step(3)),
            Precondition::None,
        )
        .await
        .expect("c-2");
    let updated = client
        .update_session("c-1", |s| {
            s.variables.insert("nickname".into(), json!("Al"));
        })
        .await
        .expect("read-modify-write");
    assert_eq!(updated.revision, Some(2));
    let read = client.get_session("c-1").await.expect("c-1 read");
    assert_eq!(read.value.variables["nickname"], json!("Al"));
    let missing = client.get_session("nobody").await.expect_err("404");
    assert!(missing.is_not_found());
    let invalid = client
        .reconcile_on_message("not a valid id!", &BTreeMap::new())
        .await
        .expect_err("422");
    assert!(
        matches!(
            invalid,
            focal_migrations_client::Error::Status {
                status: 422,
                body: ErrorBody::Validation(_),
                ..
            }
        ),
        "{invalid}"
    );

    let request = GenerateMigrationPlanRequest {
        created_by: Some("contract@example.com".into()),
        new_scenario: flow(2),
    };
    let plan = client.create_plan(scenario, &request).await.expect("plan");
    let listed = client
        .list_plans(&ListPlans {
            scenario_id: Some(scenario),
            status: Some(PlanStatus::Pending),
            limit: Some(10),
            next_token: None,
        })
        .await
        .expect("list");
    assert_eq!(listed.plans.len(), 1);
    assert_eq!(client.get_plan(plan.id).await.expect("plan").id, plan.id);
    let summary = client.get_summary(plan.id).await.expect("summary");
    assert!(summary.total_anchors >= 2);
    let forecast = client.get_forecast(plan.id).await.expect("forecast");
    assert!(forecast.exact);
    let anchors = client
        .get_anchors(
            plan.id,
            &Page {
                limit: Some(10),
                next_token: None,
            },
        )
        .await
        .expect("anchors");
    assert!(!anchors.anchors.is_empty());
    let mut policies = plan.anchor_policies.clone();
    let (_, policy) = policies.iter_mut().next().expect("a policy");
    policy.scope_filter = Some(ScopeFilter {
        include_channels: vec!["whatsapp".into(), "web".into()],
        ..ScopeFilter::default()
    });
    client
        .put_policies(plan.id, &UpdatePoliciesRequest { policies })
        .await
        .expect("policies");
    let diagram = client
        .plan_diagram(
            plan.id,
            &DiagramQuery {
                side: Some(DiagramSide::V2),
                ..DiagramQuery::default()
            },
        )
        .await
        .expect("diagram");
    assert!(diagram.contains("<svg"), "{diagram}");
    client
        .approve_plan(
            plan.id,
            &ApprovePlanRequest {
                approved_by: Some("lead".into()),
            },
        )
        .await
        .expect("approve");
    // With a guard, so that the body is checked against the document too.
    let guard = RolloutGuard {
        max_exit_rate: Some(0.5),
        max_checkpoint_block_rate: None,
        max_reported_failure_rate: None,
        min_sessions: 100,
    };
    let deployed = client
        .deploy_plan_with(
            plan.id,
            &DeployRequest {
                percent: None,
                guard: Some(guard.clone()),
                by: Some("ana".into()),
            },
        )
        .await
        .expect("deploy");
    assert_eq!(deployed.sessions_marked, 2);
    let status = client
        .deployment_status(plan.id)
        .await
        .expect("deployment status");
    assert_eq!(status.status, PlanStatus::Deployed);
    assert_eq!(status.guard, Some(guard));
    let paused = client
        .pause_plan_with(
            plan.id,
            &RolloutCommandRequest {
                by: Some("bo".into()),
            },
        )
        .await
        .expect("pause");
    assert_eq!(paused.status, PlanStatus::Paused);
    let resumed = client.resume_plan(plan.id).await.expect("resume");
    assert_eq!(resumed.status, PlanStatus::Deployed);

    let preview = client
        .reconcile(
            "c-1",
            &ReconcileRequest {
                dry_run: true,
                known_fields: BTreeMap::new(),
            },
        )
        .await
        .expect("dry run");
    assert_eq!(preview.value.action, ReconciliationAction::Collect);
    let asked = client
        .reconcile_on_message("c-1", &BTreeMap::new())
        .await
        .expect("reconcile");
    assert!(matches!(asked.decision, Decision::Collect { ref fields, .. } if fields == &["age"]));
    let known = BTreeMap::from([(
        "age".to_string(),
        KnownField::Candidate {
            value: json!(34),
            source: Some("llm".into()),
            confidence: Some(0.95),
        },
    )]);
    let moved = client
        .reconcile_on_message("c-1", &known)
        .await
        .expect("reconcile with the age");
    assert_eq!(moved.decision, Decision::Continue);
    let events = client
        .get_events(plan.id, &Page::default())
        .await
        .expect("events");
    assert_eq!(events.events.len(), 1);
    // How c-1 fared after its migration: counted once on this plan.
    let failed = OutcomeRequest {
        ok: false,
        reason: Some("abandoned at the new age question".into()),
    };
    let report = client
        .report_outcome("c-1", &failed)
        .await
        .expect("outcome");
    assert!(report.counted, "{report:?}");
    assert_eq!(report.plan_id, Some(plan.id));
    let again = client
        .report_outcome("c-1", &failed)
        .await
        .expect("outcome again");
    assert!(!again.counted, "{again:?}");
    let status = client.deployment_status(plan.id).await.expect("status");
    assert_eq!((status.reported_outcomes, status.reported_failures), (1, 1));
    // Taken back: c-1 migrated and stays, c-2's flag is withdrawn.
    let withdrawn = client
        .withdraw_plan_with(
            plan.id,
            &RolloutCommandRequest {
                by: Some("cy".into()),
            },
        )
        .await
        .expect("withdraw");
    assert_eq!(withdrawn.status, PlanStatus::Withdrawn);
    let status = client.deployment_status(plan.id).await.expect("status");
    assert_eq!((status.migrations_applied, status.flags_withdrawn), (1, 1));
    // The plan's history: every status change, who asked for it, in order.
    let history: Vec<(PlanStatus, Option<String>)> = client
        .get_plan(plan.id)
        .await
        .expect("plan")
        .transitions
        .into_iter()
        .map(|record| (record.to, record.by))
        .collect();
    let named = |name: &str| Some(name.to_string());
    assert_eq!(
        history,
        vec![
            (PlanStatus::Approved, named("lead")),
            (PlanStatus::Deploying, named("ana")),
            (PlanStatus::Deployed, None),
            (PlanStatus::Paused, named("bo")),
            (PlanStatus::Deployed, None),
            (PlanStatus::Withdrawing, named("cy")),
            (PlanStatus::Withdrawn, None),
        ]
    );

    // A second flow, whose plan is rejected.
    let other = Uuid::new_v4();
    client
        .put_scenario(other, &flow(1))
        .await
        .expect("other v1");
    let doomed = client
        .create_plan(other, &request)
        .await
        .expect("other plan");
    let rejected = client
        .reject_plan(
            doomed.id,
            &RejectPlanRequest {
                reason: Some("not now".into()),
                rejected_by: Some("lead".into()),
            },
        )
        .await
        .expect("reject");
    assert_eq!(rejected.status, PlanStatus::Rejected);
}
