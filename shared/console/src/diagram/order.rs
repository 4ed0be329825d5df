//! Ordering within layers against crossings: alternating sweeps of the
//! barycentre heuristic (each vertex sorted by the mean position of its
//! neighbours in the layer just above, then just below), keeping whichever
//! order crossed least. Dummies take part like steps, so a long edge is pulled
//! next to the steps it connects instead of cutting across the layers between.
//!
//! Each sweep sorts every layer once and each count is a Fenwick-tree inversion
//! count per pair of layers, so the work grows as (vertices + links) · log, dummies
//! included.

/// Sweeps alternate down, up, down, …: a few suffice on flow-like graphs (fewer
/// are made on huge ones, see `layout`).
pub(super) const BARYCENTRE_SWEEPS: usize = 6;

/// Reorders `layers` in place with up to `sweeps` sweeps; each vertex's final
/// position within its layer.
pub(super) fn order(
    layers: &mut [Vec<usize>],
    above: &[Vec<usize>],
    below: &[Vec<usize>],
    sweeps: usize,
) -> Vec<usize> {
    let mut position = vec![0usize; above.len()];
    record_positions(layers, &mut position);
    let mut best = layers.to_vec();
    let mut fewest = crossings(layers, below, &position);
    for sweep in 0..sweeps {
        if fewest == 0 {
            break;
        }
        let downward = sweep % 2 == 0;
        let depth = layers.len();
        let range: Vec<usize> = if downward {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        let neighbours = if downward { above } else { below };
        for l in range {
            reorder_layer(&mut layers[l], neighbours, &mut position);
        }
        let count = crossings(layers, below, &position);
        if count < fewest {
            fewest = count;
            best.clone_from_slice(layers);
        }
    }
    layers.clone_from_slice(&best);
    record_positions(layers, &mut position);
    position
}

fn record_positions(layers: &[Vec<usize>], position: &mut [usize]) {
    for layer in layers {
        for (p, &v) in layer.iter().enumerate() {
            position[v] = p;
        }
    }
}

/// Sort one layer by the mean position of each vertex's neighbours (a vertex
/// without any keeps its place as its key); ties keep the current order.
fn reorder_layer(layer: &mut Vec<usize>, neighbours: &[Vec<usize>], position: &mut [usize]) {
    let mut keyed: Vec<(f64, usize)> = layer
        .iter()
        .map(|&v| {
            let ns = &neighbours[v];
            let key = if ns.is_empty() {
                position[v] as f64
            } else {
                ns.iter().map(|&u| position[u] as f64).sum::<f64>() / ns.len() as f64
            };
            (key, v)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(position[a.1].cmp(&position[b.1])));
    *layer = keyed.into_iter().map(|(_, v)| v).collect();
    for (p, &v) in layer.iter().enumerate() {
        position[v] = p;
    }
}

/// How many pairs of links between neighbouring layers cross.
fn crossings(layers: &[Vec<usize>], below: &[Vec<usize>], position: &[usize]) -> u64 {
    let mut total = 0;
    for pair in layers.windows(2) {
        let mut links: Vec<(usize, usize)> = pair[0]
            .iter()
            .flat_map(|&u| below[u].iter().map(move |&v| (u, v)))
            .map(|(u, v)| (position[u], position[v]))
            .collect();
        links.sort_unstable();
        total += inversions(links.iter().map(|l| l.1), pair[1].len());
    }
    total
}

/// Pairs out of order in `values` (each below `bound`): a Fenwick tree counts,
/// for each value, those already seen that are greater.
fn inversions(values: impl Iterator<Item = usize>, bound: usize) -> u64 {
    let mut tree = vec![0u64; bound + 1];
    let mut count = 0u64;
    for (seen, value) in values.enumerate() {
        let mut not_greater = 0;
        let mut i = value + 1;
        while i > 0 {
            not_greater += tree[i];
            i &= i - 1;
        }
        count += seen as u64 - not_greater;
        let mut i = value + 1;
        while i <= bound {
            tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_count_crossing_pairs() {
        assert_eq!(inversions([0, 1, 2].into_iter(), 3), 0);
        assert_eq!(inversions([2, 1, 0].into_iter(), 3), 3);
        assert_eq!(inversions([1, 1, 0].into_iter(), 2), 2);
    }
}
