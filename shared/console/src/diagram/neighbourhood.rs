//! Which steps a diagram draws: the whole version when it is small and nothing is
//! focused, else a breadth-first ball around one step. Also the subgraph of the
//! drawn steps that the layout works on, in local indices.
//!
//! The ball follows transitions in both directions, so a step's callers are drawn
//! as well as where it leads; it stops at [`MAX_NODES`] steps whatever the radius,
//! which bounds the layout's work and the SVG's size on 10,000-step scenarios.

use std::collections::{HashMap, VecDeque};

use planning::{MigrationPlan, ScenarioInput};
use uuid::Uuid;

use super::{DiagramError, DiagramRequest, MAX_NODES};

/// Which step a request centres on, if any, as an index into the drawn side's
/// steps. An anchor of the plan whose step is not on this side centres on nothing.
pub(super) fn focus_step(
    plan: &MigrationPlan,
    index: &HashMap<Uuid, usize>,
    request: &DiagramRequest<'_>,
) -> Result<Option<usize>, DiagramError> {
    let Some(hash) = request.anchor else {
        return Ok(None);
    };
    let target = plan
        .transformation_map
        .anchor_by_hash(hash)
        .ok_or(DiagramError::UnknownAnchor)?;
    let id = request
        .side
        .pick(target.anchor_node_id_v1, target.anchor_node_id_v2);
    Ok(index.get(&id).copied())
}

/// The steps to draw (indices into `def.steps`, the centre first when there is
/// one) and the step they centre on: everything when small enough and nothing is
/// focused, else the breadth-first ball around the focus (or the entry step).
pub(super) fn visible_steps(
    def: &ScenarioInput,
    index: &HashMap<Uuid, usize>,
    focus: Option<usize>,
    radius: u32,
) -> (Vec<usize>, Option<usize>) {
    let n = def.steps.len();
    if focus.is_none() && n <= MAX_NODES {
        return ((0..n).collect(), None);
    }
    let centre = focus
        .or_else(|| index.get(&def.entry_step_id).copied())
        .unwrap_or(0);
    if n == 0 {
        return (Vec::new(), None);
    }
    let neighbours = undirected_neighbours(def, index);
    (ball(&neighbours, centre, radius), Some(centre))
}

/// Each step's neighbours through a transition either way (transitions to steps
/// that do not exist are left out).
fn undirected_neighbours(def: &ScenarioInput, index: &HashMap<Uuid, usize>) -> Vec<Vec<usize>> {
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); def.steps.len()];
    for (i, step) in def.steps.iter().enumerate() {
        for t in &step.transitions {
            if let Some(&j) = index.get(&t.to_step_id) {
                neighbours[i].push(j);
                neighbours[j].push(i);
            }
        }
    }
    neighbours
}

/// The nodes within `radius` hops of `centre`, in breadth-first order, at most
/// [`MAX_NODES`] of them.
fn ball(neighbours: &[Vec<usize>], centre: usize, radius: u32) -> Vec<usize> {
    let mut seen = vec![false; neighbours.len()];
    let mut order = vec![centre];
    seen[centre] = true;
    let mut queue = VecDeque::from([(centre, 0u32)]);
    'bfs: while let Some((i, d)) = queue.pop_front() {
        if d == radius {
            continue;
        }
        for &j in &neighbours[i] {
            if !seen[j] {
                seen[j] = true;
                order.push(j);
                if order.len() == MAX_NODES {
                    break 'bfs;
                }
                queue.push_back((j, d + 1));
            }
        }
    }
    order
}

/// The drawn steps as a graph of local indices (positions in the visible list).
pub(super) struct Subgraph {
    /// Transitions between two drawn steps, in the order of the steps and of
    /// their transitions (the layout's depth-first search follows this order).
    pub edges: Vec<(usize, usize)>,
    /// Per edge, the index of the transition it draws among its step's.
    pub transitions: Vec<usize>,
    /// Per drawn step, its transitions to steps not drawn (or not in the
    /// version): shown as "↓n more" so a cut neighbourhood does not read as a
    /// dead end.
    pub hidden_links: Vec<usize>,
    /// Where the layout's depth-first search starts: the centre, else the entry
    /// step, when drawn.
    pub roots: Vec<usize>,
}

impl Subgraph {
    pub(super) fn of(
        def: &ScenarioInput,
        index: &HashMap<Uuid, usize>,
        visible: &[usize],
        centre: Option<usize>,
    ) -> Subgraph {
        let local: HashMap<usize, usize> =
            visible.iter().enumerate().map(|(l, &g)| (g, l)).collect();
        let mut edges = Vec::new();
        let mut transitions = Vec::new();
        let mut hidden_links = vec![0usize; visible.len()];
        for (l, &g) in visible.iter().enumerate() {
            for (k, t) in def.steps[g].transitions.iter().enumerate() {
                match index.get(&t.to_step_id).and_then(|j| local.get(j)) {
                    Some(&m) => {
                        edges.push((l, m));
                        transitions.push(k);
                    }
                    None => hidden_links[l] += 1,
                }
            }
        }
        let roots: Vec<usize> = centre
            .or_else(|| index.get(&def.entry_step_id).copied())
            .and_then(|g| local.get(&g).copied())
            .into_iter()
            .collect();
        Subgraph {
            edges,
            transitions,
            hidden_links,
            roots,
        }
    }
}
