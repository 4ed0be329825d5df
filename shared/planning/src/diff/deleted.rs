//! Deleted steps with the anchor their sessions land on, new steps, unreachable steps.

use uuid::Uuid;

use crate::graph::{Dir, Graph};
use crate::model::DeletedNode;

use super::analysis::Analysis;

impl Analysis<'_> {
    /// Deleted steps with their nearest anchor (or edited step), edited steps as
    /// deleted nodes landing on themselves, new steps, unreachable steps.
    pub(super) fn deleted_and_new(&mut self) {
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
