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

mod anchors;
mod attributes;
mod candidates;
mod deleted;
mod regions;
mod transitions;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::graph::{BitSet, Graph, ReachCache};
use crate::model::{EditedNode, ScenarioInput, TransformationMap};

use anchors::{edited_key, edited_pairs, pair_anchors};
use attributes::edited_node;
use candidates::Candidates;

/// Steps with the same content that could not be told apart: not anchors, reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmbiguousGroup {
    pub content_hash: String,
    pub step_name: String,
    pub v1_step_ids: Vec<Uuid>,
    pub v2_step_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffOutput {
    pub transformation_map: TransformationMap,
    /// Duplicated content left unpaired (its V1 steps are deleted nodes, its V2 steps new).
    pub ambiguous: Vec<AmbiguousGroup>,
    /// V2 steps the entry step cannot reach, in V2 flow order.
    pub unreachable_v2_step_ids: Vec<Uuid>,
    /// Anchors whose region lists were cut (see [`MAX_REGION_ENTRIES`]) and how many
    /// entries were left out in all; both 0 for any ordinary edit.
    #[serde(default)]
    pub truncated_anchors: u64,
    #[serde(default)]
    pub omitted_region_entries: u64,
}

/// The diff of `v1` (current) against `v2` (proposed). Never panics, whatever
/// the input; on invalid input (dangling transitions, repeated ids) the result is
/// still well-formed but only meaningful for the valid part.
pub fn diff_scenarios(v1: &ScenarioInput, v2: &ScenarioInput) -> DiffOutput {
    Analysis::new(v1, v2).output
}

/// The diff plus what the plan summary needs to look at the graphs again.
pub(crate) struct Analysis<'a> {
    pub g1: Graph<'a>,
    /// Edited V2 steps carry their V1 step's key (see the module doc).
    pub g2: Graph<'a>,
    /// (V1 index, V2 index), in output order: the anchors, then the edited steps.
    pub anchors: Vec<(u32, u32)>,
    /// How many of `anchors` are real anchors; the rest are edited steps.
    pub n_anchors: usize,
    /// Per edited step: its policy key.
    pub edited_keys: Vec<String>,
    /// Per edited step: how it appears in other regions.
    edited_nodes: Vec<EditedNode>,
    pub anchor_of_v1: Vec<Option<u32>>,
    pub anchor_of_v2: Vec<Option<u32>>,
    /// Per anchor: the upstream new forks (V2 indices) with a branch that cannot reach
    /// the anchor — the reasons for a re-route.
    pub reroute_forks: Vec<Vec<u32>>,
    /// Region entries allowed before lists are cut (see [`MAX_REGION_ENTRIES`]).
    budget: usize,
    pub reach1: ReachCache,
    pub reach2: ReachCache,
    pub output: DiffOutput,
}

/// Above this many region entries in a whole map, each region list is cut to
/// [`TRUNCATED_REGION_ITEMS`]. Regions are exact by definition (every reachable
/// step, compared by content hash), but one realistic edit — a "start over"
/// transition from the end back to the entry — puts every step upstream of every
/// other, and a 10,000-step scenario would then list 10⁸ entries (tens of GB).
/// Migration scenarios are still decided on full regions.
pub const MAX_REGION_ENTRIES: usize = 2_000_000;
pub const TRUNCATED_REGION_ITEMS: usize = 50;

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

    fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    fn v1_of(&self, k: u32) -> u32 {
        self.anchors[k as usize].0
    }

    fn v2_of(&self, k: u32) -> u32 {
        self.anchors[k as usize].1
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

    /// Anchors reached from `set` (a V1 or V2 bitset), as anchor indices.
    fn anchors_in(&self, set: &BitSet, version: u8) -> Vec<u32> {
        let map = if version == 1 {
            &self.anchor_of_v1
        } else {
            &self.anchor_of_v2
        };
        set.iter()
            .filter_map(|s| map.get(s as usize).copied().flatten())
            .collect()
    }

    /// How edited pair `x` (index into `anchors`) appears in other regions.
    fn edited_info(&self, x: u32) -> &EditedNode {
        &self.edited_nodes[x as usize - self.n_anchors]
    }
}

#[cfg(test)]
mod tests;
