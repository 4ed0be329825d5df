//! Horizontal placement: where each vertex of the layout sits across the canvas,
//! keeping the order `order` chose and the minimum spacing of each pair of
//! neighbours in a layer.
//!
//! Each layer in turn is pulled towards its neighbours in the layer above (or
//! below, sweeping back up): every vertex wants to sit at the weighted mean of
//! its neighbours, and the closest placement (least squares) that keeps the order
//! and the spacing is found exactly by pooling adjacent violators. Links between
//! two dummies weigh most, so long edges run straight and bend near their ends.
//! A last pass straightens what the pulls left slightly bent: each run of a long
//! edge's dummies that can share one column (given where their neighbours in
//! the layer are) is set in it. Each sweep and the last pass are linear in the
//! vertices and links, dummies included.

use super::layout::Layout;

/// Alternating down and up sweeps, then one pulling both ways (fewer on huge
/// graphs, see `layout`).
const PLACEMENT_SWEEPS: usize = 6;
/// How strongly a link pulls, by what it joins: straight long edges matter more
/// than centring a step over its neighbours.
const STEP_LINK_WEIGHT: f64 = 1.0;
const DUMMY_STEP_LINK_WEIGHT: f64 = 2.0;
const DUMMY_LINK_WEIGHT: f64 = 8.0;
/// A vertex without neighbours on the side being pulled stays where it is, gently.
const STAY_WEIGHT: f64 = 0.1;

/// How much room each vertex takes left and right of its centre, and the gaps
/// kept between neighbours of a layer.
pub(super) struct Widths {
    pub left: Vec<f64>,
    pub right: Vec<f64>,
    /// Between two steps.
    pub step_gap: f64,
    /// Between a dummy and anything: an edge needs less room than a box.
    pub dummy_gap: f64,
}

impl Widths {
    fn gap(&self, layout: &Layout, u: usize, v: usize) -> f64 {
        if layout.is_dummy(u) || layout.is_dummy(v) {
            self.dummy_gap
        } else {
            self.step_gap
        }
    }
}

/// The centre of each vertex, in pixels from an arbitrary origin.
pub(super) fn place(layout: &Layout, widths: &Widths) -> Vec<f64> {
    let mut x = vec![0.0; layout.layer.len()];
    for layer in &layout.layers {
        let packed = offsets(layout, layer, widths);
        let middle = packed.last().copied().unwrap_or(0.0) / 2.0;
        for (&v, offset) in layer.iter().zip(packed) {
            x[v] = offset - middle;
        }
    }
    let depth = layout.layers.len();
    let sweeps = layout.sweeps_within_budget(PLACEMENT_SWEEPS + 1) - 1;
    for sweep in 0..=sweeps {
        let (order, pulls): (Vec<usize>, Pulls) = match sweep {
            s if s == sweeps => ((0..depth).collect(), Pulls::Both),
            s if s % 2 == 0 => ((1..depth).collect(), Pulls::Above),
            _ => ((0..depth.saturating_sub(1)).rev().collect(), Pulls::Below),
        };
        for l in order {
            place_layer(layout, widths, &layout.layers[l], pulls, &mut x);
        }
    }
    straighten(layout, widths, &mut x);
    x
}

/// Set each run of a chain's consecutive dummies that fits in one column into
/// it: a dummy may move anywhere between its layer neighbours (keeping the
/// spacing), so a run fits while those ranges still overlap.
fn straighten(layout: &Layout, widths: &Widths, x: &mut [f64]) {
    for chain in layout.chains.iter().filter(|c| c.vertices.len() > 3) {
        let dummies = &chain.vertices[1..chain.vertices.len() - 1];
        let mut run: Vec<usize> = Vec::new();
        let mut room = (f64::NEG_INFINITY, f64::INFINITY);
        for &dummy in dummies {
            let (lo, hi) = free_range(layout, widths, x, dummy);
            let shared = (room.0.max(lo), room.1.min(hi));
            if shared.0 <= shared.1 + 1e-9 {
                run.push(dummy);
                room = shared;
            } else {
                set_in_column(&run, room, x);
                run = vec![dummy];
                room = (lo, hi);
            }
        }
        set_in_column(&run, room, x);
    }
}

/// Where `v` may sit without crowding its neighbours in its layer.
fn free_range(layout: &Layout, widths: &Widths, x: &[f64], v: usize) -> (f64, f64) {
    let layer = &layout.layers[layout.layer[v]];
    let p = layout.position[v];
    let lo = p.checked_sub(1).map_or(f64::NEG_INFINITY, |q| {
        let u = layer[q];
        x[u] + widths.right[u] + widths.gap(layout, u, v) + widths.left[v]
    });
    let hi = layer.get(p + 1).map_or(f64::INFINITY, |&w| {
        x[w] - widths.left[w] - widths.gap(layout, v, w) - widths.right[v]
    });
    (lo, hi)
}

/// Move `run` to one column in `room`: their mean, or the nearest it allows.
fn set_in_column(run: &[usize], room: (f64, f64), x: &mut [f64]) {
    if run.len() < 2 {
        return;
    }
    let mean = run.iter().map(|&v| x[v]).sum::<f64>() / run.len() as f64;
    // Not `clamp`: rounding may leave the room a hair inverted.
    let column = mean.max(room.0).min(room.1);
    for &v in run {
        x[v] = column;
    }
}

#[derive(Clone, Copy)]
enum Pulls {
    Above,
    Below,
    Both,
}

fn link_weight(layout: &Layout, a: usize, b: usize) -> f64 {
    match (layout.is_dummy(a), layout.is_dummy(b)) {
        (true, true) => DUMMY_LINK_WEIGHT,
        (false, false) => STEP_LINK_WEIGHT,
        _ => DUMMY_STEP_LINK_WEIGHT,
    }
}

/// Each vertex's position when the layer is packed tight from 0: the least
/// distance from the first vertex's centre.
fn offsets(layout: &Layout, layer: &[usize], widths: &Widths) -> Vec<f64> {
    let mut out = Vec::with_capacity(layer.len());
    let mut at = 0.0;
    for (i, &v) in layer.iter().enumerate() {
        if i > 0 {
            let u = layer[i - 1];
            at += widths.right[u] + widths.gap(layout, u, v) + widths.left[v];
        }
        out.push(at);
    }
    out
}

/// Move one layer's vertices as close as the spacing allows to where their
/// neighbours pull them.
fn place_layer(layout: &Layout, widths: &Widths, layer: &[usize], pulls: Pulls, x: &mut [f64]) {
    let packed = offsets(layout, layer, widths);
    // With y = x − offset the spacing becomes "y never decreases", and the
    // closest such y to the targets is a weighted isotonic regression.
    let mut blocks: Vec<Block> = Vec::with_capacity(layer.len());
    for (&v, offset) in layer.iter().zip(&packed) {
        let (above, below): (&[usize], &[usize]) = match pulls {
            Pulls::Above => (&layout.above[v], &[]),
            Pulls::Below => (&[], &layout.below[v]),
            Pulls::Both => (&layout.above[v], &layout.below[v]),
        };
        let (mut weight, mut sum) = (0.0, 0.0);
        for &u in above.iter().chain(below) {
            let w = link_weight(layout, u, v);
            weight += w;
            sum += w * x[u];
        }
        let (target, weight) = if weight > 0.0 {
            (sum / weight, weight)
        } else {
            (x[v], STAY_WEIGHT)
        };
        blocks.push(Block {
            weight,
            weighted_sum: weight * (target - offset),
            len: 1,
        });
        while blocks.len() > 1 && blocks[blocks.len() - 2].mean() > blocks[blocks.len() - 1].mean()
        {
            let last = blocks.pop().expect("two blocks");
            let merged = blocks.last_mut().expect("one block");
            merged.weight += last.weight;
            merged.weighted_sum += last.weighted_sum;
            merged.len += last.len;
        }
    }
    let mut i = 0;
    for block in blocks {
        let y = block.mean();
        for _ in 0..block.len {
            x[layer[i]] = y + packed[i];
            i += 1;
        }
    }
}

/// A run of vertices that sit packed tight, at their pooled mean.
struct Block {
    weight: f64,
    weighted_sum: f64,
    len: usize,
}

impl Block {
    fn mean(&self) -> f64 {
        self.weighted_sum / self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::layout;
    use super::*;

    fn widths(layout: &Layout) -> Widths {
        let nodes = layout.nodes;
        let half = |v: usize| if v < nodes { 50.0 } else { 0.0 };
        let all = 0..layout.layer.len();
        Widths {
            left: all.clone().map(half).collect(),
            right: all.map(half).collect(),
            step_gap: 10.0,
            dummy_gap: 10.0,
        }
    }

    #[test]
    fn placement_keeps_order_and_spacing_and_straightens_chains() {
        // A chain with a skip over two steps: 0 → 1 → 2 → 3, 0 → 3.
        let lay = layout(4, &[(0, 1), (1, 2), (2, 3), (0, 3)], &[0]);
        let w = widths(&lay);
        let x = place(&lay, &w);
        for layer in &lay.layers {
            for pair in layer.windows(2) {
                let least = w.right[pair[0]] + 10.0 + w.left[pair[1]];
                assert!(x[pair[1]] - x[pair[0]] >= least - 1e-6, "{x:?}");
            }
        }
        // The skip's two dummies sit one above the other (within rounding).
        let dummies = &lay.chains[3].vertices[1..3];
        assert!((x[dummies[0]] - x[dummies[1]]).abs() < 1e-6, "{x:?}");
    }
}
