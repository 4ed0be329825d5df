//! Filling the fields a migration needs from what is already known.
//!
//! Order: the runtime's `known_fields` first, then the session's
//! variables. An extraction candidate is used only at confidence ≥ 0.85 and is
//! listed for confirmation below 0.95. A candidate without a confidence is a value
//! the runtime vouches for (a profile field sent in the long form) and is used as
//! is. `null` counts as unknown wherever it comes from.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{KnownField, Session};
use crate::scope::session_bindings;

/// Use an extracted value at or above this confidence.
pub const MIN_CONFIDENCE: f64 = 0.85;
/// Below this confidence a used value is also sent back in `confirm_fields`.
pub const CONFIRM_BELOW: f64 = 0.95;

/// Source recorded for a plain `known_fields` value.
pub const SOURCE_KNOWN: &str = "known_fields";
/// Source recorded for a value already in the session's variables.
pub const SOURCE_VARIABLES: &str = "session_variables";

struct Found<'a> {
    value: &'a Value,
    source: &'a str,
    confirm: bool,
    from_known: bool,
}

fn usable_known(field: &KnownField) -> Option<(&Value, &str, bool)> {
    match field {
        KnownField::Plain(v) if !v.is_null() => Some((v, SOURCE_KNOWN, false)),
        KnownField::Plain(_) => None,
        KnownField::Candidate {
            value,
            source,
            confidence,
        } => {
            if value.is_null() {
                return None;
            }
            let c = confidence.unwrap_or(1.0);
            if c.is_nan() || c < MIN_CONFIDENCE {
                return None;
            }
            let source = source.as_deref().unwrap_or(SOURCE_KNOWN);
            Some((value, source, c < CONFIRM_BELOW))
        }
    }
}

/// The values a decision may draw on.
pub(crate) struct Sources<'a> {
    pub known: &'a BTreeMap<String, KnownField>,
    pub session: &'a Session,
}

impl<'a> Sources<'a> {
    fn find(&self, field: &str) -> Option<Found<'a>> {
        if let Some((value, source, confirm)) = self.known.get(field).and_then(usable_known) {
            return Some(Found {
                value,
                source,
                confirm,
                from_known: true,
            });
        }
        self.session
            .variables
            .get(field)
            .filter(|v| !v.is_null())
            .map(|value| Found {
                value,
                source: SOURCE_VARIABLES,
                confirm: false,
                from_known: false,
            })
    }

    pub fn has(&self, field: &str) -> bool {
        self.find(field).is_some()
    }

    /// CEL bindings: every variable and usable known field by name (known fields
    /// win, as in filling), plus the `session` object of scope filters.
    pub fn bindings(&self, current_step_name: &str, age_days: i64) -> BTreeMap<String, Value> {
        let mut b: BTreeMap<String, Value> = self
            .session
            .variables
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, f) in self.known {
            if let Some((v, _, _)) = usable_known(f) {
                b.insert(k.clone(), v.clone());
            }
        }
        b.extend(session_bindings(self.session, current_step_name, age_days));
        b
    }
}

/// What filling produced so far; merged into the decision.
#[derive(Debug, Default)]
pub(crate) struct Fills {
    pub set_variables: BTreeMap<String, Value>,
    pub fields_filled: BTreeMap<String, String>,
    pub confirm_fields: Vec<String>,
    pub missing: Vec<String>,
}

impl Fills {
    /// Record `field` as needed: filled from `sources`, or missing.
    pub fn require(&mut self, sources: &Sources<'_>, field: &str) {
        if self.fields_filled.contains_key(field) || self.missing.iter().any(|m| m == field) {
            return;
        }
        match sources.find(field) {
            Some(found) => {
                // Only a value that changes the session is written back.
                if found.from_known && sources.session.variables.get(field) != Some(found.value) {
                    self.set_variables
                        .insert(field.to_string(), found.value.clone());
                }
                if found.confirm {
                    self.confirm_fields.push(field.to_string());
                }
                self.fields_filled
                    .insert(field.to_string(), found.source.to_string());
            }
            None => self.missing.push(field.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(value: Value, confidence: f64) -> KnownField {
        KnownField::Candidate {
            value,
            source: Some("extraction".into()),
            confidence: Some(confidence),
        }
    }

    #[test]
    fn confidence_thresholds() {
        assert!(usable_known(&candidate(json!(1), 0.84)).is_none());
        assert_eq!(
            usable_known(&candidate(json!(1), 0.85)).map(|u| u.2),
            Some(true)
        );
        assert_eq!(
            usable_known(&candidate(json!(1), 0.949)).map(|u| u.2),
            Some(true)
        );
        assert_eq!(
            usable_known(&candidate(json!(1), 0.95)).map(|u| u.2),
            Some(false)
        );
        assert!(usable_known(&candidate(json!(1), f64::NAN)).is_none());
        assert!(usable_known(&candidate(Value::Null, 0.99)).is_none());
        assert!(usable_known(&KnownField::Plain(Value::Null)).is_none());
        let no_confidence = KnownField::Candidate {
            value: json!("x"),
            source: None,
            confidence: None,
        };
        assert_eq!(
            usable_known(&no_confidence).map(|u| (u.1, u.2)),
            Some((SOURCE_KNOWN, false))
        );
    }
}
