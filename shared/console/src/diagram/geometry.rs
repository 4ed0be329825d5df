//! Where things sit on the canvas: the canvas size and each box's top-left
//! corner, from the layout's layers and positions. Integer pixels, so the SVG's
//! numbers are exact and the same on every machine.

use super::layout::Layout;

/// Box width and height.
pub(super) const NODE_W: i64 = 210;
pub(super) const NODE_H: i64 = 58;
/// Space between two boxes of a layer, and between two layers.
const H_GAP: i64 = 36;
const V_GAP: i64 = 60;
/// Around the drawing.
pub(super) const MARGIN: i64 = 24;
/// The heading and the legend above the first layer.
const LEGEND_H: i64 = 64;
/// Room on the right for the loops drawn around the boxes (they bulge out by at
/// most this much, see `edges`).
const LOOP_ROOM: i64 = 80;
/// The heading and the legend need about this much, however small the graph.
const MIN_WIDTH: i64 = 760;

/// The canvas of one diagram.
pub(super) struct Canvas<'a> {
    pub width: i64,
    pub height: i64,
    layout: &'a Layout,
}

impl<'a> Canvas<'a> {
    /// Wide enough for the widest layer, tall enough for every layer.
    pub(super) fn new(layout: &'a Layout) -> Canvas<'a> {
        let widest = layout.layers.iter().map(Vec::len).max().unwrap_or(1).max(1) as i64;
        let width =
            (MARGIN * 2 + widest * NODE_W + (widest - 1) * H_GAP + LOOP_ROOM).max(MIN_WIDTH);
        let height = MARGIN * 2 + LEGEND_H + layout.layers.len() as i64 * (NODE_H + V_GAP);
        Canvas {
            width,
            height,
            layout,
        }
    }

    /// The layout this canvas places.
    pub(super) fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Top-left corner of node `l`'s box: each layer is centred on its own, left
    /// of the room kept for loops.
    pub(super) fn node_xy(&self, l: usize) -> (i64, i64) {
        let lay = self.layout;
        let row = &lay.layers[lay.layer[l]];
        let row_w = row.len() as i64 * NODE_W + (row.len() as i64 - 1) * H_GAP;
        let x0 = (self.width - LOOP_ROOM - row_w) / 2;
        (
            x0 + lay.position[l] as i64 * (NODE_W + H_GAP),
            MARGIN + LEGEND_H + lay.layer[l] as i64 * (NODE_H + V_GAP),
        )
    }
}
