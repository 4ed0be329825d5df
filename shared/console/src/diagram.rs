//! Plan diagrams as SVG: one side of a plan (the V1 or the V2 definition) laid out
//! as a top-down flow, with the plan's verdict drawn on each step.
//!
//! Pure: the HTTP handler loads the plan, both definitions and the live session
//! counts of the deleted steps, and this module draws them. Every piece of text
//! that reaches the SVG (step names and conditions are user input) goes through
//! [`escape`].
//!
//! Layout: a layered ("Sugiyama-style") drawing kept deliberately small:
//! 1. cycles broken by a depth-first search from the entry (or the focused step):
//!    edges to a step still on the stack are drawn as back edges;
//! 2. longest-path layering of the remaining acyclic graph (a step sits one layer
//!    below its lowest predecessor);
//! 3. within each layer, steps ordered by a few alternating sweeps of the
//!    barycentre heuristic (the mean position of their neighbours in the layers
//!    above, then below), which removes most crossings of flow-like graphs.
//!
//! Large scenarios are never drawn whole: past [`MAX_NODES`] steps only the
//! neighbourhood of one step (a breadth-first ball of `radius` transitions, either
//! direction) is drawn.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use planning::{MigrationPlan, MigrationScenario, ScenarioInput, StepInput};
use uuid::Uuid;

/// Steps drawn at most in one diagram.
pub const MAX_NODES: usize = 150;
/// Transitions around the focused step drawn when the caller names none.
pub const DEFAULT_RADIUS: u32 = 3;
/// The largest radius accepted.
pub const MAX_RADIUS: u32 = 25;

const NODE_W: i64 = 210;
const NODE_H: i64 = 58;
const H_GAP: i64 = 36;
const V_GAP: i64 = 60;
const MARGIN: i64 = 24;
const LEGEND_H: i64 = 64;
/// Characters of a step name on its box before "…".
const NAME_CHARS: usize = 28;
/// Characters of a transition condition on its edge before "…".
const CONDITION_CHARS: usize = 22;
const BARYCENTRE_SWEEPS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    V1,
    V2,
}

impl Side {
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "v1" => Some(Side::V1),
            "v2" => Some(Side::V2),
            _ => None,
        }
    }
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct DiagramRequest<'a> {
    pub side: Side,
    /// The content hash of an anchor (or an edited step's policy key) to centre on.
    pub anchor: Option<&'a str>,
    pub radius: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagramError {
    /// The anchor is not one of the plan's.
    UnknownAnchor,
}

/// XML-escape text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// How the plan sees one step of the drawn side.
#[derive(Debug, Clone, Default)]
struct Verdict {
    scenario: Option<MigrationScenario>,
    anchor_hash: Option<String>,
    inserted: bool,
    deleted: bool,
    edited: bool,
    new_fork: bool,
    sessions: Option<u64>,
}

fn verdicts(
    plan: &MigrationPlan,
    side: Side,
    deleted_counts: &BTreeMap<Uuid, u64>,
) -> HashMap<Uuid, Verdict> {
    let map = &plan.transformation_map;
    let counts = &plan.summary.sessions_by_anchor;
    let mut out: HashMap<Uuid, Verdict> = HashMap::new();
    for target in map.targets() {
        let id = match side {
            Side::V1 => target.anchor_node_id_v1,
            Side::V2 => target.anchor_node_id_v2,
        };
        let v = out.entry(id).or_default();
        v.scenario = Some(target.migration_scenario);
        v.anchor_hash = Some(target.anchor_content_hash.clone());
        v.sessions = counts.get(&target.anchor_content_hash).copied();
    }
    for edited in &map.edited_steps {
        out.entry(edited.step.anchor_node_id_v2).or_default().edited = true;
    }
    match side {
        Side::V1 => {
            for deleted in map.deleted_nodes.iter().filter(|d| !d.edited) {
                let v = out.entry(deleted.node_id_v1).or_default();
                v.deleted = true;
                v.sessions = Some(
                    deleted_counts
                        .get(&deleted.node_id_v1)
                        .copied()
                        .unwrap_or(0),
                );
            }
        }
        Side::V2 => {
            for id in &map.new_node_ids {
                out.entry(*id).or_default().inserted = true;
            }
            for target in map.targets() {
                for region in [&target.upstream_changes, &target.downstream_changes] {
                    for fork in &region.new_forks {
                        out.entry(fork.fork_node_id).or_default().new_fork = true;
                    }
                }
            }
        }
    }
    out
}

/// The V1 steps without a partner in V2 (deleted, not edited): their sessions
/// are counted live for the V1 diagram.
pub fn deleted_step_ids(plan: &MigrationPlan) -> Vec<Uuid> {
    plan.transformation_map
        .deleted_nodes
        .iter()
        .filter(|d| !d.edited)
        .map(|d| d.node_id_v1)
        .collect()
}

/// Which step a request centres on, if any, as an index into `def.steps`.
fn focus_step(
    plan: &MigrationPlan,
    def: &ScenarioInput,
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
    let id = match request.side {
        Side::V1 => target.anchor_node_id_v1,
        Side::V2 => target.anchor_node_id_v2,
    };
    let _ = def;
    Ok(index.get(&id).copied())
}

/// The steps to draw: everything when small enough and nothing is focused, else
/// the breadth-first ball around the focus (or the entry step).
fn visible_steps(
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
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, step) in def.steps.iter().enumerate() {
        for t in &step.transitions {
            if let Some(&j) = index.get(&t.to_step_id) {
                neighbours[i].push(j);
                neighbours[j].push(i);
            }
        }
    }
    let mut seen = vec![false; n];
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
    (order, Some(centre))
}

/// Layer and in-layer position of each drawn node, and the edges drawn upwards.
struct Layout {
    layer: Vec<usize>,
    position: Vec<usize>,
    layers: Vec<Vec<usize>>,
    back: HashSet<(usize, usize)>,
}

/// Layered layout of a graph of `n` nodes with `edges` (local indices), depth
/// first from `roots` in order, then from any node not reached.
fn layout(n: usize, edges: &[(usize, usize)], roots: &[usize]) -> Layout {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        out_edges[a].push(b);
    }
    // 1. Break cycles; remember discovery order for the first ordering.
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
    // 2. Longest-path layering over the forward edges (Kahn's order).
    let forward: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|e| !back.contains(e) && e.0 != e.1)
        .collect();
    let mut indegree = vec![0usize; n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &forward {
        indegree[b] += 1;
        succ[a].push(b);
        pred[b].push(a);
    }
    let mut layer = vec![0usize; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(a) = ready.pop_front() {
        for &b in &succ[a] {
            layer[b] = layer[b].max(layer[a] + 1);
            indegree[b] -= 1;
            if indegree[b] == 0 {
                ready.push_back(b);
            }
        }
    }
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    let mut by_discovery: Vec<usize> = (0..n).collect();
    by_discovery.sort_by_key(|&i| discovered[i]);
    for i in by_discovery {
        layers[layer[i]].push(i);
    }
    // 3. Barycentre sweeps: down (by predecessors), then up (by successors).
    let mut position = vec![0usize; n];
    let renumber = |layers: &Vec<Vec<usize>>, position: &mut Vec<usize>| {
        for l in layers {
            for (p, &i) in l.iter().enumerate() {
                position[i] = p;
            }
        }
    };
    renumber(&layers, &mut position);
    for sweep in 0..BARYCENTRE_SWEEPS {
        let downward = sweep % 2 == 0;
        let range: Vec<usize> = if downward {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if downward { &pred } else { &succ };
            let mut keyed: Vec<(f64, usize)> = layers[l]
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
            layers[l] = keyed.into_iter().map(|(_, i)| i).collect();
            for (p, &i) in layers[l].iter().enumerate() {
                position[i] = p;
            }
        }
    }
    Layout {
        layer,
        position,
        layers,
        back,
    }
}

fn fill_of(v: &Verdict) -> (&'static str, &'static str, Option<&'static str>) {
    // (fill, stroke, dash); dark text on every fill keeps the contrast above 7:1.
    if v.deleted {
        ("#eeeeee", "#5f5f5f", Some("4 3"))
    } else if v.inserted {
        ("#dbe9ff", "#1f4f9f", Some("6 3"))
    } else {
        match v.scenario {
            Some(MigrationScenario::CleanGraft) => ("#d8f5d0", "#2e6b31", None),
            Some(MigrationScenario::GapFill) => ("#fff1b8", "#8a6500", None),
            Some(MigrationScenario::ReRoute) => ("#ffd9d9", "#a32020", None),
            None => ("#ffffff", "#555555", None),
        }
    }
}

fn scenario_words(s: MigrationScenario) -> &'static str {
    match s {
        MigrationScenario::CleanGraft => "clean graft",
        MigrationScenario::GapFill => "gap fill",
        MigrationScenario::ReRoute => "re-route",
    }
}

fn tags(step: &StepInput, v: &Verdict) -> String {
    let mut tags: Vec<String> = Vec::new();
    if v.deleted {
        tags.push("− deleted".into());
    }
    if v.inserted {
        tags.push("+ new".into());
    }
    if v.edited {
        tags.push("✎ edited".into());
    }
    if let Some(s) = v.scenario {
        tags.push(scenario_words(s).into());
    }
    if v.new_fork {
        tags.push("◆ new fork".into());
    }
    if step.is_checkpoint {
        tags.push("⚑ checkpoint".into());
    }
    if step.is_required_action {
        tags.push("★ required action".into());
    }
    if let Some(n) = v.sessions {
        tags.push(format!("{n} session{}", if n == 1 { "" } else { "s" }));
    }
    tags.join(" · ")
}

/// Draw one side of `plan`. `deleted_counts`: live sessions per deleted V1 step.
pub fn render(
    plan: &MigrationPlan,
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    request: &DiagramRequest<'_>,
    deleted_counts: &BTreeMap<Uuid, u64>,
) -> Result<String, DiagramError> {
    let def = match request.side {
        Side::V1 => v1,
        Side::V2 => v2,
    };
    let index: HashMap<Uuid, usize> = def
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let focus = focus_step(plan, def, &index, request)?;
    let radius = request.radius.unwrap_or(DEFAULT_RADIUS).min(MAX_RADIUS);
    let (visible, centre) = visible_steps(def, &index, focus, radius);
    let local: HashMap<usize, usize> = visible.iter().enumerate().map(|(l, &g)| (g, l)).collect();
    let mut edges = Vec::new();
    let mut hidden_links = vec![0usize; visible.len()];
    for (l, &g) in visible.iter().enumerate() {
        for t in &def.steps[g].transitions {
            match index.get(&t.to_step_id).and_then(|j| local.get(j)) {
                Some(&m) => edges.push((l, m)),
                None => hidden_links[l] += 1,
            }
        }
    }
    let roots: Vec<usize> = centre
        .or_else(|| index.get(&def.entry_step_id).copied())
        .and_then(|g| local.get(&g).copied())
        .into_iter()
        .collect();
    let lay = layout(visible.len(), &edges, &roots);
    let verdicts = verdicts(plan, request.side, deleted_counts);

    let widest = lay.layers.iter().map(Vec::len).max().unwrap_or(1).max(1) as i64;
    let width = (MARGIN * 2 + widest * NODE_W + (widest - 1) * H_GAP + 80).max(760);
    let height = MARGIN * 2 + LEGEND_H + lay.layers.len() as i64 * (NODE_H + V_GAP);
    let node_xy = |l: usize| -> (i64, i64) {
        let row = &lay.layers[lay.layer[l]];
        let row_w = row.len() as i64 * NODE_W + (row.len() as i64 - 1) * H_GAP;
        let x0 = (width - 80 - row_w) / 2;
        (
            x0 + lay.position[l] as i64 * (NODE_W + H_GAP),
            MARGIN + LEGEND_H + lay.layer[l] as i64 * (NODE_H + V_GAP),
        )
    };

    let (version, title) = match request.side {
        Side::V1 => (plan.from_version, "before"),
        Side::V2 => (plan.to_version, "after"),
    };
    let heading = match centre {
        Some(c) => format!(
            "{} v{version} ({title}): {} of {} steps within {radius} transitions of “{}”",
            def.name,
            visible.len(),
            def.steps.len(),
            shorten(&def.steps[c].name, NAME_CHARS)
        ),
        None => format!(
            "{} v{version} ({title}): {} steps",
            def.name,
            def.steps.len()
        ),
    };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="diagram-title" font-family="system-ui, sans-serif" font-size="13" class="plan-diagram" data-side="{side}" data-steps="{steps}" data-drawn="{drawn}">"##,
        side = match request.side {
            Side::V1 => "v1",
            Side::V2 => "v2",
        },
        steps = def.steps.len(),
        drawn = visible.len(),
    );
    let _ = write!(
        svg,
        r##"<title id="diagram-title">{}</title><defs><marker id="arrow-{s}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444444"/></marker></defs><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##,
        escape(&heading),
        s = version,
    );
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{}" font-size="15" font-weight="600" fill="#111111">{}</text>"##,
        MARGIN + 4,
        escape(&heading)
    );
    legend(&mut svg, MARGIN + 20);

    // Edges first, boxes over them.
    for &(a, b) in &edges {
        let (ax, ay) = node_xy(a);
        let (bx, by) = node_xy(b);
        let transition = def.steps[visible[a]]
            .transitions
            .iter()
            .find(|t| t.to_step_id == def.steps[visible[b]].id);
        let condition = transition
            .map(|t| t.condition_text.trim())
            .filter(|c| !c.is_empty());
        if a == b || lay.back.contains(&(a, b)) || lay.layer[b] <= lay.layer[a] {
            // Drawn around the right side, dashed: a loop back up the flow.
            let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2);
            let (x2, y2) = (bx + NODE_W, by + NODE_H / 2);
            let bulge = 40 + (lay.layer[a].abs_diff(lay.layer[b]) as i64 * 6).min(40);
            let _ = write!(
                svg,
                r##"<path d="M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}" fill="none" stroke="#444444" stroke-width="1.4" stroke-dasharray="5 4" marker-end="url(#arrow-{version})"/>"##,
                x1 + bulge,
                x2 + bulge,
            );
        } else {
            let (x1, y1) = (ax + NODE_W / 2, ay + NODE_H);
            let (x2, y2) = (bx + NODE_W / 2, by);
            let dy = (y2 - y1) / 2;
            let _ = write!(
                svg,
                r##"<path d="M {x1} {y1} C {x1} {}, {x2} {}, {x2} {y2}" fill="none" stroke="#444444" stroke-width="1.4" marker-end="url(#arrow-{version})"/>"##,
                y1 + dy,
                y2 - dy,
            );
            if let Some(c) = condition {
                let _ = write!(
                    svg,
                    r##"<text x="{}" y="{}" font-size="11" fill="#333333" text-anchor="middle">{}</text>"##,
                    (x1 + x2) / 2 + 4,
                    y1 + dy + 4,
                    escape(&shorten(c, CONDITION_CHARS))
                );
            }
        }
    }

    let no_verdict = Verdict::default();
    for (l, &g) in visible.iter().enumerate() {
        let step = &def.steps[g];
        let v = verdicts.get(&step.id).unwrap_or(&no_verdict);
        let (x, y) = node_xy(l);
        let (fill, stroke, dash) = fill_of(v);
        let focused = centre == Some(g);
        let anchor_attr = v
            .anchor_hash
            .as_deref()
            .map(|h| format!(r#" data-anchor="{}""#, escape(h)))
            .unwrap_or_default();
        let kind = if v.deleted {
            "deleted"
        } else if v.inserted {
            "inserted"
        } else {
            v.scenario.map_or("unchanged", MigrationScenario::as_str)
        };
        let _ = write!(
            svg,
            r##"<g class="step" data-step-id="{}" data-kind="{kind}"{anchor_attr}><title>{}</title>"##,
            step.id,
            escape(&format!("{}\n{}", step.name, tags(step, v)))
        );
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" stroke="{}" stroke-width="{}"{}/>"##,
            if focused { "#000000" } else { stroke },
            if focused {
                3.5
            } else if v.new_fork {
                2.5
            } else {
                1.5
            },
            dash.map(|d| format!(r#" stroke-dasharray="{d}""#))
                .unwrap_or_default()
        );
        if step.is_checkpoint {
            // A flag in the corner, so checkpoints read without colour too.
            let _ = write!(
                svg,
                r##"<path d="M {} {} l 0 -12 l 10 4 l -10 4" fill="#7a1fa2" stroke="#4a126b"/>"##,
                x + NODE_W - 16,
                y + 16
            );
        }
        let mut name = shorten(&step.name, NAME_CHARS);
        if v.inserted {
            name = format!("+ {name}");
        } else if v.deleted {
            name = format!("− {name}");
        } else if v.edited {
            name = format!("✎ {name}");
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-weight="600" fill="#111111">{}</text>"##,
            x + 10,
            y + 22,
            escape(&name)
        );
        let mut line = tags(step, v);
        if hidden_links[l] > 0 {
            let _ = write!(
                line,
                "{}↓{} more",
                if line.is_empty() { "" } else { " · " },
                hidden_links[l]
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" fill="#222222">{}</text></g>"##,
            x + 10,
            y + 42,
            escape(&shorten(&line, 34))
        );
    }
    svg.push_str("</svg>");
    Ok(svg)
}

fn legend(svg: &mut String, y: i64) {
    let items: [(&str, &str, &str, Option<&str>); 6] = [
        ("clean graft", "#d8f5d0", "#2e6b31", None),
        ("gap fill", "#fff1b8", "#8a6500", None),
        ("re-route", "#ffd9d9", "#a32020", None),
        ("+ new step", "#dbe9ff", "#1f4f9f", Some("6 3")),
        ("− deleted step", "#eeeeee", "#5f5f5f", Some("4 3")),
        ("unchanged", "#ffffff", "#555555", None),
    ];
    let mut x = MARGIN;
    for (label, fill, stroke, dash) in items {
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="18" height="14" rx="3" fill="{fill}" stroke="{stroke}"{}/><text x="{}" y="{}" font-size="12" fill="#111111">{label}</text>"##,
            dash.map(|d| format!(r#" stroke-dasharray="{d}""#))
                .unwrap_or_default(),
            x + 24,
            y + 12
        );
        x += 24 + label.chars().count() as i64 * 7 + 20;
    }
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{}" font-size="12" fill="#111111">✎ edited · ◆ new fork (thick border) · ⚑ checkpoint · ★ required action · dashed arrow: loop back</text>"##,
        y + 34
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use planning::plan::{SessionCounts, compute_plan};
    use planning::{MigrationPlan, PlanStatus};

    fn id(n: u32) -> Uuid {
        Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
    }

    fn step(n: u32, name: &str, to: &[u32]) -> serde_json::Value {
        serde_json::json!({
            "id": id(n), "name": name,
            "transitions": to.iter().map(|t| serde_json::json!({"to_step_id": id(*t)})).collect::<Vec<_>>(),
        })
    }

    fn scenario(version: i64, steps: Vec<serde_json::Value>) -> ScenarioInput {
        serde_json::from_value(serde_json::json!({
            "name": "Flow", "version": version, "entry_step_id": id(1), "steps": steps
        }))
        .unwrap()
    }

    fn plan_of(v1: &ScenarioInput, v2: &ScenarioInput) -> MigrationPlan {
        let c = compute_plan(v1, v2, &SessionCounts::new());
        MigrationPlan {
            id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            scenario_id: Uuid::new_v4(),
            scenario_name: v1.name.clone(),
            from_version: v1.version,
            to_version: v2.version,
            scenario_checksum_v1: c.scenario_checksum_v1,
            scenario_checksum_v2: c.scenario_checksum_v2,
            transformation_map: c.transformation_map,
            anchor_policies: c.anchor_policies,
            summary: c.summary,
            status: PlanStatus::Pending,
            created_at: chrono::Utc::now(),
            created_by: None,
            approved_at: None,
            approved_by: None,
            rejected_at: None,
            rejected_by: None,
            rejection_reason: None,
            deployed_at: None,
            expires_at: None,
            revision: 1,
        }
    }

    fn pair() -> (ScenarioInput, ScenarioInput) {
        let v1 = scenario(
            1,
            vec![
                step(1, "Welcome", &[2]),
                step(2, "Old <script>alert(1)</script> & \"quote\"", &[3]),
                step(3, "Done", &[]),
            ],
        );
        let mut check = step(4, "Check age", &[3, 1]);
        check["collects_profile_fields"] = serde_json::json!(["age"]);
        check["is_checkpoint"] = serde_json::json!(true);
        let v2 = scenario(
            2,
            vec![step(1, "Welcome", &[4]), check, step(3, "Done", &[])],
        );
        (v1, v2)
    }

    fn request(side: Side) -> DiagramRequest<'static> {
        DiagramRequest {
            side,
            anchor: None,
            radius: None,
        }
    }

    #[test]
    fn v2_marks_inserted_steps_checkpoints_and_colours_anchors() {
        let (v1, v2) = pair();
        let plan = plan_of(&v1, &v2);
        let svg = render(&plan, &v1, &v2, &request(Side::V2), &BTreeMap::new()).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-kind="inserted""#), "{svg}");
        assert!(svg.contains("+ Check age"));
        assert!(svg.contains("⚑ checkpoint"));
        assert!(
            svg.contains(r#"data-kind="clean_graft""#) || svg.contains(r#"data-kind="re_route""#)
        );
        assert!(svg.contains("data-anchor=\""));
        // Check age → Welcome loops back up the flow: drawn dashed.
        assert!(svg.contains(r#"stroke-dasharray="5 4""#));
    }

    #[test]
    fn v1_marks_deleted_steps_with_their_live_counts_and_escapes_names() {
        let (v1, v2) = pair();
        let plan = plan_of(&v1, &v2);
        let counts = BTreeMap::from([(id(2), 7)]);
        let svg = render(&plan, &v1, &v2, &request(Side::V1), &counts).unwrap();
        assert!(svg.contains(r#"data-kind="deleted""#), "{svg}");
        assert!(svg.contains("7 sessions"));
        assert!(!svg.contains("<script>"), "unescaped user text: {svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("&amp; &quot;quote&quot;"));
    }

    #[test]
    fn unknown_anchor_is_refused() {
        let (v1, v2) = pair();
        let plan = plan_of(&v1, &v2);
        let request = DiagramRequest {
            side: Side::V2,
            anchor: Some("nope"),
            radius: Some(2),
        };
        assert_eq!(
            render(&plan, &v1, &v2, &request, &BTreeMap::new()),
            Err(DiagramError::UnknownAnchor)
        );
    }

    /// 10,000 steps: only the neighbourhood of the chosen anchor is drawn.
    #[test]
    fn large_scenarios_draw_a_bounded_neighbourhood() {
        let n = 10_000;
        let steps = |renamed: u32| {
            (1..=n)
                .map(|i| {
                    let name = if i == renamed {
                        format!("Step {i} edited")
                    } else {
                        format!("Step {i}")
                    };
                    let to: Vec<u32> = if i < n { vec![i + 1] } else { vec![] };
                    step(i, &name, &to)
                })
                .collect::<Vec<_>>()
        };
        let v1 = scenario(1, steps(0));
        let v2 = scenario(2, steps(5_000));
        let plan = plan_of(&v1, &v2);
        let anchor = plan
            .transformation_map
            .anchors
            .iter()
            .find(|a| a.anchor_name == "Step 4000")
            .unwrap()
            .anchor_content_hash
            .clone();
        let request = DiagramRequest {
            side: Side::V2,
            anchor: Some(&anchor),
            radius: Some(4),
        };
        let svg = render(&plan, &v1, &v2, &request, &BTreeMap::new()).unwrap();
        assert_eq!(
            svg.matches("<g class=\"step\"").count(),
            9,
            "4 either side + itself"
        );
        assert!(svg.contains("Step 3996") && svg.contains("Step 4004"));
        assert!(!svg.contains(">Step 3995<") && !svg.contains(">Step 4005<"));
        assert!(svg.contains("9 of 10000 steps within 4 transitions"));
        // No anchor named: the entry's neighbourhood, capped.
        let whole = render(&plan, &v1, &v2, &request_with_radius(25), &BTreeMap::new()).unwrap();
        let drawn = whole.matches("<g class=\"step\"").count();
        assert!(drawn <= MAX_NODES && drawn > 0, "{drawn}");
    }

    fn request_with_radius(radius: u32) -> DiagramRequest<'static> {
        DiagramRequest {
            side: Side::V1,
            anchor: None,
            radius: Some(radius),
        }
    }

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
