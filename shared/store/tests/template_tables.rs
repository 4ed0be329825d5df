//! The SAM template declares the tables the store creates: `infra/template.yaml`
//! against [`store::dynamo::TABLES`] — key schema, attribute types, global
//! secondary indexes (names, keys, projection type and non-key attributes),
//! stream view type and TTL attribute. Either side having something the other
//! lacks fails.
//!
//! CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`) are read as
//! `serde_yaml` tagged values; the table properties compared here are literals.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value as Yaml;
use store::dynamo::{TABLES, TableDefinition};

/// The tables of one side, by template logical id.
type Shapes = BTreeMap<String, TableShape>;

/// One drift applied to the store's side.
type Mutation = Box<dyn Fn(&mut Shapes)>;

/// A table as both sides describe it, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableShape {
    /// (name, type) of every `AttributeDefinitions` entry.
    attributes: BTreeSet<(String, String)>,
    /// (name, key type), in order: HASH first.
    key: Vec<(String, String)>,
    /// index name → its shape.
    indexes: BTreeMap<String, IndexShape>,
    stream_view: Option<String>,
    ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexShape {
    key: Vec<(String, String)>,
    projection_type: String,
    non_key_attributes: BTreeSet<String>,
}

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("read infra/template.yaml");
    serde_yaml::from_str(&text).expect("parse infra/template.yaml")
}

fn text(value: &Yaml, what: &str) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a literal string, found {value:?}"))
        .to_owned()
}

fn list(value: Option<&Yaml>) -> &[Yaml] {
    value
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn key_schema(value: Option<&Yaml>, what: &str) -> Vec<(String, String)> {
    list(value)
        .iter()
        .map(|k| (text(&k["AttributeName"], what), text(&k["KeyType"], what)))
        .collect()
}

/// Every `AWS::DynamoDB::Table` resource of the template, by logical id.
fn template_tables(template: &Yaml) -> BTreeMap<String, TableShape> {
    let resources = template["Resources"]
        .as_mapping()
        .expect("template has Resources");
    let mut tables = BTreeMap::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            continue;
        }
        let id = text(id, "logical id");
        let props = &resource["Properties"];
        let attributes = list(props.get("AttributeDefinitions"))
            .iter()
            .map(|a| {
                (
                    text(&a["AttributeName"], &id),
                    text(&a["AttributeType"], &id),
                )
            })
            .collect();
        let indexes = list(props.get("GlobalSecondaryIndexes"))
            .iter()
            .map(|index| {
                let name = text(&index["IndexName"], &id);
                let projection = &index["Projection"];
                let shape = IndexShape {
                    key: key_schema(index.get("KeySchema"), &name),
                    projection_type: text(&projection["ProjectionType"], &name),
                    non_key_attributes: list(projection.get("NonKeyAttributes"))
                        .iter()
                        .map(|a| text(a, &name))
                        .collect(),
                };
                (name, shape)
            })
            .collect();
        let ttl = &props["TimeToLiveSpecification"];
        let shape = TableShape {
            attributes,
            key: key_schema(props.get("KeySchema"), &id),
            indexes,
            stream_view: props
                .get("StreamSpecification")
                .map(|s| text(&s["StreamViewType"], &id)),
            ttl_attribute: (ttl["Enabled"].as_bool() == Some(true))
                .then(|| text(&ttl["AttributeName"], &id)),
        };
        tables.insert(id, shape);
    }
    tables
}

fn pairs<'a>(
    keys: impl IntoIterator<Item = &'a store::dynamo::KeyAttribute>,
) -> Vec<(String, String)> {
    keys.into_iter()
        .map(|k| (k.name.to_owned(), k.key_type.to_owned()))
        .collect()
}

fn definition_shape(table: &TableDefinition) -> TableShape {
    TableShape {
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| (a.name.to_owned(), a.attribute_type.to_owned()))
            .collect(),
        key: pairs(table.key),
        indexes: table
            .indexes
            .iter()
            .map(|index| {
                let shape = IndexShape {
                    key: pairs(index.key),
                    projection_type: index.projection.type_name().to_owned(),
                    non_key_attributes: index
                        .projection
                        .non_key_attributes()
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                };
                (index.name.to_owned(), shape)
            })
            .collect(),
        stream_view: table.stream_view.map(str::to_owned),
        ttl_attribute: table.ttl_attribute.map(str::to_owned),
    }
}

fn definition_tables(tables: &[TableDefinition]) -> BTreeMap<String, TableShape> {
    tables
        .iter()
        .map(|t| (t.template_id.to_owned(), definition_shape(t)))
        .collect()
}

/// Every difference between the two sides, described; empty when they agree.
fn differences(
    template: &BTreeMap<String, TableShape>,
    definitions: &BTreeMap<String, TableShape>,
) -> Vec<String> {
    let mut out = Vec::new();
    for id in template
        .keys()
        .chain(definitions.keys())
        .collect::<BTreeSet<_>>()
    {
        match (template.get(id), definitions.get(id)) {
            (Some(_), None) => out.push(format!(
                "{id}: in the template, not in store::dynamo::TABLES"
            )),
            (None, Some(_)) => out.push(format!(
                "{id}: in store::dynamo::TABLES, not in the template"
            )),
            (Some(t), Some(d)) => {
                if t.attributes != d.attributes {
                    out.push(format!(
                        "{id}: attributes {:?} (template) vs {:?} (store)",
                        t.attributes, d.attributes
                    ));
                }
                if t.key != d.key {
                    out.push(format!(
                        "{id}: key {:?} (template) vs {:?} (store)",
                        t.key, d.key
                    ));
                }
                for name in t
                    .indexes
                    .keys()
                    .chain(d.indexes.keys())
                    .collect::<BTreeSet<_>>()
                {
                    match (t.indexes.get(name), d.indexes.get(name)) {
                        (Some(ti), Some(di)) if ti != di => {
                            out.push(format!("{id}.{name}: {ti:?} (template) vs {di:?} (store)"))
                        }
                        (Some(_), None) => {
                            out.push(format!("{id}.{name}: index only in the template"))
                        }
                        (None, Some(_)) => {
                            out.push(format!("{id}.{name}: index only in the store"))
                        }
                        _ => {}
                    }
                }
                if t.stream_view != d.stream_view {
                    out.push(format!(
                        "{id}: stream {:?} (template) vs {:?} (store)",
                        t.stream_view, d.stream_view
                    ));
                }
                if t.ttl_attribute != d.ttl_attribute {
                    out.push(format!(
                        "{id}: TTL {:?} (template) vs {:?} (store)",
                        t.ttl_attribute, d.ttl_attribute
                    ));
                }
            }
            (None, None) => unreachable!("the id comes from one side"),
        }
    }
    out
}

#[test]
fn the_template_declares_the_tables_the_store_creates() {
    let found = differences(&template_tables(&template()), &definition_tables(&TABLES));
    assert!(
        found.is_empty(),
        "infra/template.yaml and store::dynamo::TABLES differ:\n{}",
        found.join("\n")
    );
}

#[test]
fn both_tables_are_compared() {
    let template = template_tables(&template());
    assert_eq!(
        template.keys().map(String::as_str).collect::<Vec<_>>(),
        ["MainTable", "SessionsTable"]
    );
    let sessions = &template["SessionsTable"].indexes["by_step_shard"];
    assert_eq!(sessions.projection_type, "INCLUDE");
    assert!(sessions.non_key_attributes.contains("pending_migration"));
}

/// The comparison catches each kind of drift (a check that could fail).
#[test]
fn a_mutated_definition_is_reported() {
    let template = template_tables(&template());
    let base = definition_tables(&TABLES);
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "a projected attribute dropped",
            Box::new(|d| {
                let index = d
                    .get_mut("SessionsTable")
                    .unwrap()
                    .indexes
                    .get_mut("by_step_shard")
                    .unwrap();
                index.non_key_attributes.remove("pinned_version");
            }),
        ),
        (
            "projection type",
            Box::new(|d| {
                d.get_mut("MainTable")
                    .unwrap()
                    .indexes
                    .get_mut("gsi1")
                    .unwrap()
                    .projection_type = "ALL".into();
            }),
        ),
        (
            "index key",
            Box::new(|d| {
                d.get_mut("MainTable")
                    .unwrap()
                    .indexes
                    .get_mut("gsi1")
                    .unwrap()
                    .key
                    .pop();
            }),
        ),
        (
            "an extra index",
            Box::new(|d| {
                let t = d.get_mut("SessionsTable").unwrap();
                let copy = t.indexes["by_step_shard"].clone();
                t.indexes.insert("by_step".into(), copy);
            }),
        ),
        (
            "an attribute type",
            Box::new(|d| {
                let t = d.get_mut("MainTable").unwrap();
                t.attributes.remove(&("sk".to_owned(), "S".to_owned()));
                t.attributes.insert(("sk".to_owned(), "N".to_owned()));
            }),
        ),
        (
            "table key",
            Box::new(|d| {
                d.get_mut("SessionsTable")
                    .unwrap()
                    .key
                    .push(("sk".into(), "RANGE".into()));
            }),
        ),
        (
            "stream view",
            Box::new(|d| {
                d.get_mut("SessionsTable").unwrap().stream_view = Some("NEW_IMAGE".into());
            }),
        ),
        (
            "TTL attribute",
            Box::new(|d| {
                d.get_mut("MainTable").unwrap().ttl_attribute = None;
            }),
        ),
        (
            "a missing table",
            Box::new(|d| {
                d.remove("MainTable");
            }),
        ),
    ];
    for (what, mutate) in mutations {
        let mut mutated = base.clone();
        mutate(&mut mutated);
        assert!(
            !differences(&template, &mutated).is_empty(),
            "not caught: {what}"
        );
        // And from the other side: the template having what the store lacks.
        assert!(
            !differences(&mutated, &base).is_empty(),
            "not caught the other way: {what}"
        );
    }
}

/// Least privilege on the step index: only the functions that page sessions at
/// a step (inline marking and the outcome forecast in deployments, the marking
/// worker, which also runs recounts) may query it.
/// Plan generation, the summary and the console read the session counters in
/// the main table, never the index.
#[test]
fn only_marking_and_the_forecast_may_query_the_step_index() {
    let template = template();
    let resources = template
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .expect("Resources");
    let index_suffix = format!("/index/{}", store::dynamo::STEPS_INDEX);
    let mut roles = BTreeSet::new();
    for (name, resource) in resources {
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::IAM::Role") {
            continue;
        }
        let policies = serde_yaml::to_string(&resource["Properties"]["Policies"]).expect("yaml");
        if policies.contains(&index_suffix) {
            roles.insert(text(name, "role name"));
        }
    }
    assert_eq!(
        roles,
        // Deploy probes, marking and the forecast (served by deployments) walk it.
        BTreeSet::from(["DeploymentsRole".to_owned(), "MarkSessionsRole".to_owned()])
    );
}
