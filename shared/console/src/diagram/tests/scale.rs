//! The layout's work on flows far larger than a diagram draws (a neighbourhood
//! stops at `MAX_NODES` steps): a thousand steps lay out, route and write
//! quickly, even when their long edges make half a million dummies.

use std::time::{Duration, Instant};

use super::routing::{flow, generated_transitions};
use super::*;

/// What drawing a whole flow took.
struct Drawn {
    elapsed: Duration,
    steps: usize,
    dummies: usize,
    svg_bytes: usize,
}

/// Lay out, route and write the whole of `def`, without the neighbourhood cut
/// `render` makes.
fn draw_whole(def: &ScenarioInput) -> Drawn {
    let started = Instant::now();
    let index: HashMap<Uuid, usize> = def
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let visible: Vec<usize> = (0..def.steps.len()).collect();
    let graph = neighbourhood::Subgraph::of(def, &index, &visible, None);
    let layout = layout::layout(visible.len(), &graph.edges, &graph.roots);
    let conditions = edges::conditions(def, &visible, &graph);
    let mut canvas = geometry::Canvas::new(&layout, &edges::self_loop_room(&layout, &conditions));
    let mut paths = edges::route(&mut canvas, conditions);
    edges::fit(&mut canvas, &mut paths);
    let verdicts = HashMap::new();
    let svg = svg::Drawing {
        def,
        side: Side::V2,
        version: def.version,
        visible: &visible,
        centre: None,
        radius: DEFAULT_RADIUS,
        hidden_links: &graph.hidden_links,
        canvas: &canvas,
        paths: &paths,
        verdicts: &verdicts,
    }
    .write();
    // Every dummy belongs to one edge's chain, one per layer it crosses.
    let in_chains: usize = layout
        .chains
        .iter()
        .map(|c| c.vertices.len().saturating_sub(2))
        .sum();
    assert_eq!(layout.layer.len() - layout.nodes, in_chains);
    Drawn {
        elapsed: started.elapsed(),
        steps: svg.matches("<g class=\"step\"").count(),
        dummies: in_chains,
        svg_bytes: svg.len(),
    }
}

/// A thousand steps with forks, joins, loops back and self-loops: about 40 ms
/// in a debug build.
#[test]
fn a_thousand_step_flow_lays_out_quickly() {
    let drawn = draw_whole(&flow(1_000, &generated_transitions(7, 1_000)));
    assert_eq!(drawn.steps, 1_000);
    assert!(
        drawn.dummies > 1_000,
        "long edges make dummies: {}",
        drawn.dummies
    );
    assert!(
        drawn.elapsed < Duration::from_secs(3),
        "{:?} for 1,000 steps",
        drawn.elapsed
    );
}

/// Every step also leading to the last (or back to the first): half a million
/// dummies, about a second in a debug build with the sweeps cut to the budget;
/// the long straight edges are written as single lines, not a piece per layer.
#[test]
fn a_thousand_steps_all_leading_to_one_stay_bounded() {
    let n = 1_000;
    let chain = (0..n - 1).map(|i| (i, i + 1, ""));
    let to_end: Vec<_> = chain
        .clone()
        .chain((0..n - 2).map(|i| (i, n - 1, "quit")))
        .collect();
    let to_start: Vec<_> = chain.chain((2..n).map(|i| (i, 0, "restart"))).collect();
    for (what, transitions) in [("to the end", to_end), ("to the start", to_start)] {
        let drawn = draw_whole(&flow(n, &transitions));
        assert!(drawn.dummies > 450_000, "{what}: {} dummies", drawn.dummies);
        assert!(
            drawn.elapsed < Duration::from_secs(20),
            "{what}: {:?}",
            drawn.elapsed
        );
        if what == "to the end" {
            assert!(
                drawn.svg_bytes < 2_000_000,
                "{what}: {} bytes",
                drawn.svg_bytes
            );
        }
    }
}
