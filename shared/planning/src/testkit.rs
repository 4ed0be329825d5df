//! Scenario builders and generators for tests, benchmarks and other crates' tests.
//!
//! Always compiled: it is pure code, small, and lets the API, the CLI timing script and
//! the benches build realistic scenarios without copying fixtures around.
//!
//! - [`step`] / [`ScenarioBuilder`]: readable hand-written scenarios. A step's id is
//!   derived from its name unless set, so `step("A").to("B")` links to `step("B")`.
//! - [`conversation`]: a generated conversation-like graph (a main path with forks
//!   that merge back, some checkpoints, some collected fields).
//! - [`edit`]: a new version of a scenario with `k` realistic edits.
//! - [`edit_in_place`]: a new version whose only changes are `k` steps edited in
//!   place (same ids, other content).

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{ScenarioInput, StepInput, TransitionInput};

/// A stable id for a step name, so hand-written scenarios can refer to steps by name.
pub fn name_id(name: &str) -> Uuid {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `00000000-0000-4000-8000-00000000000N`-style ids for tests that need literal ids.
pub fn uuid_n(n: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}

#[derive(Debug, Clone)]
pub struct StepBuilder {
    step: StepInput,
}

/// Start a step named `name` with id [`name_id`]`(name)`.
pub fn step(name: &str) -> StepBuilder {
    StepBuilder {
        step: StepInput {
            id: name_id(name),
            name: name.to_string(),
            description: None,
            transitions: Vec::new(),
            rule_ids: Vec::new(),
            collects_profile_fields: Vec::new(),
            is_checkpoint: false,
            checkpoint_description: None,
            is_entry: false,
            is_terminal: false,
            performs_action: false,
            is_required_action: false,
        },
    }
}

impl StepBuilder {
    pub fn id(mut self, id: Uuid) -> Self {
        self.step.id = id;
        self
    }
    pub fn description(mut self, text: &str) -> Self {
        self.step.description = Some(text.to_string());
        self
    }
    pub fn collects(mut self, fields: &[&str]) -> Self {
        self.step
            .collects_profile_fields
            .extend(fields.iter().map(|f| f.to_string()));
        self
    }
    pub fn checkpoint(mut self, description: &str) -> Self {
        self.step.is_checkpoint = true;
        self.step.checkpoint_description = Some(description.to_string());
        self
    }
    pub fn performs_action(mut self) -> Self {
        self.step.performs_action = true;
        self
    }
    pub fn required_action(mut self) -> Self {
        self.step.performs_action = true;
        self.step.is_required_action = true;
        self
    }
    pub fn rules(mut self, rules: &[Uuid]) -> Self {
        self.step.rule_ids.extend_from_slice(rules);
        self
    }
    pub fn terminal(mut self) -> Self {
        self.step.is_terminal = true;
        self
    }
    /// An unconditional transition to the step named `target`.
    pub fn to(self, target: &str) -> Self {
        self.to_id(name_id(target))
    }
    pub fn to_id(self, target: Uuid) -> Self {
        self.branch_id(target, "", &[], 0)
    }
    /// A conditional transition to the step named `target`.
    pub fn to_if(self, target: &str, condition: &str, priority: i64) -> Self {
        self.branch_id(name_id(target), condition, &[], priority)
    }
    pub fn to_id_if(self, target: Uuid, condition: &str, priority: i64) -> Self {
        self.branch_id(target, condition, &[], priority)
    }
    /// A conditional transition that reads `fields`.
    pub fn branch(self, target: &str, condition: &str, fields: &[&str], priority: i64) -> Self {
        self.branch_id(name_id(target), condition, fields, priority)
    }
    pub fn branch_id(
        mut self,
        target: Uuid,
        condition: &str,
        fields: &[&str],
        priority: i64,
    ) -> Self {
        self.step.transitions.push(TransitionInput {
            to_step_id: target,
            condition_text: condition.to_string(),
            priority,
            condition_fields: fields.iter().map(|f| f.to_string()).collect(),
        });
        self
    }
    pub fn build(self) -> StepInput {
        self.step
    }
}

impl From<StepBuilder> for StepInput {
    fn from(b: StepBuilder) -> StepInput {
        b.build()
    }
}

/// Builds a scenario whose entry is the first step added (unless set).
#[derive(Debug, Clone)]
pub struct ScenarioBuilder {
    name: String,
    version: i64,
    entry: Option<Uuid>,
    steps: Vec<StepInput>,
}

impl ScenarioBuilder {
    pub fn new(name: &str, version: i64) -> Self {
        ScenarioBuilder {
            name: name.to_string(),
            version,
            entry: None,
            steps: Vec::new(),
        }
    }
    pub fn step(mut self, step: impl Into<StepInput>) -> Self {
        self.steps.push(step.into());
        self
    }
    pub fn entry(mut self, id: Uuid) -> Self {
        self.entry = Some(id);
        self
    }
    pub fn build(self) -> ScenarioInput {
        let entry = self
            .entry
            .or_else(|| self.steps.first().map(|s| s.id))
            .unwrap_or_else(Uuid::nil);
        let mut steps = self.steps;
        for s in &mut steps {
            s.is_entry = s.id == entry;
        }
        ScenarioInput {
            name: self.name,
            description: None,
            version: self.version,
            entry_step_id: entry,
            steps,
        }
    }
}

/// A scenario from steps, entry = first step.
pub fn scenario(version: i64, steps: Vec<StepBuilder>) -> ScenarioInput {
    steps
        .into_iter()
        .fold(ScenarioBuilder::new("Test flow", version), |b, s| b.step(s))
        .build()
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (SplitMix64): generated scenarios must be reproducible
/// from a seed, in benches and in proptest shrinking alike.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    pub fn uuid(&mut self) -> Uuid {
        let hi = u128::from(self.next_u64());
        let lo = u128::from(self.next_u64());
        let bytes = ((hi << 64) | lo).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

const FIELDS: &[&str] = &[
    "email",
    "age",
    "phone",
    "country",
    "postcode",
    "date_of_birth",
    "order_id",
    "iban",
];

const CEL_CONDITIONS: &[(&str, &str)] = &[
    ("age >= 18", "age"),
    ("country == 'FR'", "country"),
    ("size(order_id) > 0", "order_id"),
    ("postcode.startsWith('75')", "postcode"),
];

const NATURAL_CONDITIONS: &[&str] = &[
    "customer seems upset about the price",
    "customer asks for a human",
];

/// A conversation-like scenario of `steps` steps (at least 1): a main path where
/// roughly every eighth step forks into a detour of one to three steps that merges
/// back further down, every sixth step collects a profile field, every 25th step
/// is a checkpoint. Steps are listed in path order; every transition goes forward.
pub fn conversation(steps: usize, seed: u64) -> ScenarioInput {
    let steps = steps.max(1);
    let mut rng = Rng::new(seed);
    let ids: Vec<Uuid> = (0..steps).map(|_| rng.uuid()).collect();
    let mut out: Vec<StepInput> = Vec::with_capacity(steps);
    for i in 0..steps {
        let mut b = step(&format!("Step {i}")).id(ids[i]);
        if i % 6 == 3 {
            b = b.collects(&[FIELDS[rng.below(FIELDS.len())]]);
        }
        if i % 25 == 20 {
            b = b
                .checkpoint(&format!("Checkpoint after step {i}"))
                .performs_action();
        }
        if i + 1 < steps {
            let detour = i % 8 == 5 && i + 4 < steps;
            if detour {
                // Fork: the detour target lies 2–3 steps ahead, so the skipped steps
                // form the other branch and both merge at the target.
                let skip = 2 + rng.below(2);
                let (cond, field) = if rng.one_in(5) {
                    (NATURAL_CONDITIONS[rng.below(NATURAL_CONDITIONS.len())], "")
                } else {
                    CEL_CONDITIONS[rng.below(CEL_CONDITIONS.len())]
                };
                let fields: &[&str] = if field.is_empty() { &[] } else { &[field] };
                b = b
                    .branch_id(ids[i + skip], cond, fields, 1)
                    .branch_id(ids[i + 1], "", &[], 0);
            } else {
                b = b.to_id(ids[i + 1]);
            }
        } else {
            b = b.terminal();
        }
        out.push(b.build());
    }
    let entry = ids[0];
    if let Some(first) = out.first_mut() {
        first.is_entry = true;
    }
    ScenarioInput {
        name: format!("Generated flow {seed}"),
        description: Some("A generated conversation-like scenario".into()),
        version: 1,
        entry_step_id: entry,
        steps: out,
    }
}

/// The kinds of edit [`edit`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// A new step between a step and one of its successors (sometimes collecting a field).
    Insert,
    /// A step removed, its predecessors linked to its successors.
    Delete,
    /// One condition of a fork rewritten.
    ChangeCondition,
    /// A new conditional branch from a step to a later step.
    AddBranch,
    /// A step edited in place, keeping its id: description, name, an extra field,
    /// the checkpoint flag, a rule, or made a required action. Never chosen by
    /// [`edit`] (whose fixtures the benchmarks use); see [`edit_in_place`].
    EditContent,
}

/// A new version of `base` (version + 1) where `k` steps (chosen by `seed`, possibly
/// the same one twice) are edited in place; nothing else changes.
pub fn edit_in_place(base: &ScenarioInput, k: usize, seed: u64) -> ScenarioInput {
    let mut rng = Rng::new(seed.wrapping_mul(131).wrapping_add(3));
    let mut s = base.clone();
    s.version = base.version.saturating_add(1);
    for n in 0..k {
        apply_edit(&mut s, EditKind::EditContent, &mut rng, n);
    }
    s
}

/// A new version of `base` (version + 1) with `k` edits chosen by `seed`. Steps keep
/// their ids; every transition of a [`conversation`] keeps pointing forward in the step
/// list, so the result stays a DAG like the input.
pub fn edit(base: &ScenarioInput, k: usize, seed: u64) -> ScenarioInput {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    let mut s = base.clone();
    s.version = base.version.saturating_add(1);
    for n in 0..k {
        let kind = match rng.below(4) {
            0 => EditKind::Insert,
            1 => EditKind::Delete,
            2 => EditKind::ChangeCondition,
            _ => EditKind::AddBranch,
        };
        if !apply_edit(&mut s, kind, &mut rng, n) {
            // Not applicable here (e.g. no fork to change): an insert always is.
            apply_edit(&mut s, EditKind::Insert, &mut rng, n);
        }
    }
    s
}

/// Apply one edit; false when the scenario offers no place for it.
pub fn apply_edit(s: &mut ScenarioInput, kind: EditKind, rng: &mut Rng, tag: usize) -> bool {
    let len = s.steps.len();
    if len == 0 {
        return false;
    }
    match kind {
        EditKind::Insert => {
            let candidates: Vec<usize> = (0..len)
                .filter(|&i| !s.steps[i].transitions.is_empty())
                .collect();
            if candidates.is_empty() {
                return false;
            }
            let u = candidates[rng.below(candidates.len())];
            let t = rng.below(s.steps[u].transitions.len());
            let target = s.steps[u].transitions[t].to_step_id;
            let id = rng.uuid();
            let mut b = step(&format!("Inserted step {tag}-{}", rng.next_u64() % 10_000))
                .id(id)
                .to_id(target);
            if rng.one_in(2) {
                b = b.collects(&[FIELDS[rng.below(FIELDS.len())]]);
            }
            s.steps[u].transitions[t].to_step_id = id;
            s.steps.insert(u + 1, b.build());
            true
        }
        EditKind::Delete => {
            let entry = s.entry_step_id;
            let candidates: Vec<usize> = (0..len)
                .filter(|&i| s.steps[i].id != entry && s.steps[i].transitions.len() == 1)
                .collect();
            if candidates.is_empty() {
                return false;
            }
            let d = candidates[rng.below(candidates.len())];
            let gone = s.steps.remove(d);
            let next = gone.transitions[0].to_step_id;
            for st in &mut s.steps {
                for tr in &mut st.transitions {
                    if tr.to_step_id == gone.id {
                        tr.to_step_id = next;
                    }
                }
            }
            true
        }
        EditKind::ChangeCondition => {
            let candidates: Vec<usize> = (0..len)
                .filter(|&i| s.steps[i].transitions.len() >= 2)
                .collect();
            if candidates.is_empty() {
                return false;
            }
            let f = candidates[rng.below(candidates.len())];
            let t = rng.below(s.steps[f].transitions.len());
            let tr = &mut s.steps[f].transitions[t];
            tr.condition_text = format!("age >= {}", 16 + rng.below(10));
            tr.condition_fields = vec!["age".into()];
            true
        }
        EditKind::AddBranch => {
            if len < 3 {
                return false;
            }
            let u = rng.below(len - 2);
            let target_index = u + 2 + rng.below((len - u - 2).min(6));
            let target = s.steps[target_index].id;
            if s.steps[u]
                .transitions
                .iter()
                .any(|t| t.to_step_id == target)
            {
                return false;
            }
            let (cond, field) = CEL_CONDITIONS[rng.below(CEL_CONDITIONS.len())];
            s.steps[u].transitions.push(TransitionInput {
                to_step_id: target,
                condition_text: cond.to_string(),
                priority: 2,
                condition_fields: vec![field.to_string()],
            });
            true
        }
        EditKind::EditContent => {
            let st = &mut s.steps[rng.below(len)];
            match rng.below(6) {
                0 => {
                    let field = FIELDS[rng.below(FIELDS.len())].to_string();
                    if st.collects_profile_fields.contains(&field) {
                        st.collects_profile_fields.retain(|f| f != &field);
                    } else {
                        st.collects_profile_fields.push(field);
                    }
                }
                1 => {
                    st.is_checkpoint = !st.is_checkpoint;
                    st.checkpoint_description =
                        st.is_checkpoint.then(|| format!("Checkpoint (edit {tag})"));
                    st.performs_action |= st.is_checkpoint;
                }
                2 => st.name = format!("{} (renamed {tag})", st.name),
                3 => st.rule_ids.push(rng.uuid()),
                4 if !st.is_required_action => {
                    st.performs_action = true;
                    st.is_required_action = true;
                }
                _ => {
                    let before = st.description.clone().unwrap_or_default();
                    st.description = Some(format!("{before} (edit {tag})"));
                }
            }
            true
        }
    }
}
