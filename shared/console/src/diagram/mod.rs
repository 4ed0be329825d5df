//! Plan diagrams as SVG: one side of a plan (the V1 or the V2 definition) laid out
//! as a top-down flow, with the plan's verdict drawn on each step.
//!
//! Pure apart from [`route`]: the HTTP handler loads the plan, both definitions and
//! the live session counts of the deleted steps, and the rest of this module draws
//! them. Every piece of text that reaches the SVG (step names and conditions are
//! user input) goes through [`escape`].
//!
//! [`render`] runs one pipeline, a file per stage:
//! 1. `neighbourhood`: which steps to draw. Large scenarios are never drawn whole:
//!    past [`MAX_NODES`] steps only the neighbourhood of one step (a breadth-first
//!    ball of `radius` transitions, either direction) is drawn;
//! 2. `layout` and `order`: a layered ("Sugiyama-style") drawing — cycles broken
//!    depth first, longest-path layers, a dummy vertex in every layer a long edge
//!    crosses, barycentre ordering of steps and dummies against crossings;
//! 3. `place` and `geometry`: where each box and each dummy sits on the canvas;
//! 4. `edges` and `labels`: the path each transition takes, through its dummies'
//!    slots and never over a box, and where on its own path its condition is
//!    written;
//! 5. `verdict` and `style`: what the plan says about each step, in words and
//!    in colours;
//! 6. `svg`: the document itself.

mod edges;
mod geometry;
mod labels;
mod layout;
mod neighbourhood;
mod order;
mod place;
pub mod route;
mod shapes;
mod style;
mod svg;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use planning::{MigrationPlan, ScenarioInput};
use uuid::Uuid;

pub use svg::escape;
pub use verdict::deleted_step_ids;

/// Steps drawn at most in one diagram.
pub const MAX_NODES: usize = 150;
/// Transitions around the focused step drawn when the caller names none.
pub const DEFAULT_RADIUS: u32 = 3;
/// The largest radius accepted.
pub const MAX_RADIUS: u32 = 25;

/// Which version a plan diagram draws.
///
/// Also the `side` query parameter's schema in the OpenAPI document (as
/// `DiagramSide`, the name the API has always published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = DiagramSide, rename_all = "lowercase", description = "Which version a plan diagram draws.")]
pub enum Side {
    /// The version the plan migrates from.
    V1,
    /// The version it migrates to (the default).
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

    /// The spelling of the query parameter and of the SVG's `data-side`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::V1 => "v1",
            Side::V2 => "v2",
        }
    }

    /// This side's one of a (V1, V2) pair.
    fn pick<T>(self, v1: T, v2: T) -> T {
        match self {
            Side::V1 => v1,
            Side::V2 => v2,
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

/// Draw one side of `plan`. `deleted_counts`: live sessions per deleted V1 step.
pub fn render(
    plan: &MigrationPlan,
    v1: &ScenarioInput,
    v2: &ScenarioInput,
    request: &DiagramRequest<'_>,
    deleted_counts: &BTreeMap<Uuid, u64>,
) -> Result<String, DiagramError> {
    let def = request.side.pick(v1, v2);
    let index: HashMap<Uuid, usize> = def
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let focus = neighbourhood::focus_step(plan, &index, request)?;
    let radius = request.radius.unwrap_or(DEFAULT_RADIUS).min(MAX_RADIUS);
    let (visible, centre) = neighbourhood::visible_steps(def, &index, focus, radius);
    let graph = neighbourhood::Subgraph::of(def, &index, &visible, centre);
    let layout = layout::layout(visible.len(), &graph.edges, &graph.roots);
    let conditions = edges::conditions(def, &visible, &graph);
    let mut canvas = geometry::Canvas::new(&layout, &edges::self_loop_room(&layout, &conditions));
    let mut paths = edges::route(&mut canvas, conditions);
    edges::fit(&mut canvas, &mut paths);
    let verdicts = verdict::verdicts(plan, request.side, deleted_counts);
    let drawing = svg::Drawing {
        def,
        side: request.side,
        version: request.side.pick(plan.from_version, plan.to_version),
        visible: &visible,
        centre,
        radius,
        hidden_links: &graph.hidden_links,
        canvas: &canvas,
        paths: &paths,
        verdicts: &verdicts,
    };
    Ok(drawing.write())
}
