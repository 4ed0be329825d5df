//! Properties of edited steps over generated conversations: edits in place never
//! move a session, a waiting session never skips its edited step, a step renamed
//! under a new id is still deleted plus new.

use proptest::prelude::*;
use uuid::Uuid;

use planning::model::*;
use planning::testkit::{self, EditKind, Rng, conversation};

use super::helpers::*;

/// A random walk from the entry: the session's position and history.
fn walk(def: &ScenarioInput, rng: &mut Rng, to: Option<Uuid>) -> (Uuid, Vec<Uuid>) {
    let mut at = def.entry_step_id;
    let mut history = vec![at];
    for _ in 0..rng.below(40) {
        if Some(at) == to {
            break;
        }
        let Some(step) = def.steps.iter().find(|s| s.id == at) else {
            break;
        };
        if step.transitions.is_empty() {
            break;
        }
        at = step.transitions[rng.below(step.transitions.len())].to_step_id;
        history.push(at);
    }
    (at, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// With edits in place only (no structural change), no session moves off its
    /// step: every session stays, is asked for fields, or executes an action, on
    /// the step it is on — whatever the step and however many steps were edited.
    #[test]
    fn an_edit_only_change_never_moves_a_session_off_its_step(
        n in 2usize..60,
        seed in any::<u64>(),
        k in 1usize..6,
        edit_seed in any::<u64>(),
        walk_seed in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let v2 = testkit::edit_in_place(&v1, k, edit_seed);
        let plan = plan_of(&v1, &v2);
        let map = &plan.transformation_map;
        prop_assert!(map.new_node_ids.is_empty());
        prop_assert!(map.deleted_nodes.iter().all(|d| d.edited), "{:?}", map.deleted_nodes);
        let mut rng = Rng::new(walk_seed);
        for _ in 0..4 {
            let (at, history) = walk(&v1, &mut rng, None);
            let d = decide_flagged(&v1, &v2, &plan, at, &history);
            prop_assert!(
                matches!(
                    d.result.action,
                    ReconciliationAction::Continue
                        | ReconciliationAction::Collect
                        | ReconciliationAction::ExecuteAction
                ),
                "{d:?}"
            );
            if let Some(p) = &d.new_position {
                prop_assert_eq!(p.step_id, at, "moved off its step: {:?}", d);
            }
            if let Some(t) = d.result.target_step_id {
                prop_assert_eq!(t, at);
            }
        }
    }

    /// Structural edits plus edits in place: a session waiting at an edited step is
    /// never skipped past it — it lands on it, or a new fork's decision diverts it
    /// (a re-route), or a checkpoint keeps it where it is; never a "deleted step"
    /// relocation, never an exit.
    #[test]
    fn a_session_never_skips_the_edited_step_it_waits_at(
        n in 3usize..70,
        seed in any::<u64>(),
        k in 0usize..6,
        edit_seed in any::<u64>(),
        in_place in 1usize..5,
        walk_seed in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let mut v2 = testkit::edit(&v1, k, edit_seed);
        let mut rng = Rng::new(edit_seed ^ 0xed17);
        for e in 0..in_place {
            testkit::apply_edit(&mut v2, EditKind::EditContent, &mut rng, e);
        }
        let plan = plan_of(&v1, &v2);
        let mut rng = Rng::new(walk_seed);
        for e in plan.transformation_map.edited_steps.clone() {
            let at = e.step.anchor_node_id_v1;
            let (reached, mut history) = walk(&v1, &mut rng, Some(at));
            if reached != at {
                history.push(at);
            }
            let d = decide_flagged(&v1, &v2, &plan, at, &history);
            prop_assert_ne!(d.result.action, ReconciliationAction::ExitScenario, "{:?}", d);
            prop_assert_ne!(d.result.teleport_reason.as_deref(), Some("deleted_step"), "{:?}", d);
            match landed_on(&d) {
                None => prop_assert!(
                    d.result.action == ReconciliationAction::Collect || d.pin_version.is_some(),
                    "{d:?}"
                ),
                Some(step) if step == at => {}
                Some(_) => prop_assert_eq!(
                    d.result.teleport_reason.as_deref(),
                    Some("re_route"),
                    "skipped the edited step: {:?}",
                    d
                ),
            }
        }
    }

    /// A step renamed under a new id (no id match) behaves as before edits were
    /// recognised: deleted (not edited) plus a new step, and its sessions go to its
    /// nearest anchor.
    #[test]
    fn a_step_renamed_with_a_new_id_is_still_deleted_and_new(
        n in 3usize..60,
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let v1 = conversation(n, seed);
        let mut v2 = v1.clone();
        v2.version = 2;
        let mut rng = Rng::new(pick);
        let i = 1 + rng.below(v2.steps.len() - 1);
        let old = v2.steps[i].id;
        let new = rng.uuid();
        v2.steps[i].id = new;
        v2.steps[i].name = format!("{} (renamed)", v2.steps[i].name);
        for st in &mut v2.steps {
            for t in &mut st.transitions {
                if t.to_step_id == old {
                    t.to_step_id = new;
                }
            }
        }
        let plan = plan_of(&v1, &v2);
        let map = &plan.transformation_map;
        prop_assert!(map.edited_steps.is_empty());
        prop_assert_eq!(&map.new_node_ids, &vec![new]);
        prop_assert_eq!(map.deleted_nodes.len(), 1);
        let d = &map.deleted_nodes[0];
        prop_assert!(!d.edited);
        prop_assert_eq!(d.node_id_v1, old);
        prop_assert_eq!(plan.summary.nodes_deleted, 1);
        let decision = decide_flagged(&v1, &v2, &plan, old, &[old]);
        match d.nearest_anchor_id_v2 {
            // A renamed checkpoint the session sits on "no longer exists": pinned.
            Some(_) if decision.result.blocked_by_checkpoint => {
                prop_assert!(decision.pin_version.is_some());
            }
            // The nearest anchor gap-fills the renamed step's own field first.
            Some(_) if decision.result.action == ReconciliationAction::Collect => {}
            Some(target) => {
                prop_assert_eq!(landed_on(&decision), Some(target), "{:?}", decision);
                prop_assert_eq!(decision.result.teleport_reason.as_deref(), Some("deleted_step"));
            }
            None => prop_assert_eq!(decision.result.action, ReconciliationAction::ExitScenario),
        }
    }
}
