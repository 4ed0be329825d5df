//! The sessions-table item, for runtimes that write DynamoDB directly instead
//! of calling `PUT /sessions/{id}`.
//!
//! The item is the store's own format, attribute for attribute: `pk`
//! (`{tenant}#{session_id}`), the position as native attributes, `variables`
//! as a map of name → JSON text, `step_history` as JSON text, `revision` (N),
//! and `step_key`, the key of the table's step index `by_step_shard`, which
//! marking queries to find the sessions at a step:
//!
//! ```text
//! step_key = "{tenant}#{scenario}#{version}#{step}#{shard}"
//! shard    = fnv1a_32(utf8(session_id)) mod STEP_INDEX_SHARDS
//! ```
//!
//! A session written with another shard (or another shard count than the
//! deployment's `StepIndexShards`) sits in a partition marking never reads: it
//! is silently never migrated. [`DirectWriter`] computes it, and keeps the
//! service's rules for the fields it owns (`pending_migration`,
//! `pinned_version`): it never writes them, except to clear them when the
//! session moves to another scenario, and it never moves a session back to
//! an older version. The e2e test `client_direct_write` checks that marking
//! finds and the stream counter counts what it writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::model::SessionInput;

/// The store's default `STEP_INDEX_SHARDS` (template parameter `StepIndexShards`).
pub const DEFAULT_STEP_INDEX_SHARDS: u32 = 8;

/// The session's shard of the step index: 32-bit FNV-1a of the id's UTF-8
/// bytes, modulo the shard count (0 shards counts as 1).
pub fn step_shard(session_id: &str, shards: u32) -> u32 {
    let hash = session_id
        .as_bytes()
        .iter()
        .fold(0x811C_9DC5_u32, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
        });
    hash % shards.max(1)
}

/// The step index key of a session at `step` of `scenario` version `version`.
pub fn step_key(
    tenant: Uuid,
    session_id: &str,
    scenario: Uuid,
    version: i64,
    step: Uuid,
    shards: u32,
) -> String {
    format!(
        "{}#{}#{version}#{}#{}",
        tenant.hyphenated(),
        scenario.hyphenated(),
        step.hyphenated(),
        step_shard(session_id, shards)
    )
}

/// The table key of a session.
pub fn session_pk(tenant: Uuid, session_id: &str) -> String {
    format!("{}#{session_id}", tenant.hyphenated())
}

/// Times as the store writes them: RFC 3339, UTC, nanoseconds, `Z`.
fn time_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// The attributes the runtime owns, as they are stored (everything but the
/// key, `created_at` and `revision`).
fn runtime_attributes(
    tenant: Uuid,
    session_id: &str,
    session: &SessionInput,
    shards: u32,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, Option<AttributeValue>)>, serde_json::Error> {
    let mut variables = HashMap::with_capacity(session.variables.len());
    for (name, value) in &session.variables {
        variables.insert(name.clone(), s(serde_json::to_string(value)?));
    }
    Ok(vec![
        (
            "step_key",
            Some(s(step_key(
                tenant,
                session_id,
                session.active_scenario_id,
                session.active_scenario_version,
                session.active_step_id,
                shards,
            ))),
        ),
        ("session_id", Some(s(session_id))),
        ("tenant_id", Some(s(tenant.hyphenated().to_string()))),
        ("channel", Some(s(&session.channel))),
        ("customer_id", session.customer_id.as_deref().map(s)),
        (
            "active_scenario_id",
            Some(s(session.active_scenario_id.hyphenated().to_string())),
        ),
        (
            "active_scenario_version",
            Some(n(session.active_scenario_version)),
        ),
        (
            "active_step_id",
            Some(s(session.active_step_id.hyphenated().to_string())),
        ),
        (
            "scenario_checksum",
            session.scenario_checksum.as_deref().map(s),
        ),
        (
            "step_history",
            Some(s(serde_json::to_string(&session.step_history)?)),
        ),
        ("variables", Some(AttributeValue::M(variables))),
        ("updated_at", Some(s(time_text(&now)))),
    ])
}

/// The whole item of a session at `revision`, as the store writes it.
pub fn session_item(
    tenant: Uuid,
    session_id: &str,
    session: &SessionInput,
    revision: u64,
    shards: u32,
    now: DateTime<Utc>,
) -> Result<HashMap<String, AttributeValue>, serde_json::Error> {
    let mut item: HashMap<String, AttributeValue> =
        runtime_attributes(tenant, session_id, session, shards, now)?
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
            .collect();
    item.insert("pk".into(), s(session_pk(tenant, session_id)));
    item.insert(
        "created_at".into(),
        s(time_text(&session.created_at.unwrap_or(now))),
    );
    item.insert("revision".into(), n(revision));
    Ok(item)
}

/// What a write needs to know of the stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub revision: u64,
    pub active_scenario_id: Uuid,
    pub active_scenario_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectWriteError {
    /// Someone wrote the session since it was read (or it exists, for a
    /// create): read it again and decide again.
    #[error("the session changed since it was read")]
    Conflict,
    /// A session never moves back to an older version of its scenario (a late
    /// write of the old position would undo a migration).
    #[error("the session is at version {current} of its scenario: never back")]
    VersionRegression { current: i64 },
    #[error("malformed session item: {0}")]
    Malformed(String),
    #[error("DynamoDB: {0}")]
    Sdk(String),
}

/// Writes session items straight into the sessions table, as the service would.
#[derive(Debug, Clone)]
pub struct DirectWriter {
    client: aws_sdk_dynamodb::Client,
    table: String,
    shards: u32,
}

impl DirectWriter {
    /// `shards` must be the deployment's `StepIndexShards`
    /// ([`DEFAULT_STEP_INDEX_SHARDS`] unless changed).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, shards: u32) -> Self {
        DirectWriter {
            client,
            table: table.into(),
            shards,
        }
    }

    /// The stored session's revision and scenario, read consistently; `None`
    /// when there is none.
    pub async fn read(
        &self,
        tenant: Uuid,
        session_id: &str,
    ) -> Result<Option<StoredSession>, DirectWriteError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(tenant, session_id)))
            .consistent_read(true)
            .projection_expression("#r, active_scenario_id, active_scenario_version")
            .expression_attribute_names("#r", "revision")
            .send()
            .await
            .map_err(|e| {
                DirectWriteError::Sdk(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            Some(AttributeValue::N(v)) => Ok(v.clone()),
            _ => Err(DirectWriteError::Malformed(name.to_owned())),
        };
        let malformed = |name: &str| DirectWriteError::Malformed(name.to_owned());
        Ok(Some(StoredSession {
            // Items written before revisions existed read as revision 0.
            revision: match item.get("revision") {
                None => 0,
                Some(_) => text("revision")?
                    .parse()
                    .map_err(|_| malformed("revision"))?,
            },
            active_scenario_id: text("active_scenario_id")?
                .parse()
                .map_err(|_| malformed("active_scenario_id"))?,
            active_scenario_version: text("active_scenario_version")?
                .parse()
                .map_err(|_| malformed("active_scenario_version"))?,
        }))
    }

    /// Create the session (revision 1); [`DirectWriteError::Conflict`] if it exists.
    pub async fn create(
        &self,
        tenant: Uuid,
        session_id: &str,
        session: &SessionInput,
    ) -> Result<u64, DirectWriteError> {
        let item = session_item(tenant, session_id, session, 1, self.shards, Utc::now())
            .map_err(|e| DirectWriteError::Malformed(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| write_error(e.into()))?;
        Ok(1)
    }

    /// Write the runtime's fields of a session read as `stored`, conditioned on
    /// its revision: the service's flag and pin stay (cleared when the session
    /// moves to another scenario), `created_at` stays unless `session` sets it,
    /// `revision` becomes `stored.revision + 1`, which is returned.
    pub async fn update(
        &self,
        tenant: Uuid,
        session_id: &str,
        session: &SessionInput,
        stored: &StoredSession,
    ) -> Result<u64, DirectWriteError> {
        let same_scenario = stored.active_scenario_id == session.active_scenario_id;
        if same_scenario && session.active_scenario_version < stored.active_scenario_version {
            return Err(DirectWriteError::VersionRegression {
                current: stored.active_scenario_version,
            });
        }
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let attributes = runtime_attributes(tenant, session_id, session, self.shards, Utc::now())
            .map_err(|e| DirectWriteError::Malformed(e.to_string()))?;
        let created_at = session.created_at.map(|at| s(time_text(&at)));
        let owned_by_service: Vec<(&str, Option<AttributeValue>)> = if same_scenario {
            Vec::new()
        } else {
            vec![("pending_migration", None), ("pinned_version", None)]
        };
        let next = stored.revision + 1;
        for (i, (name, value)) in attributes
            .into_iter()
            .chain(created_at.map(|v| ("created_at", Some(v))))
            .chain(owned_by_service)
            .chain([("revision", Some(n(next)))])
            .enumerate()
        {
            // Placeholders for every name: some (`revision`…) may be reserved words.
            let placeholder = format!("#a{i}");
            names.insert(placeholder.clone(), name.to_owned());
            match value {
                Some(value) => {
                    values.insert(format!(":v{i}"), value);
                    sets.push(format!("{placeholder} = :v{i}"));
                }
                None => removes.push(placeholder),
            }
        }
        names.insert("#rev".into(), "revision".into());
        values.insert(":expected".into(), n(stored.revision));
        let condition = if stored.revision == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(#rev) OR #rev = :expected)"
        } else {
            "#rev = :expected"
        };
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(tenant, session_id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| write_error(e.into()))?;
        Ok(next)
    }
}

fn write_error(e: aws_sdk_dynamodb::Error) -> DirectWriteError {
    match e {
        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => DirectWriteError::Conflict,
        e => DirectWriteError::Sdk(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_shard_is_the_documented_fnv1a() {
        // docs/runtime.md's worked example: 0xBC7CA9DA, shard 2 of 8.
        let id = "3f2b8a1e-0c1d-4c3e-9a4b-7d5e6f708192";
        assert_eq!(step_shard(id, u32::MAX), 0xBC7C_A9DA);
        assert_eq!(step_shard(id, 8), 2);
        // FNV-1a's published test vector: "a" → 0xE40C292C (both below u32::MAX,
        // so the modulus leaves the hash whole).
        assert_eq!(step_shard("a", u32::MAX), 0xE40C_292C);
        assert_eq!(step_shard(id, 0), 0);
    }

    #[test]
    fn the_item_has_the_store_attributes_and_types() {
        let tenant = Uuid::from_u128(1);
        let scenario = Uuid::from_u128(2);
        let step = Uuid::from_u128(3);
        let mut session = SessionInput::at("web", scenario, 4, step);
        session
            .variables
            .insert("age".into(), serde_json::json!(34));
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let item = session_item(tenant, "s-1", &session, 7, 8, now).expect("item");
        let text = |name: &str| match &item[name] {
            AttributeValue::S(v) | AttributeValue::N(v) => v.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(text("pk"), format!("{tenant}#s-1"));
        assert_eq!(
            text("step_key"),
            format!("{tenant}#{scenario}#4#{step}#{}", step_shard("s-1", 8))
        );
        assert!(matches!(
            item["active_scenario_version"],
            AttributeValue::N(_)
        ));
        assert!(matches!(item["revision"], AttributeValue::N(_)));
        assert_eq!(text("revision"), "7");
        assert_eq!(text("created_at"), "2026-01-02T03:04:05.000000000Z");
        assert_eq!(text("step_history"), "[]");
        let AttributeValue::M(variables) = &item["variables"] else {
            panic!("variables is a map");
        };
        assert_eq!(variables["age"], AttributeValue::S("34".into()));
        // The service's fields are never written by a runtime.
        assert!(!item.contains_key("pending_migration"));
        assert!(!item.contains_key("pinned_version"));
        assert!(!item.contains_key("customer_id"));
    }
}
