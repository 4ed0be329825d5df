//! Step content hash (anchor identity) and scenario checksum.
//!
//! Both must stay byte-compatible with the original Python implementation, which
//! hashed `json.dumps(obj, sort_keys=True)`: runtimes already store these values.
//! serde_json formats differently (no spaces after separators, raw UTF-8), so the
//! few objects involved are written here by hand, keys already in sorted order.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::model::{ScenarioInput, StepInput};

/// The content hash of a step: what makes two steps of different versions "the same step".
pub fn step_content_hash(step: &StepInput) -> String {
    let mut out = String::with_capacity(256);
    step_content_hash_with(step, &mut out)
}

/// [`step_content_hash`] reusing `buf` as scratch space: hashing every step of a big
/// scenario should not allocate a buffer per step.
pub(crate) fn step_content_hash_with(step: &StepInput, buf: &mut String) -> String {
    buf.clear();
    step_hash_json(step, buf);
    truncated_sha256(buf)
}

/// The checksum of a whole scenario version, used to validate a session's stored path.
pub fn scenario_checksum(scenario: &ScenarioInput) -> String {
    let mut out = String::with_capacity(64 + scenario.steps.len() * 160);
    scenario_checksum_json(scenario, &mut out);
    truncated_sha256(&out)
}

fn truncated_sha256(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// A UUID the way Python's `str(uuid)` writes it, without allocating.
fn py_uuid(id: &uuid::Uuid, out: &mut String) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push('"');
    out.push_str(id.hyphenated().encode_lower(&mut buf));
    out.push('"');
}

/// Keys in Python's sorted order: checkpoint_description, collects_profile_fields,
/// description, is_checkpoint, name, performs_action, rule_ids.
fn step_hash_json(step: &StepInput, out: &mut String) {
    out.push_str("{\"checkpoint_description\": ");
    py_str(step.checkpoint_description.as_deref().unwrap_or(""), out);
    out.push_str(", \"collects_profile_fields\": ");
    if step.collects_profile_fields.len() <= 1 {
        py_list(step.collects_profile_fields.iter().map(String::as_str), out);
    } else {
        let mut fields: Vec<&str> = step
            .collects_profile_fields
            .iter()
            .map(String::as_str)
            .collect();
        // Python sorts str by code point, which is the byte order of UTF-8.
        fields.sort_unstable();
        py_list(fields.iter().copied(), out);
    }
    out.push_str(", \"description\": ");
    py_str(step.description.as_deref().unwrap_or(""), out);
    out.push_str(", \"is_checkpoint\": ");
    out.push_str(py_bool(step.is_checkpoint));
    out.push_str(", \"name\": ");
    py_str(&step.name, out);
    out.push_str(", \"performs_action\": ");
    out.push_str(py_bool(step.performs_action));
    out.push_str(", \"rule_ids\": ");
    // Lowercase hyphenated UUID strings sort like the UUID bytes.
    let mut rules: Vec<&uuid::Uuid> = step.rule_ids.iter().collect();
    rules.sort_unstable();
    out.push('[');
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_uuid(rule, out);
    }
    out.push(']');
    out.push('}');
}

/// `{"entry_step_id", "name", "steps": [{"id", "name", "transitions": [{"condition_text",
/// "priority", "to_step_id"}]}], "version"}`, steps sorted by id, transitions by target
/// (both stable sorts, as Python's `sorted`).
fn scenario_checksum_json(scenario: &ScenarioInput, out: &mut String) {
    out.push_str("{\"entry_step_id\": ");
    py_uuid(&scenario.entry_step_id, out);
    out.push_str(", \"name\": ");
    py_str(&scenario.name, out);
    out.push_str(", \"steps\": [");
    let mut steps: Vec<&StepInput> = scenario.steps.iter().collect();
    steps.sort_by_key(|s| s.id);
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"id\": ");
        py_uuid(&step.id, out);
        out.push_str(", \"name\": ");
        py_str(&step.name, out);
        out.push_str(", \"transitions\": [");
        let mut transitions: Vec<_> = step.transitions.iter().collect();
        if transitions.len() > 1 {
            transitions.sort_by_key(|t| t.to_step_id);
        }
        for (j, t) in transitions.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str("{\"condition_text\": ");
            py_str(&t.condition_text, out);
            let _ = write!(out, ", \"priority\": {}, \"to_step_id\": ", t.priority);
            py_uuid(&t.to_step_id, out);
            out.push('}');
        }
        out.push_str("]}");
    }
    let _ = write!(out, "], \"version\": {}}}", scenario.version);
}

fn py_bool(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn py_list<'a>(items: impl Iterator<Item = &'a str>, out: &mut String) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_str(item, out);
    }
    out.push(']');
}

/// A string as Python's `json.dumps` writes it with `ensure_ascii=True`: printable
/// ASCII as is, the five short escapes, everything else (DEL and non-ASCII included)
/// as `\u` escapes of UTF-16 code units in four lowercase hex digits.
fn py_str(s: &str, out: &mut String) {
    out.push('"');
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{step, uuid_n};
    use uuid::Uuid;

    fn json_of(step: &StepInput) -> String {
        let mut out = String::new();
        step_hash_json(step, &mut out);
        out
    }

    #[test]
    fn vector_welcome() {
        let s = step("Welcome").build();
        assert_eq!(
            json_of(&s),
            r#"{"checkpoint_description": "", "collects_profile_fields": [], "description": "", "is_checkpoint": false, "name": "Welcome", "performs_action": false, "rule_ids": []}"#
        );
        assert_eq!(step_content_hash(&s), "bc082e7442d8c0c7");
    }

    #[test]
    fn vector_collect_email_sorts_fields() {
        let s = step("Collect email")
            .description("Ask for the customer's e-mail")
            .collects(&["email", "age"])
            .build();
        assert_eq!(step_content_hash(&s), "7def3dc30ca586ce");
    }

    #[test]
    fn vector_non_ascii_checkpoint_with_rule() {
        let rule = Uuid::parse_str("7d3c1f3e-2a4b-4c5d-9e6f-0a1b2c3d4e5f").unwrap();
        let s = step("Paiement traité")
            .checkpoint("Payment processed")
            .performs_action()
            .rules(&[rule])
            .build();
        assert!(json_of(&s).contains(r#""name": "Paiement trait\u00e9""#));
        assert_eq!(step_content_hash(&s), "dfd1a5de2c599646");
    }

    #[test]
    fn vector_scenario_checksum() {
        let a = Uuid::parse_str("00000000-0000-4000-8000-00000000000a").unwrap();
        let b = Uuid::parse_str("00000000-0000-4000-8000-00000000000b").unwrap();
        let c = Uuid::parse_str("00000000-0000-4000-8000-00000000000c").unwrap();
        // Steps and transitions deliberately out of order: the checksum sorts them.
        let scenario = ScenarioInput {
            name: "Support flow".into(),
            description: None,
            version: 2,
            entry_step_id: a,
            steps: vec![
                step("Done").id(c).build(),
                step("Collect email")
                    .id(b)
                    .to_id_if(c, "age >= 18", 1)
                    .build(),
                step("Welcome").id(a).to_id(b).build(),
            ],
        };
        assert_eq!(scenario_checksum(&scenario), "0fec4b11476f4c1e");
    }

    #[test]
    fn escapes_like_python() {
        // Expected text produced by CPython's json.dumps.
        let mut out = String::new();
        py_str("\u{0}\u{1}\u{7f}\n\t\u{8}\u{c}\r\"\\/é😀\u{2028}", &mut out);
        assert_eq!(
            out,
            r#""\u0000\u0001\u007f\n\t\b\f\r\"\\/\u00e9\ud83d\ude00\u2028""#
        );
    }

    #[test]
    fn rule_ids_are_sorted_as_strings() {
        let r1 = uuid_n(0xb);
        let r2 = uuid_n(0xa);
        let one = step("X").rules(&[r1, r2]).build();
        let other = step("X").rules(&[r2, r1]).build();
        assert_eq!(step_content_hash(&one), step_content_hash(&other));
    }

    #[test]
    fn fields_irrelevant_to_identity_do_not_change_the_hash() {
        let base = step("X").build();
        let mut moved = base.clone();
        moved.id = uuid_n(99);
        moved.is_entry = true;
        moved.is_terminal = true;
        moved.is_required_action = true;
        moved.transitions.clear();
        assert_eq!(step_content_hash(&base), step_content_hash(&moved));
        let mut renamed = base.clone();
        renamed.name = "Y".into();
        assert_ne!(step_content_hash(&base), step_content_hash(&renamed));
    }
}
