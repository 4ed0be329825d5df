//! Text shared by the sections of the review: step names by id, scenario
//! labels, lists cut to a few items.

use std::collections::HashMap;
use std::fmt::Write as _;

use uuid::Uuid;

use crate::model::{MigrationScenario, ScenarioInput};

/// Items of one kind listed per region before "… and N more".
pub(super) const TEXT_ITEMS: usize = 5;

/// Step names by id in each version; an id without a step reads as itself.
pub(super) struct Names<'a> {
    v1: HashMap<Uuid, &'a str>,
    v2: HashMap<Uuid, &'a str>,
}

impl<'a> Names<'a> {
    pub(super) fn new(v1: &'a ScenarioInput, v2: &'a ScenarioInput) -> Self {
        Names {
            v1: v1.steps.iter().map(|s| (s.id, s.name.as_str())).collect(),
            v2: v2.steps.iter().map(|s| (s.id, s.name.as_str())).collect(),
        }
    }
    pub(super) fn v1(&self, id: Uuid) -> String {
        self.v1
            .get(&id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }
    pub(super) fn v2(&self, id: Uuid) -> String {
        self.v2
            .get(&id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }
}

pub(super) fn scenario_label(s: MigrationScenario) -> &'static str {
    match s {
        MigrationScenario::CleanGraft => "clean graft",
        MigrationScenario::GapFill => "gap fill",
        MigrationScenario::ReRoute => "re-route",
    }
}

pub(super) fn list_some(items: &[String], limit: usize) -> String {
    let mut out = items
        .iter()
        .take(limit)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > limit {
        let _ = write!(out, ", … and {} more", items.len() - limit);
    }
    out
}
