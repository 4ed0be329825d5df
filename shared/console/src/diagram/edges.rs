//! Edge routing: the cubic Bézier each drawn transition takes between two boxes.
//!
//! A transition down the flow leaves the bottom of its box and enters the top of
//! the next, with its condition (if any) written halfway. Anything else — a back
//! edge of the layout, a self-loop, a transition to the same or a higher layer —
//! is a loop back up the flow: drawn dashed around the right side of the boxes,
//! bulging further the more layers it spans, without a label (it would sit on
//! other boxes).

use planning::ScenarioInput;

use super::geometry::{Canvas, NODE_H, NODE_W};

// How far right of the boxes a loop's control points sit: 40 px, plus 6 px per
// layer it spans up to 40 more, so nested loops do not overlap; the canvas keeps
// room for the most (`geometry::LOOP_ROOM`).
const LOOP_BULGE: i64 = 40;
const BULGE_PER_LAYER: i64 = 6;
const MAX_EXTRA_BULGE: i64 = 40;

pub(super) type Point = (i64, i64);

/// One drawn transition: `M start C c1, c2, end`.
pub(super) struct Curve<'a> {
    pub start: Point,
    pub c1: Point,
    pub c2: Point,
    pub end: Point,
    /// Dashed: a loop back up the flow.
    pub loops_back: bool,
    /// The transition's condition and where its text is anchored (middle).
    pub label: Option<(Point, &'a str)>,
}

/// The curves of `edges` (local indices into `visible`), in order.
pub(super) fn route<'a>(
    def: &'a ScenarioInput,
    visible: &[usize],
    edges: &[(usize, usize)],
    canvas: &Canvas<'_>,
) -> Vec<Curve<'a>> {
    edges
        .iter()
        .map(|&(a, b)| {
            let lay = canvas.layout();
            if a == b || lay.back.contains(&(a, b)) || lay.layer[b] <= lay.layer[a] {
                let spanned = lay.layer[a].abs_diff(lay.layer[b]) as i64;
                loop_back(canvas.node_xy(a), canvas.node_xy(b), spanned)
            } else {
                let condition = condition(def, visible[a], visible[b]);
                downward(canvas.node_xy(a), canvas.node_xy(b), condition)
            }
        })
        .collect()
}

/// The condition of the transition from step `from` to step `to` (indices into
/// `def.steps`), unless blank. Of several transitions between the two, the first.
fn condition(def: &ScenarioInput, from: usize, to: usize) -> Option<&str> {
    def.steps[from]
        .transitions
        .iter()
        .find(|t| t.to_step_id == def.steps[to].id)
        .map(|t| t.condition_text.trim())
        .filter(|c| !c.is_empty())
}

/// Around the right side, from the middle of one box's right edge to the other's.
fn loop_back((ax, ay): Point, (bx, by): Point, spanned_layers: i64) -> Curve<'static> {
    let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2);
    let (x2, y2) = (bx + NODE_W, by + NODE_H / 2);
    let bulge = LOOP_BULGE + (spanned_layers * BULGE_PER_LAYER).min(MAX_EXTRA_BULGE);
    Curve {
        start: (x1, y1),
        c1: (x1 + bulge, y1),
        c2: (x2 + bulge, y2),
        end: (x2, y2),
        loops_back: true,
        label: None,
    }
}

/// From the middle of the bottom of one box to the middle of the top of the
/// other, leaving and arriving vertically.
fn downward<'a>((ax, ay): Point, (bx, by): Point, condition: Option<&'a str>) -> Curve<'a> {
    let (x1, y1) = (ax + NODE_W / 2, ay + NODE_H);
    let (x2, y2) = (bx + NODE_W / 2, by);
    let dy = (y2 - y1) / 2;
    Curve {
        start: (x1, y1),
        c1: (x1, y1 + dy),
        c2: (x2, y2 - dy),
        end: (x2, y2),
        loops_back: false,
        // Just right of the curve's midpoint, so the text does not sit on the line.
        label: condition.map(|c| (((x1 + x2) / 2 + 4, y1 + dy + 4), c)),
    }
}
