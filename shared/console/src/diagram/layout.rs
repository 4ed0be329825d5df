//! Layered ("Sugiyama-style") layout of the drawn steps:
//! 1. cycles broken by a depth-first search from the entry (or the focused step):
//!    an edge to a step still on the stack is a back edge, laid out reversed so
//!    that every edge runs down the layers (and drawn back up by `edges`);
//! 2. longest-path layering (a step sits one layer below its lowest predecessor);
//! 3. an edge spanning several layers gets a dummy vertex in each layer it
//!    crosses, so that it has a slot of its own there and is never drawn over a
//!    step;
//! 4. within each layer, steps and dummies ordered against crossings (`order`).
//!
//! Works on local indices and knows nothing of steps or pixels: vertices
//! `0..nodes` are the drawn steps, the rest are dummies.

use std::collections::{HashSet, VecDeque};

use super::order;

/// Layer and in-layer position of every vertex, and each edge's way down the
/// layers.
pub(super) struct Layout {
    /// Vertices below this are drawn steps, the others dummies.
    pub nodes: usize,
    pub layer: Vec<usize>,
    pub position: Vec<usize>,
    /// Each layer's vertices, left to right.
    pub layers: Vec<Vec<usize>>,
    /// Each vertex's neighbours one layer up and one layer down, through the
    /// chains (one entry per chain link, so parallel edges weigh more).
    pub above: Vec<Vec<usize>>,
    pub below: Vec<Vec<usize>>,
    /// One chain per input edge, in the input's order.
    pub chains: Vec<Chain>,
}

/// The vertices one edge passes, one per layer from its upper end down to its
/// lower end: the source first for an edge down the flow, the target first for
/// a back edge. A self-loop's chain is its one step.
pub(super) struct Chain {
    pub vertices: Vec<usize>,
    /// A back edge: drawn from the lower end up to the upper one.
    pub upward: bool,
}

impl Chain {
    pub(super) fn is_self_loop(&self) -> bool {
        self.vertices.len() == 1
    }

    pub(super) fn upper(&self) -> usize {
        self.vertices[0]
    }

    pub(super) fn lower(&self) -> usize {
        self.vertices[self.vertices.len() - 1]
    }
}

/// Vertex visits (a vertex and its links) the refinement sweeps of `order` and
/// of `place` may each spend. Dummies grow with the layers each edge spans (a
/// thousand steps all leading to the last make half a million), so on such
/// graphs the sweeps are fewer; a drawn neighbourhood (at most `MAX_NODES` steps)
/// stays well inside and gets every sweep.
const SWEEP_BUDGET: usize = 1_500_000;

impl Layout {
    pub(super) fn is_dummy(&self, vertex: usize) -> bool {
        vertex >= self.nodes
    }

    /// How many of `wanted` sweeps over every vertex and link fit in the budget
    /// (at least one).
    pub(super) fn sweeps_within_budget(&self, wanted: usize) -> usize {
        sweeps_within_budget(wanted, self.layer.len(), &self.below)
    }
}

/// See [`Layout::sweeps_within_budget`], before the layout is complete.
fn sweeps_within_budget(wanted: usize, vertices: usize, below: &[Vec<usize>]) -> usize {
    let links: usize = below.iter().map(Vec::len).sum();
    (SWEEP_BUDGET / (vertices + links).max(1)).clamp(1, wanted)
}

/// Layered layout of a graph of `n` nodes with `edges` (local indices), depth
/// first from `roots` in order, then from any node not reached.
pub(super) fn layout(n: usize, edges: &[(usize, usize)], roots: &[usize]) -> Layout {
    let search = break_cycles(n, edges, roots);
    // Each edge as it runs down the layers: back edges turned round.
    let downward: Vec<(usize, usize, bool)> = edges
        .iter()
        .map(|&(a, b)| {
            if a != b && search.back.contains(&(a, b)) {
                (b, a, true)
            } else {
                (a, b, false)
            }
        })
        .collect();
    let node_layer = longest_path_layers(n, &downward);
    let mut layout = Layout {
        nodes: n,
        layer: node_layer,
        position: Vec::new(),
        layers: Vec::new(),
        above: vec![Vec::new(); n],
        below: vec![Vec::new(); n],
        chains: Vec::with_capacity(edges.len()),
    };
    for &(upper, lower, upward) in &downward {
        let chain = layout.add_chain(upper, lower);
        layout.chains.push(Chain {
            vertices: chain,
            upward,
        });
    }
    layout.layers = group_by_layer(&layout.layer, &search.discovered);
    let sweeps = sweeps_within_budget(order::BARYCENTRE_SWEEPS, layout.layer.len(), &layout.below);
    layout.position = order::order(&mut layout.layers, &layout.above, &layout.below, sweeps);
    layout
}

impl Layout {
    /// The vertices from `upper` down to `lower`, adding a dummy in each layer
    /// between them and linking each to the next.
    fn add_chain(&mut self, upper: usize, lower: usize) -> Vec<usize> {
        if upper == lower {
            return vec![upper];
        }
        let (top, bottom) = (self.layer[upper], self.layer[lower]);
        let mut chain = Vec::with_capacity(bottom - top + 1);
        chain.push(upper);
        for layer in top + 1..bottom {
            let dummy = self.layer.len();
            self.layer.push(layer);
            self.above.push(Vec::new());
            self.below.push(Vec::new());
            chain.push(dummy);
        }
        chain.push(lower);
        for link in chain.windows(2) {
            self.below[link[0]].push(link[1]);
            self.above[link[1]].push(link[0]);
        }
        chain
    }
}

/// What the depth-first search found.
struct Search {
    /// Edges to a node still on the stack: turning them round leaves the graph
    /// acyclic (self-loops among them).
    back: HashSet<(usize, usize)>,
    /// Discovery order, the first left-to-right order within each layer.
    discovered: Vec<usize>,
}

/// Step 1: an iterative depth-first search (a recursive one would overflow on a
/// long chain), from `roots` first so the flow reads from its start.
fn break_cycles(n: usize, edges: &[(usize, usize)], roots: &[usize]) -> Search {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        out_edges[a].push(b);
    }
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut discovered = vec![usize::MAX; n];
    let mut next_discovery = 0;
    let mut back = HashSet::new();
    let starts = roots.iter().copied().chain(0..n).collect::<Vec<_>>();
    for start in starts {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        discovered[start] = next_discovery;
        next_discovery += 1;
        let mut stack = vec![(start, 0usize)];
        while let Some(&mut (node, ref mut k)) = stack.last_mut() {
            if let Some(&next) = out_edges[node].get(*k) {
                *k += 1;
                match state[next] {
                    0 => {
                        state[next] = 1;
                        discovered[next] = next_discovery;
                        next_discovery += 1;
                        stack.push((next, 0));
                    }
                    1 => {
                        back.insert((node, next));
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    Search { back, discovered }
}

/// Step 2: each node one layer below its lowest predecessor, in Kahn's
/// topological order over the edges as they run down (self-loops aside).
fn longest_path_layers(n: usize, downward: &[(usize, usize, bool)]) -> Vec<usize> {
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for &(a, b, _) in downward.iter().filter(|e| e.0 != e.1) {
        successors[a].push(b);
        indegree[b] += 1;
    }
    let mut layer = vec![0usize; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(a) = ready.pop_front() {
        for &b in &successors[a] {
            layer[b] = layer[b].max(layer[a] + 1);
            indegree[b] -= 1;
            if indegree[b] == 0 {
                ready.push_back(b);
            }
        }
    }
    layer
}

/// The vertices of each layer: steps in discovery order, then dummies in the
/// order their edges were given (the first ordering sweep places them).
fn group_by_layer(layer: &[usize], discovered: &[usize]) -> Vec<Vec<usize>> {
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    let mut steps: Vec<usize> = (0..discovered.len()).collect();
    steps.sort_by_key(|&i| discovered[i]);
    for vertex in steps.into_iter().chain(discovered.len()..layer.len()) {
        layers[layer[vertex]].push(vertex);
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_puts_successors_below_and_orders_against_crossings() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3, 3 → 0 (a loop back)
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 0)];
        let lay = layout(4, &edges, &[0]);
        assert_eq!(lay.layer[..4], [0, 1, 1, 2]);
        assert!(lay.chains[4].upward && !lay.chains[0].upward);
        // A crossing: 0 → 3 and 1 → 2 with 2, 3 in one layer start crossed.
        let edges = [(0, 3), (1, 2), (4, 0), (4, 1)];
        let lay = layout(5, &edges, &[4]);
        assert_eq!(lay.layer[2], lay.layer[3]);
        assert!(
            (lay.position[0] < lay.position[1]) == (lay.position[3] < lay.position[2]),
            "crossing left in place"
        );
    }

    #[test]
    fn long_and_back_edges_get_a_dummy_in_every_layer_they_cross() {
        // A chain 0 → 1 → 2 → 3, a skip 0 → 3 and a loop 3 → 1.
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3), (3, 1), (2, 2)];
        let lay = layout(4, &edges, &[0]);
        assert_eq!(lay.layer[..4], [0, 1, 2, 3]);
        let skip = &lay.chains[3];
        assert_eq!(skip.vertices.len(), 4, "two dummies between layers 0 and 3");
        assert!(skip.vertices[1..3].iter().all(|&v| lay.is_dummy(v)));
        let back = &lay.chains[4];
        assert!(back.upward);
        assert_eq!((back.upper(), back.lower()), (1, 3));
        assert!(lay.is_dummy(back.vertices[1]));
        assert!(lay.chains[5].is_self_loop());
        // Every link of every chain joins neighbouring layers.
        for chain in &lay.chains {
            for link in chain.vertices.windows(2) {
                assert_eq!(lay.layer[link[0]] + 1, lay.layer[link[1]]);
            }
        }
        // Dummies have a place of their own in their layer.
        for (l, layer) in lay.layers.iter().enumerate() {
            for (p, &v) in layer.iter().enumerate() {
                assert_eq!((lay.layer[v], lay.position[v]), (l, p));
            }
        }
    }
}
