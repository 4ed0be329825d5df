//! The staged rollout through the console: deploy at 30%, ramp to 100%,
//! withdraw, prepare the return plan.

use fantoccini::Locator;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use serde_json::{Value, json};
use uuid::Uuid;

use super::driver::*;

/// A staged rollout through the console: the review's slider deploys 30% (the
/// cohort said next to it), the progress page shows the percent and ramps to
/// 100% behind a confirmation naming it, then withdraws the rollout behind a
/// confirmation giving the flagged sessions it clears; the withdrawn banner gives
/// the API's exact `flags_withdrawn`, and "Prepare a return plan" generates the
/// from-version's content as the next version, opened for review.
pub(super) async fn staged_rollout(c: &Page, api: &Api, base: &str) {
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    let staged = Uuid::new_v4();
    api.call(
        put.clone(),
        &format!("/scenarios/{staged}"),
        Some(json!({
            "name": "Staged", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for i in 0..40 {
        api.call(
            put.clone(),
            &format!("/sessions/staged-{i}"),
            Some(json!({
                "channel": "web", "active_scenario_id": staged, "active_scenario_version": 1,
                "active_step_id": step(2), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{staged}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Staged", "version": 2, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                    {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(5)}]},
                    {"id": step(5), "name": "Survey", "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let summary = api
        .call(
            get.clone(),
            &format!("/migration-plans/{plan_id}/summary"),
            None,
        )
        .await;
    let eligible = summary["estimated_sessions_affected"].as_u64().unwrap();
    assert!(eligible >= 20, "{summary}");
    api.call(
        post.clone(),
        &format!("/migration-plans/{plan_id}/approve"),
        None,
    )
    .await;
    let status = || async {
        api.call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await
    };

    // The slider: 100% by default, moved to 30% with the keyboard.
    c.goto(&format!("{base}/console/plans/{plan_id}"))
        .await
        .unwrap();
    wait_text(
        c,
        "#deploy-cohort",
        &format!("100% — ≈ {eligible} of {eligible} eligible sessions"),
    )
    .await;
    c.execute("document.getElementById('deploy-percent').focus();", vec![])
        .await
        .unwrap();
    let mut keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E011}' })
        .then(KeyAction::Up { value: '\u{E011}' });
    for _ in 1..30 {
        keys = keys
            .then(KeyAction::Down { value: '\u{E014}' })
            .then(KeyAction::Up { value: '\u{E014}' });
    }
    c.perform_actions(keys)
        .await
        .expect("Home, then 29 × Right");
    c.release_actions().await.unwrap();
    let cohort = (eligible * 30 + 50) / 100;
    wait_text(
        c,
        "#deploy-cohort",
        &format!("30% — ≈ {cohort} of {eligible} eligible sessions"),
    )
    .await;
    wait_text(c, "#deploy-explain", "marks only that cohort").await;
    screenshot(c, "deploy-percent").await;
    wait_for(c, "#deploy-button").await.click().await.unwrap();
    wait_text(c, "main h1", "Deployment progress").await;
    wait_text(c, ".deploy-status", "deployed").await;
    wait_text(c, "#rollout-percent", "reaches 30% of the sessions").await;
    let partial = status().await;
    assert_eq!(partial["status"], "deployed", "{partial}");
    assert_eq!(partial["percent"], 30, "{partial}");
    let marked_at_30 = partial["sessions_marked"].as_u64().unwrap();
    assert!(marked_at_30 > 0 && marked_at_30 < eligible, "{partial}");
    wait_text(c, "#progress-numbers", "Rollout\n30%").await;
    wait_text(
        c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked_at_30}"),
    )
    .await;
    screenshot(c, "partial").await;
    // The review says how far the plan is rolled out and where to steer it.
    c.goto(&format!("{base}/console/plans/{plan_id}"))
        .await
        .unwrap();
    wait_text(c, "#actions", "rolled out to 30% of the sessions").await;
    wait_for(c, "#actions a[href$=\"/progress\"]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "#rollout-percent", "reaches 30% of the sessions").await;

    // Ramp to 100%, behind a confirmation that names the percent.
    fill(c, "#ramp-percent", "100").await;
    wait_for(c, "#ramp-button").await.click().await.unwrap();
    wait_text(c, "#ramp-says", "Ramping to 100%").await;
    let confirm = wait_text(c, "#ramp-confirm", "ramp to 100%").await;
    assert!(confirm.starts_with("Confirm"), "{confirm}");
    wait_for(c, "#ramp-confirm").await.click().await.unwrap();
    wait_text(c, "#rollout-percent", "every session (100%)").await;
    wait_text(c, ".deploy-status", "deployed").await;
    let full = status().await;
    assert_eq!(full["status"], "deployed", "{full}");
    assert_eq!(full["percent"], 100, "{full}");
    let marked = full["sessions_marked"].as_u64().unwrap();
    assert!(marked > marked_at_30, "{full}");
    wait_text(
        c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked}"),
    )
    .await;
    assert!(
        c.find(Locator::Css("#ramp-button")).await.is_err(),
        "no ramp at 100%"
    );

    // One session migrates before the withdrawal: it stays on V2.
    api.call(
        post.clone(),
        "/sessions/staged-0/reconcile",
        Some(json!({})),
    )
    .await;
    c.goto(&format!("{base}/console/plans/{plan_id}/progress"))
        .await
        .unwrap();
    wait_text(c, "#progress-numbers", "Migrations applied\n1").await;
    let before = status().await;
    let pending = before["migrations_pending"].as_u64().unwrap();
    assert_eq!(pending, marked - 1, "{before}");

    // Withdraw, behind a confirmation giving the flagged sessions it clears.
    wait_for(c, "#withdraw-button").await.click().await.unwrap();
    let says = wait_text(
        c,
        "#withdraw-says",
        &format!("{pending} flagged sessions not yet migrated"),
    )
    .await;
    assert!(
        says.contains("Sessions already migrated stay on the new version"),
        "{says}"
    );
    // Whether the page showed the withdrawing banner on its way (the walk through
    // the queue may end before the first status read after the 202).
    c.execute(
        "window.sawWithdrawing = false; new MutationObserver(() => { if (document.getElementById('withdrawing-banner')) window.sawWithdrawing = true; }).observe(document.getElementById('main'), { childList: true, subtree: true });",
        vec![],
    )
    .await
    .unwrap();
    wait_for(c, "#withdraw-confirm")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, ".deploy-status", "withdrawn").await;
    let saw = c
        .execute("return window.sawWithdrawing;", vec![])
        .await
        .unwrap();
    eprintln!("{}withdrawing banner seen before withdrawn: {saw}", c.shots);
    let withdrawn = status().await;
    assert_eq!(withdrawn["status"], "withdrawn", "{withdrawn}");
    let cleared = withdrawn["flags_withdrawn"].as_u64().unwrap();
    assert_eq!(cleared, pending, "{withdrawn}");
    let banner = wait_text(
        c,
        "#withdrawn-banner",
        &format!("Rollout withdrawn: {cleared} flags cleared"),
    )
    .await;
    assert!(
        banner.contains("Sessions migrated before the withdrawal stay on the new version (1)"),
        "{banner}"
    );
    wait_text(
        c,
        "#progress-numbers",
        &format!("Flags withdrawn\n{cleared}"),
    )
    .await;
    assert!(
        c.find(Locator::Css("#withdraw-button")).await.is_err(),
        "no withdraw once withdrawn"
    );
    screenshot(c, "withdrawn").await;

    // The return plan: V1's content as version 3, an ordinary plan to review.
    wait_for(c, "#return-plan-button")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "Staged: v1 → v3").await;
    wait_text(c, "main h1 .badge", "pending").await;
    let plans = api
        .call(
            get.clone(),
            &format!("/migration-plans?scenario_id={staged}"),
            None,
        )
        .await;
    let back: Vec<&Value> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] != json!(plan_id))
        .collect();
    assert_eq!(back.len(), 1, "{plans}");
    assert_eq!(back[0]["from_version"], 1, "{plans}");
    assert_eq!(back[0]["to_version"], 3, "{plans}");
    assert_eq!(back[0]["status"], "pending", "{plans}");
    let url = c.current_url().await.unwrap();
    assert!(
        url.path().ends_with(&format!(
            "/console/plans/{}",
            back[0]["id"].as_str().unwrap()
        )),
        "{url}"
    );
    // The plans list finds the withdrawn plan by its status.
    c.goto(&format!(
        "{base}/console/plans?scenario_id={staged}&status=withdrawn"
    ))
    .await
    .unwrap();
    let listed = wait_text(c, "#plans-table", "withdrawn").await;
    assert!(!listed.contains("pending"), "{listed}");
    let session = api.call(get, "/sessions/staged-0", None).await;
    assert_eq!(session["active_scenario_version"], 2, "{session}");
}
