//! The diff's shared state and its output types: [`Analysis`] (the two graphs,
//! the anchor pairing and the output being filled in), read by every pass of
//! the diff (`candidates`, `regions`, `deleted`), and the limits on region lists.
//! A leaf: the passes and the driver in `diff` read it, and it reads none of them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::graph::{BitSet, Graph, ReachCache};
use crate::model::{EditedNode, TransformationMap};

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

/// The diff plus what the plan summary needs to look at the graphs again.
pub(crate) struct Analysis<'a> {
    pub g1: Graph<'a>,
    /// Edited V2 steps carry their V1 step's key (see the `diff` module doc).
    pub g2: Graph<'a>,
    /// (V1 index, V2 index), in output order: the anchors, then the edited steps.
    pub anchors: Vec<(u32, u32)>,
    /// How many of `anchors` are real anchors; the rest are edited steps.
    pub n_anchors: usize,
    /// Per edited step: its policy key.
    pub edited_keys: Vec<String>,
    /// Per edited step: how it appears in other regions.
    pub(super) edited_nodes: Vec<EditedNode>,
    pub anchor_of_v1: Vec<Option<u32>>,
    pub anchor_of_v2: Vec<Option<u32>>,
    /// Per anchor: the upstream new forks (V2 indices) with a branch that cannot reach
    /// the anchor — the reasons for a re-route.
    pub reroute_forks: Vec<Vec<u32>>,
    /// Region entries allowed before lists are cut (see [`MAX_REGION_ENTRIES`]).
    pub(super) budget: usize,
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

impl Analysis<'_> {
    pub(super) fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    pub(super) fn v1_of(&self, k: u32) -> u32 {
        self.anchors[k as usize].0
    }

    pub(super) fn v2_of(&self, k: u32) -> u32 {
        self.anchors[k as usize].1
    }

    /// Anchors reached from `set` (a V1 or V2 bitset), as anchor indices.
    pub(super) fn anchors_in(&self, set: &BitSet, version: u8) -> Vec<u32> {
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
    pub(super) fn edited_info(&self, x: u32) -> &EditedNode {
        &self.edited_nodes[x as usize - self.n_anchors]
    }
}
