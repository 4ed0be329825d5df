//! Candidate region entries: each changed element (a step of one version only, an
//! anchor pair that moved, an edited step, a changed fork or transition) handed to
//! the regions of the anchors it reaches or that reach it (see the module doc of
//! [`super`]), then checked against content hashes.

use std::collections::HashMap;
use std::rc::Rc;

use crate::graph::{BitSet, Dir};
use crate::model::TransitionChange;

use super::analysis::Analysis;
use super::transitions::{sorted_conditions, transition_changes};

/// Candidate region entries of one anchor, before the content-hash check.
#[derive(Default, Clone)]
pub(super) struct Candidates {
    pub(super) up_inserted: Vec<u32>,
    pub(super) up_removed: Vec<u32>,
    pub(super) down_inserted: Vec<u32>,
    pub(super) down_removed: Vec<u32>,
    pub(super) up_forks: Vec<u32>,
    pub(super) down_forks: Vec<u32>,
    /// Anchors whose transition changes belong to this region.
    pub(super) up_modified: Vec<u32>,
    pub(super) down_modified: Vec<u32>,
    /// Edited steps (pair indices) in the region in both versions.
    pub(super) up_edited: Vec<u32>,
    pub(super) down_edited: Vec<u32>,
}

impl Analysis<'_> {
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

    /// Pairs of anchors (x, a) where x reaches a in one version only.
    pub(super) fn moved_pairs(&mut self, cand: &mut [Candidates]) {
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
    pub(super) fn unpaired_steps(&mut self, cand: &mut [Candidates]) {
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
    pub(super) fn edited_in_regions(&mut self, cand: &mut [Candidates]) {
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
    pub(super) fn filter_by_hash(&mut self, cand: &mut [Candidates]) {
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
    pub(super) fn routing_changes(
        &mut self,
        cand: &mut [Candidates],
    ) -> Vec<Vec<TransitionChange>> {
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
}
