//! Writing the SVG document: the heading, the legend, the transitions' curves,
//! then the steps' boxes over them (so no line crosses a box's text).
//!
//! The output is one line of markup without a declaration, so the console can
//! parse it and place it in its page. Every piece of user text (scenario and step
//! names, conditions) is shortened, then escaped here; nothing else writes markup.

use std::collections::HashMap;
use std::fmt::Write as _;

use planning::ScenarioInput;
use uuid::Uuid;

use super::Side;
use super::edges::Path;
use super::geometry::{Canvas, MARGIN, NODE_H, NODE_W};
use super::shapes::{BESIDE_DX, Label, Piece, shorten};
use super::style::{self, LEGEND};
use super::verdict::{self, Verdict};

/// Characters of a step name on its box before "…".
const NAME_CHARS: usize = 28;
/// Characters of a box's second line (its tags) before "…".
const TAG_LINE_CHARS: usize = 34;

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

/// Everything the document shows, laid out and routed.
pub(super) struct Drawing<'a> {
    pub def: &'a ScenarioInput,
    pub side: Side,
    /// The drawn side's version number.
    pub version: i64,
    /// Indices into `def.steps`; position `l` is the layout's node `l`.
    pub visible: &'a [usize],
    pub centre: Option<usize>,
    pub radius: u32,
    pub hidden_links: &'a [usize],
    pub canvas: &'a Canvas<'a>,
    pub paths: &'a [Path],
    pub verdicts: &'a HashMap<Uuid, Verdict>,
}

impl Drawing<'_> {
    /// The document. Writing to a `String` cannot fail, hence the ignored results.
    pub(super) fn write(&self) -> String {
        let mut svg = String::new();
        let heading = self.heading();
        self.open(&mut svg, &heading);
        legend(&mut svg, MARGIN + 20);
        for path in self.paths {
            self.path(&mut svg, path);
        }
        for l in 0..self.visible.len() {
            self.step(&mut svg, l);
        }
        svg.push_str("</svg>");
        svg
    }

    /// What is drawn: the version, and the neighbourhood when it is not whole.
    fn heading(&self) -> String {
        let def = self.def;
        let version = self.version;
        let title = self.side.pick("before", "after");
        match self.centre {
            Some(c) => format!(
                "{} v{version} ({title}): {} of {} steps within {} transitions of “{}”",
                def.name,
                self.visible.len(),
                def.steps.len(),
                self.radius,
                shorten(&def.steps[c].name, NAME_CHARS)
            ),
            None => format!(
                "{} v{version} ({title}): {} steps",
                def.name,
                def.steps.len()
            ),
        }
    }

    /// The root element, its accessible title, the arrowhead, the background and
    /// the visible heading. The arrowhead's id carries the version because the
    /// console shows both sides in one page.
    fn open(&self, svg: &mut String, heading: &str) {
        let (width, height) = (self.canvas.width, self.canvas.height);
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="diagram-title" font-family="system-ui, sans-serif" font-size="13" class="plan-diagram" data-side="{side}" data-steps="{steps}" data-drawn="{drawn}">"##,
            side = self.side.as_str(),
            steps = self.def.steps.len(),
            drawn = self.visible.len(),
        );
        let _ = write!(
            svg,
            r##"<title id="diagram-title">{}</title><defs><marker id="arrow-{s}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444444"/></marker></defs><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##,
            escape(heading),
            s = self.version,
        );
        let _ = write!(
            svg,
            r##"<text x="{MARGIN}" y="{}" font-size="15" font-weight="600" fill="#111111">{}</text>"##,
            MARGIN + 4,
            escape(heading)
        );
    }

    /// One transition, with its condition when it has one (right after it).
    fn path(&self, svg: &mut String, path: &Path) {
        let (x, y) = path.start;
        let mut d = format!("M {x} {y}");
        for piece in &path.pieces {
            let _ = match *piece {
                Piece::Line((x, y)) => write!(d, " L {x} {y}"),
                Piece::Curve((c1x, c1y), (c2x, c2y), (x, y)) => {
                    write!(d, " C {c1x} {c1y}, {c2x} {c2y}, {x} {y}")
                }
            };
        }
        let dash = if path.loops_back {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r##"<path d="{d}" fill="none" stroke="#444444" stroke-width="1.4"{dash} marker-end="url(#arrow-{})"/>"##,
            self.version,
        );
        if let Some(label) = &path.label {
            condition(svg, label);
        }
    }

    /// Layout node `l`: a group (the console makes anchors' groups buttons) with
    /// a tooltip, the box, a checkpoint flag, the marked name and the tags line.
    fn step(&self, svg: &mut String, l: usize) {
        let no_verdict = Verdict::default();
        let g = self.visible[l];
        let step = &self.def.steps[g];
        let v = self.verdicts.get(&step.id).unwrap_or(&no_verdict);
        let (x, y) = self.canvas.node_xy(l);
        let style = style::style_of(v);
        let focused = self.centre == Some(g);
        let anchor_attr = v
            .anchor_hash
            .as_deref()
            .map(|h| format!(r#" data-anchor="{}""#, escape(h)))
            .unwrap_or_default();
        let tags = verdict::tags(step, v);
        let _ = write!(
            svg,
            r##"<g class="step" data-step-id="{}" data-kind="{}"{anchor_attr}><title>{}</title>"##,
            step.id,
            v.kind(),
            escape(&format!("{}\n{tags}", step.name))
        );
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{}" stroke="{}" stroke-width="{}"{}/>"##,
            style.fill,
            if focused {
                style::FOCUS_STROKE
            } else {
                style.stroke
            },
            style::stroke_width(v, focused),
            style.dash_attr()
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
        let name = v.marked_name(shorten(&step.name, NAME_CHARS));
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-weight="600" fill="#111111">{}</text>"##,
            x + 10,
            y + 22,
            escape(&name)
        );
        let mut line = tags;
        let hidden = self.hidden_links[l];
        if hidden > 0 {
            let separator = if line.is_empty() { "" } else { " · " };
            let _ = write!(line, "{separator}↓{hidden} more");
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" fill="#222222">{}</text></g>"##,
            x + 10,
            y + 42,
            escape(&shorten(&line, TAG_LINE_CHARS))
        );
    }
}

/// A condition, at its anchor on its own edge: `x`, `y` are the anchor, the
/// text is centred on it (or starts beside it) and vertically centred by `dy`;
/// a white halo keeps it legible over the line it sits on.
fn condition(svg: &mut String, label: &Label) {
    let (x, y) = label.anchor;
    let placement = if label.beside {
        format!(r#" dx="{BESIDE_DX}" text-anchor="start""#)
    } else {
        r#" text-anchor="middle""#.to_string()
    };
    let _ = write!(
        svg,
        r##"<text x="{x}" y="{y}" dy="4"{placement} font-size="11" fill="#333333" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text>"##,
        escape(&label.text)
    );
}

/// The colour key (from the same styles as the boxes) and a line for the marks
/// that are not colours, at height `y`.
fn legend(svg: &mut String, y: i64) {
    let mut x = MARGIN;
    for (label, style) in LEGEND {
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="18" height="14" rx="3" fill="{}" stroke="{}"{}/><text x="{}" y="{}" font-size="12" fill="#111111">{label}</text>"##,
            style.fill,
            style.stroke,
            style.dash_attr(),
            x + 24,
            y + 12
        );
        // About 7 px a character at 12 px: the next swatch clears the label.
        x += 24 + label.chars().count() as i64 * 7 + 20;
    }
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{}" font-size="12" fill="#111111">✎ edited · ◆ new fork (thick border) · ⚑ checkpoint · ★ required action · dashed arrow: loop back</text>"##,
        y + 34
    );
}
