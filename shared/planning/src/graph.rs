//! An index-based view of one scenario version for the diff: adjacency in evaluation
//! order, reverse adjacency, strict reachability as bitsets, and a *flow order* that
//! makes every list the diff outputs deterministic.
//!
//! Flow order: breadth-first from the entry step, following each step's transitions
//! by priority (higher first, as the runtime evaluates them) then by their position;
//! steps the entry cannot reach come last, sorted by content hash then id. It depends
//! only on the graph, not on how the step list happens to be ordered.

use std::collections::HashMap;
use std::rc::Rc;

use uuid::Uuid;

use crate::hash::step_content_hash_with;
use crate::model::{ScenarioInput, StepInput};

/// A fixed-size set of step indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// True when `i` was not in the set yet.
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        match self.words.get_mut(w) {
            Some(word) => {
                let fresh = *word & (1 << b) == 0;
                *word |= 1 << b;
                fresh
            }
            None => false,
        }
    }

    pub fn contains(&self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    None
                } else {
                    let b = rest.trailing_zeros();
                    rest &= rest - 1;
                    Some(w as u32 * 64 + b)
                }
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dir {
    /// Along transitions: what a step can reach.
    Forward,
    /// Against transitions: what can reach a step.
    Backward,
}

pub(crate) struct Graph<'a> {
    pub steps: &'a [StepInput],
    pub hashes: Vec<String>,
    /// The content hashes as numbers (they are 16 hex digits): cheap to compare and
    /// to group by.
    pub keys: Vec<u64>,
    /// (key, step) sorted by key then flow order: the steps sharing a content hash
    /// are one contiguous run.
    pub by_key: Vec<(u64, u32)>,
    /// First occurrence wins when ids repeat (only invalid input has repeats).
    pub index: HashMap<Uuid, u32>,
    /// Resolved successors in evaluation order, as (target, transition position).
    pub succ: Vec<Vec<(u32, u32)>>,
    /// Distinct predecessors, in flow order.
    pub pred: Vec<Vec<u32>>,
    /// Position of each step in flow order.
    pub rank: Vec<u32>,
    /// Number of steps reachable from the entry (they hold ranks `0..reachable`).
    pub reachable: u32,
}

impl<'a> Graph<'a> {
    pub fn new(scenario: &'a ScenarioInput) -> Self {
        let steps = scenario.steps.as_slice();
        let n = steps.len();
        let mut scratch = String::with_capacity(256);
        let hashes: Vec<String> = steps
            .iter()
            .map(|s| step_content_hash_with(s, &mut scratch))
            .collect();
        let mut index = HashMap::with_capacity(n);
        for (i, s) in steps.iter().enumerate() {
            index.entry(s.id).or_insert(i as u32);
        }
        let succ: Vec<Vec<(u32, u32)>> = steps
            .iter()
            .map(|s| {
                let mut out: Vec<(u32, u32, i64)> = s
                    .transitions
                    .iter()
                    .enumerate()
                    .filter_map(|(t, tr)| {
                        index
                            .get(&tr.to_step_id)
                            .map(|&to| (to, t as u32, tr.priority))
                    })
                    .collect();
                out.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
                out.into_iter().map(|(to, t, _)| (to, t)).collect()
            })
            .collect();

        let mut order: Vec<u32> = Vec::with_capacity(n);
        let mut seen = BitSet::new(n);
        if let Some(&entry) = index.get(&scenario.entry_step_id) {
            seen.insert(entry);
            order.push(entry);
            let mut head = 0;
            while let Some(&u) = order.get(head) {
                head += 1;
                for &(v, _) in &succ[u as usize] {
                    if seen.insert(v) {
                        order.push(v);
                    }
                }
            }
        }
        let reachable = order.len() as u32;
        let mut rest: Vec<u32> = (0..n as u32).filter(|&i| !seen.contains(i)).collect();
        rest.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            hashes[a]
                .cmp(&hashes[b])
                .then(steps[a].id.cmp(&steps[b].id))
                .then(a.cmp(&b))
        });
        order.extend(rest);
        let mut rank = vec![0u32; n];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }

        let mut pred: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (u, out) in succ.iter().enumerate() {
            for &(v, _) in out {
                pred[v as usize].push(u as u32);
            }
        }
        for p in &mut pred {
            p.sort_by_key(|&u| rank[u as usize]);
            p.dedup();
        }

        let keys: Vec<u64> = hashes
            .iter()
            .map(|h| u64::from_str_radix(h, 16).unwrap_or(0))
            .collect();
        let mut by_key: Vec<(u64, u32)> = (0..n as u32).map(|i| (keys[i as usize], i)).collect();
        by_key.sort_unstable_by_key(|&(k, i)| (k, rank[i as usize]));

        Graph {
            steps,
            hashes,
            keys,
            by_key,
            index,
            succ,
            pred,
            rank,
            reachable,
        }
    }

    /// Give steps other keys (an edited step takes its old version's key, so that
    /// regions and transitions compare it as the same step) and re-sort `by_key`.
    pub fn rekey(&mut self, changes: &[(u32, u64)]) {
        if changes.is_empty() {
            return;
        }
        for &(i, key) in changes {
            if let Some(k) = self.keys.get_mut(i as usize) {
                *k = key;
            }
        }
        let rank = &self.rank;
        let keys = &self.keys;
        self.by_key = (0..keys.len() as u32)
            .map(|i| (keys[i as usize], i))
            .collect();
        self.by_key
            .sort_unstable_by_key(|&(k, i)| (k, rank[i as usize]));
    }

    /// The steps whose content hash is `key`, in flow order.
    pub fn members(&self, key: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.by_key.partition_point(|&(k, _)| k < key);
        self.by_key[start..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, i)| i)
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn step(&self, i: u32) -> &'a StepInput {
        &self.steps[i as usize]
    }

    pub fn is_reachable_from_entry(&self, i: u32) -> bool {
        self.rank[i as usize] < self.reachable
    }

    /// Steps reached from `sources` through at least one transition. A source is in
    /// the result only when a cycle (or another source) leads back to it.
    pub fn reach(&self, sources: &[u32], dir: Dir) -> BitSet {
        let mut seen = BitSet::new(self.len());
        let mut queue: Vec<u32> = Vec::new();
        let visit = |u: u32, seen: &mut BitSet, queue: &mut Vec<u32>| match dir {
            Dir::Forward => {
                for &(v, _) in &self.succ[u as usize] {
                    if seen.insert(v) {
                        queue.push(v);
                    }
                }
            }
            Dir::Backward => {
                for &v in &self.pred[u as usize] {
                    if seen.insert(v) {
                        queue.push(v);
                    }
                }
            }
        };
        for &s in sources {
            if (s as usize) < self.len() {
                visit(s, &mut seen, &mut queue);
            }
        }
        let mut head = 0;
        while let Some(&u) = queue.get(head) {
            head += 1;
            visit(u, &mut seen, &mut queue);
        }
        seen
    }

    /// Shortest distance (in transitions) from every step to the nearest step of
    /// `targets` along `dir`; `u32::MAX` when none is reachable.
    pub fn distances_to(&self, targets: &[u32], dir: Dir) -> Vec<u32> {
        let mut dist = vec![u32::MAX; self.len()];
        let mut queue: Vec<u32> = Vec::new();
        for &t in targets {
            if let Some(d) = dist.get_mut(t as usize)
                && *d != 0
            {
                *d = 0;
                queue.push(t);
            }
        }
        let mut head = 0;
        while let Some(&u) = queue.get(head) {
            head += 1;
            let next = dist[u as usize].saturating_add(1);
            // Distance *to* the targets along `dir` grows against `dir`.
            let mut relax = |v: u32| {
                if dist[v as usize] == u32::MAX {
                    dist[v as usize] = next;
                    queue.push(v);
                }
            };
            match dir {
                Dir::Forward => self.pred[u as usize].iter().for_each(|&v| relax(v)),
                Dir::Backward => self.succ[u as usize].iter().for_each(|&(v, _)| relax(v)),
            }
        }
        dist
    }
}

/// Memoised single-source reachability for the steps the diff asks about repeatedly.
#[derive(Default)]
pub(crate) struct ReachCache {
    sets: HashMap<(u32, Dir), Rc<BitSet>>,
}

impl ReachCache {
    pub fn get(&mut self, g: &Graph<'_>, v: u32, dir: Dir) -> Rc<BitSet> {
        self.sets
            .entry((v, dir))
            .or_insert_with(|| Rc::new(g.reach(&[v], dir)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{name_id, scenario, step};

    #[test]
    fn bitset_basics() {
        let mut s = BitSet::new(130);
        assert!(s.insert(0));
        assert!(s.insert(129));
        assert!(!s.insert(129));
        assert!(!s.insert(500));
        assert!(s.contains(129) && !s.contains(64) && !s.contains(500));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 129]);
    }

    #[test]
    fn flow_order_follows_priority_and_ignores_list_order() {
        let a = scenario(
            1,
            vec![
                step("A").to_if("B", "x", 0).to_if("C", "y", 5),
                step("B"),
                step("C"),
                step("Z"),
                step("Y"),
            ],
        );
        let g = Graph::new(&a);
        let names = |g: &Graph| {
            let mut idx: Vec<u32> = (0..g.len() as u32).collect();
            idx.sort_by_key(|&i| g.rank[i as usize]);
            idx.iter()
                .map(|&i| g.step(i).name.clone())
                .collect::<Vec<_>>()
        };
        let order = names(&g);
        assert_eq!(&order[..3], &["A", "C", "B"]);
        assert_eq!(g.reachable, 3);

        let mut shuffled = a.clone();
        shuffled.steps.reverse();
        assert_eq!(names(&Graph::new(&shuffled)), order);
    }

    #[test]
    fn reach_is_strict_and_survives_cycles() {
        let s = scenario(
            1,
            vec![
                step("A").to("B"),
                step("B").to("C"),
                step("C").to("B"),
                step("D").to("D"),
            ],
        );
        let g = Graph::new(&s);
        let i = |n: &str| g.index[&name_id(n)];
        let from_a = g.reach(&[i("A")], Dir::Forward);
        assert!(!from_a.contains(i("A")));
        assert!(from_a.contains(i("B")) && from_a.contains(i("C")));
        let from_b = g.reach(&[i("B")], Dir::Forward);
        assert!(from_b.contains(i("B")), "B reaches itself through C");
        assert!(g.reach(&[i("D")], Dir::Backward).contains(i("D")));
        let dist = g.distances_to(&[i("C")], Dir::Forward);
        assert_eq!(dist[i("A") as usize], 2);
        assert_eq!(dist[i("D") as usize], u32::MAX);
    }
}
