//! The graph diff of SPEC §4: anchors, the changes around each anchor, the migration
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
//! Regions are compared by content hash, as the SPEC defines them: a step is inserted
//! in a region when no step with its hash lies in the other version's region. With
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

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::graph::{BitSet, Dir, Graph, ReachCache};
use crate::model::{
    AnchorTransformation, AttributeChange, DeletedNode, EditedNode, EditedStep, ForkBranch,
    InsertedNode, MigrationScenario, NewFork, RegionChanges, ScenarioInput, StepAttribute,
    StepInput, TransformationMap, TransitionChange, TransitionChangeType, TransitionInput,
};

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

/// The SPEC §4 diff of `v1` (current) against `v2` (proposed). Never panics, whatever
/// the input; on invalid input (dangling transitions, repeated ids) the result is
/// still well-formed but only meaningful for the valid part.
pub fn diff_scenarios(v1: &ScenarioInput, v2: &ScenarioInput) -> DiffOutput {
    Analysis::new(v1, v2).output
}

/// Above this many candidate comparisons, duplicated content is not paired by
/// neighbourhood similarity (quadratic) and stays ambiguous.
const MAX_SIMILARITY_PAIRS: usize = 10_000;

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
/// [`TRUNCATED_REGION_ITEMS`]. Regions are exact by definition (SPEC §4), but one
/// realistic edit — a "start over" transition from the end back to the entry — puts
/// every step upstream of every other, and a 10,000-step scenario would then list
/// 10⁸ entries (tens of GB). Migration scenarios are still decided on full regions.
pub const MAX_REGION_ENTRIES: usize = 2_000_000;
pub const TRUNCATED_REGION_ITEMS: usize = 50;

/// A region as step indices, sorted in output order.
struct RegionIdx {
    inserted: Vec<u32>,
    removed: Vec<u32>,
    forks: Vec<u32>,
    /// Anchors whose own transition changes are listed.
    modified: Vec<u32>,
    /// Edited steps (pair indices).
    edited: Vec<u32>,
}

impl RegionIdx {
    fn entries(&self, changes: &[Vec<TransitionChange>]) -> usize {
        self.inserted.len()
            + self.removed.len()
            + self.edited.len()
            + self.forks.len()
            + self
                .modified
                .iter()
                .map(|&x| changes[x as usize].len())
                .sum::<usize>()
    }
}

/// Candidate region entries of one anchor, before the content-hash check.
#[derive(Default, Clone)]
struct Candidates {
    up_inserted: Vec<u32>,
    up_removed: Vec<u32>,
    down_inserted: Vec<u32>,
    down_removed: Vec<u32>,
    up_forks: Vec<u32>,
    down_forks: Vec<u32>,
    /// Anchors whose transition changes belong to this region.
    up_modified: Vec<u32>,
    down_modified: Vec<u32>,
    /// Edited steps (pair indices) in the region in both versions.
    up_edited: Vec<u32>,
    down_edited: Vec<u32>,
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

    /// Whether anchor `k` has other successors in V2 than in V1, comparing anchors by
    /// anchor index and other steps by their own index (offset per version so that a
    /// V1-only step never equals a V2-only one). `s1`, `s2` are scratch buffers.
    fn successors_changed(&self, k: u32, s1: &mut Vec<u64>, s2: &mut Vec<u64>) -> bool {
        const ONLY_V1: u64 = 1 << 32;
        const ONLY_V2: u64 = 1 << 33;
        let (i, j) = self.anchors[k as usize];
        s1.clear();
        s1.extend(self.g1.succ[i as usize].iter().map(|&(v, _)| {
            match self.anchor_of_v1[v as usize] {
                Some(m) => u64::from(m),
                None => ONLY_V1 + u64::from(v),
            }
        }));
        s2.clear();
        s2.extend(self.g2.succ[j as usize].iter().map(|&(v, _)| {
            match self.anchor_of_v2[v as usize] {
                Some(m) => u64::from(m),
                None => ONLY_V2 + u64::from(v),
            }
        }));
        s1.sort_unstable();
        s1.dedup();
        s2.sort_unstable();
        s2.dedup();
        s1 != s2
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

    /// Pairs of anchors (x, a) where x reaches a in one version only.
    fn moved_pairs(&mut self, cand: &mut [Candidates]) {
        let n = self.anchor_count();
        let mut is_target = vec![false; n];
        let mut active: Vec<u32> = Vec::new();
        let (mut s1, mut s2) = (Vec::new(), Vec::new());
        for t in 0..n as u32 {
            if !self.successors_changed(t, &mut s1, &mut s2) {
                continue;
            }
            let d1 = self.reach1.get(&self.g1, self.v1_of(t), Dir::Forward);
            let d2 = self.reach2.get(&self.g2, self.v2_of(t), Dir::Forward);
            let mut any = false;
            for m in self.anchors_in(&d1, 1) {
                if m != t && !d2.contains(self.v2_of(m)) {
                    is_target[m as usize] = true;
                    any = true;
                }
            }
            for m in self.anchors_in(&d2, 2) {
                if m != t && !d1.contains(self.v1_of(m)) {
                    is_target[m as usize] = true;
                    any = true;
                }
            }
            if any {
                active.push(t);
            }
        }
        if active.is_empty() {
            return;
        }
        let mut is_source = vec![false; n];
        for &t in &active {
            is_source[t as usize] = true;
            let b1 = self.g1.reach(&[self.v1_of(t)], Dir::Backward);
            let b2 = self.g2.reach(&[self.v2_of(t)], Dir::Backward);
            for m in self.anchors_in(&b1, 1) {
                is_source[m as usize] = true;
            }
            for m in self.anchors_in(&b2, 2) {
                is_source[m as usize] = true;
            }
        }
        let sources: Vec<u32> = (0..n as u32).filter(|&k| is_source[k as usize]).collect();
        let targets: Vec<u32> = (0..n as u32).filter(|&k| is_target[k as usize]).collect();

        // Either side yields every moved pair exactly once; walk from the smaller one.
        if sources.len() <= targets.len() {
            for x in sources {
                let d1 = self.g1.reach(&[self.v1_of(x)], Dir::Forward);
                let d2 = self.g2.reach(&[self.v2_of(x)], Dir::Forward);
                for a in self.anchors_in(&d1, 1) {
                    if a != x && !d2.contains(self.v2_of(a)) {
                        self.push_moved(cand, x, a, false);
                    }
                }
                for a in self.anchors_in(&d2, 2) {
                    if a != x && !d1.contains(self.v1_of(a)) {
                        self.push_moved(cand, x, a, true);
                    }
                }
            }
        } else {
            for a in targets {
                let b1 = self.g1.reach(&[self.v1_of(a)], Dir::Backward);
                let b2 = self.g2.reach(&[self.v2_of(a)], Dir::Backward);
                for x in self.anchors_in(&b1, 1) {
                    if x != a && !b2.contains(self.v2_of(x)) {
                        self.push_moved(cand, x, a, false);
                    }
                }
                for x in self.anchors_in(&b2, 2) {
                    if x != a && !b1.contains(self.v1_of(x)) {
                        self.push_moved(cand, x, a, true);
                    }
                }
            }
        }
    }

    /// x reaches a in V2 only (`gained`) or in V1 only.
    fn push_moved(&self, cand: &mut [Candidates], x: u32, a: u32, gained: bool) {
        if gained {
            cand[a as usize].up_inserted.push(self.v2_of(x));
            cand[x as usize].down_inserted.push(self.v2_of(a));
        } else {
            cand[a as usize].up_removed.push(self.v1_of(x));
            cand[x as usize].down_removed.push(self.v1_of(a));
        }
    }

    /// Steps of one version only: each lies upstream of the anchors it reaches and
    /// downstream of the anchors that reach it.
    fn unpaired_steps(&mut self, cand: &mut [Candidates]) {
        for j in 0..self.g2.len() as u32 {
            if self.anchor_of_v2[j as usize].is_some() {
                continue;
            }
            for a in self.anchors_in(&self.g2.reach(&[j], Dir::Forward), 2) {
                cand[a as usize].up_inserted.push(j);
            }
            for a in self.anchors_in(&self.g2.reach(&[j], Dir::Backward), 2) {
                cand[a as usize].down_inserted.push(j);
            }
        }
        for i in 0..self.g1.len() as u32 {
            if self.anchor_of_v1[i as usize].is_some() {
                continue;
            }
            for a in self.anchors_in(&self.g1.reach(&[i], Dir::Forward), 1) {
                cand[a as usize].up_removed.push(i);
            }
            for a in self.anchors_in(&self.g1.reach(&[i], Dir::Backward), 1) {
                cand[a as usize].down_removed.push(i);
            }
        }
    }

    /// Edited steps lying in a region in both versions: upstream of the pairs they
    /// reach, downstream of those that reach them. (One that reaches a pair in one
    /// version only is a moved pair, inserted or removed there.)
    fn edited_in_regions(&mut self, cand: &mut [Candidates]) {
        for x in self.n_anchors as u32..self.anchor_count() as u32 {
            let (i, j) = self.anchors[x as usize];
            let d1 = self.reach1.get(&self.g1, i, Dir::Forward);
            let d2 = self.reach2.get(&self.g2, j, Dir::Forward);
            for a in self.anchors_in(&d2, 2) {
                if a != x && d1.contains(self.v1_of(a)) {
                    cand[a as usize].up_edited.push(x);
                }
            }
            let b1 = self.reach1.get(&self.g1, i, Dir::Backward);
            let b2 = self.reach2.get(&self.g2, j, Dir::Backward);
            for a in self.anchors_in(&b2, 2) {
                if a != x && b1.contains(self.v1_of(a)) {
                    cand[a as usize].down_edited.push(x);
                }
            }
        }
    }

    /// Drop candidates whose content hash is present in the other version's region
    /// (only possible for duplicated content). An edited step dropped that way is in
    /// the region in both versions (by its match key): it is listed as edited.
    fn filter_by_hash(&mut self, cand: &mut [Candidates]) {
        let mut group_reach: HashMap<(u64, u8, Dir), Rc<BitSet>> = HashMap::new();
        let mut others: Vec<u32> = Vec::new();
        for a in 0..cand.len() as u32 {
            let (ai, aj) = self.anchors[a as usize];
            let c = &mut cand[a as usize];
            if c.up_inserted.is_empty()
                && c.up_removed.is_empty()
                && c.down_inserted.is_empty()
                && c.down_removed.is_empty()
            {
                continue;
            }
            let n_anchors = self.n_anchors;
            let mut take =
                |list: &mut Vec<u32>, from_v2: bool, upstream: bool, dropped: &mut Vec<u32>| {
                    list.retain(|&s| {
                        let (key, partner) = if from_v2 {
                            (
                                self.g2.keys[s as usize],
                                self.anchor_of_v2[s as usize].map(|k| self.anchors[k as usize].0),
                            )
                        } else {
                            (
                                self.g1.keys[s as usize],
                                self.anchor_of_v1[s as usize].map(|k| self.anchors[k as usize].1),
                            )
                        };
                        // Steps of the other version with this hash, besides the partner
                        // (which is known not to be in the region).
                        let (g, reach, anchor_step) = if from_v2 {
                            (&self.g1, &mut self.reach1, ai)
                        } else {
                            (&self.g2, &mut self.reach2, aj)
                        };
                        others.clear();
                        others.extend(g.members(key).filter(|&o| Some(o) != partner));
                        if others.is_empty() {
                            return true;
                        }
                        let present = if others.contains(&anchor_step) {
                            // The anchor shares the hash: only *other* steps count.
                            let dir = if upstream {
                                Dir::Backward
                            } else {
                                Dir::Forward
                            };
                            let around = reach.get(g, anchor_step, dir);
                            others
                                .iter()
                                .any(|&o| o != anchor_step && around.contains(o))
                        } else {
                            let dir = if upstream {
                                Dir::Forward
                            } else {
                                Dir::Backward
                            };
                            let version = if from_v2 { 1 } else { 2 };
                            group_reach
                                .entry((key, version, dir))
                                .or_insert_with(|| {
                                    let all: Vec<u32> = g.members(key).collect();
                                    Rc::new(g.reach(&all, dir))
                                })
                                .contains(anchor_step)
                        };
                        if present
                            && from_v2
                            && let Some(k) = self.anchor_of_v2[s as usize]
                            && k as usize >= n_anchors
                        {
                            dropped.push(k);
                        }
                        !present
                    });
                };
            let mut edited_up = Vec::new();
            let mut edited_down = Vec::new();
            let mut none = Vec::new();
            take(&mut c.up_inserted, true, true, &mut edited_up);
            take(&mut c.up_removed, false, true, &mut none);
            take(&mut c.down_inserted, true, false, &mut edited_down);
            take(&mut c.down_removed, false, false, &mut none);
            c.up_edited.extend(edited_up);
            c.down_edited.extend(edited_down);
        }
    }

    /// Forks whose decision changed and transition changes of anchors, handed to the
    /// regions they lie in. Returns each anchor's own transition changes.
    fn routing_changes(&mut self, cand: &mut [Candidates]) -> Vec<Vec<TransitionChange>> {
        let n = self.anchor_count();
        let mut changes: Vec<Vec<TransitionChange>> = vec![Vec::new(); n];
        for x in 0..n as u32 {
            let (i, j) = self.anchors[x as usize];
            let s1 = self.g1.step(i);
            let s2 = self.g2.step(j);
            let own = transition_changes(&self.g1, &self.g2, s1, s2);
            let fork_changed =
                s2.transitions.len() >= 2 && sorted_conditions(s1) != sorted_conditions(s2);
            if own.is_empty() && !fork_changed {
                continue;
            }
            let d2 = self.reach2.get(&self.g2, j, Dir::Forward);
            let b2 = self.reach2.get(&self.g2, j, Dir::Backward);
            if fork_changed {
                for a in self.anchors_in(&d2, 2) {
                    if a != x {
                        cand[a as usize].up_forks.push(j);
                    }
                }
                for a in self.anchors_in(&b2, 2) {
                    if a != x {
                        cand[a as usize].down_forks.push(j);
                    }
                }
                // A new branch at the anchor itself is a downstream fork.
                cand[x as usize].down_forks.push(j);
            }
            if !own.is_empty() {
                let d1 = self.reach1.get(&self.g1, i, Dir::Forward);
                let b1 = self.reach1.get(&self.g1, i, Dir::Backward);
                let mut up: Vec<u32> = self.anchors_in(&d1, 1);
                up.extend(self.anchors_in(&d2, 2));
                let mut down: Vec<u32> = self.anchors_in(&b1, 1);
                down.extend(self.anchors_in(&b2, 2));
                up.sort_unstable();
                up.dedup();
                down.sort_unstable();
                down.dedup();
                for a in up {
                    if a != x {
                        cand[a as usize].up_modified.push(x);
                    }
                }
                for a in down {
                    if a != x {
                        cand[a as usize].down_modified.push(x);
                    }
                }
                cand[x as usize].down_modified.push(x);
                changes[x as usize] = own;
            }
        }
        changes
    }

    fn assemble(&mut self, cand: Vec<Candidates>, changes: &[Vec<TransitionChange>]) {
        let regions: Vec<(RegionIdx, RegionIdx)> = cand
            .into_iter()
            .map(|c| {
                (
                    self.region_idx(
                        c.up_inserted,
                        c.up_removed,
                        c.up_forks,
                        c.up_modified,
                        c.up_edited,
                    ),
                    self.region_idx(
                        c.down_inserted,
                        c.down_removed,
                        c.down_forks,
                        c.down_modified,
                        c.down_edited,
                    ),
                )
            })
            .collect();
        let total: usize = regions
            .iter()
            .map(|(u, d)| u.entries(changes) + d.entries(changes))
            .sum();
        let cap = (total > self.budget).then_some(TRUNCATED_REGION_ITEMS);

        let mut anchors_out = Vec::with_capacity(self.n_anchors);
        let mut edited_out = Vec::with_capacity(regions.len() - self.n_anchors);
        let mut reroute_forks = Vec::with_capacity(regions.len());
        let mut built_forks: HashMap<u32, NewFork> = HashMap::new();
        for (a, (up, down)) in regions.into_iter().enumerate() {
            let (i, j) = self.anchors[a];
            // Decided on the full regions, before any truncation of the lists.
            let forks: Vec<u32> = up
                .forks
                .iter()
                .copied()
                .filter(|&f| self.escapes(f, j))
                .collect();
            let scenario = if !forks.is_empty() {
                MigrationScenario::ReRoute
            } else if up.inserted.iter().any(|&s| {
                let st = self.g2.step(s);
                !st.collects_profile_fields.is_empty() || st.is_required_action
            }) || up
                .edited
                .iter()
                .any(|&x| self.edited_info(x).owes_something())
            {
                MigrationScenario::GapFill
            } else {
                MigrationScenario::CleanGraft
            };
            let upstream = self.materialize(&mut built_forks, up, changes, cap, &forks);
            let downstream = self.materialize(&mut built_forks, down, changes, cap, &[]);
            reroute_forks.push(forks);
            let s1 = self.g1.step(i);
            let s2 = self.g2.step(j);
            if a < self.n_anchors {
                anchors_out.push(AnchorTransformation {
                    anchor_content_hash: self.g1.hashes[i as usize].clone(),
                    // The V2 name equals the V1 name (the name is part of the hash).
                    anchor_name: s1.name.clone(),
                    anchor_node_id_v1: s1.id,
                    anchor_node_id_v2: s2.id,
                    upstream_changes: upstream.0,
                    downstream_changes: downstream.0,
                    migration_scenario: scenario,
                });
            } else {
                edited_out.push(EditedStep {
                    step: AnchorTransformation {
                        anchor_content_hash: self.edited_keys[a - self.n_anchors].clone(),
                        anchor_name: s2.name.clone(),
                        anchor_node_id_v1: s1.id,
                        anchor_node_id_v2: s2.id,
                        upstream_changes: upstream.0,
                        downstream_changes: downstream.0,
                        migration_scenario: scenario,
                    },
                    content_hash_v1: self.g1.hashes[i as usize].clone(),
                    content_hash_v2: self.g2.hashes[j as usize].clone(),
                    node_name_v1: s1.name.clone(),
                    changes: attribute_changes(s1, s2),
                    // Filled in with the deleted steps.
                    nearest_anchor_hash: None,
                    nearest_anchor_id_v2: None,
                });
            }
            if upstream.1 + downstream.1 > 0 {
                self.output.truncated_anchors += 1;
                self.output.omitted_region_entries += (upstream.1 + downstream.1) as u64;
            }
        }
        self.reroute_forks = reroute_forks;
        self.output.transformation_map.anchors = anchors_out;
        self.output.transformation_map.edited_steps = edited_out;
    }

    /// How edited pair `x` (index into `anchors`) appears in other regions.
    fn edited_info(&self, x: u32) -> &EditedNode {
        &self.edited_nodes[x as usize - self.n_anchors]
    }

    /// Whether fork `f` has a branch whose target cannot reach the V2 step `j`.
    fn escapes(&mut self, f: u32, j: u32) -> bool {
        let targets: Vec<Option<u32>> = self
            .g2
            .step(f)
            .transitions
            .iter()
            .map(|t| self.g2.index.get(&t.to_step_id).copied())
            .collect();
        targets.into_iter().any(|t| match t {
            Some(t) => t != j && !self.reach2.get(&self.g2, t, Dir::Forward).contains(j),
            None => true,
        })
    }

    /// Sorted, deduplicated region members; inserted forks join the forks.
    fn region_idx(
        &self,
        mut inserted: Vec<u32>,
        mut removed: Vec<u32>,
        mut forks: Vec<u32>,
        mut modified: Vec<u32>,
        mut edited: Vec<u32>,
    ) -> RegionIdx {
        let r2 = &self.g2.rank;
        let r1 = &self.g1.rank;
        inserted.sort_by_key(|&s| r2[s as usize]);
        inserted.dedup();
        removed.sort_by_key(|&s| r1[s as usize]);
        removed.dedup();
        forks.extend(
            inserted
                .iter()
                .copied()
                .filter(|&s| self.g2.step(s).transitions.len() >= 2),
        );
        forks.sort_by_key(|&s| r2[s as usize]);
        forks.dedup();
        modified.sort_by_key(|&x| r2[self.anchors[x as usize].1 as usize]);
        modified.dedup();
        edited.sort_by_key(|&x| r2[self.anchors[x as usize].1 as usize]);
        edited.dedup();
        RegionIdx {
            inserted,
            removed,
            forks,
            modified,
            edited,
        }
    }

    /// The output form of a region, and how many entries were left out. With a `cap`,
    /// each list keeps at most `cap` entries, those that drive decisions first: steps
    /// that collect fields, are required actions, checkpoints or forks; the re-routing
    /// forks.
    fn materialize(
        &self,
        built_forks: &mut HashMap<u32, NewFork>,
        mut r: RegionIdx,
        changes: &[Vec<TransitionChange>],
        cap: Option<usize>,
        first_forks: &[u32],
    ) -> (RegionChanges, usize) {
        let mut omitted = 0;
        let mut modified: Vec<TransitionChange> = r
            .modified
            .iter()
            .flat_map(|&x| changes[x as usize].iter().cloned())
            .collect();
        if let Some(cap) = cap {
            let r2 = &self.g2.rank;
            let relevant = |s: u32| {
                let st = self.g2.step(s);
                !st.collects_profile_fields.is_empty()
                    || st.is_required_action
                    || st.is_checkpoint
                    || st.transitions.len() >= 2
            };
            if r.inserted.len() > cap {
                omitted += r.inserted.len() - cap;
                r.inserted.sort_by_key(|&s| (!relevant(s), r2[s as usize]));
                r.inserted.truncate(cap);
                r.inserted.sort_by_key(|&s| r2[s as usize]);
            }
            if r.forks.len() > cap {
                omitted += r.forks.len() - cap;
                r.forks
                    .sort_by_key(|&f| (!first_forks.contains(&f), r2[f as usize]));
                r.forks.truncate(cap);
                r.forks.sort_by_key(|&f| r2[f as usize]);
            }
            if r.removed.len() > cap {
                omitted += r.removed.len() - cap;
                r.removed.truncate(cap);
            }
            if modified.len() > cap {
                omitted += modified.len() - cap;
                modified.truncate(cap);
            }
            if r.edited.len() > cap {
                omitted += r.edited.len() - cap;
                let relevant = |x: u32| {
                    let e = self.edited_info(x);
                    e.owes_something() || e.is_checkpoint
                };
                r.edited
                    .sort_by_key(|&x| (!relevant(x), r2[self.anchors[x as usize].1 as usize]));
                r.edited.truncate(cap);
                r.edited
                    .sort_by_key(|&x| r2[self.anchors[x as usize].1 as usize]);
            }
        }
        let region = RegionChanges {
            inserted_nodes: r
                .inserted
                .iter()
                .map(|&s| {
                    let st = self.g2.step(s);
                    InsertedNode {
                        node_id: st.id,
                        node_name: st.name.clone(),
                        collects_fields: st.collects_profile_fields.clone(),
                        has_rules: !st.rule_ids.is_empty(),
                        is_required_action: st.is_required_action,
                        is_checkpoint: st.is_checkpoint,
                    }
                })
                .collect(),
            removed_node_ids: r.removed.iter().map(|&s| self.g1.step(s).id).collect(),
            new_forks: r
                .forks
                .iter()
                .map(|&f| built_forks.entry(f).or_insert_with(|| self.fork(f)).clone())
                .collect(),
            modified_transitions: modified,
            edited_nodes: r
                .edited
                .iter()
                .map(|&x| self.edited_info(x).clone())
                .collect(),
        };
        (region, omitted)
    }

    fn fork(&self, f: u32) -> NewFork {
        let st = self.g2.step(f);
        NewFork {
            fork_node_id: st.id,
            fork_node_name: st.name.clone(),
            branches: st
                .transitions
                .iter()
                .map(|t| ForkBranch {
                    target_step_id: t.to_step_id,
                    target_step_name: self
                        .g2
                        .index
                        .get(&t.to_step_id)
                        .map(|&k| self.g2.step(k).name.clone())
                        .unwrap_or_else(|| "Unknown".to_string()),
                    condition_text: t.condition_text.clone(),
                    condition_fields: t.condition_fields.clone(),
                })
                .collect(),
        }
    }

    /// Deleted steps with their nearest anchor (or edited step), edited steps as
    /// deleted nodes landing on themselves, new steps, unreachable steps.
    fn deleted_and_new(&mut self) {
        let pair_steps: Vec<u32> = self.anchors.iter().map(|&(i, _)| i).collect();
        let forward = self.g1.distances_to(&pair_steps, Dir::Forward);
        let backward = self.g1.distances_to(&pair_steps, Dir::Backward);
        let n_anchors = self.n_anchors;
        let mut deleted: Vec<u32> = (0..self.g1.len() as u32)
            .filter(|&i| match self.anchor_of_v1[i as usize] {
                None => true,
                Some(k) => k as usize >= n_anchors,
            })
            .collect();
        deleted.sort_by_key(|&i| self.g1.rank[i as usize]);
        let key_of = |k: u32| -> String {
            let k = k as usize;
            if k < n_anchors {
                self.g1.hashes[self.anchors[k].0 as usize].clone()
            } else {
                self.edited_keys[k - n_anchors].clone()
            }
        };
        let deleted_nodes: Vec<DeletedNode> = deleted
            .iter()
            .map(|&i| {
                let step = self.g1.step(i);
                let (nearest, edited) = match self.anchor_of_v1[i as usize] {
                    // An edited step: its sessions land on the step itself.
                    Some(k) => (Some(k), true),
                    None => (
                        nearest_anchor(&self.g1, i, &forward, Dir::Forward)
                            .or_else(|| nearest_anchor(&self.g1, i, &backward, Dir::Backward))
                            .and_then(|s| self.anchor_of_v1[s as usize]),
                        false,
                    ),
                };
                DeletedNode {
                    node_id_v1: step.id,
                    node_name: step.name.clone(),
                    nearest_anchor_hash: nearest.map(key_of),
                    nearest_anchor_id_v2: nearest
                        .map(|k| self.g2.step(self.anchors[k as usize].1).id),
                    edited,
                }
            })
            .collect();

        // Where `relocate_to_nearest_anchor` sends an edited step's sessions: the
        // nearest real anchor, as before edits were recognised.
        if n_anchors < self.anchors.len() {
            let anchor_steps: Vec<u32> = pair_steps[..n_anchors].to_vec();
            let forward = self.g1.distances_to(&anchor_steps, Dir::Forward);
            let backward = self.g1.distances_to(&anchor_steps, Dir::Backward);
            let relocations: Vec<(Option<String>, Option<Uuid>)> = self.anchors[n_anchors..]
                .iter()
                .map(|&(i, _)| {
                    let nearest = nearest_anchor(&self.g1, i, &forward, Dir::Forward)
                        .or_else(|| nearest_anchor(&self.g1, i, &backward, Dir::Backward))
                        .and_then(|s| self.anchor_of_v1[s as usize])
                        .filter(|&k| (k as usize) < n_anchors);
                    (
                        nearest.map(key_of),
                        nearest.map(|k| self.g2.step(self.anchors[k as usize].1).id),
                    )
                })
                .collect();
            for (edited, (hash, id)) in self
                .output
                .transformation_map
                .edited_steps
                .iter_mut()
                .zip(relocations)
            {
                edited.nearest_anchor_hash = hash;
                edited.nearest_anchor_id_v2 = id;
            }
        }
        let map = &mut self.output.transformation_map;
        map.deleted_nodes = deleted_nodes;

        let mut new: Vec<u32> = (0..self.g2.len() as u32)
            .filter(|&j| self.anchor_of_v2[j as usize].is_none())
            .collect();
        new.sort_by_key(|&j| self.g2.rank[j as usize]);
        map.new_node_ids = new.iter().map(|&j| self.g2.step(j).id).collect();

        let mut unreachable: Vec<u32> = (0..self.g2.len() as u32)
            .filter(|&j| !self.g2.is_reachable_from_entry(j))
            .collect();
        unreachable.sort_by_key(|&j| self.g2.rank[j as usize]);
        self.output.unreachable_v2_step_ids =
            unreachable.iter().map(|&j| self.g2.step(j).id).collect();
    }
}

/// Walk from `from` to the nearest anchor along `dir`, on one shortest path; at each
/// step the first neighbour that gets closer wins. Forward, neighbours come in
/// evaluation order (priority, then position), so ties go to the higher-priority
/// transition; backward, predecessors come in flow order.
fn nearest_anchor(g: &Graph<'_>, from: u32, dist: &[u32], dir: Dir) -> Option<u32> {
    let mut u = from;
    let mut d = *dist.get(u as usize)?;
    if d == u32::MAX {
        return None;
    }
    while d > 0 {
        let next = match dir {
            Dir::Forward => g.succ[u as usize]
                .iter()
                .map(|&(v, _)| v)
                .find(|&v| dist[v as usize] == d - 1),
            Dir::Backward => g.pred[u as usize]
                .iter()
                .copied()
                .find(|&v| dist[v as usize] == d - 1),
        }?;
        u = next;
        d -= 1;
    }
    Some(u)
}

/// V1 and V2 steps left unpaired by content that share an id: edited in place.
/// Repeated ids (invalid input) only count their first step.
fn edited_pairs(g1: &Graph<'_>, g2: &Graph<'_>, anchors: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut paired1 = vec![false; g1.len()];
    let mut paired2 = vec![false; g2.len()];
    for &(i, j) in anchors {
        paired1[i as usize] = true;
        paired2[j as usize] = true;
    }
    let mut out = Vec::new();
    for i in 0..g1.len() as u32 {
        if paired1[i as usize] {
            continue;
        }
        let id = g1.step(i).id;
        if g1.index.get(&id) != Some(&i) {
            continue;
        }
        if let Some(&j) = g2.index.get(&id)
            && !paired2[j as usize]
        {
            paired2[j as usize] = true;
            out.push((i, j));
        }
    }
    out
}

/// The policy key of edited V2 step `j` (before `g2` is rekeyed): its content hash
/// when no other step of either version has that content, so that it can never
/// name an anchor or another edited step; otherwise a hash of its id and content
/// that no step of either version has.
fn edited_key(g1: &Graph<'_>, g2: &Graph<'_>, j: u32) -> String {
    let key = g2.keys[j as usize];
    if g2.members(key).count() == 1 && g1.members(key).next().is_none() {
        return g2.hashes[j as usize].clone();
    }
    let mut salt = 0u32;
    loop {
        let text = format!(
            "edited-step:{}:{}:{salt}",
            g2.step(j).id,
            g2.hashes[j as usize]
        );
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let k = u64::from_str_radix(&hex, 16).unwrap_or(0);
        if g1.members(k).next().is_none() && g2.members(k).next().is_none() {
            return hex;
        }
        salt += 1;
    }
}

fn sorted_strings<'s>(items: impl Iterator<Item = &'s String>) -> Vec<&'s str> {
    let mut v: Vec<&str> = items.map(String::as_str).collect();
    v.sort_unstable();
    v
}

/// The attributes an edit changed, normalised as the content hash reads them.
pub(crate) fn attribute_changes(s1: &StepInput, s2: &StepInput) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let mut push = |attribute: StepAttribute, before: Value, after: Value| {
        if before != after {
            out.push(AttributeChange {
                attribute,
                before,
                after,
            });
        }
    };
    push(
        StepAttribute::Name,
        Value::from(s1.name.as_str()),
        Value::from(s2.name.as_str()),
    );
    push(
        StepAttribute::Description,
        Value::from(s1.description.as_deref().unwrap_or("")),
        Value::from(s2.description.as_deref().unwrap_or("")),
    );
    let rules = |s: &StepInput| {
        let mut r: Vec<String> = s.rule_ids.iter().map(|u| u.to_string()).collect();
        r.sort_unstable();
        Value::from(r)
    };
    push(StepAttribute::RuleIds, rules(s1), rules(s2));
    push(
        StepAttribute::CollectsProfileFields,
        Value::from(sorted_strings(s1.collects_profile_fields.iter())),
        Value::from(sorted_strings(s2.collects_profile_fields.iter())),
    );
    push(
        StepAttribute::IsCheckpoint,
        Value::from(s1.is_checkpoint),
        Value::from(s2.is_checkpoint),
    );
    push(
        StepAttribute::CheckpointDescription,
        Value::from(s1.checkpoint_description.as_deref().unwrap_or("")),
        Value::from(s2.checkpoint_description.as_deref().unwrap_or("")),
    );
    push(
        StepAttribute::PerformsAction,
        Value::from(s1.performs_action),
        Value::from(s2.performs_action),
    );
    push(
        StepAttribute::IsRequiredAction,
        Value::from(s1.is_required_action),
        Value::from(s2.is_required_action),
    );
    out
}

/// How an edited step appears in the regions of others.
fn edited_node(s1: &StepInput, s2: &StepInput) -> EditedNode {
    let mut added_fields: Vec<String> = Vec::new();
    for f in &s2.collects_profile_fields {
        if !s1.collects_profile_fields.contains(f) && !added_fields.contains(f) {
            added_fields.push(f.clone());
        }
    }
    EditedNode {
        node_id: s2.id,
        node_name: s2.name.clone(),
        changed: attribute_changes(s1, s2)
            .into_iter()
            .map(|c| c.attribute)
            .collect(),
        added_fields,
        // A step that already performed an action was passed *with* it: running
        // it again could repeat something irreversible.
        new_required_action: s2.is_required_action && !s1.is_required_action && !s1.performs_action,
        is_checkpoint: s2.is_checkpoint,
    }
}

type Ambiguous = (Vec<u32>, Vec<u32>);

/// Pair steps with equal content hash. Unique hashes pair directly; duplicated content
/// pairs equal ids first, then steps with the same neighbourhood (predecessor and
/// successor hashes), then the most similar neighbourhood when that choice is mutual
/// and unique. What remains on both sides is ambiguous.
fn pair_anchors(g1: &Graph<'_>, g2: &Graph<'_>) -> (Vec<(u32, u32)>, Vec<Ambiguous>) {
    let mut pairs = Vec::with_capacity(g1.len().min(g2.len()));
    let mut ambiguous = Vec::new();
    let (a, b) = (&g1.by_key, &g2.by_key);
    let (mut x, mut y) = (0, 0);
    while x < a.len() && y < b.len() {
        let (ka, kb) = (a[x].0, b[y].0);
        if ka < kb {
            x += 1;
            continue;
        }
        if kb < ka {
            y += 1;
            continue;
        }
        let x_end = x + a[x..].iter().take_while(|e| e.0 == ka).count();
        let y_end = y + b[y..].iter().take_while(|e| e.0 == kb).count();
        if x_end - x == 1 && y_end - y == 1 {
            pairs.push((a[x].1, b[y].1));
        } else {
            let v1: Vec<u32> = a[x..x_end].iter().map(|e| e.1).collect();
            let v2: Vec<u32> = b[y..y_end].iter().map(|e| e.1).collect();
            let (found, left1, left2) = pair_duplicates(g1, g2, &v1, &v2);
            pairs.extend(found);
            if !left1.is_empty() && !left2.is_empty() {
                ambiguous.push((left1, left2));
            }
        }
        x = x_end;
        y = y_end;
    }
    ambiguous.sort_by_key(|(v1, v2)| {
        (
            v2.first().map(|&j| g2.rank[j as usize]),
            v1.first().map(|&i| g1.rank[i as usize]),
        )
    });
    (pairs, ambiguous)
}

struct Context {
    pred: Vec<u64>,
    succ: Vec<u64>,
}

fn context(g: &Graph<'_>, i: u32) -> Context {
    let mut pred: Vec<u64> = g.pred[i as usize]
        .iter()
        .map(|&p| g.keys[p as usize])
        .collect();
    let mut succ: Vec<u64> = g.succ[i as usize]
        .iter()
        .map(|&(s, _)| g.keys[s as usize])
        .collect();
    pred.sort_unstable();
    pred.dedup();
    succ.sort_unstable();
    succ.dedup();
    Context { pred, succ }
}

fn common(a: &[u64], b: &[u64]) -> usize {
    let (mut x, mut y, mut n) = (0, 0, 0);
    while x < a.len() && y < b.len() {
        match a[x].cmp(&b[y]) {
            std::cmp::Ordering::Less => x += 1,
            std::cmp::Ordering::Greater => y += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                x += 1;
                y += 1;
            }
        }
    }
    n
}

type Paired = (Vec<(u32, u32)>, Vec<u32>, Vec<u32>);
/// Positions in the leftover lists of V1 and V2 that share one neighbourhood.
type Bucket = (Vec<usize>, Vec<usize>);

fn pair_duplicates(g1: &Graph<'_>, g2: &Graph<'_>, v1: &[u32], v2: &[u32]) -> Paired {
    let mut pairs = Vec::new();
    let mut left2: Vec<u32> = v2.to_vec();
    let mut left1: Vec<u32> = Vec::new();

    let by_id: HashMap<Uuid, u32> = v2.iter().map(|&j| (g2.step(j).id, j)).collect();
    for &i in v1 {
        match by_id.get(&g1.step(i).id) {
            Some(&j) if left2.contains(&j) => {
                pairs.push((i, j));
                left2.retain(|&x| x != j);
            }
            _ => left1.push(i),
        }
    }

    if !left1.is_empty() && !left2.is_empty() {
        let ctx1: Vec<Context> = left1.iter().map(|&i| context(g1, i)).collect();
        let ctx2: Vec<Context> = left2.iter().map(|&j| context(g2, j)).collect();
        let mut alive1 = vec![true; left1.len()];
        let mut alive2 = vec![true; left2.len()];

        // Same neighbourhood on exactly one step of each side.
        let mut buckets: HashMap<(&[u64], &[u64]), Bucket> = HashMap::new();
        for (x, c) in ctx1.iter().enumerate() {
            buckets.entry((&c.pred, &c.succ)).or_default().0.push(x);
        }
        for (y, c) in ctx2.iter().enumerate() {
            buckets.entry((&c.pred, &c.succ)).or_default().1.push(y);
        }
        for (xs, ys) in buckets.values() {
            if let ([x], [y]) = (xs.as_slice(), ys.as_slice()) {
                pairs.push((left1[*x], left2[*y]));
                alive1[*x] = false;
                alive2[*y] = false;
            }
        }

        // The most similar neighbourhood, when both sides pick each other and nobody ties.
        if left1.len() * left2.len() <= MAX_SIMILARITY_PAIRS {
            let score = |x: usize, y: usize| {
                common(&ctx1[x].pred, &ctx2[y].pred) + common(&ctx1[x].succ, &ctx2[y].succ)
            };
            loop {
                let best = |scores: &mut dyn Iterator<Item = (usize, usize)>| {
                    let mut top: Option<(usize, usize)> = None;
                    let mut tie = false;
                    for (who, s) in scores {
                        if s == 0 {
                            continue;
                        }
                        match top {
                            Some((_, t)) if s < t => {}
                            Some((_, t)) if s == t => tie = true,
                            _ => {
                                top = Some((who, s));
                                tie = false;
                            }
                        }
                    }
                    if tie { None } else { top.map(|(w, _)| w) }
                };
                let mut progress = false;
                for x in 0..left1.len() {
                    if !alive1[x] {
                        continue;
                    }
                    let Some(y) = best(
                        &mut (0..left2.len())
                            .filter(|&y| alive2[y])
                            .map(|y| (y, score(x, y))),
                    ) else {
                        continue;
                    };
                    let back = best(
                        &mut (0..left1.len())
                            .filter(|&x2| alive1[x2])
                            .map(|x2| (x2, score(x2, y))),
                    );
                    if back == Some(x) {
                        pairs.push((left1[x], left2[y]));
                        alive1[x] = false;
                        alive2[y] = false;
                        progress = true;
                    }
                }
                if !progress {
                    break;
                }
            }
        }

        left1 = left1
            .iter()
            .zip(&alive1)
            .filter_map(|(&i, &alive)| alive.then_some(i))
            .collect();
        left2 = left2
            .iter()
            .zip(&alive2)
            .filter_map(|(&j, &alive)| alive.then_some(j))
            .collect();
    }

    // The last copy on each side is the same step, whatever its neighbours.
    if let ([i], [j]) = (left1.as_slice(), left2.as_slice()) {
        pairs.push((*i, *j));
        return (pairs, Vec::new(), Vec::new());
    }
    (pairs, left1, left2)
}

fn sorted_conditions(s: &StepInput) -> Vec<&str> {
    let mut c: Vec<&str> = s
        .transitions
        .iter()
        .map(|t| t.condition_text.as_str())
        .collect();
    c.sort_unstable();
    c
}

/// The transitions of a matched step compared by target content hash: same target
/// and same condition is unchanged, same target with another condition, priority or
/// field list is modified, the rest added or removed. `from_step_id` is the V2 id.
fn transition_changes(
    g1: &Graph<'_>,
    g2: &Graph<'_>,
    s1: &StepInput,
    s2: &StepInput,
) -> Vec<TransitionChange> {
    let same = |a: &TransitionInput, b: &TransitionInput| {
        a.condition_text == b.condition_text
            && a.priority == b.priority
            && a.condition_fields == b.condition_fields
    };
    let key = |g: &Graph<'_>, t: &TransitionInput| {
        g.index.get(&t.to_step_id).map(|&i| g.keys[i as usize])
    };
    // Fast path, without allocating: most steps did not change at all.
    if s1.transitions.len() == s2.transitions.len()
        && s1
            .transitions
            .iter()
            .zip(&s2.transitions)
            .all(|(a, b)| key(g1, a) == key(g2, b) && same(a, b))
    {
        return Vec::new();
    }
    fn list(g: &Graph<'_>, s: &StepInput) -> Vec<(u64, Uuid, usize)> {
        s.transitions
            .iter()
            .enumerate()
            .filter_map(|(k, t)| {
                g.index
                    .get(&t.to_step_id)
                    .map(|&i| (g.keys[i as usize], t.to_step_id, k))
            })
            .collect()
    }
    let t1 = list(g1, s1);
    let t2 = list(g2, s2);

    let mut unused: HashMap<u64, Vec<usize>> = HashMap::new();
    for (x, (h, _, _)) in t1.iter().enumerate().rev() {
        unused.entry(*h).or_default().push(x);
    }
    let mut used1 = vec![false; t1.len()];
    let mut matched2: Vec<Option<usize>> = vec![None; t2.len()];
    // Pass 1: identical transitions, so a reordering is not reported as a change.
    for (y, (h, _, k2)) in t2.iter().enumerate() {
        if let Some(cands) = unused.get(h)
            && let Some(&x) = cands
                .iter()
                .rev()
                .find(|&&x| !used1[x] && same(&s1.transitions[t1[x].2], &s2.transitions[*k2]))
        {
            used1[x] = true;
            matched2[y] = Some(x);
        }
    }
    let mut out = Vec::new();
    for (y, (h, to2, _)) in t2.iter().enumerate() {
        if matched2[y].is_some() {
            continue;
        }
        let partner = unused.get_mut(h).and_then(|cands| {
            while let Some(&x) = cands.last() {
                if used1[x] {
                    cands.pop();
                } else {
                    return Some(x);
                }
            }
            None
        });
        match partner {
            Some(x) => {
                used1[x] = true;
                out.push(TransitionChange {
                    from_step_id: s2.id,
                    to_step_id_v1: Some(t1[x].1),
                    to_step_id_v2: Some(*to2),
                    change_type: TransitionChangeType::Modified,
                });
            }
            None => out.push(TransitionChange {
                from_step_id: s2.id,
                to_step_id_v1: None,
                to_step_id_v2: Some(*to2),
                change_type: TransitionChangeType::Added,
            }),
        }
    }
    for (x, (_, to1, _)) in t1.iter().enumerate() {
        if !used1[x] {
            out.push(TransitionChange {
                from_step_id: s2.id,
                to_step_id_v1: Some(*to1),
                to_step_id_v2: None,
                change_type: TransitionChangeType::Removed,
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
