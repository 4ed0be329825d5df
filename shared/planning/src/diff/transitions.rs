//! The outgoing transitions of a matched step compared between the versions.

use std::collections::HashMap;

use uuid::Uuid;

use crate::graph::Graph;
use crate::model::{StepInput, TransitionChange, TransitionChangeType, TransitionInput};

pub(super) fn sorted_conditions(s: &StepInput) -> Vec<&str> {
    let mut c: Vec<&str> = s
        .transitions
        .iter()
        .map(|t| t.condition_text.as_str())
        .collect();
    c.sort_unstable();
    c
}

/// The transitions of a matched step compared by target content hash: same target
/// and same condition is unchanged, same target with another condition, priority or
/// field list is modified, the rest added or removed. `from_step_id` is the V2 id.
pub(super) fn transition_changes(
    g1: &Graph<'_>,
    g2: &Graph<'_>,
    s1: &StepInput,
    s2: &StepInput,
) -> Vec<TransitionChange> {
    let same = |a: &TransitionInput, b: &TransitionInput| {
        a.condition_text == b.condition_text
            && a.priority == b.priority
            && a.condition_fields == b.condition_fields
    };
    let key = |g: &Graph<'_>, t: &TransitionInput| {
        g.index.get(&t.to_step_id).map(|&i| g.keys[i as usize])
    };
    // Fast path, without allocating: most steps did not change at all.
    if s1.transitions.len() == s2.transitions.len()
        && s1
            .transitions
            .iter()
            .zip(&s2.transitions)
            .all(|(a, b)| key(g1, a) == key(g2, b) && same(a, b))
    {
        return Vec::new();
    }
    fn list(g: &Graph<'_>, s: &StepInput) -> Vec<(u64, Uuid, usize)> {
        s.transitions
            .iter()
            .enumerate()
            .filter_map(|(k, t)| {
                g.index
                    .get(&t.to_step_id)
                    .map(|&i| (g.keys[i as usize], t.to_step_id, k))
            })
            .collect()
    }
    let t1 = list(g1, s1);
    let t2 = list(g2, s2);

    let mut unused: HashMap<u64, Vec<usize>> = HashMap::new();
    for (x, (h, _, _)) in t1.iter().enumerate().rev() {
        unused.entry(*h).or_default().push(x);
    }
    let mut used1 = vec![false; t1.len()];
    let mut matched2: Vec<Option<usize>> = vec![None; t2.len()];
    // Pass 1: identical transitions, so a reordering is not reported as a change.
    for (y, (h, _, k2)) in t2.iter().enumerate() {
        if let Some(cands) = unused.get(h)
            && let Some(&x) = cands
                .iter()
                .rev()
                .find(|&&x| !used1[x] && same(&s1.transitions[t1[x].2], &s2.transitions[*k2]))
        {
            used1[x] = true;
            matched2[y] = Some(x);
        }
    }
    let mut out = Vec::new();
    for (y, (h, to2, _)) in t2.iter().enumerate() {
        if matched2[y].is_some() {
            continue;
        }
        let partner = unused.get_mut(h).and_then(|cands| {
            while let Some(&x) = cands.last() {
                if used1[x] {
                    cands.pop();
                } else {
                    return Some(x);
                }
            }
            None
        });
        match partner {
            Some(x) => {
                used1[x] = true;
                out.push(TransitionChange {
                    from_step_id: s2.id,
                    to_step_id_v1: Some(t1[x].1),
                    to_step_id_v2: Some(*to2),
                    change_type: TransitionChangeType::Modified,
                });
            }
            None => out.push(TransitionChange {
                from_step_id: s2.id,
                to_step_id_v1: None,
                to_step_id_v2: Some(*to2),
                change_type: TransitionChangeType::Added,
            }),
        }
    }
    for (x, (_, to1, _)) in t1.iter().enumerate() {
        if !used1[x] {
            out.push(TransitionChange {
                from_step_id: s2.id,
                to_step_id_v1: Some(*to1),
                to_step_id_v2: None,
                change_type: TransitionChangeType::Removed,
            });
        }
    }
    out
}
