//! Where things sit on the canvas: each layer's height, each vertex's centre
//! across (steps and dummies alike, from `place`), each box's top-left corner and
//! the canvas size. Integer pixels, so the SVG's numbers are exact and the same on
//! every machine.

use super::layout::Layout;
use super::place::{self, Widths};

/// Box width and height.
pub(super) const NODE_W: i64 = 210;
pub(super) const NODE_H: i64 = 58;
/// Space between two boxes of a layer, and between two layers (the band where
/// edges bend and conditions are written; a band crowded with bends grows by
/// as much again, see [`Canvas::widen_band`]).
const H_GAP: i64 = 36;
const V_GAP: i64 = 60;
/// Space beside a dummy: a line needs less room than a box.
const DUMMY_GAP: i64 = 16;
/// Around the drawing.
pub(super) const MARGIN: i64 = 24;
/// The heading and the legend above the first layer.
const LEGEND_H: i64 = 64;
/// The heading and the legend need about this much, however small the graph.
const MIN_WIDTH: i64 = 760;

/// The canvas of one diagram.
pub(super) struct Canvas<'a> {
    pub width: i64,
    pub height: i64,
    layout: &'a Layout,
    /// Centre of each vertex across the canvas.
    centre: Vec<i64>,
    /// Room kept right of each step's box (for its self-loops).
    right_room: Vec<i64>,
    /// Height of the band below each layer.
    band: Vec<i64>,
    /// Top of each layer's row, from the bands above it.
    row_top: Vec<i64>,
}

impl<'a> Canvas<'a> {
    /// Every vertex placed, with `right_room[step]` pixels kept right of each
    /// step's box; the drawing starts at 0 until [`Canvas::fit`] moves it.
    pub(super) fn new(layout: &'a Layout, right_room: &[i64]) -> Canvas<'a> {
        let vertices = layout.layer.len();
        let half = |v: usize| {
            if layout.is_dummy(v) {
                0.0
            } else {
                (NODE_W / 2) as f64
            }
        };
        let room = |v: usize| right_room.get(v).copied().unwrap_or(0) as f64;
        let widths = Widths {
            left: (0..vertices).map(half).collect(),
            right: (0..vertices).map(|v| half(v) + room(v)).collect(),
            step_gap: H_GAP as f64,
            dummy_gap: DUMMY_GAP as f64,
        };
        let centre = place::place(layout, &widths)
            .into_iter()
            .map(|x| x.round() as i64)
            .collect();
        let mut canvas = Canvas {
            width: MIN_WIDTH,
            height: 0,
            layout,
            centre,
            right_room: right_room.to_vec(),
            band: vec![V_GAP; layout.layers.len()],
            row_top: Vec::new(),
        };
        canvas.stack_rows();
        canvas
    }

    /// Each row below the band above it, and the height for them all.
    fn stack_rows(&mut self) {
        let mut top = MARGIN + LEGEND_H;
        self.row_top = self
            .band
            .iter()
            .map(|band| {
                let row = top;
                top += NODE_H + band;
                row
            })
            .collect();
        self.height = top + MARGIN;
    }

    /// Make the band below layer `l` taller by one gap: stretching a band
    /// spreads out the bends that cross it.
    pub(super) fn widen_band(&mut self, l: usize) {
        self.band[l] += V_GAP;
        self.stack_rows();
    }

    /// The layout this canvas places.
    pub(super) fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Centre of vertex `v` across the canvas.
    pub(super) fn centre_x(&self, v: usize) -> i64 {
        self.centre[v]
    }

    /// Top of layer `l`'s row (its boxes' top edge).
    pub(super) fn layer_top(&self, l: usize) -> i64 {
        self.row_top[l]
    }

    /// Top-left corner of step `l`'s box.
    pub(super) fn node_xy(&self, l: usize) -> (i64, i64) {
        (
            self.centre[l] - NODE_W / 2,
            self.layer_top(self.layout.layer[l]),
        )
    }

    /// Leftmost and rightmost pixel the boxes and dummies take.
    pub(super) fn extent(&self) -> (i64, i64) {
        let mut extent = (i64::MAX, i64::MIN);
        for (v, &x) in self.centre.iter().enumerate() {
            let (left, right) = if self.layout.is_dummy(v) {
                (x, x)
            } else {
                let room = self.right_room.get(v).copied().unwrap_or(0);
                (x - NODE_W / 2, x + NODE_W / 2 + room)
            };
            extent = (extent.0.min(left), extent.1.max(right));
        }
        if extent.0 > extent.1 { (0, 0) } else { extent }
    }

    /// Size the canvas for a drawing spanning `left..=right` and move it
    /// inside the margins (centred when narrower than the legend); how far it
    /// moved, for whatever else was drawn at the old place.
    pub(super) fn fit(&mut self, (left, right): (i64, i64)) -> i64 {
        let content = right - left;
        self.width = (content + 2 * MARGIN).max(MIN_WIDTH);
        let shift = MARGIN + (self.width - 2 * MARGIN - content) / 2 - left;
        for x in &mut self.centre {
            *x += shift;
        }
        shift
    }
}
