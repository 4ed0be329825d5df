//! Validation of a scenario definition (the limits: docs/design.md, "Scenario
//! validation limits"): every problem, each with its location.
//!
//! Locations are relative to the scenario object and serialise FastAPI-style
//! (`["steps", 3, "transitions", 0, "to_step_id"]`), so the HTTP layer only prefixes
//! them with `"body"`/`"new_scenario"` and the CLI prints them as they are.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::ScenarioInput;

pub const MAX_STEPS: usize = 10_000;
pub const MAX_TRANSITIONS: usize = 50_000;
/// The original accepted scenario names of 1–100 characters.
pub const MAX_SCENARIO_NAME_CHARS: usize = 100;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 10_000;
pub const MAX_FIELD_NAME_CHARS: usize = 200;
/// Per step: rule ids, collected fields; per transition: condition fields.
pub const MAX_LIST_ITEMS: usize = 1_000;
/// Versions and priorities are stored as integers by every runtime we know of; beyond
/// 32 bits they are typos or garbage, not real values.
pub const MAX_VERSION: i64 = i32::MAX as i64;
pub const MAX_ABS_PRIORITY: i64 = i32::MAX as i64;
/// Past this many problems the rest are summarised in one final entry: the list is
/// for a person to read, and a 6 MB body of garbage must not produce a bigger error.
pub const MAX_ISSUES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LocPart {
    Key(String),
    Index(usize),
}

impl From<&str> for LocPart {
    fn from(s: &str) -> Self {
        LocPart::Key(s.to_string())
    }
}

impl From<usize> for LocPart {
    fn from(i: usize) -> Self {
        LocPart::Index(i)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationIssue {
    pub loc: Vec<LocPart>,
    pub msg: String,
    /// A pydantic-style error type, e.g. `value_error.duplicate_id`.
    pub kind: String,
}

impl fmt::Display for ValidationIssue {
    /// `steps.3.transitions.0.to_step_id: msg`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.loc.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match part {
                LocPart::Key(k) => f.write_str(k)?,
                LocPart::Index(n) => write!(f, "{n}")?,
            }
        }
        if self.loc.is_empty() {
            f.write_str("(scenario)")?;
        }
        write!(f, ": {} [{}]", self.msg, self.kind)
    }
}

struct Issues {
    list: Vec<ValidationIssue>,
    dropped: usize,
}

impl Issues {
    fn push(&mut self, loc: Vec<LocPart>, kind: &str, msg: String) {
        if self.list.len() < MAX_ISSUES {
            self.list.push(ValidationIssue {
                loc,
                msg,
                kind: kind.to_string(),
            });
        } else {
            self.dropped += 1;
        }
    }
}

fn loc<const N: usize>(parts: [LocPart; N]) -> Vec<LocPart> {
    parts.into()
}

fn key(k: &str) -> LocPart {
    LocPart::Key(k.to_string())
}

/// Every problem of `scenario`, or `Ok(())`. Unreachable steps are allowed (the plan
/// summary warns about them).
pub fn validate_scenario(scenario: &ScenarioInput) -> Result<(), Vec<ValidationIssue>> {
    let mut issues = Issues {
        list: Vec::new(),
        dropped: 0,
    };

    check_text(
        &mut issues,
        loc([key("name")]),
        &scenario.name,
        MAX_SCENARIO_NAME_CHARS,
        true,
    );
    if let Some(d) = &scenario.description {
        check_text(
            &mut issues,
            loc([key("description")]),
            d,
            MAX_TEXT_CHARS,
            false,
        );
    }
    if scenario.version < 1 {
        issues.push(
            loc([key("version")]),
            "greater_than_equal",
            format!("version must be at least 1, got {}", scenario.version),
        );
    } else if scenario.version > MAX_VERSION {
        issues.push(
            loc([key("version")]),
            "less_than_equal",
            format!("version must be at most {MAX_VERSION}"),
        );
    }

    let steps = &scenario.steps;
    if steps.is_empty() {
        issues.push(
            loc([key("steps")]),
            "too_short",
            "a scenario needs at least one step".into(),
        );
    }
    if steps.len() > MAX_STEPS {
        issues.push(
            loc([key("steps")]),
            "too_long",
            format!("at most {MAX_STEPS} steps are allowed, got {}", steps.len()),
        );
    }
    let total_transitions: usize = steps.iter().map(|s| s.transitions.len()).sum();
    if total_transitions > MAX_TRANSITIONS {
        issues.push(
            loc([key("steps")]),
            "value_error.too_many_transitions",
            format!("at most {MAX_TRANSITIONS} transitions are allowed in total, got {total_transitions}"),
        );
    }

    let mut first_index: HashMap<Uuid, usize> = HashMap::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if let Some(&first) = first_index.get(&step.id) {
            issues.push(
                loc([key("steps"), i.into(), key("id")]),
                "value_error.duplicate_id",
                format!("step id {} is already used by steps[{first}]", step.id),
            );
        } else {
            first_index.insert(step.id, i);
        }
    }

    if scenario.entry_step_id.is_nil() {
        issues.push(
            loc([key("entry_step_id")]),
            "missing",
            "entry_step_id is missing (nil UUID)".into(),
        );
    } else if !first_index.contains_key(&scenario.entry_step_id) {
        issues.push(
            loc([key("entry_step_id")]),
            "value_error.unknown_step",
            format!(
                "entry_step_id {} is not the id of any step",
                scenario.entry_step_id
            ),
        );
    }

    for (i, step) in steps.iter().enumerate() {
        let at = |field: &str| vec![key("steps"), i.into(), key(field)];
        check_text(&mut issues, at("name"), &step.name, MAX_NAME_CHARS, true);
        if let Some(d) = &step.description {
            check_text(&mut issues, at("description"), d, MAX_TEXT_CHARS, false);
        }
        if let Some(d) = &step.checkpoint_description {
            check_text(
                &mut issues,
                at("checkpoint_description"),
                d,
                MAX_TEXT_CHARS,
                false,
            );
        }
        check_list_len(&mut issues, at("rule_ids"), step.rule_ids.len());
        check_list_len(
            &mut issues,
            at("collects_profile_fields"),
            step.collects_profile_fields.len(),
        );
        for (f, field) in step.collects_profile_fields.iter().enumerate() {
            let mut l = at("collects_profile_fields");
            l.push(f.into());
            check_text(&mut issues, l, field, MAX_FIELD_NAME_CHARS, true);
        }
        for (t, transition) in step.transitions.iter().enumerate() {
            let tat = |field: &str| {
                vec![
                    key("steps"),
                    i.into(),
                    key("transitions"),
                    t.into(),
                    key(field),
                ]
            };
            if !first_index.contains_key(&transition.to_step_id) {
                issues.push(
                    tat("to_step_id"),
                    "value_error.unknown_step",
                    format!(
                        "transition target {} is not the id of any step",
                        transition.to_step_id
                    ),
                );
            }
            check_text(
                &mut issues,
                tat("condition_text"),
                &transition.condition_text,
                MAX_TEXT_CHARS,
                false,
            );
            if transition.priority.unsigned_abs() > MAX_ABS_PRIORITY as u64 {
                issues.push(
                    tat("priority"),
                    if transition.priority < 0 {
                        "greater_than_equal"
                    } else {
                        "less_than_equal"
                    },
                    format!("priority must lie within ±{MAX_ABS_PRIORITY}"),
                );
            }
            check_list_len(
                &mut issues,
                tat("condition_fields"),
                transition.condition_fields.len(),
            );
            for (f, field) in transition.condition_fields.iter().enumerate() {
                let mut l = tat("condition_fields");
                l.push(f.into());
                check_text(&mut issues, l, field, MAX_FIELD_NAME_CHARS, true);
            }
        }
    }

    if issues.dropped > 0 {
        let dropped = issues.dropped;
        issues.list.push(ValidationIssue {
            loc: Vec::new(),
            msg: format!("{dropped} more problem(s) not listed"),
            kind: "value_error.too_many_errors".into(),
        });
    }
    if issues.list.is_empty() {
        Ok(())
    } else {
        Err(issues.list)
    }
}

fn check_text(issues: &mut Issues, at: Vec<LocPart>, text: &str, max: usize, required: bool) {
    if required && text.trim().is_empty() {
        issues.push(at, "string_too_short", "must not be empty".into());
        return;
    }
    // Cheap byte check first: a string with at most `max` bytes has at most `max` chars.
    if text.len() > max && text.chars().count() > max {
        issues.push(
            at,
            "string_too_long",
            format!("must be at most {max} characters"),
        );
    }
}

fn check_list_len(issues: &mut Issues, at: Vec<LocPart>, len: usize) {
    if len > MAX_LIST_ITEMS {
        issues.push(
            at,
            "too_long",
            format!("at most {MAX_LIST_ITEMS} items are allowed, got {len}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{name_id, scenario, step, uuid_n};

    fn valid() -> ScenarioInput {
        scenario(
            1,
            vec![
                step("A").to("B"),
                step("B").to_if("C", "age >= 18", 1),
                step("C"),
            ],
        )
    }

    fn locs(issues: &[ValidationIssue]) -> Vec<String> {
        issues
            .iter()
            .map(|i| serde_json::to_string(&i.loc).unwrap())
            .collect()
    }

    #[test]
    fn a_valid_scenario_passes() {
        assert_eq!(validate_scenario(&valid()), Ok(()));
    }

    #[test]
    fn loc_serialises_fastapi_style() {
        let loc = vec![key("steps"), 3.into(), key("transitions"), 0.into()];
        assert_eq!(
            serde_json::to_string(&loc).unwrap(),
            r#"["steps",3,"transitions",0]"#
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_location() {
        let mut s = valid();
        s.name = "  ".into();
        s.version = 0;
        s.entry_step_id = uuid_n(77);
        s.steps[1].id = s.steps[0].id; // duplicate id
        s.steps[2].name = String::new();
        s.steps[0].transitions[0].to_step_id = uuid_n(5);
        let issues = validate_scenario(&s).unwrap_err();
        let got = locs(&issues);
        for expected in [
            r#"["name"]"#,
            r#"["version"]"#,
            r#"["entry_step_id"]"#,
            r#"["steps",1,"id"]"#,
            r#"["steps",2,"name"]"#,
            r#"["steps",0,"transitions",0,"to_step_id"]"#,
        ] {
            assert!(got.iter().any(|l| l == expected), "{expected} in {got:?}");
        }
        let kinds: Vec<&str> = issues.iter().map(|i| i.kind.as_str()).collect();
        assert!(kinds.contains(&"value_error.duplicate_id"));
        assert!(kinds.contains(&"value_error.unknown_step"));
        assert!(kinds.contains(&"greater_than_equal"));
    }

    #[test]
    fn missing_entry_and_empty_steps() {
        let mut s = valid();
        s.entry_step_id = Uuid::nil();
        let issues = validate_scenario(&s).unwrap_err();
        assert_eq!(issues[0].kind, "missing");

        let mut empty = valid();
        empty.steps.clear();
        let issues = validate_scenario(&empty).unwrap_err();
        let kinds: Vec<&str> = issues.iter().map(|i| i.kind.as_str()).collect();
        assert!(kinds.contains(&"too_short"));
        assert!(kinds.contains(&"value_error.unknown_step"));
    }

    #[test]
    fn too_many_steps_and_transitions() {
        let mut s = valid();
        let target = name_id("A");
        let mut steps = Vec::new();
        for i in 0..=MAX_STEPS {
            let mut b = step(&format!("S{i}")).to_id(target);
            for _ in 0..5 {
                b = b.to_id(target);
            }
            steps.push(b.build());
        }
        steps[0].id = target;
        s.steps = steps;
        s.entry_step_id = target;
        let issues = validate_scenario(&s).unwrap_err();
        let kinds: Vec<&str> = issues.iter().map(|i| i.kind.as_str()).collect();
        assert!(kinds.contains(&"too_long"));
        assert!(kinds.contains(&"value_error.too_many_transitions"));
    }

    #[test]
    fn absurd_sizes_are_rejected() {
        let mut s = valid();
        s.version = i64::MAX;
        s.steps[0].name = "x".repeat(MAX_NAME_CHARS + 1);
        s.steps[1].transitions[0].priority = i64::MIN;
        s.steps[2].collects_profile_fields = vec![String::new()];
        let issues = validate_scenario(&s).unwrap_err();
        let got = locs(&issues);
        assert!(got.contains(&r#"["version"]"#.to_string()));
        assert!(got.contains(&r#"["steps",0,"name"]"#.to_string()));
        assert!(got.contains(&r#"["steps",1,"transitions",0,"priority"]"#.to_string()));
        assert!(got.contains(&r#"["steps",2,"collects_profile_fields",0]"#.to_string()));
    }

    #[test]
    fn the_list_is_capped_with_a_final_summary() {
        let mut s = valid();
        for i in 0..(MAX_ISSUES + 10) {
            s.steps
                .push(step(&format!("Bad {i}")).to_id(uuid_n(1)).build());
        }
        let issues = validate_scenario(&s).unwrap_err();
        assert_eq!(issues.len(), MAX_ISSUES + 1);
        assert_eq!(
            issues.last().map(|i| i.kind.as_str()),
            Some("value_error.too_many_errors")
        );
    }

    #[test]
    fn display_is_dotted() {
        let issue = ValidationIssue {
            loc: vec![key("steps"), 2.into(), key("name")],
            msg: "must not be empty".into(),
            kind: "string_too_short".into(),
        };
        assert_eq!(
            issue.to_string(),
            "steps.2.name: must not be empty [string_too_short]"
        );
    }
}
