//! The diagram's colours: one fill, stroke and dash pattern per kind of step,
//! shared by the boxes and the legend so the two cannot disagree. Dark text on
//! every fill keeps the contrast above 7:1; the dashes and the words on each box
//! (see `verdict`) carry the same information for readers who cannot tell the
//! colours apart.

use planning::MigrationScenario;

use super::verdict::Verdict;

/// How one kind of step is drawn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub fill: &'static str,
    pub stroke: &'static str,
    pub dash: Option<&'static str>,
}

impl Style {
    /// The `stroke-dasharray` attribute (with its leading space), if dashed.
    pub(super) fn dash_attr(&self) -> String {
        self.dash
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default()
    }
}

const CLEAN_GRAFT: Style = Style {
    fill: "#d8f5d0",
    stroke: "#2e6b31",
    dash: None,
};
const GAP_FILL: Style = Style {
    fill: "#fff1b8",
    stroke: "#8a6500",
    dash: None,
};
const RE_ROUTE: Style = Style {
    fill: "#ffd9d9",
    stroke: "#a32020",
    dash: None,
};
const INSERTED: Style = Style {
    fill: "#dbe9ff",
    stroke: "#1f4f9f",
    dash: Some("6 3"),
};
const DELETED: Style = Style {
    fill: "#eeeeee",
    stroke: "#5f5f5f",
    dash: Some("4 3"),
};
const UNCHANGED: Style = Style {
    fill: "#ffffff",
    stroke: "#555555",
    dash: None,
};

/// The legend's swatches, left to right.
pub(super) const LEGEND: [(&str, Style); 6] = [
    ("clean graft", CLEAN_GRAFT),
    ("gap fill", GAP_FILL),
    ("re-route", RE_ROUTE),
    ("+ new step", INSERTED),
    ("− deleted step", DELETED),
    ("unchanged", UNCHANGED),
];

/// The focused step's border, whatever its kind.
pub(super) const FOCUS_STROKE: &str = "#000000";

/// How step `v` is drawn: deleted and inserted steps as such, the others by the
/// migration scenario of their anchor (unchanged when not an anchor).
pub(super) fn style_of(v: &Verdict) -> Style {
    if v.deleted {
        DELETED
    } else if v.inserted {
        INSERTED
    } else {
        match v.scenario {
            Some(MigrationScenario::CleanGraft) => CLEAN_GRAFT,
            Some(MigrationScenario::GapFill) => GAP_FILL,
            Some(MigrationScenario::ReRoute) => RE_ROUTE,
            None => UNCHANGED,
        }
    }
}

/// Border width: thickest for the focused step, thick for a new fork.
pub(super) fn stroke_width(v: &Verdict, focused: bool) -> f64 {
    if focused {
        3.5
    } else if v.new_fork {
        2.5
    } else {
        1.5
    }
}
