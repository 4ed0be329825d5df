//! Regions in their output form: the migration scenario of each anchor decided on
//! the full regions, then the lists sorted, capped when the whole map is too big
//! (see [`super::analysis::MAX_REGION_ENTRIES`]) and materialised, forks included.

use std::collections::HashMap;

use crate::graph::Dir;
use crate::model::{
    AnchorTransformation, EditedStep, ForkBranch, InsertedNode, MigrationScenario, NewFork,
    RegionChanges, TransitionChange,
};

use super::analysis::{Analysis, TRUNCATED_REGION_ITEMS};
use super::attributes::attribute_changes;
use super::candidates::Candidates;

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

impl Analysis<'_> {
    pub(super) fn assemble(&mut self, cand: Vec<Candidates>, changes: &[Vec<TransitionChange>]) {
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
}
