//! Generators: arbitrary small graphs (cycles, self-loops, unreachable steps,
//! duplicated content, ids shared across versions or not), conversation-like
//! pairs, and shuffled step lists.

use std::collections::HashSet;

use planning::model::{ScenarioInput, StepInput};
use planning::testkit::{self, EditKind, Rng, conversation, edit, step, uuid_n};
use proptest::prelude::*;
use uuid::Uuid;

pub(super) const NAMES: &[&str] = &["Welcome", "Ask", "Confirm", "Pay", "Note", "Done", "Help"];
pub(super) const CONDITIONS: &[&str] = &["", "age >= 18", "country == 'FR'", "customer is upset"];

#[derive(Debug, Clone)]
pub(super) struct StepSpec {
    name: usize,
    id: u64,
    edges: Vec<(usize, usize, i64)>,
    checkpoint: bool,
    field: Option<usize>,
}

pub(super) fn step_spec() -> impl Strategy<Value = StepSpec> {
    (
        0..NAMES.len(),
        0u64..24,
        prop::collection::vec((0usize..16, 0..CONDITIONS.len(), -1i64..3), 0..4),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.3, 0usize..3),
    )
        .prop_map(|(name, id, edges, checkpoint, field)| StepSpec {
            name,
            id,
            edges,
            checkpoint,
            field,
        })
}

/// A graph of up to 11 steps. With `valid`, ids are unique and every transition
/// resolves; otherwise ids may repeat, targets dangle and the entry may be unknown.
pub(super) fn build(specs: &[StepSpec], entry: usize, valid: bool, version: i64) -> ScenarioInput {
    let mut used = HashSet::new();
    let ids: Vec<Uuid> = specs
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let id = uuid_n(s.id);
            if valid && !used.insert(id) {
                uuid_n(1000 + k as u64)
            } else {
                id
            }
        })
        .collect();
    let steps: Vec<StepInput> = specs
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut b = step(NAMES[s.name]).id(ids[k]);
            if s.checkpoint {
                b = b.checkpoint("irreversible");
            }
            if let Some(f) = s.field {
                b = b.collects(&[["email", "age", "phone"][f]]);
            }
            for &(to, cond, prio) in &s.edges {
                let target = if valid {
                    ids[to % ids.len()]
                } else if to < ids.len() {
                    ids[to]
                } else {
                    uuid_n(5000 + to as u64)
                };
                b = b.branch_id(target, CONDITIONS[cond], &[], prio);
            }
            b.build()
        })
        .collect();
    let entry_step_id = match steps.get(entry % steps.len().max(1)) {
        Some(s) if valid || entry < 12 => s.id,
        _ => uuid_n(9999),
    };
    ScenarioInput {
        name: "Arbitrary".into(),
        description: None,
        version,
        entry_step_id,
        steps,
    }
}

pub(super) fn arb_graph(valid: bool, version: i64) -> impl Strategy<Value = ScenarioInput> {
    (prop::collection::vec(step_spec(), 0..11), 0usize..16)
        .prop_map(move |(specs, entry)| build(&specs, entry, valid, version))
}

/// V1 and a V2 that is either edited from V1 or drawn independently (sharing the name
/// and id pools, so they overlap partially).
pub(super) fn arb_pair(valid: bool) -> impl Strategy<Value = (ScenarioInput, ScenarioInput)> {
    let edited = (
        arb_graph(valid, 1),
        prop::collection::vec((0usize..5, any::<u64>()), 0..4),
    )
        .prop_map(|(v1, edits)| {
            let mut v2 = v1.clone();
            v2.version = 2;
            for (n, (kind, seed)) in edits.into_iter().enumerate() {
                let kind = [
                    EditKind::Insert,
                    EditKind::Delete,
                    EditKind::ChangeCondition,
                    EditKind::AddBranch,
                    EditKind::EditContent,
                ][kind];
                testkit::apply_edit(&mut v2, kind, &mut Rng::new(seed), n);
            }
            (v1, v2)
        });
    let independent = (arb_graph(valid, 1), arb_graph(valid, 2));
    prop_oneof![edited, independent]
}

pub(super) fn conversation_pair() -> impl Strategy<Value = (ScenarioInput, ScenarioInput)> {
    (1usize..90, any::<u64>(), 0usize..7, any::<u64>(), 0usize..4).prop_map(
        |(n, seed, k, edit_seed, in_place)| {
            let v1 = conversation(n, seed);
            let mut v2 = edit(&v1, k, edit_seed);
            // Some steps edited in place on top of the structural edits.
            let mut rng = Rng::new(edit_seed ^ 0x5eed);
            for e in 0..in_place {
                testkit::apply_edit(&mut v2, EditKind::EditContent, &mut rng, 100 + e);
            }
            (v1, v2)
        },
    )
}

pub(super) fn any_valid_pair() -> impl Strategy<Value = (ScenarioInput, ScenarioInput)> {
    prop_oneof![conversation_pair(), arb_pair(true)]
}

pub(super) fn shuffled(s: &ScenarioInput, seed: u64) -> ScenarioInput {
    let mut out = s.clone();
    let mut rng = Rng::new(seed);
    for i in (1..out.steps.len()).rev() {
        let j = rng.below(i + 1);
        out.steps.swap(i, j);
    }
    out
}
