//! Rendering tests on small plans and on a 10,000-step one: what each side
//! shows, escaping of user text, refusal of unknown anchors, bounded
//! neighbourhoods. `routing` checks the drawn geometry on generated flows,
//! `scale` the layout's work on 1,000-step ones.

use super::*;
use planning::plan::{SessionCounts, compute_plan};
use planning::{MigrationPlan, PlanStatus};

mod routing;
mod scale;

pub(super) fn id(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}

fn step(n: u32, name: &str, to: &[u32]) -> serde_json::Value {
    serde_json::json!({
        "id": id(n), "name": name,
        "transitions": to.iter().map(|t| serde_json::json!({"to_step_id": id(*t)})).collect::<Vec<_>>(),
    })
}

fn scenario(version: i64, steps: Vec<serde_json::Value>) -> ScenarioInput {
    serde_json::from_value(serde_json::json!({
        "name": "Flow", "version": version, "entry_step_id": id(1), "steps": steps
    }))
    .unwrap()
}

pub(super) fn plan_of(v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
    let c = compute_plan(v1, v2, &SessionCounts::new());
    MigrationPlan {
        id: Uuid::new_v4(),
        tenant_id: Uuid::new_v4(),
        scenario_id: Uuid::new_v4(),
        scenario_name: v1.name.clone(),
        from_version: v1.version,
        to_version: v2.version,
        scenario_checksum_v1: c.scenario_checksum_v1,
        scenario_checksum_v2: c.scenario_checksum_v2,
        transformation_map: c.transformation_map,
        anchor_policies: c.anchor_policies,
        summary: c.summary,
        status: PlanStatus::Pending,
        created_at: chrono::Utc::now(),
        created_by: None,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: None,
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    }
}

fn pair() -> (ScenarioInput, ScenarioInput) {
    let v1 = scenario(
        1,
        vec![
            step(1, "Welcome", &[2]),
            step(2, "Old <script>alert(1)</script> & \"quote\"", &[3]),
            step(3, "Done", &[]),
        ],
    );
    let mut check = step(4, "Check age", &[3, 1]);
    check["collects_profile_fields"] = serde_json::json!(["age"]);
    check["is_checkpoint"] = serde_json::json!(true);
    let v2 = scenario(
        2,
        vec![step(1, "Welcome", &[4]), check, step(3, "Done", &[])],
    );
    (v1, v2)
}

pub(super) fn request(side: Side) -> DiagramRequest<'static> {
    DiagramRequest {
        side,
        anchor: None,
        radius: None,
    }
}

#[test]
fn v2_marks_inserted_steps_checkpoints_and_colours_anchors() {
    let (v1, v2) = pair();
    let plan = plan_of(&v1, &v2);
    let svg = render(&plan, &v1, &v2, &request(Side::V2), &BTreeMap::new()).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains(r#"data-kind="inserted""#), "{svg}");
    assert!(svg.contains("+ Check age"));
    assert!(svg.contains("⚑ checkpoint"));
    assert!(svg.contains(r#"data-kind="clean_graft""#) || svg.contains(r#"data-kind="re_route""#));
    assert!(svg.contains("data-anchor=\""));
    // Check age → Welcome loops back up the flow: drawn dashed.
    assert!(svg.contains(r#"stroke-dasharray="5 4""#));
}

#[test]
fn v1_marks_deleted_steps_with_their_live_counts_and_escapes_names() {
    let (v1, v2) = pair();
    let plan = plan_of(&v1, &v2);
    let counts = BTreeMap::from([(id(2), 7)]);
    let svg = render(&plan, &v1, &v2, &request(Side::V1), &counts).unwrap();
    assert!(svg.contains(r#"data-kind="deleted""#), "{svg}");
    assert!(svg.contains("7 sessions"));
    assert!(!svg.contains("<script>"), "unescaped user text: {svg}");
    assert!(svg.contains("&lt;script&gt;"));
    assert!(svg.contains("&amp; &quot;quote&quot;"));
}

#[test]
fn unknown_anchor_is_refused() {
    let (v1, v2) = pair();
    let plan = plan_of(&v1, &v2);
    let request = DiagramRequest {
        side: Side::V2,
        anchor: Some("nope"),
        radius: Some(2),
    };
    assert_eq!(
        render(&plan, &v1, &v2, &request, &BTreeMap::new()),
        Err(DiagramError::UnknownAnchor)
    );
}

/// 10,000 steps: only the neighbourhood of the chosen anchor is drawn.
#[test]
fn large_scenarios_draw_a_bounded_neighbourhood() {
    let n = 10_000;
    let steps = |renamed: u32| {
        (1..=n)
            .map(|i| {
                let name = if i == renamed {
                    format!("Step {i} edited")
                } else {
                    format!("Step {i}")
                };
                let to: Vec<u32> = if i < n { vec![i + 1] } else { vec![] };
                step(i, &name, &to)
            })
            .collect::<Vec<_>>()
    };
    let v1 = scenario(1, steps(0));
    let v2 = scenario(2, steps(5_000));
    let plan = plan_of(&v1, &v2);
    let anchor = plan
        .transformation_map
        .anchors
        .iter()
        .find(|a| a.anchor_name == "Step 4000")
        .unwrap()
        .anchor_content_hash
        .clone();
    let request = DiagramRequest {
        side: Side::V2,
        anchor: Some(&anchor),
        radius: Some(4),
    };
    let svg = render(&plan, &v1, &v2, &request, &BTreeMap::new()).unwrap();
    assert_eq!(
        svg.matches("<g class=\"step\"").count(),
        9,
        "4 either side + itself"
    );
    assert!(svg.contains("Step 3996") && svg.contains("Step 4004"));
    assert!(!svg.contains(">Step 3995<") && !svg.contains(">Step 4005<"));
    assert!(svg.contains("9 of 10000 steps within 4 transitions"));
    // No anchor named: the entry's neighbourhood, capped.
    let whole = render(&plan, &v1, &v2, &request_with_radius(25), &BTreeMap::new()).unwrap();
    let drawn = whole.matches("<g class=\"step\"").count();
    assert!(drawn <= MAX_NODES && drawn > 0, "{drawn}");
}

fn request_with_radius(radius: u32) -> DiagramRequest<'static> {
    DiagramRequest {
        side: Side::V1,
        anchor: None,
        radius: Some(radius),
    }
}
