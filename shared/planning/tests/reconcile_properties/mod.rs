//! Invariants of the reconcile decision over random scenarios, plans and sessions.
//!
//! Plans here are random too (anchors, scenarios, inserted steps, forks, policies
//! drawn from the real graphs, but not computed by the diff): the decision has to
//! be safe whatever plan it is handed, so a looser plan is a stronger test.
//! Graphs have cycles; histories are random walks through the session's version.

mod generators;
mod world;

use std::collections::BTreeMap;

use proptest::prelude::*;

use planning::model::*;

use world::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No teleport (nor in-place migration) ever lands where the customer would pass
    /// a checkpoint again, across single plans and chains.
    #[test]
    fn no_landing_upstream_of_a_passed_checkpoint(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        check_checkpoints(&world, &d)?;
    }

    /// Same inputs, same decision; applying it and deciding again changes nothing more.
    #[test]
    fn decide_is_deterministic_and_idempotent(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        prop_assert_eq!(&d, &world.decide(&world.session));
        let after = apply(&world.session, &d);
        let again = world.decide(&after);
        if d.result.action == ReconciliationAction::Collect {
            // The flag stays and nothing new is known: the same question again.
            prop_assert_eq!(again.result.action, ReconciliationAction::Collect);
            prop_assert_eq!(&again.result.collect_fields, &d.result.collect_fields);
            prop_assert!(again.set_variables.is_empty());
        } else {
            prop_assert_eq!(again.result.action, ReconciliationAction::Continue, "{:?} then {:?}", d, again);
            prop_assert!(!again.applies_migration);
            if d.writes_session() {
                prop_assert!(!again.writes_session(), "{:?} then {:?}", d, again);
            }
        }
    }

    /// Both invariants again, on plans computed by the real diff.
    #[test]
    fn computed_plans_keep_the_invariants(seed in any::<u64>(), size in 3usize..30, links in 1usize..4) {
        let world = World::generate_computed(seed, size, links);
        let d = world.decide(&world.session);
        check_checkpoints(&world, &d)?;
        prop_assert_eq!(&d, &world.decide(&world.session));
        let again = world.decide(&apply(&world.session, &d));
        if d.result.action != ReconciliationAction::Collect {
            prop_assert_eq!(again.result.action, ReconciliationAction::Continue);
            prop_assert!(!again.applies_migration);
        }
        let final_def = world.current().definition();
        for f in &d.result.collect_fields {
            let needed = final_def.steps.iter().any(|s| {
                s.collects_profile_fields.contains(f)
                    || s.transitions.iter().any(|t| t.condition_fields.contains(f))
            });
            prop_assert!(needed, "asked for {f}, unused in version {}", final_def.version);
        }
    }

    /// A composite migration only asks for fields the final version still uses.
    #[test]
    fn composite_never_asks_for_a_field_the_final_version_does_not_need(seed in any::<u64>(), size in 3usize..30, links in 2usize..5) {
        let world = World::generate(seed, size, links);
        let d = world.decide(&world.session);
        let final_def = world.current().definition();
        for f in &d.result.collect_fields {
            let needed = final_def.steps.iter().any(|s| {
                s.collects_profile_fields.contains(f)
                    || s.transitions.iter().any(|t| t.condition_fields.contains(f))
            });
            prop_assert!(needed, "asked for {f}, unused in version {}", final_def.version);
        }
    }
}

/// The properties above are only as good as the cases they see: make sure the
/// generator reaches every outcome, including moves of customers past checkpoints.
#[test]
fn generated_worlds_reach_every_outcome() {
    let mut by_action: BTreeMap<String, usize> = BTreeMap::new();
    let mut blocked = 0;
    let mut moved_past_checkpoint = 0;
    let mut composite_collect = 0;
    let mut diversions = 0;
    for seed in 0..4000u64 {
        let links = 1 + (seed % 3) as usize;
        let size = 3 + (seed % 25) as usize;
        let world = if seed % 2 == 0 {
            World::generate(seed, size, links)
        } else {
            World::generate_computed(seed, size, links)
        };
        let d = world.decide(&world.session);
        *by_action
            .entry(format!("{:?}", d.result.action))
            .or_default() += 1;
        if d.result.blocked_by_checkpoint {
            blocked += 1;
        }
        if d.new_position.is_some() && world.session.step_history.iter().any(|v| v.is_checkpoint) {
            moved_past_checkpoint += 1;
        }
        if d.result.teleport_reason.as_deref() == Some("re_route") {
            diversions += 1;
        }
        if links > 1 && d.result.action == ReconciliationAction::Collect {
            composite_collect += 1;
        }
    }
    eprintln!(
        "{by_action:?} blocked={blocked} moved_past_checkpoint={moved_past_checkpoint} composite_collect={composite_collect} diversions={diversions}"
    );
    for action in [
        "Continue",
        "Teleport",
        "Collect",
        "ExecuteAction",
        "ExitScenario",
    ] {
        assert!(
            by_action.get(action).copied().unwrap_or(0) >= 10,
            "{action}: {by_action:?}"
        );
    }
    assert!(blocked >= 50, "{blocked}");
    assert!(moved_past_checkpoint >= 50, "{moved_past_checkpoint}");
    assert!(composite_collect >= 20, "{composite_collect}");
    assert!(diversions >= 10, "{diversions}");
}
