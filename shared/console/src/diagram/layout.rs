//! Layered layout of the drawn steps, kept deliberately small:
//! 1. cycles broken by a depth-first search from the entry (or the focused step):
//!    edges to a step still on the stack are drawn as back edges;
//! 2. longest-path layering of the remaining acyclic graph (a step sits one layer
//!    below its lowest predecessor);
//! 3. within each layer, steps ordered by a few alternating sweeps of the
//!    barycentre heuristic (the mean position of their neighbours in the layers
//!    above, then below), which removes most crossings of flow-like graphs.
//!
//! Works on local indices `0..n` and knows nothing of steps or pixels.

use std::collections::{HashSet, VecDeque};

/// Sweeps alternate down, up, down, up: a few suffice on flow-like graphs, and
/// each costs a sort per layer.
const BARYCENTRE_SWEEPS: usize = 4;

/// Layer and in-layer position of each drawn node, and the edges drawn upwards.
pub(super) struct Layout {
    pub layer: Vec<usize>,
    pub position: Vec<usize>,
    pub layers: Vec<Vec<usize>>,
    pub back: HashSet<(usize, usize)>,
}

/// Layered layout of a graph of `n` nodes with `edges` (local indices), depth
/// first from `roots` in order, then from any node not reached.
pub(super) fn layout(n: usize, edges: &[(usize, usize)], roots: &[usize]) -> Layout {
    let search = break_cycles(n, edges, roots);
    let forward = ForwardGraph::new(n, edges, &search.back);
    let layer = longest_path_layers(n, &forward);
    let mut layers = group_by_layer(&layer, &search.discovered);
    let position = order_by_barycentre(n, &mut layers, &forward);
    Layout {
        layer,
        position,
        layers,
        back: search.back,
    }
}

/// What the depth-first search found.
struct Search {
    /// Edges to a node still on the stack: dropping them leaves the graph acyclic.
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

/// The acyclic rest of the graph: neither back edges nor self-loops.
struct ForwardGraph {
    succ: Vec<Vec<usize>>,
    pred: Vec<Vec<usize>>,
    indegree: Vec<usize>,
}

impl ForwardGraph {
    fn new(n: usize, edges: &[(usize, usize)], back: &HashSet<(usize, usize)>) -> ForwardGraph {
        let mut graph = ForwardGraph {
            succ: vec![Vec::new(); n],
            pred: vec![Vec::new(); n],
            indegree: vec![0usize; n],
        };
        for &(a, b) in edges.iter().filter(|e| !back.contains(e) && e.0 != e.1) {
            graph.indegree[b] += 1;
            graph.succ[a].push(b);
            graph.pred[b].push(a);
        }
        graph
    }
}

/// Step 2: each node one layer below its lowest predecessor, in Kahn's
/// topological order.
fn longest_path_layers(n: usize, graph: &ForwardGraph) -> Vec<usize> {
    let mut indegree = graph.indegree.clone();
    let mut layer = vec![0usize; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(a) = ready.pop_front() {
        for &b in &graph.succ[a] {
            layer[b] = layer[b].max(layer[a] + 1);
            indegree[b] -= 1;
            if indegree[b] == 0 {
                ready.push_back(b);
            }
        }
    }
    layer
}

/// The nodes of each layer, in discovery order.
fn group_by_layer(layer: &[usize], discovered: &[usize]) -> Vec<Vec<usize>> {
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    let mut by_discovery: Vec<usize> = (0..layer.len()).collect();
    by_discovery.sort_by_key(|&i| discovered[i]);
    for i in by_discovery {
        layers[layer[i]].push(i);
    }
    layers
}

/// Step 3: barycentre sweeps, down (by predecessors) then up (by successors),
/// reordering `layers` in place; each node's final position within its layer.
fn order_by_barycentre(n: usize, layers: &mut [Vec<usize>], graph: &ForwardGraph) -> Vec<usize> {
    let depth = layers.len();
    let mut position = vec![0usize; n];
    for l in layers.iter() {
        for (p, &i) in l.iter().enumerate() {
            position[i] = p;
        }
    }
    for sweep in 0..BARYCENTRE_SWEEPS {
        let downward = sweep % 2 == 0;
        let range: Vec<usize> = if downward {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        let neighbours = if downward { &graph.pred } else { &graph.succ };
        for l in range {
            reorder_layer(&mut layers[l], neighbours, &mut position);
        }
    }
    position
}

/// Sort one layer by the mean position of each node's neighbours (a node without
/// any keeps its place as its key); ties keep the current order.
fn reorder_layer(layer: &mut Vec<usize>, neighbours: &[Vec<usize>], position: &mut [usize]) {
    let mut keyed: Vec<(f64, usize)> = layer
        .iter()
        .map(|&i| {
            let ns = &neighbours[i];
            let key = if ns.is_empty() {
                position[i] as f64
            } else {
                ns.iter().map(|&j| position[j] as f64).sum::<f64>() / ns.len() as f64
            };
            (key, i)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(position[a.1].cmp(&position[b.1])));
    *layer = keyed.into_iter().map(|(_, i)| i).collect();
    for (p, &i) in layer.iter().enumerate() {
        position[i] = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_puts_successors_below_and_orders_by_barycentre() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3, 3 → 0 (a loop back)
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 0)];
        let lay = layout(4, &edges, &[0]);
        assert_eq!(lay.layer, vec![0, 1, 1, 2]);
        assert!(lay.back.contains(&(3, 0)));
        // A crossing: 0 → 3 and 1 → 2 with 2, 3 in one layer start crossed.
        let edges = [(0, 3), (1, 2), (4, 0), (4, 1)];
        let lay = layout(5, &edges, &[4]);
        assert_eq!(lay.layer[2], lay.layer[3]);
        assert!(
            (lay.position[0] < lay.position[1]) == (lay.position[3] < lay.position[2]),
            "crossing left in place"
        );
    }
}
