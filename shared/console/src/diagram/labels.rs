//! Where each condition is written: on its own edge, at a point of one of the
//! S-bends that edge makes across a band between two rows of boxes.
//!
//! In a band there are only edges, so a label there covers no box. The point is
//! chosen among a few along each bend (the middle bend of the edge and the
//! middle of the bend first): the first that no other edge passes near, whose
//! text no other edge crosses and does not run into a label already placed; else
//! the first near no other edge whose text meets no label; else the first near no
//! other edge; failing all, the point furthest from every other edge. Only bends
//! in the same band can pass near, and those whose horizontal span is too far
//! away are skipped, and only a few bends of each edge are tried, so each label
//! costs about the number of edges nearby.

use std::collections::HashMap;

use super::shapes::{BESIDE_DX, Label, Point};

/// About 7 px a character at 11 px (a little more than most glyphs), plus the
/// white halo either side.
const CHAR_W: i64 = 7;
const HALO: i64 = 3;
/// Text height around the anchor: the SVG writes the baseline 4 px below it.
const ABOVE_ANCHOR: i64 = 6;
const BELOW_ANCHOR: i64 = 8;
/// How far from any other edge an anchor must be to count as clear of it.
const CLEARANCE: f64 = 8.0;
/// Points tried along a bend, as fractions of the curve: the middle first. Not
/// nearer the ends, so the text stays clear of the rows above and below.
const TRIED: [f64; 5] = [0.5, 0.35, 0.65, 0.25, 0.75];
/// Bends of one edge tried, the middle ones first: a long edge has one per layer
/// it spans, and a few always offer a choice.
const BENDS_TRIED: usize = 8;
const FALLBACK_STEPS: usize = 24;
const FALLBACK_FROM: f64 = 0.2;
const FALLBACK_TO: f64 = 0.8;
/// Chords a bend is cut into when measuring how near another edge passes.
const CHORDS: usize = 24;

/// The S-bend one edge makes across band `band` (between rows `band` and
/// `band + 1`), from `upper` on the upper row's bottom to `lower` on the lower
/// row's top.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hop {
    pub upper: Point,
    pub lower: Point,
    pub band: usize,
}

impl Hop {
    /// The point at `t` of the cubic the SVG draws: control points level with
    /// the band's middle, above and below the ends, so the curve stays in the
    /// band and between its ends' columns.
    fn at(&self, t: f64) -> (f64, f64) {
        let (x1, y1) = (self.upper.0 as f64, self.upper.1 as f64);
        let (x2, y2) = (self.lower.0 as f64, self.lower.1 as f64);
        let across = t * t * (3.0 - 2.0 * t);
        let down = 1.5 * t * (1.0 - t) + t * t * t;
        (x1 + (x2 - x1) * across, y1 + (y2 - y1) * down)
    }

    fn span(&self) -> (f64, f64) {
        let (a, b) = (self.upper.0 as f64, self.lower.0 as f64);
        (a.min(b), a.max(b))
    }
}

/// The leftmost and rightmost pixel of a label's text (halo included).
pub(super) fn horizontal_extent(label: &Label) -> (i64, i64) {
    let width = label.text.chars().count() as i64 * CHAR_W + 2 * HALO;
    let x = label.anchor.0;
    if label.beside {
        (x + BESIDE_DX - HALO, x + BESIDE_DX - HALO + width)
    } else {
        (x - width / 2, x + width / 2)
    }
}

/// The box of a centred label's text at `anchor`: left, top, right, bottom.
fn text_box(anchor: Point, text: &str) -> [i64; 4] {
    let (left, right) = horizontal_extent(&Label {
        anchor,
        text: text.to_string(),
        beside: false,
    });
    [
        left,
        anchor.1 - ABOVE_ANCHOR,
        right,
        anchor.1 + BELOW_ANCHOR,
    ]
}

fn boxes_overlap(a: &[i64; 4], b: &[i64; 4]) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

/// A bend in a band, for distances: flattened to chords only when a label
/// comes near it.
struct Bend {
    edge: usize,
    span: (f64, f64),
    hop: Hop,
}

/// Where the labels go.
pub(super) struct Placement {
    /// The anchor of each edge's label (`None` for edges without a condition or
    /// without a bend, such as self-loops, which `edges` labels itself).
    pub anchors: Vec<Option<Point>>,
    /// Bands where a label found no point clear of other edges, at best the
    /// furthest from them: taller, they would have room.
    pub crowded_bands: Vec<usize>,
}

pub(super) fn place(hops: &[Vec<Hop>], texts: &[Option<String>]) -> Placement {
    let mut by_band: HashMap<usize, Vec<Bend>> = HashMap::new();
    for (edge, edge_hops) in hops.iter().enumerate() {
        for &hop in edge_hops {
            by_band.entry(hop.band).or_default().push(Bend {
                edge,
                span: hop.span(),
                hop,
            });
        }
    }
    let mut placed: HashMap<usize, Vec<[i64; 4]>> = HashMap::new();
    let mut crowded_bands = Vec::new();
    let anchors = hops
        .iter()
        .zip(texts)
        .enumerate()
        .map(|(edge, (edge_hops, text))| {
            let text = text.as_deref()?;
            let choice = choose(edge, edge_hops, text, &by_band, &placed)?;
            if !choice.clear {
                crowded_bands.push(choice.band);
            }
            placed
                .entry(choice.band)
                .or_default()
                .push(text_box(choice.anchor, text));
            Some(choice.anchor)
        })
        .collect();
    crowded_bands.sort_unstable();
    crowded_bands.dedup();
    Placement {
        anchors,
        crowded_bands,
    }
}

/// A label's point, its band, and whether it is clear of other edges.
#[derive(Clone, Copy)]
struct Choice {
    anchor: Point,
    band: usize,
    clear: bool,
}

/// The best point for `edge`'s label among its bends, and the band it is in.
fn choose(
    edge: usize,
    hops: &[Hop],
    text: &str,
    by_band: &HashMap<usize, Vec<Bend>>,
    placed: &HashMap<usize, Vec<[i64; 4]>>,
) -> Option<Choice> {
    let mut preferred: Vec<&Hop> = hops.iter().collect();
    let middle = (hops.len().max(1) - 1) as f64 / 2.0;
    preferred.sort_by(|a, b| {
        let off = |h: &Hop| (h.band as f64 - hops[0].band as f64 - middle).abs();
        off(a).total_cmp(&off(b))
    });
    preferred.truncate(BENDS_TRIED);
    let no_bends = Vec::new();
    let no_labels = Vec::new();
    // The first clear point whose text meets no label, and the first clear one.
    let mut over_an_edge = None;
    let mut over_a_label = None;
    for hop in &preferred {
        let others = by_band.get(&hop.band).unwrap_or(&no_bends);
        let labels = placed.get(&hop.band).unwrap_or(&no_labels);
        for t in TRIED {
            let anchor = rounded(hop.at(t));
            if nearest_other(edge, anchor, others) < CLEARANCE {
                continue;
            }
            let choice = Choice {
                anchor,
                band: hop.band,
                clear: true,
            };
            let text_box = text_box(anchor, text);
            if labels.iter().any(|b| boxes_overlap(b, &text_box)) {
                over_a_label.get_or_insert(choice);
            } else if crossed_by_other(edge, &text_box, others) {
                over_an_edge.get_or_insert(choice);
            } else {
                return Some(choice);
            }
        }
    }
    over_an_edge
        .or(over_a_label)
        .or_else(|| furthest_from_others(edge, &preferred, by_band))
}

/// Whether another edge's bend runs through a label's text box.
fn crossed_by_other(edge: usize, text_box: &[i64; 4], bends: &[Bend]) -> bool {
    let [left, top, right, bottom] = text_box.map(|v| v as f64);
    bends
        .iter()
        .filter(|b| b.edge != edge && b.span.0 <= right && left <= b.span.1)
        .any(|b| {
            let mut from = b.hop.at(0.0);
            (1..=CHORDS).any(|k| {
                let to = b.hop.at(k as f64 / CHORDS as f64);
                let meets = chord_meets_box(from, to, [left, top, right, bottom]);
                from = to;
                meets
            })
        })
}

/// Whether the chord from `a` to `b` passes through the box (clipped against
/// each side in turn).
fn chord_meets_box(a: (f64, f64), b: (f64, f64), [left, top, right, bottom]: [f64; 4]) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut enter, mut leave) = (0.0f64, 1.0f64);
    for (towards, room) in [
        (-dx, a.0 - left),
        (dx, right - a.0),
        (-dy, a.1 - top),
        (dy, bottom - a.1),
    ] {
        if towards == 0.0 {
            if room < 0.0 {
                return false;
            }
        } else if towards < 0.0 {
            enter = enter.max(room / towards);
        } else {
            leave = leave.min(room / towards);
        }
    }
    enter <= leave
}

/// Of many points along the bends, the one furthest from every other edge.
fn furthest_from_others(
    edge: usize,
    hops: &[&Hop],
    by_band: &HashMap<usize, Vec<Bend>>,
) -> Option<Choice> {
    let no_bends = Vec::new();
    let mut best: Option<(f64, Point, usize)> = None;
    for hop in hops {
        let others = by_band.get(&hop.band).unwrap_or(&no_bends);
        for k in 0..=FALLBACK_STEPS {
            let t =
                FALLBACK_FROM + (FALLBACK_TO - FALLBACK_FROM) * k as f64 / FALLBACK_STEPS as f64;
            let anchor = rounded(hop.at(t));
            let distance = nearest_other(edge, anchor, others);
            if best.is_none_or(|(d, _, _)| distance > d) {
                best = Some((distance, anchor, hop.band));
            }
        }
    }
    best.map(|(distance, anchor, band)| Choice {
        anchor,
        band,
        clear: distance >= CLEARANCE,
    })
}

fn rounded((x, y): (f64, f64)) -> Point {
    (x.round() as i64, y.round() as i64)
}

/// How near `anchor` another edge's bend in the same band passes.
fn nearest_other(edge: usize, anchor: Point, bends: &[Bend]) -> f64 {
    let p = (anchor.0 as f64, anchor.1 as f64);
    bends
        .iter()
        .filter(|b| b.edge != edge && b.span.0 - CLEARANCE <= p.0 && p.0 <= b.span.1 + CLEARANCE)
        .map(|b| distance_to_bend(p, &b.hop))
        .fold(f64::INFINITY, f64::min)
}

/// How near `p` a bend passes, measured on its chords.
fn distance_to_bend(p: (f64, f64), hop: &Hop) -> f64 {
    let mut nearest = f64::INFINITY;
    let mut from = hop.at(0.0);
    for k in 1..=CHORDS {
        let to = hop.at(k as f64 / CHORDS as f64);
        nearest = nearest.min(distance_to_chord(p, from, to));
        from = to;
    }
    nearest
}

fn distance_to_chord(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_meet_boxes_they_pass_through_only() {
        let square = [0.0, 0.0, 10.0, 10.0];
        assert!(chord_meets_box((-5.0, 5.0), (15.0, 5.0), square));
        assert!(chord_meets_box((5.0, 5.0), (6.0, 6.0), square));
        assert!(!chord_meets_box((-5.0, -5.0), (-1.0, 20.0), square));
        assert!(!chord_meets_box((-5.0, 4.0), (4.0, -5.0), square));
    }

    #[test]
    fn a_label_moves_off_the_middle_where_another_edge_crosses() {
        // Two bends crossing at the middle of the band.
        let hops = vec![
            vec![Hop {
                upper: (0, 0),
                lower: (200, 60),
                band: 0,
            }],
            vec![Hop {
                upper: (200, 0),
                lower: (0, 60),
                band: 0,
            }],
        ];
        let texts = vec![Some("score < 0".to_string()), Some("retry".to_string())];
        let anchors = place(&hops, &texts).anchors;
        for (edge, anchor) in anchors.iter().enumerate() {
            let anchor = anchor.expect("labelled");
            let other = &hops[1 - edge][0];
            let nearest = distance_to_bend((anchor.0 as f64, anchor.1 as f64), other);
            assert!(
                nearest >= CLEARANCE,
                "{anchor:?} is {nearest} from the other edge"
            );
        }
        assert_ne!(anchors[0], anchors[1]);
    }
}
