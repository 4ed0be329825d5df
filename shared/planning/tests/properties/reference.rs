//! The brute-force reference of the regions (their definition, read literally:
//! one BFS per anchor), and the coverage check every diff must pass.

use std::collections::{BTreeSet, HashMap, HashSet};

use planning::diff::DiffOutput;
use planning::hash::step_content_hash;
use planning::model::{MigrationScenario, ScenarioInput, StepInput, TransitionInput};
use uuid::Uuid;

pub(super) struct Ref<'a> {
    s: &'a ScenarioInput,
    index: HashMap<Uuid, usize>,
    /// Match keys: the content hash, except that an edited V2 step carries the
    /// hash of its V1 step (regions compare it as the same step).
    hashes: Vec<String>,
}

impl<'a> Ref<'a> {
    fn new(s: &'a ScenarioInput) -> Self {
        Ref {
            s,
            index: s
                .steps
                .iter()
                .enumerate()
                .map(|(i, st)| (st.id, i))
                .collect(),
            hashes: s.steps.iter().map(step_content_hash).collect(),
        }
    }
    /// The same with edited steps (V2 id → V1 content hash) rekeyed.
    fn rekeyed(s: &'a ScenarioInput, edited: &HashMap<Uuid, String>) -> Self {
        let mut r = Ref::new(s);
        for (k, st) in s.steps.iter().enumerate() {
            if let Some(h) = edited.get(&st.id) {
                r.hashes[k] = h.clone();
            }
        }
        r
    }
    fn targets(&self, i: usize) -> Vec<usize> {
        self.s.steps[i]
            .transitions
            .iter()
            .filter_map(|t| self.index.get(&t.to_step_id).copied())
            .collect()
    }
    /// Steps reachable from `i` (forward) or reaching it (backward), `i` excluded.
    fn region(&self, i: usize, forward: bool) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![i];
        while let Some(u) = stack.pop() {
            let next: Vec<usize> = if forward {
                self.targets(u)
            } else {
                (0..self.s.steps.len())
                    .filter(|&p| self.targets(p).contains(&u))
                    .collect()
            };
            for v in next {
                if seen.insert(v) {
                    stack.push(v);
                }
            }
        }
        seen.remove(&i);
        seen
    }
}

pub(super) fn sorted_conditions(s: &StepInput) -> Vec<&str> {
    let mut c: Vec<&str> = s
        .transitions
        .iter()
        .map(|t| t.condition_text.as_str())
        .collect();
    c.sort_unstable();
    c
}

/// Check every anchor's (and edited step's) regions against the literal
/// definitions, where an edited pair compares as one step.
pub(super) fn check_against_reference(v1: &ScenarioInput, v2: &ScenarioInput, out: &DiffOutput) {
    let map = &out.transformation_map;
    let edited_keys: HashMap<Uuid, String> = map
        .edited_steps
        .iter()
        .map(|e| (e.step.anchor_node_id_v2, e.content_hash_v1.clone()))
        .collect();
    let r1 = Ref::new(v1);
    let r2 = Ref::rekeyed(v2, &edited_keys);
    let partner2: HashMap<Uuid, Uuid> = map
        .targets()
        .map(|a| (a.anchor_node_id_v2, a.anchor_node_id_v1))
        .collect();
    let partner1: HashMap<Uuid, Uuid> = map
        .targets()
        .map(|a| (a.anchor_node_id_v1, a.anchor_node_id_v2))
        .collect();
    let edited_v2: HashMap<Uuid, (&StepInput, &StepInput)> = map
        .edited_steps
        .iter()
        .filter_map(|e| {
            let s1 = v1.steps.iter().find(|s| s.id == e.step.anchor_node_id_v1)?;
            let s2 = v2.steps.iter().find(|s| s.id == e.step.anchor_node_id_v2)?;
            Some((s2.id, (s1, s2)))
        })
        .collect();
    let fork_changed = |j: usize| -> bool {
        let st = &v2.steps[j];
        st.transitions.len() >= 2
            && partner2
                .get(&st.id)
                .and_then(|i1| r1.index.get(i1))
                .is_some_and(|&i| sorted_conditions(&v1.steps[i]) != sorted_conditions(st))
    };
    let has_transition_changes = |j: usize| -> bool {
        let st = &v2.steps[j];
        let Some(&i) = partner2.get(&st.id).and_then(|i1| r1.index.get(i1)) else {
            return false;
        };
        let key = |r: &Ref, t: &TransitionInput| {
            r.index.get(&t.to_step_id).map(|&k| {
                (
                    r.hashes[k].clone(),
                    t.condition_text.clone(),
                    t.priority,
                    t.condition_fields.clone(),
                )
            })
        };
        let mut a: Vec<_> = v1.steps[i]
            .transitions
            .iter()
            .filter_map(|t| key(&r1, t))
            .collect();
        let mut b: Vec<_> = st.transitions.iter().filter_map(|t| key(&r2, t)).collect();
        a.sort();
        b.sort();
        a != b
    };

    for anchor in map.targets() {
        let a1 = r1.index[&anchor.anchor_node_id_v1];
        let a2 = r2.index[&anchor.anchor_node_id_v2];
        for (forward, changes) in [
            (false, &anchor.upstream_changes),
            (true, &anchor.downstream_changes),
        ] {
            let reg1 = r1.region(a1, forward);
            let reg2 = r2.region(a2, forward);
            let h1: HashSet<&str> = reg1.iter().map(|&i| r1.hashes[i].as_str()).collect();
            let h2: HashSet<&str> = reg2.iter().map(|&j| r2.hashes[j].as_str()).collect();
            let inserted: BTreeSet<Uuid> = reg2
                .iter()
                .filter(|&&j| !h1.contains(r2.hashes[j].as_str()))
                .map(|&j| v2.steps[j].id)
                .collect();
            let edited: BTreeSet<Uuid> = reg2
                .iter()
                .filter(|&&j| {
                    edited_keys.contains_key(&v2.steps[j].id) && h1.contains(r2.hashes[j].as_str())
                })
                .map(|&j| v2.steps[j].id)
                .collect();
            let got_edited: BTreeSet<Uuid> =
                changes.edited_nodes.iter().map(|n| n.node_id).collect();
            let removed: BTreeSet<Uuid> = reg1
                .iter()
                .filter(|&&i| !h2.contains(r1.hashes[i].as_str()))
                .map(|&i| v1.steps[i].id)
                .collect();
            let got_inserted: BTreeSet<Uuid> =
                changes.inserted_nodes.iter().map(|n| n.node_id).collect();
            let got_removed: BTreeSet<Uuid> = changes.removed_node_ids.iter().copied().collect();
            let side = if forward { "downstream" } else { "upstream" };
            assert_eq!(
                got_inserted, inserted,
                "{side} inserted of {}",
                anchor.anchor_name
            );
            assert_eq!(
                got_removed, removed,
                "{side} removed of {}",
                anchor.anchor_name
            );
            assert_eq!(
                got_edited, edited,
                "{side} edited of {}",
                anchor.anchor_name
            );
            for n in &changes.edited_nodes {
                let (s1, s2) = edited_v2[&n.node_id];
                let added: Vec<&String> = s2
                    .collects_profile_fields
                    .iter()
                    .filter(|f| !s1.collects_profile_fields.contains(f))
                    .collect();
                assert_eq!(n.added_fields.iter().collect::<Vec<_>>(), added);
                assert_eq!(
                    n.new_required_action,
                    s2.is_required_action && !s1.is_required_action && !s1.performs_action
                );
            }

            let mut forks: BTreeSet<Uuid> = reg2
                .iter()
                .filter(|&&j| {
                    v2.steps[j].transitions.len() >= 2
                        && (inserted.contains(&v2.steps[j].id) || fork_changed(j))
                })
                .map(|&j| v2.steps[j].id)
                .collect();
            let mut modified_from: BTreeSet<Uuid> = reg2
                .iter()
                .copied()
                .chain(reg1.iter().filter_map(|&i| {
                    let id1 = v1.steps[i].id;
                    partner1
                        .get(&id1)
                        .and_then(|id2| r2.index.get(id2).copied())
                }))
                .filter(|&j| j != a2 && has_transition_changes(j))
                .map(|j| v2.steps[j].id)
                .collect();
            if forward {
                // The anchor's own routing belongs to its downstream side.
                if fork_changed(a2) {
                    forks.insert(v2.steps[a2].id);
                }
                if has_transition_changes(a2) {
                    modified_from.insert(v2.steps[a2].id);
                }
            } else {
                forks.remove(&v2.steps[a2].id);
            }
            let got_forks: BTreeSet<Uuid> =
                changes.new_forks.iter().map(|f| f.fork_node_id).collect();
            assert_eq!(got_forks, forks, "{side} forks of {}", anchor.anchor_name);
            let got_modified: BTreeSet<Uuid> = changes
                .modified_transitions
                .iter()
                .map(|t| t.from_step_id)
                .collect();
            assert_eq!(
                got_modified, modified_from,
                "{side} transitions of {}",
                anchor.anchor_name
            );
        }

        // Migration scenario, from the reported upstream changes.
        let reg = |t: usize| r2.region(t, true);
        let escapes = anchor.upstream_changes.new_forks.iter().any(|f| {
            f.branches
                .iter()
                .any(|b| match r2.index.get(&b.target_step_id) {
                    Some(&t) => t != a2 && !reg(t).contains(&a2),
                    None => true,
                })
        });
        let collects = anchor
            .upstream_changes
            .inserted_nodes
            .iter()
            .any(|n| !n.collects_fields.is_empty() || n.is_required_action)
            || anchor
                .upstream_changes
                .edited_nodes
                .iter()
                .any(|n| !n.added_fields.is_empty() || n.new_required_action);
        let expected = if escapes {
            MigrationScenario::ReRoute
        } else if collects {
            MigrationScenario::GapFill
        } else {
            MigrationScenario::CleanGraft
        };
        assert_eq!(
            anchor.migration_scenario, expected,
            "scenario of {}",
            anchor.anchor_name
        );
    }
}

pub(super) fn check_coverage(v1: &ScenarioInput, v2: &ScenarioInput, out: &DiffOutput) {
    let map = &out.transformation_map;
    let mut from_v1: Vec<Uuid> = map.anchors.iter().map(|a| a.anchor_node_id_v1).collect();
    from_v1.extend(map.deleted_nodes.iter().map(|d| d.node_id_v1));
    from_v1.sort();
    let mut all_v1: Vec<Uuid> = v1.steps.iter().map(|s| s.id).collect();
    all_v1.sort();
    assert_eq!(
        from_v1, all_v1,
        "every V1 step is an anchor or deleted, once"
    );

    let mut from_v2: Vec<Uuid> = map.targets().map(|a| a.anchor_node_id_v2).collect();
    from_v2.extend(map.new_node_ids.iter().copied());
    from_v2.sort();
    let mut all_v2: Vec<Uuid> = v2.steps.iter().map(|s| s.id).collect();
    all_v2.sort();
    assert_eq!(
        from_v2, all_v2,
        "every V2 step is an anchor, edited or new, once"
    );

    // Edited steps: same id, unpaired content; listed as deleted nodes landing on
    // themselves; a plain deleted step never shares its id with a new step.
    let edited_ids: HashSet<Uuid> = map
        .edited_steps
        .iter()
        .map(|e| e.step.anchor_node_id_v1)
        .collect();
    for e in &map.edited_steps {
        assert_eq!(e.step.anchor_node_id_v1, e.step.anchor_node_id_v2);
        assert_ne!(e.content_hash_v1, e.content_hash_v2);
        assert!(!e.changes.is_empty());
        let d = map
            .deleted_nodes
            .iter()
            .find(|d| d.node_id_v1 == e.step.anchor_node_id_v1)
            .expect("an edited step is also a deleted node");
        assert!(d.edited);
        assert_eq!(d.nearest_anchor_hash.as_deref(), Some(e.key()));
        assert_eq!(d.nearest_anchor_id_v2, Some(e.step.anchor_node_id_v2));
        if let Some(h) = &e.nearest_anchor_hash {
            assert!(map.anchors.iter().any(|a| &a.anchor_content_hash == h
                && Some(a.anchor_node_id_v2) == e.nearest_anchor_id_v2));
        }
    }
    let new_ids: HashSet<Uuid> = map.new_node_ids.iter().copied().collect();
    for d in &map.deleted_nodes {
        assert_eq!(d.edited, edited_ids.contains(&d.node_id_v1));
        if !d.edited {
            assert!(!new_ids.contains(&d.node_id_v1), "unrecognised edit {d:?}");
        }
    }
    // Policy keys never collide.
    let mut keys: Vec<&str> = map
        .targets()
        .map(|a| a.anchor_content_hash.as_str())
        .collect();
    let anchor_keys: HashSet<&str> = map
        .anchors
        .iter()
        .map(|a| a.anchor_content_hash.as_str())
        .collect();
    for e in &map.edited_steps {
        assert!(!anchor_keys.contains(e.key()));
    }
    keys.retain(|k| !anchor_keys.contains(k));
    let distinct: HashSet<&&str> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "edited keys are distinct");

    let h1: HashMap<Uuid, String> = v1
        .steps
        .iter()
        .map(|s| (s.id, step_content_hash(s)))
        .collect();
    let h2: HashMap<Uuid, String> = v2
        .steps
        .iter()
        .map(|s| (s.id, step_content_hash(s)))
        .collect();
    for a in &map.anchors {
        assert_eq!(h1[&a.anchor_node_id_v1], a.anchor_content_hash);
        assert_eq!(h2[&a.anchor_node_id_v2], a.anchor_content_hash);
    }
    let anchor_v2: HashSet<(Option<&str>, Option<Uuid>)> = map
        .targets()
        .map(|a| {
            (
                Some(a.anchor_content_hash.as_str()),
                Some(a.anchor_node_id_v2),
            )
        })
        .collect();
    for d in &map.deleted_nodes {
        assert_eq!(
            d.nearest_anchor_hash.is_some(),
            d.nearest_anchor_id_v2.is_some()
        );
        if d.nearest_anchor_hash.is_some() {
            assert!(
                anchor_v2.contains(&(d.nearest_anchor_hash.as_deref(), d.nearest_anchor_id_v2))
            );
        }
    }
}
