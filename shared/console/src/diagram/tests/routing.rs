//! Geometry of the drawn transitions, read back from the SVG itself over
//! generated flows (chains with forks, joins, loops back, self-loops and
//! repeated transitions, plus a 60-step flow whose Step 0 → Step 3 skips two
//! steps): no transition is drawn over a box, each condition is written on its
//! own transition's line and on no other, and no condition covers a box.

use std::collections::HashMap;

use super::*;

type Point = (f64, f64);

/// A box of the drawing: left, top, right, bottom.
#[derive(Debug, Clone, Copy)]
struct Rect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Rect {
    fn shrunk(self, by: f64) -> Rect {
        Rect {
            left: self.left + by,
            top: self.top + by,
            right: self.right - by,
            bottom: self.bottom - by,
        }
    }

    fn overlaps(self, other: Rect) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }

    /// Whether `p` lies on the border, within `tolerance`.
    fn has_on_border(self, (x, y): Point, tolerance: f64) -> bool {
        let inside_x = x >= self.left - tolerance && x <= self.right + tolerance;
        let inside_y = y >= self.top - tolerance && y <= self.bottom + tolerance;
        let near_vertical =
            (x - self.left).abs() <= tolerance || (x - self.right).abs() <= tolerance;
        let near_horizontal =
            (y - self.top).abs() <= tolerance || (y - self.bottom).abs() <= tolerance;
        (inside_y && near_vertical) || (inside_x && near_horizontal)
    }
}

/// One drawn transition: its path flattened to a polyline, and its condition's
/// text, anchor and glyph box when it has one.
#[derive(Debug)]
struct DrawnEdge {
    polyline: Vec<Point>,
    label: Option<DrawnLabel>,
}

#[derive(Debug)]
struct DrawnLabel {
    text: String,
    anchor: Point,
    glyphs: Rect,
}

/// Everything the checks need from a document.
struct Drawn {
    boxes: HashMap<Uuid, Rect>,
    edges: Vec<DrawnEdge>,
}

fn attribute(element: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let end = element[start..].find('"')? + start;
    Some(element[start..end].to_string())
}

fn number(element: &str, name: &str) -> f64 {
    attribute(element, name).map_or(0.0, |v| v.parse().unwrap())
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A path's `d` (absolute M, L and C only) as a polyline, each cubic cut into
/// `pieces` chords.
fn flatten(d: &str, pieces: usize) -> Vec<Point> {
    let tokens: Vec<String> = d
        .replace(',', " ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut at = 0;
    let coordinate = |at: &mut usize| -> f64 {
        *at += 1;
        tokens[*at - 1].parse().unwrap()
    };
    let mut points: Vec<Point> = Vec::new();
    while at < tokens.len() {
        let command = tokens[at].clone();
        at += 1;
        match command.as_str() {
            "M" | "L" => {
                let p = (coordinate(&mut at), coordinate(&mut at));
                points.push(p);
            }
            "C" => {
                let p0 = *points.last().expect("C after M");
                let c1 = (coordinate(&mut at), coordinate(&mut at));
                let c2 = (coordinate(&mut at), coordinate(&mut at));
                let p3 = (coordinate(&mut at), coordinate(&mut at));
                for k in 1..=pieces {
                    let t = k as f64 / pieces as f64;
                    let u = 1.0 - t;
                    let (b0, b1, b2, b3) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
                    points.push((
                        b0 * p0.0 + b1 * c1.0 + b2 * c2.0 + b3 * p3.0,
                        b0 * p0.1 + b1 * c1.1 + b2 * c2.1 + b3 * p3.1,
                    ));
                }
            }
            other => panic!("unexpected path command {other} in {d}"),
        }
    }
    points
}

/// About 6 px a character at 11 px, the size conditions are written in.
const LABEL_CHAR_W: f64 = 6.0;

fn parse(svg: &str) -> Drawn {
    let first_step = svg.find("<g class=\"step\"").unwrap_or(svg.len());
    let defs_end = svg.find("</defs>").expect("defs") + "</defs>".len();
    let mut boxes = HashMap::new();
    for group in svg[first_step..].split("<g class=\"step\"").skip(1) {
        let id = Uuid::parse_str(&attribute(group, "data-step-id").unwrap()).unwrap();
        let rect = &group[group.find("<rect").unwrap()..];
        let (x, y) = (number(rect, "x"), number(rect, "y"));
        let (w, h) = (number(rect, "width"), number(rect, "height"));
        boxes.insert(
            id,
            Rect {
                left: x,
                top: y,
                right: x + w,
                bottom: y + h,
            },
        );
    }
    let mut edges: Vec<DrawnEdge> = Vec::new();
    let section = &svg[defs_end..first_step];
    let mut rest = section;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        let end = rest.find('>').unwrap() + 1;
        let element = &rest[..end];
        if element.starts_with("<path") {
            let d = attribute(element, "d").unwrap();
            edges.push(DrawnEdge {
                polyline: flatten(&d, 64),
                label: None,
            });
        } else if element.starts_with("<text") {
            let text_end = rest.find("</text>").unwrap();
            let text = unescape(&rest[end..text_end]);
            // Labels follow their path; the heading and the legend come first.
            if let Some(edge) = edges.last_mut().filter(|e| e.label.is_none()) {
                let anchor = (number(element, "x"), number(element, "y"));
                let width = text.chars().count() as f64 * LABEL_CHAR_W;
                let left = match attribute(element, "text-anchor").as_deref() {
                    Some("middle") => anchor.0 + number(element, "dx") - width / 2.0,
                    Some("end") => anchor.0 + number(element, "dx") - width,
                    _ => anchor.0 + number(element, "dx"),
                };
                let baseline = anchor.1 + number(element, "dy");
                edge.label = Some(DrawnLabel {
                    text,
                    anchor,
                    glyphs: Rect {
                        left,
                        top: baseline - 8.0,
                        right: left + width,
                        bottom: baseline + 2.0,
                    },
                });
            }
        }
        rest = &rest[end..];
    }
    Drawn { boxes, edges }
}

fn distance_to_segment(p: Point, a: Point, b: Point) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    };
    let (x, y) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - x).powi(2) + (p.1 - y).powi(2)).sqrt()
}

fn distance_to_polyline(p: Point, polyline: &[Point]) -> f64 {
    polyline
        .windows(2)
        .map(|w| distance_to_segment(p, w[0], w[1]))
        .fold(f64::INFINITY, f64::min)
}

/// Whether segment `a`–`b` enters the open rectangle (Liang–Barsky clipping).
fn segment_enters(a: Point, b: Point, r: Rect) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r.left),
        (dx, r.right - a.0),
        (-dy, a.1 - r.top),
        (dy, r.bottom - a.1),
    ] {
        if p == 0.0 {
            if q <= 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    t0 < t1
}

/// The box whose border `p` lies on.
fn box_at(drawn: &Drawn, p: Point) -> Option<Uuid> {
    drawn
        .boxes
        .iter()
        .find(|(_, r)| r.has_on_border(p, 1.0))
        .map(|(id, _)| *id)
}

/// The checks, on `def` drawn whole (both sides of the plan are `def`).
fn assert_routed_around_boxes(def: &ScenarioInput) {
    let plan = plan_of(def, def);
    let svg = render(&plan, def, def, &request(Side::V2), &BTreeMap::new()).unwrap();
    let drawn = parse(&svg);
    let name = |id: Uuid| def.steps.iter().find(|s| s.id == id).unwrap().name.clone();
    assert_eq!(drawn.boxes.len(), def.steps.len(), "every step drawn");

    // Each transition drawn once, from its step's box to its target's, with
    // its own condition.
    let mut expected: Vec<(Uuid, Uuid, String)> = def
        .steps
        .iter()
        .flat_map(|s| {
            s.transitions
                .iter()
                .map(|t| (s.id, t.to_step_id, t.condition_text.trim().to_string()))
        })
        .collect();
    let mut drawn_transitions: Vec<(Uuid, Uuid, String)> = Vec::new();
    for edge in &drawn.edges {
        let (start, end) = (edge.polyline[0], *edge.polyline.last().unwrap());
        let from =
            box_at(&drawn, start).unwrap_or_else(|| panic!("path leaves no box at {start:?}"));
        let to = box_at(&drawn, end).unwrap_or_else(|| panic!("path ends at no box at {end:?}"));
        let text = edge
            .label
            .as_ref()
            .map_or(String::new(), |l| l.text.clone());
        drawn_transitions.push((from, to, text));
    }
    expected.sort();
    drawn_transitions.sort();
    let readable = |list: &[(Uuid, Uuid, String)]| -> Vec<String> {
        list.iter()
            .map(|(a, b, c)| format!("{} → {} [{c}]", name(*a), name(*b)))
            .collect()
    };
    assert_eq!(
        readable(&drawn_transitions),
        readable(&expected),
        "transitions drawn with their own conditions"
    );

    for (e, edge) in drawn.edges.iter().enumerate() {
        // No line over a box (touching a border where it leaves or arrives is fine).
        for w in edge.polyline.windows(2) {
            for (id, r) in &drawn.boxes {
                assert!(
                    !segment_enters(w[0], w[1], r.shrunk(0.5)),
                    "transition {e} crosses the box of {} between {:?} and {:?}",
                    name(*id),
                    w[0],
                    w[1]
                );
            }
        }
        let Some(label) = &edge.label else { continue };
        let own = distance_to_polyline(label.anchor, &edge.polyline);
        assert!(
            own <= 1.5,
            "“{}” is {own:.1} px off its own transition",
            label.text
        );
        for (o, other) in drawn.edges.iter().enumerate().filter(|(o, _)| *o != e) {
            let apart = distance_to_polyline(label.anchor, &other.polyline);
            assert!(
                apart > 4.0,
                "“{}” sits on transition {o} ({apart:.1} px away) rather than on its own",
                label.text
            );
        }
        for (id, r) in &drawn.boxes {
            assert!(
                !label.glyphs.overlaps(*r),
                "“{}” covers the box of {}",
                label.text,
                name(*id)
            );
        }
    }
}

/// A small deterministic generator (xorshift), so every run draws the same flows.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CONDITIONS: [&str; 6] = ["score < 0", "age ≥ 18", "retry", "no answer", "", ""];

/// Steps `Step 0` … with transitions `(from, to, condition)`; the first is the entry.
pub(super) fn flow(steps: usize, transitions: &[(usize, usize, &str)]) -> ScenarioInput {
    let ids: Vec<Uuid> = (0..steps).map(|i| id(i as u32 + 1)).collect();
    let steps: Vec<serde_json::Value> = (0..steps)
        .map(|i| {
            let out: Vec<serde_json::Value> = transitions
                .iter()
                .filter(|t| t.0 == i)
                .map(|t| serde_json::json!({"to_step_id": ids[t.1], "condition_text": t.2}))
                .collect();
            serde_json::json!({"id": ids[i], "name": format!("Step {i}"), "transitions": out})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "name": "Flow", "version": 1, "entry_step_id": ids[0], "steps": steps
    }))
    .unwrap()
}

/// A chain of 4 to 60 steps with forks skipping ahead, joins, loops back, the
/// odd self-loop, repeated transition and dead end.
fn generated_flow(seed: u64) -> ScenarioInput {
    let steps = 4 + Seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).below(57) as usize;
    flow(steps, &generated_transitions(seed, steps))
}

/// The transitions of a generated flow of `steps` steps.
pub(super) fn generated_transitions(seed: u64, steps: usize) -> Vec<(usize, usize, &'static str)> {
    let mut rng = Seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    rng.below(57);
    let mut transitions: Vec<(usize, usize, &'static str)> = Vec::new();
    let condition = |rng: &mut Seeded| CONDITIONS[rng.below(CONDITIONS.len() as u64) as usize];
    for i in 0..steps {
        if i + 1 < steps && !rng.chance(8) {
            transitions.push((i, i + 1, ""));
        }
        if rng.chance(35) {
            let to = (i + 2 + rng.below(5) as usize).min(steps - 1);
            if to > i {
                transitions.push((i, to, condition(&mut rng)));
            }
        }
        if i > 0 && rng.chance(15) {
            let to = i - 1 - rng.below(i.min(6) as u64) as usize;
            transitions.push((i, to, condition(&mut rng)));
        }
        if rng.chance(3) {
            transitions.push((i, i, condition(&mut rng)));
        }
        if let Some(&last) = transitions.last().filter(|_| rng.chance(4)) {
            transitions.push((last.0, last.1, condition(&mut rng)));
        }
    }
    transitions
}

/// The flow of the report: 60 steps in a chain, Step 0 → Step 3 labelled
/// "score < 0" over Steps 1 and 2, which are joined by a transition without a
/// condition.
#[test]
fn long_transitions_go_around_the_steps_they_skip() {
    let mut transitions: Vec<(usize, usize, &str)> = (0..59).map(|i| (i, i + 1, "")).collect();
    transitions.push((0, 3, "score < 0"));
    assert_routed_around_boxes(&flow(60, &transitions));
}

#[test]
fn generated_flows_route_around_boxes_with_labels_on_their_own_transitions() {
    for seed in 0..40 {
        let def = generated_flow(seed);
        let result = std::panic::catch_unwind(|| assert_routed_around_boxes(&def));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed} ({} steps): {message}", def.steps.len());
        }
    }
}

/// The largest flows drawn whole (`MAX_NODES` steps), where long edges pile up.
#[test]
fn the_largest_whole_flows_route_around_boxes_too() {
    for seed in 100..103 {
        let def = flow(MAX_NODES, &generated_transitions(seed, MAX_NODES));
        assert_routed_around_boxes(&def);
    }
}
