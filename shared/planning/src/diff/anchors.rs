//! Pairing V1 and V2 steps: anchors by content hash (duplicated content by id and
//! neighbourhood), then edited steps by id, and the policy key of an edited step.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::graph::Graph;

/// Above this many candidate comparisons, duplicated content is not paired by
/// neighbourhood similarity (quadratic) and stays ambiguous.
const MAX_SIMILARITY_PAIRS: usize = 10_000;

/// V1 and V2 steps left unpaired by content that share an id: edited in place.
/// Repeated ids (invalid input) only count their first step.
pub(super) fn edited_pairs(
    g1: &Graph<'_>,
    g2: &Graph<'_>,
    anchors: &[(u32, u32)],
) -> Vec<(u32, u32)> {
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
pub(super) fn edited_key(g1: &Graph<'_>, g2: &Graph<'_>, j: u32) -> String {
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

pub(super) type Ambiguous = (Vec<u32>, Vec<u32>);

/// Pair steps with equal content hash. Unique hashes pair directly; duplicated content
/// pairs equal ids first, then steps with the same neighbourhood (predecessor and
/// successor hashes), then the most similar neighbourhood when that choice is mutual
/// and unique. What remains on both sides is ambiguous.
pub(super) fn pair_anchors(g1: &Graph<'_>, g2: &Graph<'_>) -> (Vec<(u32, u32)>, Vec<Ambiguous>) {
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
