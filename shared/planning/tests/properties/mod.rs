//! Property tests of the diff and the plan.
//!
//! Two kinds of input:
//! - conversation-like scenarios from `testkit::conversation` with `k` realistic edits;
//! - arbitrary small graphs: cycles, self-loops, unreachable steps, duplicated content
//!   (names drawn from a small pool), ids shared across versions or not.
//!
//! Besides the plan's invariants, the diff's regions are checked against a
//! brute-force reading of their definition (one BFS per anchor), which the real algorithm
//! avoids for cost reasons.

mod generators;
mod reference;

use std::collections::BTreeSet;

use planning::diff::diff_scenarios;
use planning::model::{MigrationScenario, TransitionChangeType};
use planning::plan::{SessionCounts, compute_plan};
use planning::testkit::conversation;
use proptest::prelude::*;

use generators::*;
use reference::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A scenario diffed against itself: only clean grafts, nothing changed anywhere.
    #[test]
    fn self_diff_gives_clean_grafts_without_changes(
        v in prop_oneof![arb_graph(true, 1), (1usize..120, any::<u64>()).prop_map(|(n, s)| conversation(n, s))]
    ) {
        let out = diff_scenarios(&v, &v);
        prop_assert_eq!(out.transformation_map.anchors.len(), v.steps.len());
        for a in &out.transformation_map.anchors {
            prop_assert_eq!(a.migration_scenario, MigrationScenario::CleanGraft);
            prop_assert!(a.upstream_changes.is_empty(), "{:?}", a.upstream_changes);
            prop_assert!(a.downstream_changes.is_empty(), "{:?}", a.downstream_changes);
            prop_assert_eq!(a.anchor_node_id_v1, a.anchor_node_id_v2);
        }
        prop_assert!(out.transformation_map.deleted_nodes.is_empty());
        prop_assert!(out.transformation_map.new_node_ids.is_empty());
        prop_assert!(out.ambiguous.is_empty());
        let plan = compute_plan(&v, &v, &SessionCounts::new());
        prop_assert_eq!(plan.summary.anchors_with_clean_graft, v.steps.len() as u64);
        prop_assert!(plan.summary.fields_to_collect.is_empty());
    }

    /// Every V1 step is an anchor or deleted, every V2 step an anchor or new, exactly
    /// once; anchors carry their real hash; nearest anchors are real anchors.
    #[test]
    fn every_step_is_accounted_for((v1, v2) in any_valid_pair()) {
        let out = diff_scenarios(&v1, &v2);
        check_coverage(&v1, &v2, &out);
    }

    /// The regions, forks, transition changes and scenarios equal a brute-force reading
    /// of their definition that walks the graph once per anchor.
    #[test]
    fn regions_match_the_brute_force_definition((v1, v2) in any_valid_pair()) {
        let out = diff_scenarios(&v1, &v2);
        check_against_reference(&v1, &v2, &out);
    }

    /// The same input gives byte-identical JSON, also when both step lists are shuffled.
    #[test]
    fn output_is_deterministic_and_ignores_step_list_order(
        (v1, v2) in any_valid_pair(),
        seed in any::<u64>(),
    ) {
        let mut counts = SessionCounts::new();
        for (k, s) in v1.steps.iter().enumerate() {
            counts.insert(s.id, k as u64 % 3);
        }
        let first = serde_json::to_string(&compute_plan(&v1, &v2, &counts)).unwrap();
        let again = serde_json::to_string(&compute_plan(&v1, &v2, &counts)).unwrap();
        prop_assert_eq!(&first, &again);
        let shuffled_plan = compute_plan(&shuffled(&v1, seed), &shuffled(&v2, !seed), &counts);
        let third = serde_json::to_string(&shuffled_plan).unwrap();
        prop_assert_eq!(&first, &third);
    }

    /// Nothing panics on arbitrary graphs — cycles, self-loops, unreachable steps,
    /// duplicated content, and also invalid ones (repeated ids, dangling transitions,
    /// unknown entry) — in the diff, the plan or the renderings.
    #[test]
    fn nothing_panics_on_arbitrary_graphs((v1, v2) in arb_pair(false)) {
        let mut counts = SessionCounts::new();
        for s in &v1.steps {
            counts.insert(s.id, 1);
        }
        let plan = compute_plan(&v1, &v2, &counts);
        let _ = planning::render::text(&plan, &v1, &v2);
        let _ = planning::render::mermaid(&plan, &v2);
        let _ = planning::validate::validate_scenario(&v1);
    }

    /// Summary counters agree with the map, and there is one default policy per hash.
    #[test]
    fn summary_agrees_with_the_map((v1, v2) in any_valid_pair()) {
        let mut counts = SessionCounts::new();
        for (k, s) in v1.steps.iter().enumerate() {
            counts.insert(s.id, 1 + k as u64 % 2);
        }
        let plan = compute_plan(&v1, &v2, &counts);
        let map = &plan.transformation_map;
        let s = &plan.summary;
        prop_assert_eq!(s.total_anchors, map.anchors.len() as u64);
        prop_assert_eq!(
            s.anchors_with_clean_graft + s.anchors_with_gap_fill + s.anchors_with_re_route,
            s.total_anchors
        );
        prop_assert_eq!(s.nodes_deleted, map.deleted_nodes.iter().filter(|d| !d.edited).count() as u64);
        prop_assert_eq!(s.steps_edited, map.edited_steps.len() as u64);
        let hashes: BTreeSet<&String> = map.targets().map(|a| &a.anchor_content_hash).collect();
        let keys: BTreeSet<&String> = plan.anchor_policies.keys().collect();
        prop_assert_eq!(hashes, keys);
        let total: u64 = v1.steps.iter().map(|st| counts[&st.id]).sum();
        prop_assert_eq!(s.estimated_sessions_affected, total);
        let relocated: u64 = map
            .deleted_nodes
            .iter()
            .filter(|d| d.nearest_anchor_hash.is_none())
            .map(|d| counts[&d.node_id_v1])
            .sum();
        prop_assert_eq!(s.sessions_by_anchor.values().sum::<u64>(), total - relocated);
        for t in map.anchors.iter().flat_map(|a| {
            a.upstream_changes.modified_transitions.iter().chain(&a.downstream_changes.modified_transitions)
        }) {
            match t.change_type {
                TransitionChangeType::Added => prop_assert!(t.to_step_id_v1.is_none() && t.to_step_id_v2.is_some()),
                TransitionChangeType::Removed => prop_assert!(t.to_step_id_v1.is_some() && t.to_step_id_v2.is_none()),
                TransitionChangeType::Modified => prop_assert!(t.to_step_id_v1.is_some() && t.to_step_id_v2.is_some()),
            }
        }
    }
}
