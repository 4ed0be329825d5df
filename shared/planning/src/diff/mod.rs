//! The graph diff: anchors, the changes around each anchor, the migration
//! scenario of each anchor, deleted and new steps.
//!
//! # Cost
//!
//! A region of an anchor (its upstream or downstream steps) can only differ between
//! the versions because of a *changed element*: a step that exists in one version
//! only, or an anchor whose routing changed. Instead of walking the graph once per
//! anchor, the diff walks it once per changed element and hands the result to the
//! anchors it reaches — an inserted step N is "inserted upstream" of every anchor N
//! reaches, and "inserted downstream" of every anchor that reaches N. The cost is
//! O(changed elements × graph) plus the size of the output.
//!
//! Anchors can also change regions without any new step: an edge added or removed
//! between existing steps makes some anchor reachable from another in one version
//! only ("moved" pairs). Such a pair must run through an anchor `t` whose successors
//! changed; the diff finds the anchors `t` no longer (or newly) reaches, then the
//! exact moved pairs from whichever side is smaller — the anchors upstream of those
//! `t`, or the anchors they lost or gained.
//!
//! Regions are compared by content hash, as they are defined (docs/design.md,
//! "Regions, read literally"): a step is inserted in a region when no step with
//! its hash lies in the other version's region. With
//! unique hashes that is exactly the candidate sets above; for duplicated content the
//! candidates are checked against every step sharing the hash.
//!
//! # Edited steps
//!
//! After pairing by content, a V1 step and a V2 step that are both unpaired and
//! share an id are the same step, *edited* in place. From then on the diff treats
//! the pair exactly like an anchor whose V2 step carries the V1 content hash (its
//! *match key*): it is neither inserted nor removed anywhere, transitions to it
//! compare equal, and it gets regions and a migration scenario of its own. It is
//! reported apart from the anchors (`TransformationMap::edited_steps`), and in the
//! regions of the others as an [`EditedNode`] when it lies in the region in both
//! versions (a step that moved into or out of a region is inserted or removed there,
//! as a moved anchor is). The pairs are kept after the anchors in
//! [`Analysis::anchors`]: index `k >= n_anchors` is edited step `k - n_anchors`.
//!
//! # Output order
//!
//! Anchors, inserted steps, forks and new steps follow the V2 flow order; deleted and
//! removed steps the V1 flow order (see [`crate::graph`]): breadth-first from the entry,
//! then unreachable steps by hash. The output does not depend on the order of the step
//! list.

mod analysis;
mod anchors;
mod attributes;
mod candidates;
mod deleted;
mod regions;
mod transitions;

use std::collections::HashSet;

use crate::graph::{Graph, ReachCache};
use crate::model::{ScenarioInput, TransformationMap};

pub(crate) use analysis::Analysis;
pub use analysis::{AmbiguousGroup, DiffOutput, MAX_REGION_ENTRIES, TRUNCATED_REGION_ITEMS};

use anchors::{edited_key, edited_pairs, pair_anchors};
use attributes::edited_node;
use candidates::Candidates;

/// The diff of `v1` (current) against `v2` (proposed). Never panics, whatever
/// the input; on invalid input (dangling transitions, repeated ids) the result is
/// still well-formed but only meaningful for the valid part.
pub fn diff_scenarios(v1: &ScenarioInput, v2: &ScenarioInput) -> DiffOutput {
    Analysis::new(v1, v2).output
}

impl<'a> Analysis<'a> {
    pub fn new(v1: &'a ScenarioInput, v2: &'a ScenarioInput) -> Self {
        Self::with_budget(v1, v2, MAX_REGION_ENTRIES)
    }

    /// [`Analysis::new`] with another region-entry budget (tests use a small one).
    pub fn with_budget(v1: &'a ScenarioInput, v2: &'a ScenarioInput, budget: usize) -> Self {
        let g1 = Graph::new(v1);
        let mut g2 = Graph::new(v2);
        let (mut anchors, mut ambiguous_groups) = pair_anchors(&g1, &g2);
        anchors.sort_by_key(|&(_, j)| g2.rank[j as usize]);
        let n_anchors = anchors.len();
        let mut edited = edited_pairs(&g1, &g2, &anchors);
        edited.sort_by_key(|&(_, j)| g2.rank[j as usize]);
        let mut edited_keys = Vec::with_capacity(edited.len());
        let mut edited_nodes = Vec::with_capacity(edited.len());
        if !edited.is_empty() {
            for &(i, j) in &edited {
                edited_keys.push(edited_key(&g1, &g2, j));
                edited_nodes.push(edited_node(g1.step(i), g2.step(j)));
            }
            let e1: HashSet<u32> = edited.iter().map(|&(i, _)| i).collect();
            let e2: HashSet<u32> = edited.iter().map(|&(_, j)| j).collect();
            for (l1, l2) in &mut ambiguous_groups {
                l1.retain(|i| !e1.contains(i));
                l2.retain(|j| !e2.contains(j));
            }
            ambiguous_groups.retain(|(l1, l2)| !l1.is_empty() && !l2.is_empty());
            let rekeyed: Vec<(u32, u64)> = edited
                .iter()
                .map(|&(i, j)| (j, g1.keys[i as usize]))
                .collect();
            g2.rekey(&rekeyed);
        }
        anchors.extend(edited);

        let mut anchor_of_v1 = vec![None; g1.len()];
        let mut anchor_of_v2 = vec![None; g2.len()];
        for (k, &(i, j)) in anchors.iter().enumerate() {
            anchor_of_v1[i as usize] = Some(k as u32);
            anchor_of_v2[j as usize] = Some(k as u32);
        }

        let mut analysis = Analysis {
            g1,
            g2,
            anchors,
            anchor_of_v1,
            anchor_of_v2,
            n_anchors,
            edited_keys,
            edited_nodes,
            reroute_forks: Vec::new(),
            budget,
            reach1: ReachCache::default(),
            reach2: ReachCache::default(),
            output: DiffOutput {
                transformation_map: TransformationMap::default(),
                ambiguous: Vec::new(),
                unreachable_v2_step_ids: Vec::new(),
                truncated_anchors: 0,
                omitted_region_entries: 0,
            },
        };
        analysis.output.ambiguous = ambiguous_groups
            .iter()
            .map(|(i1, i2)| AmbiguousGroup {
                content_hash: i1
                    .first()
                    .map(|&i| analysis.g1.hashes[i as usize].clone())
                    .unwrap_or_default(),
                step_name: i1
                    .first()
                    .map(|&i| analysis.g1.step(i).name.clone())
                    .unwrap_or_default(),
                v1_step_ids: i1.iter().map(|&i| analysis.g1.step(i).id).collect(),
                v2_step_ids: i2.iter().map(|&j| analysis.g2.step(j).id).collect(),
            })
            .collect();
        analysis.compute();
        analysis
    }

    fn compute(&mut self) {
        let n_anchors = self.anchor_count();
        let mut cand = vec![Candidates::default(); n_anchors];

        self.moved_pairs(&mut cand);
        self.unpaired_steps(&mut cand);
        self.edited_in_regions(&mut cand);
        self.filter_by_hash(&mut cand);
        let changes = self.routing_changes(&mut cand);
        self.assemble(cand, &changes);
        self.deleted_and_new();
    }
}

#[cfg(test)]
mod tests;
