//! The tables and their indexes, written down once ([`TABLES`]): what
//! [`create_tables`] creates and [`ensure_stream`] checks, and what
//! `infra/template.yaml` must declare (`shared/store/tests/template_tables.rs`
//! compares the two).

#[cfg(any(feature = "local", feature = "stream-poll"))]
use aws_sdk_dynamodb::Client;
#[cfg(any(feature = "local", feature = "stream-poll"))]
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
#[cfg(feature = "local")]
use aws_sdk_dynamodb::error::SdkError;
#[cfg(feature = "local")]
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
#[cfg(any(feature = "local", feature = "stream-poll"))]
use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};

#[cfg(feature = "local")]
use super::TableNames;
#[cfg(any(feature = "local", feature = "stream-poll"))]
use super::ops::{built, sdk_error};
#[cfg(any(feature = "local", feature = "stream-poll"))]
use crate::{StoreError, StoreResult};

/// The plan-listing index of the main table.
pub(super) const PLANS_INDEX: &str = "gsi1";
/// The write-sharded step index. It replaced `by_step` (projection ALL, key
/// without shard): a GSI's projection cannot change in place, so it is a new
/// index (docs/operations.md, "Migrating an existing deployment").
pub const STEPS_INDEX: &str = "by_step_shard";

/// Non-key attributes the step index projects: what marking and the scope
/// filter read (`planning::scope`: channel, age from `created_at`, variables;
/// marking: the flag and the pin). Not `step_history`, `updated_at` or
/// `revision`: a runtime write that does not move a session then changes at
/// most one small index item, and none when it changes none of these.
pub(super) const STEP_INDEX_FIELDS: [&str; 5] = [
    "channel",
    "created_at",
    "variables",
    "pending_migration",
    "pinned_version",
];

/// Summary-item fields projected into the listing index.
pub(super) const SUMMARY_FIELDS: [&str; 10] = [
    "id",
    "scenario_id",
    "scenario_name",
    "from_version",
    "to_version",
    "status",
    "total_anchors",
    "estimated_sessions_affected",
    "warning_count",
    "created_at",
];

/// The `ttl` attribute: epoch seconds after which DynamoDB deletes the item.
pub(super) const TTL: &str = "ttl";

/// Which of [`super::TableNames`] a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRole {
    /// Plans, scenarios, ledger, events, body parts, counters.
    Main,
    /// Sessions, shared with the conversation runtime.
    Sessions,
}

/// One key attribute, spelled as DynamoDB and CloudFormation spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: &'static str,
    /// `HASH` or `RANGE`.
    pub key_type: &'static str,
    /// `S`, `N` or `B`.
    pub attribute_type: &'static str,
}

/// What a global secondary index copies from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexProjection {
    All,
    KeysOnly,
    /// The keys and these non-key attributes.
    Include(&'static [&'static str]),
}

impl IndexProjection {
    /// The `ProjectionType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            IndexProjection::All => "ALL",
            IndexProjection::KeysOnly => "KEYS_ONLY",
            IndexProjection::Include(_) => "INCLUDE",
        }
    }

    /// The non-key attributes of an `INCLUDE` projection (empty otherwise).
    pub fn non_key_attributes(&self) -> &'static [&'static str] {
        match self {
            IndexProjection::Include(fields) => fields,
            IndexProjection::All | IndexProjection::KeysOnly => &[],
        }
    }
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: &'static str,
    pub key: &'static [KeyAttribute],
    pub projection: IndexProjection,
}

/// A table: its key, its indexes, its stream and its TTL attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDefinition {
    pub role: TableRole,
    /// The table's logical id in `infra/template.yaml`.
    pub template_id: &'static str,
    pub key: &'static [KeyAttribute],
    pub indexes: &'static [IndexDefinition],
    /// The stream's `StreamViewType`, when the table has a stream.
    pub stream_view: Option<&'static str>,
    /// The attribute DynamoDB's TTL reads, when expiry is on.
    pub ttl_attribute: Option<&'static str>,
}

impl TableDefinition {
    /// Every attribute a key of the table or of an index names, once each, in
    /// order of first mention: the table's `AttributeDefinitions`.
    pub fn attribute_definitions(&self) -> Vec<KeyAttribute> {
        let mut attributes: Vec<KeyAttribute> = Vec::new();
        let all_keys = self
            .key
            .iter()
            .chain(self.indexes.iter().flat_map(|i| i.key));
        for attribute in all_keys {
            if !attributes.iter().any(|a| a.name == attribute.name) {
                attributes.push(*attribute);
            }
        }
        attributes
    }
}

const fn string_key(name: &'static str, key_type: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        key_type,
        attribute_type: "S",
    }
}

/// The main table (key design in [`super`]).
pub const MAIN_TABLE: TableDefinition = TableDefinition {
    role: TableRole::Main,
    template_id: "MainTable",
    key: &[string_key("pk", "HASH"), string_key("sk", "RANGE")],
    indexes: &[IndexDefinition {
        name: PLANS_INDEX,
        key: &[string_key("gsi1pk", "HASH"), string_key("gsi1sk", "RANGE")],
        projection: IndexProjection::Include(&SUMMARY_FIELDS),
    }],
    stream_view: None,
    // Retention: deployed plans, ledger items and audit events carry `ttl`.
    ttl_attribute: Some(TTL),
};

/// The sessions table (key design in [`super`]).
pub const SESSIONS_TABLE: TableDefinition = TableDefinition {
    role: TableRole::Sessions,
    template_id: "SessionsTable",
    key: &[string_key("pk", "HASH")],
    indexes: &[IndexDefinition {
        name: STEPS_INDEX,
        key: &[
            string_key("step_key", "HASH"),
            string_key("session_id", "RANGE"),
        ],
        projection: IndexProjection::Include(&STEP_INDEX_FIELDS),
    }],
    // The session counts are fed by this stream (`super::counts`): both images,
    // -1 where a session was, +1 where it is.
    stream_view: Some("NEW_AND_OLD_IMAGES"),
    ttl_attribute: None,
};

/// Both tables.
pub const TABLES: [TableDefinition; 2] = [MAIN_TABLE, SESSIONS_TABLE];

#[cfg(feature = "local")]
impl TableNames {
    fn name_of(&self, role: TableRole) -> &str {
        match role {
            TableRole::Main => &self.main,
            TableRole::Sessions => &self.sessions,
        }
    }
}

#[cfg(feature = "local")]
fn key_schema(key: &[KeyAttribute]) -> StoreResult<Vec<KeySchemaElement>> {
    key.iter()
        .map(|attribute| {
            built(
                KeySchemaElement::builder()
                    .attribute_name(attribute.name)
                    .key_type(KeyType::from(attribute.key_type))
                    .build(),
            )
        })
        .collect()
}

#[cfg(feature = "local")]
fn projection(projection: &IndexProjection) -> Projection {
    let builder =
        Projection::builder().projection_type(ProjectionType::from(projection.type_name()));
    match projection {
        IndexProjection::Include(fields) => {
            builder.set_non_key_attributes(Some(fields.iter().map(|f| (*f).to_owned()).collect()))
        }
        IndexProjection::All | IndexProjection::KeysOnly => builder,
    }
    .build()
}

#[cfg(feature = "local")]
async fn create_table(client: &Client, name: &str, table: &TableDefinition) -> StoreResult<()> {
    let definitions = table
        .attribute_definitions()
        .iter()
        .map(|attribute| {
            built(
                AttributeDefinition::builder()
                    .attribute_name(attribute.name)
                    .attribute_type(ScalarAttributeType::from(attribute.attribute_type))
                    .build(),
            )
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let indexes = table
        .indexes
        .iter()
        .map(|index| {
            built(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(index.key)?))
                    .projection(projection(&index.projection))
                    .build(),
            )
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let result = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(key_schema(table.key)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    create_if_missing(result)
}

/// Create both tables of [`TABLES`] with their indexes (on-demand billing)
/// unless they exist, wait until they and their indexes are ACTIVE, then turn
/// on their streams and TTL. Idempotent. Only with the `local` feature: in AWS
/// the template creates the tables.
#[cfg(feature = "local")]
pub async fn create_tables(client: &Client, tables: &TableNames) -> StoreResult<()> {
    for table in &TABLES {
        create_table(client, tables.name_of(table.role), table).await?;
    }
    for table in &TABLES {
        wait_active(client, tables.name_of(table.role)).await?;
    }
    for table in &TABLES {
        let name = tables.name_of(table.role);
        if table.stream_view.is_some() {
            ensure_stream(client, name).await?;
        }
        if let Some(attribute) = table.ttl_attribute {
            let ttl = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build();
            match client
                .update_time_to_live()
                .table_name(name)
                .set_time_to_live_specification(built(ttl).ok())
                .send()
                .await
            {
                Ok(_) => {}
                // Already enabled (a second `--init`).
                Err(e) if e.code() == Some("ValidationException") => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
    }
    Ok(())
}

#[cfg(feature = "local")]
fn create_if_missing<T, E, R>(result: Result<T, SdkError<E, R>>) -> StoreResult<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(sdk_error(e)),
    }
}

#[cfg(feature = "local")]
async fn wait_active(client: &Client, table: &str) -> StoreResult<()> {
    for _ in 0..600 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(sdk_error)?;
        if let Some(desc) = out.table {
            let indexes_active = desc
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if desc.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StoreError::Unexpected(format!(
        "table {table} did not become ACTIVE"
    )))
}

/// Turn on the sessions table's stream ([`SESSIONS_TABLE`]'s view type,
/// `NEW_AND_OLD_IMAGES`) unless it is on, and return its ARN. A stream of
/// another view type is an error: the counts need both images.
#[cfg(any(feature = "local", feature = "stream-poll"))]
pub async fn ensure_stream(client: &Client, sessions_table: &str) -> StoreResult<String> {
    let view = StreamViewType::from(SESSIONS_TABLE.stream_view.unwrap_or("NEW_AND_OLD_IMAGES"));
    for _ in 0..600 {
        let out = client
            .describe_table()
            .table_name(sessions_table)
            .send()
            .await
            .map_err(sdk_error)?;
        let table = out
            .table
            .ok_or_else(|| StoreError::Unexpected(format!("table {sessions_table} not found")))?;
        let spec = table.stream_specification();
        let enabled = spec.is_some_and(|s| s.stream_enabled());
        if enabled {
            if spec.and_then(|s| s.stream_view_type()) != Some(&view) {
                return Err(StoreError::Unexpected(format!(
                    "the stream of {sessions_table} must carry {}",
                    view.as_str()
                )));
            }
            if let Some(arn) = table.latest_stream_arn() {
                return Ok(arn.to_owned());
            }
        } else {
            let spec = built(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view.clone())
                    .build(),
            )?;
            match client
                .update_table()
                .table_name(sessions_table)
                .stream_specification(spec)
                .send()
                .await
            {
                Ok(_) => {}
                // Being updated by another `--init`: look again.
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StoreError::Unexpected(format!(
        "the stream of {sessions_table} did not become available"
    )))
}
