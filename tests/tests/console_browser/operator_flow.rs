//! The operator flow: review, tune, approve, deploy, watch, preview, read the
//! events; then the staged rollout ([`super::staged_rollout`]).

use fantoccini::Locator;
use serde_json::json;
use uuid::Uuid;

use super::driver::*;
use super::staged_rollout::staged_rollout;

/// The whole operator flow in one browser session, against a fresh server at `base`.
pub(super) async fn operator_flow(c: Page, base: &str) {
    // ----- seed through the public API ------------------------------------------
    let api = Api {
        base: base.to_string(),
        tenant: Uuid::new_v4(),
        http: reqwest::Client::new(),
    };
    let scenario = Uuid::new_v4();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    api.call(
        put.clone(),
        &format!("/scenarios/{scenario}"),
        Some(json!({
            "name": "Support <flow>", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for (id, at, channel) in [
        ("wa-42", 2, "whatsapp"),
        ("web-7", 2, "web"),
        ("web-8", 1, "web"),
    ] {
        api.call(
            put.clone(),
            &format!("/sessions/{id}"),
            Some(json!({
                "channel": channel, "active_scenario_id": scenario, "active_scenario_version": 1,
                "active_step_id": step(at), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"created_by": "ops@example.com", "new_scenario": {
                "name": "Support <flow>", "version": 2, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(4)}]},
                    {"id": step(4), "name": "Check age", "collects_profile_fields": ["age"], "transitions": [{"to_step_id": step(2)}]},
                    {"id": step(2), "name": "Collect email", "collects_profile_fields": ["email"], "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let plan_id = plan["id"].as_str().unwrap().to_string();

    // ----- the landing page without a tenant asks for one -----------------------
    c.goto(&format!("{base}/")).await.unwrap();
    wait_text(&c, "main", "Enter your tenant ID").await;

    // ----- review, by deep link ----------------------------------------------------
    c.goto(&format!(
        "{base}/console/plans/{plan_id}?tenant={}",
        api.tenant
    ))
    .await
    .unwrap();
    let title = wait_text(&c, "main h1", "v1 → v2").await;
    // The scenario name is user input: shown as text, never as markup.
    assert!(title.contains("Support <flow>"), "{title}");
    wait_text(&c, "main h1 .badge", "pending").await;
    wait_text(&c, "#summary-numbers", "Sessions affected").await;
    wait_for(&c, "#diagram-v1 svg g.step").await;
    wait_for(&c, "#diagram-v2 svg g.step[data-kind=\"inserted\"]").await;
    let v2 = wait_text(&c, "#diagram-v2 svg", "+ Check age").await;
    assert!(
        v2.contains("gap fill") || v2.contains("clean graft"),
        "{v2}"
    );
    wait_text(&c, "#fields", "age").await;
    wait_text(&c, "#anchors-table", "Collect email").await;
    // The forecast, before the Approve button: the two sessions at "Collect
    // email" will be asked their age, the one at "Welcome" goes on.
    wait_text(&c, "#forecast-basis", "revision 1").await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"collect\"] td.num",
        "2",
    )
    .await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"continue\"] td.num",
        "1",
    )
    .await;
    wait_text(&c, "#forecast-fields", "age: 2 sessions").await;
    wait_text(&c, "#forecast-anchors", "Collect email").await;
    let before_approve = c
        .execute(
            "return Boolean(document.getElementById('forecast').compareDocumentPosition(document.getElementById('approve-button')) & Node.DOCUMENT_POSITION_FOLLOWING);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        before_approve,
        json!(true),
        "the forecast comes before the Approve button"
    );
    let review_shot = screenshot(&c, "review").await;

    // Centre the diagrams on an anchor: the neighbourhood is drawn.
    let centre = wait_for(&c, "#anchors-table tbody tr button").await;
    centre.click().await.unwrap();
    wait_text(&c, "#diagram-v2 svg", "within 3 transitions of").await;
    // Keyboard: an anchor of the diagram is a button; Enter centres on it.
    let done = c
        .find(Locator::XPath(
            "//div[@id='diagram-v1']//*[local-name()='g'][@data-anchor][.//*[local-name()='text'][.='Done']]",
        ))
        .await
        .expect("the Done anchor in the V1 diagram");
    assert_eq!(done.attr("role").await.unwrap().as_deref(), Some("button"));
    done.send_keys("\u{E007}")
        .await
        .expect("Enter on the anchor");
    wait_text(&c, "#diagram-v1 svg", "transitions of “Done”").await;

    // ----- policies: a 422 shown next to its fields, then fixed ------------------
    let edit = c
        .find(Locator::XPath(
            "//table[@id='anchors-table']//tr[th[contains(., 'Collect email')]]//button[contains(@class,'edit-policy')]",
        ))
        .await
        .expect("the Edit policy button of Collect email");
    edit.click().await.unwrap();
    wait_for(&c, "#policy-form").await;
    fill(&c, "#f-scope_filter-min_session_age_days", "10").await;
    fill(&c, "#f-scope_filter-max_session_age_days", "5").await;
    fill(
        &c,
        "#f-scope_filter-custom_conditions",
        "variables.age >>> 3",
    )
    .await;
    c.find(Locator::Css("#save-policy"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let min_error = wait_text(
        &c,
        "#f-scope_filter-min_session_age_days-error",
        "must not exceed max_session_age_days",
    )
    .await;
    assert!(!min_error.is_empty());
    wait_text(
        &c,
        "#f-scope_filter-custom_conditions-error",
        "Condition 1:",
    )
    .await;
    let invalid = c
        .find(Locator::Css("#f-scope_filter-min_session_age_days"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    screenshot(&c, "policy-errors").await;

    fill(&c, "#f-scope_filter-min_session_age_days", "").await;
    fill(&c, "#f-scope_filter-max_session_age_days", "").await;
    fill(&c, "#f-scope_filter-custom_conditions", "").await;
    fill(&c, "#f-scope_filter-include_channels", "whatsapp, web").await;
    c.find(Locator::Css("#save-policy"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#messages", "Policy of Collect email saved").await;
    wait_text(&c, "#anchors-table", "channels: whatsapp, web").await;
    // The saved policy is a new plan revision: the forecast is read again.
    wait_text(&c, "#forecast-basis", "revision 2").await;
    wait_text(
        &c,
        "#forecast-actions tr[data-action=\"collect\"] td.num",
        "2",
    )
    .await;
    let stored = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}"),
            None,
        )
        .await;
    let policies = stored["anchor_policies"].as_object().unwrap();
    assert!(
        policies
            .values()
            .any(|p| p["scope_filter"]["include_channels"] == json!(["whatsapp", "web"])),
        "{policies:?}"
    );

    // ----- approve, deploy, watch the progress ----------------------------------------
    fill(&c, "#approved-by", "lead@example.com").await;
    c.find(Locator::Css("#approve-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "main h1 .badge", "approved").await;
    wait_for(&c, "#deploy-button").await.click().await.unwrap();
    wait_text(&c, "main h1", "Deployment progress").await;
    wait_text(&c, ".deploy-status", "deployed").await;
    let status = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(status["status"], "deployed");
    let marked = status["sessions_marked"].as_u64().unwrap();
    assert!(marked >= 1, "{status}");
    wait_text(
        &c,
        "#progress-numbers",
        &format!("Sessions marked\n{marked}"),
    )
    .await;
    let progress_shot = screenshot(&c, "progress").await;

    // ----- pause and resume, each behind a confirmation that gives the count -------------
    // The pause names who asked: the plan's history keeps it.
    fill(&c, "#rollout-by", "ops-ana").await;
    wait_for(&c, "#pause-button").await.click().await.unwrap();
    wait_text(&c, "#pause-says", "stay on their version").await;
    wait_for(&c, "#pause-confirm").await.click().await.unwrap();
    wait_text(&c, ".deploy-status", "paused").await;
    wait_text(&c, "#progress", "Rollout paused").await;
    let paused = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    wait_for(&c, "#resume-button").await.click().await.unwrap();
    wait_text(&c, "#resume-says", "migrate on their next message").await;
    wait_for(&c, "#resume-confirm").await.click().await.unwrap();
    wait_text(&c, ".deploy-status", "deployed").await;
    let resumed = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await;
    assert_eq!(resumed["status"], "deployed", "{resumed}");
    let plan = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}"),
            None,
        )
        .await;
    let paused_record = plan["transitions"]
        .as_array()
        .and_then(|records| records.iter().find(|r| r["to"] == "paused"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(paused_record["by"], "ops-ana", "{plan}");
    c.goto(&format!("{base}/console/plans/{plan_id}"))
        .await
        .unwrap();
    wait_text(&c, "#history", "deployed → paused").await;
    wait_text(&c, "#history", "ops-ana").await;

    // ----- session preview: what reconcile would do, nothing written ------------------
    let before = api
        .call(reqwest::Method::GET, "/sessions/wa-42", None)
        .await;
    c.goto(&format!("{base}/console/preview?session_id=wa-42"))
        .await
        .unwrap();
    let action = wait_text(&c, "#preview-action", "collect").await;
    assert_eq!(action, "collect");
    let answer = wait_text(&c, "#preview-answer", "age").await;
    assert!(answer.contains("gap fill"), "{answer}");
    wait_text(&c, "#preview-result", "Nothing was changed").await;
    wait_text(&c, "#preview-session-now", "Collect email").await;
    screenshot(&c, "preview").await;
    // With the age known, the preview says the session continues on V2.
    fill(&c, "#preview-known", r#"{"age": 34}"#).await;
    c.find(Locator::Css("#preview-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#preview-action", "continue").await;
    let after = api
        .call(reqwest::Method::GET, "/sessions/wa-42", None)
        .await;
    assert_eq!(before, after, "a preview changed the session");
    assert!(after["pending_migration"].is_object());

    // ----- events: a real reconcile, then the page lists it ----------------------------
    api.call(
        post.clone(),
        "/sessions/wa-42/reconcile",
        Some(json!({"known_fields": {"age": 34}})),
    )
    .await;
    c.goto(&format!("{base}/console/plans/{plan_id}/events"))
        .await
        .unwrap();
    let events = wait_text(&c, "#events-table", "wa-42").await;
    assert!(events.contains("v1 → v2"), "{events}");
    c.goto(&format!("{base}/console/plans/{plan_id}/progress"))
        .await
        .unwrap();
    wait_text(&c, "#progress-numbers", "Migrations applied\n1").await;
    // The drain: the migration just applied in this minute's bar, its pace, and the
    // applied line of the samples this page took.
    wait_text(&c, "#drain", "1 flagged session migrated in the last hour").await;
    let bar = wait_for(&c, "#applied-per-minute rect.bar-applied").await;
    assert_eq!(
        bar.attr("data-applied").await.unwrap().as_deref(),
        Some("1")
    );
    let line = wait_for(&c, "#progress-lines polyline.line-applied").await;
    assert_eq!(line.attr("data-last").await.unwrap().as_deref(), Some("1"));
    let pending = api
        .call(
            reqwest::Method::GET,
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await["migrations_pending"]
        .as_u64()
        .unwrap();
    if pending > 0 {
        wait_text(&c, "#drain", "will have migrated by").await;
        // Every session of this test was written today.
        wait_text(&c, "#quiet", &format!("{pending} today, 0 1–6 days ago")).await;
    }

    // ----- a rollout guard halts: the banner with its reason, the figures -----------------
    // A second scenario whose V2 keeps nothing: every migrated session exits.
    let guarded = Uuid::new_v4();
    api.call(
        put.clone(),
        &format!("/scenarios/{guarded}"),
        Some(json!({
            "name": "Guarded", "version": 1, "entry_step_id": step(1),
            "steps": [
                {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(2)}]},
                {"id": step(2), "name": "Middle", "transitions": [{"to_step_id": step(3)}]},
                {"id": step(3), "name": "Done", "is_terminal": true}]
        })),
    )
    .await;
    for i in 0..3 {
        api.call(
            put.clone(),
            &format!("/sessions/guarded-{i}"),
            Some(json!({
                "channel": "web", "active_scenario_id": guarded, "active_scenario_version": 1,
                "active_step_id": step(2), "step_history": [], "variables": {}
            })),
        )
        .await;
    }
    let guarded_plan = api
        .call(
            post.clone(),
            &format!("/scenarios/{guarded}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Guarded", "version": 2, "entry_step_id": step(7),
                "steps": [{"id": step(7), "name": "Brand new", "is_terminal": true}]
            }})),
        )
        .await;
    let guarded_id = guarded_plan["id"].as_str().unwrap().to_string();
    api.call(
        post.clone(),
        &format!("/migration-plans/{guarded_id}/approve"),
        None,
    )
    .await;
    api.call(
        post.clone(),
        &format!("/migration-plans/{guarded_id}/deploy"),
        Some(json!({"guard": {"max_exit_rate": 0.1, "max_reported_failure_rate": 0.9, "min_sessions": 2}})),
    )
    .await;
    for i in 0..2 {
        api.call(
            post.clone(),
            &format!("/sessions/guarded-{i}/reconcile"),
            Some(json!({})),
        )
        .await;
    }
    // The runtime reports one of the two migrated sessions failed: 1 of 2 applied.
    let outcome = api
        .call(
            post.clone(),
            "/sessions/guarded-0/outcome",
            Some(json!({"ok": false, "reason": "customer gave up"})),
        )
        .await;
    assert_eq!(outcome["counted"], true, "{outcome}");
    c.goto(&format!("{base}/console/plans/{guarded_id}/progress"))
        .await
        .unwrap();
    wait_text(&c, ".deploy-status", "halted").await;
    let reported = wait_text(&c, "#reported-outcomes", "1, of which 1 failed").await;
    assert!(reported.contains("1 of 2 applied migrations"), "{reported}");
    let failure_row = wait_text(
        &c,
        "#guard-figures tr:nth-child(2)",
        "Reported failure rate",
    )
    .await;
    assert!(
        failure_row.contains("0.500") && failure_row.contains("0.9"),
        "{failure_row}"
    );
    wait_text(
        &c,
        "#halt-banner",
        "exit rate 1.000 exceeded max_exit_rate 0.1: 2 of 2",
    )
    .await;
    let figures = wait_text(&c, "#guard-figures", "Exit rate").await;
    assert!(
        figures.contains("1.000") && figures.contains("0.1"),
        "{figures}"
    );
    wait_for(&c, "#resume-button").await;
    screenshot(&c, "halted").await;

    // ----- a partial rollout: deploy at 30% with the slider, ramp, withdraw, return plan ---
    staged_rollout(&c, &api, base).await;

    // ----- reject, with a reason ---------------------------------------------------------
    let next = api
        .call(
            post.clone(),
            &format!("/scenarios/{scenario}/migration-plan"),
            Some(json!({"new_scenario": {
                "name": "Support <flow>", "version": 3, "entry_step_id": step(1),
                "steps": [
                    {"id": step(1), "name": "Welcome", "transitions": [{"to_step_id": step(3)}]},
                    {"id": step(3), "name": "Done", "is_terminal": true}]
            }})),
        )
        .await;
    let next_id = next["id"].as_str().unwrap().to_string();
    c.goto(&format!("{base}/console/plans/{next_id}"))
        .await
        .unwrap();
    wait_text(&c, "main h1", "v2 → v3").await;
    wait_for(&c, "#reject-button").await.click().await.unwrap();
    wait_text(&c, "#reject-reason-error", "Give a reason").await;
    fill(&c, "#reject-reason", "Drops the email step <on purpose?>").await;
    wait_for(&c, "#reject-button").await.click().await.unwrap();
    wait_text(&c, "main h1 .badge", "rejected").await;
    wait_text(&c, "main", "Drops the email step <on purpose?>").await;

    // ----- the plans list: per scenario, status filter ---------------------------------
    c.goto(&format!("{base}/console/plans?scenario_id={scenario}"))
        .await
        .unwrap();
    wait_text(&c, "#plans-table", "deployed").await;
    c.find(Locator::Css("#filter-status"))
        .await
        .unwrap()
        .select_by_value("pending")
        .await
        .unwrap();
    c.find(Locator::Css("form[role=search] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#plans-results", "No plans match").await;

    c.client.close().await.unwrap();
    for shot in [review_shot, progress_shot] {
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "{shot:?}");
    }
}
