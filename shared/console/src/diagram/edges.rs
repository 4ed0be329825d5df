//! Edge routing: the path each drawn transition takes through the layout.
//!
//! An edge leaves the bottom of its upper box and enters the top of its lower
//! one, each edge at a port of its own spread along the box's side (ordered by
//! where the edges head, so they do not cross at the box). Between two layers it
//! bends in a smooth S inside the band between the rows, where there are no
//! boxes; through each layer it skips it runs straight down its dummy's slot,
//! which `place` kept clear of boxes. So no edge is drawn over a step.
//!
//! A back edge of the layout (a loop back up the flow) is routed the same way
//! and drawn dashed, from its lower end up to its upper one. A self-loop is a
//! small dashed loop right of its box, in room the placement kept for it.

use planning::ScenarioInput;

use super::geometry::{Canvas, NODE_H, NODE_W};
use super::labels::{self, Hop};
use super::layout::{Chain, Layout};
use super::neighbourhood::Subgraph;
use super::shapes::{Label, Piece, Point, shorten};

/// Characters of a transition condition on its edge before "…".
const CONDITION_CHARS: usize = 22;
/// A self-loop bulges this far right of its box, and each further one on the
/// same box this much more, so they nest without touching.
const SELF_LOOP_BULGE: i64 = 24;
const SELF_LOOP_STEP: i64 = 12;
/// Where a self-loop leaves and re-enters its box, below the box's top.
const SELF_LOOP_OUT: i64 = 16;
const SELF_LOOP_IN: i64 = 42;
/// Space between a self-loop's label and whatever is next in the layer.
const SELF_LOOP_PAD: i64 = 8;
/// Times a band crowded with bends may grow to give a label room (to four
/// times its height at most).
const BAND_WIDENINGS: usize = 3;

/// One drawn transition, from its source to its target.
pub(super) struct Path {
    pub start: Point,
    pub pieces: Vec<Piece>,
    /// Dashed: a loop back up the flow or a self-loop.
    pub loops_back: bool,
    pub label: Option<Label>,
}

impl Path {
    /// Move the path and its label `dx` pixels right.
    pub(super) fn shift(&mut self, dx: i64) {
        let moved = |(x, y): Point| (x + dx, y);
        self.start = moved(self.start);
        for piece in &mut self.pieces {
            *piece = match *piece {
                Piece::Line(p) => Piece::Line(moved(p)),
                Piece::Curve(c1, c2, p) => Piece::Curve(moved(c1), moved(c2), moved(p)),
            };
        }
        if let Some(label) = &mut self.label {
            label.anchor = moved(label.anchor);
        }
    }

    /// Leftmost and rightmost pixel of the path and its label.
    fn extent(&self) -> (i64, i64) {
        let mut xs = vec![self.start.0];
        for piece in &self.pieces {
            match *piece {
                Piece::Line(p) => xs.push(p.0),
                Piece::Curve(c1, c2, p) => xs.extend([c1.0, c2.0, p.0]),
            }
        }
        if let Some(label) = &self.label {
            let (left, right) = labels::horizontal_extent(label);
            xs.extend([left, right]);
        }
        let left = xs.iter().copied().min().unwrap_or(0);
        let right = xs.iter().copied().max().unwrap_or(0);
        (left, right)
    }
}

/// Each edge's condition as written on it (shortened), if it has one: the
/// condition of the very transition the edge draws.
pub(super) fn conditions(
    def: &ScenarioInput,
    visible: &[usize],
    graph: &Subgraph,
) -> Vec<Option<String>> {
    graph
        .edges
        .iter()
        .zip(&graph.transitions)
        .map(|(&(from, _), &t)| {
            let text = def.steps[visible[from]].transitions[t]
                .condition_text
                .trim();
            (!text.is_empty()).then(|| shorten(text, CONDITION_CHARS))
        })
        .collect()
}

/// How far right of each step's box its self-loops and their labels reach.
pub(super) fn self_loop_room(layout: &Layout, conditions: &[Option<String>]) -> Vec<i64> {
    let mut room = vec![0i64; layout.nodes];
    let mut loops_on = vec![0i64; layout.nodes];
    for (chain, condition) in layout.chains.iter().zip(conditions) {
        if !chain.is_self_loop() {
            continue;
        }
        let step = chain.upper();
        let bulge = SELF_LOOP_BULGE + loops_on[step] * SELF_LOOP_STEP;
        loops_on[step] += 1;
        let label_right = condition.as_ref().map_or(0, |text| {
            let anchor = self_loop_anchor(0, bulge);
            let (_, right) = labels::horizontal_extent(&Label {
                anchor,
                text: text.clone(),
                beside: true,
            });
            right
        });
        room[step] = room[step].max(bulge.max(label_right) + SELF_LOOP_PAD);
    }
    room
}

/// Where a self-loop bulging `bulge` right of a box whose right side is at
/// `right` is furthest out (its curve at half way), relative to the box's top.
fn self_loop_anchor(right: i64, bulge: i64) -> Point {
    (right + bulge * 3 / 4, (SELF_LOOP_OUT + SELF_LOOP_IN) / 2)
}

/// The paths of every edge of `canvas`'s layout (in the layout's chain order),
/// each with its condition from `conditions`. Bands too crowded for a label to
/// sit clear of other edges are made taller, and everything routed again.
pub(super) fn route(canvas: &mut Canvas<'_>, conditions: Vec<Option<String>>) -> Vec<Path> {
    let layout = canvas.layout();
    let ports = Ports::of(canvas);
    let mut widenings = 0;
    let (routes, anchors) = loop {
        let routes: Vec<Vec<Point>> = layout
            .chains
            .iter()
            .enumerate()
            .map(|(e, chain)| waypoints(canvas, chain, ports.upper[e], ports.lower[e]))
            .collect();
        let hops: Vec<Vec<Hop>> = routes
            .iter()
            .zip(&layout.chains)
            .map(|(points, chain)| {
                let first_band = layout.layer[chain.upper()];
                hops_of(points, first_band, chain.is_self_loop())
            })
            .collect();
        let placement = labels::place(&hops, &conditions);
        if placement.crowded_bands.is_empty() || widenings == BAND_WIDENINGS {
            break (routes, placement.anchors);
        }
        for band in placement.crowded_bands {
            canvas.widen_band(band);
        }
        widenings += 1;
    };
    // The bands are final: read only from here on.
    let canvas: &Canvas<'_> = canvas;
    let mut loops_on = vec![0i64; layout.nodes];
    layout
        .chains
        .iter()
        .zip(routes)
        .zip(conditions.into_iter().zip(anchors))
        .map(|((chain, points), (condition, anchor))| {
            if chain.is_self_loop() {
                let step = chain.upper();
                let nth = loops_on[step];
                loops_on[step] += 1;
                return self_loop(canvas, step, nth, condition);
            }
            let label = condition.zip(anchor).map(|(text, anchor)| Label {
                anchor,
                text,
                beside: false,
            });
            through_layers(points, chain.upward, label)
        })
        .collect()
}

/// Where each edge leaves its upper box and enters its lower one.
struct Ports {
    upper: Vec<i64>,
    lower: Vec<i64>,
}

impl Ports {
    /// Each box's edges spread evenly along its bottom (those leaving down) and
    /// its top (those arriving), ordered by where their next vertex sits, then by
    /// edge, so that edges between the same two boxes keep apart and in step.
    fn of(canvas: &Canvas<'_>) -> Ports {
        let layout = canvas.layout();
        let mut leaving: Vec<Vec<(i64, usize)>> = vec![Vec::new(); layout.nodes];
        let mut arriving: Vec<Vec<(i64, usize)>> = vec![Vec::new(); layout.nodes];
        for (e, chain) in layout.chains.iter().enumerate() {
            if chain.is_self_loop() {
                continue;
            }
            let v = &chain.vertices;
            leaving[chain.upper()].push((canvas.centre_x(v[1]), e));
            arriving[chain.lower()].push((canvas.centre_x(v[v.len() - 2]), e));
        }
        let mut ports = Ports {
            upper: vec![0; layout.chains.len()],
            lower: vec![0; layout.chains.len()],
        };
        for (step, mut out) in leaving.into_iter().enumerate() {
            spread(canvas, step, &mut out, &mut ports.upper);
        }
        for (step, mut ins) in arriving.into_iter().enumerate() {
            spread(canvas, step, &mut ins, &mut ports.lower);
        }
        ports
    }
}

/// Ports for `edges` (keyed by where they head) evenly along `step`'s box.
fn spread(canvas: &Canvas<'_>, step: usize, edges: &mut [(i64, usize)], port: &mut [i64]) {
    edges.sort_unstable();
    let (left, _) = canvas.node_xy(step);
    let slots = edges.len() as i64 + 1;
    for (i, &(_, e)) in edges.iter().enumerate() {
        port[e] = left + NODE_W * (i as i64 + 1) / slots;
    }
}

/// The points an edge passes from the top down: its upper port, the top and
/// bottom of each dummy's slot, its lower port. A self-loop has none.
fn waypoints(canvas: &Canvas<'_>, chain: &Chain, upper_port: i64, lower_port: i64) -> Vec<Point> {
    if chain.is_self_loop() {
        return Vec::new();
    }
    let layout = canvas.layout();
    let row_top = |v: usize| canvas.layer_top(layout.layer[v]);
    let v = &chain.vertices;
    let mut points = Vec::with_capacity(2 * v.len() - 2);
    points.push((upper_port, row_top(v[0]) + NODE_H));
    for &dummy in &v[1..v.len() - 1] {
        let x = canvas.centre_x(dummy);
        points.push((x, row_top(dummy)));
        points.push((x, row_top(dummy) + NODE_H));
    }
    points.push((lower_port, row_top(v[v.len() - 1])));
    points
}

/// The pieces of a path that cross a band between two rows: every other pair
/// of waypoints, from the first, in band `first_band` and down.
fn hops_of(points: &[Point], first_band: usize, self_loop: bool) -> Vec<Hop> {
    if self_loop {
        return Vec::new();
    }
    points
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| Hop {
            upper: pair[0],
            lower: pair[1],
            band: first_band + i,
        })
        .collect()
}

/// The path through `points` (top down), drawn from the bottom up when it loops
/// back: smooth S-bends across the bands, straight through the dummies' slots.
fn through_layers(mut points: Vec<Point>, upward: bool, label: Option<Label>) -> Path {
    if upward {
        points.reverse();
    }
    // Points alternate: a bend across a band to the next, a straight run to the
    // one after. Reversing keeps that, as there is an even number of points. A
    // bend between two points one above the other is straight too, and straight
    // runs in one column merge, so a long straight edge is one line.
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = points[0];
    for (i, &to) in points.iter().enumerate().skip(1) {
        if at.0 != to.0 && i % 2 == 1 {
            let middle = (at.1 + to.1) / 2;
            pieces.push(Piece::Curve((at.0, middle), (to.0, middle), to));
        } else if at.0 == to.0 && matches!(pieces.last(), Some(Piece::Line((x, _))) if *x == to.0) {
            pieces.pop();
            pieces.push(Piece::Line(to));
        } else {
            pieces.push(Piece::Line(to));
        }
        at = to;
    }
    Path {
        start: points[0],
        pieces,
        loops_back: upward,
        label,
    }
}

/// The `nth` self-loop on `step`: out of the right side of its box and back in,
/// its label beside it.
fn self_loop(canvas: &Canvas<'_>, step: usize, nth: i64, condition: Option<String>) -> Path {
    let (left, top) = canvas.node_xy(step);
    let right = left + NODE_W;
    let bulge = SELF_LOOP_BULGE + nth * SELF_LOOP_STEP;
    let (out, back) = (top + SELF_LOOP_OUT, top + SELF_LOOP_IN);
    let (anchor_x, anchor_dy) = self_loop_anchor(right, bulge);
    Path {
        start: (right, out),
        pieces: vec![Piece::Curve(
            (right + bulge, out),
            (right + bulge, back),
            (right, back),
        )],
        loops_back: true,
        label: condition.map(|text| Label {
            anchor: (anchor_x, top + anchor_dy),
            text,
            beside: true,
        }),
    }
}

/// Move the drawing into the canvas: size it for the boxes, the paths and the
/// labels, and shift the paths with the boxes.
pub(super) fn fit(canvas: &mut Canvas<'_>, paths: &mut [Path]) {
    let mut extent = canvas.extent();
    for path in paths.iter() {
        let (left, right) = path.extent();
        extent = (extent.0.min(left), extent.1.max(right));
    }
    let shift = canvas.fit(extent);
    for path in paths {
        path.shift(shift);
    }
}
