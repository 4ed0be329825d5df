//! The small shapes the routing, the label placement and the SVG writer share:
//! points, path pieces, labels. A leaf module, so that those three depend on it
//! and not on each other.

pub(super) type Point = (i64, i64);

/// How a path goes on from its previous point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// Straight, down or up a dummy's slot.
    Line(Point),
    /// A cubic Bézier: two control points, then the end.
    Curve(Point, Point, Point),
}

/// A transition's condition and the point of its own path it is written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Label {
    pub anchor: Point,
    /// Shortened, not yet escaped.
    pub text: String,
    /// Written right of the anchor instead of centred on it: a self-loop's
    /// label, beside its box.
    pub beside: bool,
}

/// A beside label starts this far right of its anchor.
pub(super) const BESIDE_DX: i64 = 5;

/// The first `max` characters of `text`, with "…" when it had more.
pub(super) fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
