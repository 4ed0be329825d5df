//! Checking an exchange against the OpenAPI document: the component schemas
//! made strict, request and response bodies validated, round trips through
//! the client's types.

use std::collections::BTreeSet;

use focal_migrations_client::Exchange;
use focal_migrations_client::model::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// The document's component schemas, strict: an object schema that does not
/// say otherwise admits only the properties it names (an `allOf` is merged
/// first, so its members do not reject each other's properties).
pub(super) fn strict_components(document: &Value) -> Value {
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    let resolve = |schema: &Value| -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().expect("a schema name");
                schemas[name].clone()
            }
            None => schema.clone(),
        }
    };
    let mut strict = Map::new();
    for (name, schema) in schemas {
        let mut schema = schema.clone();
        if let Some(members) = schema.get("allOf").and_then(Value::as_array).cloned() {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for member in members.iter().map(resolve) {
                if let Some(p) = member.get("properties").and_then(Value::as_object) {
                    properties.extend(p.clone());
                }
                if let Some(r) = member.get("required").and_then(Value::as_array) {
                    required.extend(r.clone());
                }
            }
            schema = json!({"type": "object", "properties": properties, "required": required});
        }
        if schema.get("properties").is_some() && schema.get("additionalProperties").is_none() {
            schema["additionalProperties"] = json!(false);
        }
        strict.insert(name.clone(), schema);
    }
    json!({ "schemas": strict })
}

/// Checks values against one schema of the document (its `$ref`s resolved
/// against the strict components).
pub(super) struct Schemas {
    pub(super) components: Value,
}

impl Schemas {
    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.components.clone());
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        let validator = jsonschema::validator_for(&Value::Object(root)).expect("a valid schema");
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect()
    }

    pub(super) fn named(&self, name: &str, instance: &Value) -> Vec<String> {
        self.errors(
            &json!({"$ref": format!("#/components/schemas/{name}")}),
            instance,
        )
    }
}

/// Where `original` has a value (not null) that `roundtrip` lacks or changed:
/// what a client type lost.
pub(super) fn lost(original: &Value, roundtrip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, roundtrip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    _ if value.is_null() => {}
                    Some(other) => lost(value, other, &here, out),
                    None => out.push(format!("{here} missing")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}
fn round_trip<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<Value, String> {
    let typed: T = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The body of a successful answer read into the client's type for the
/// operation and written back; `None` for an answer that is not JSON.
fn client_round_trip(operation: &str, body: &[u8]) -> Option<Result<Value, String>> {
    Some(match operation {
        "health" => round_trip::<Health>(body),
        "openapi_json" => round_trip::<Value>(body),
        "put_scenario" | "get_scenario" | "get_scenario_version" => {
            round_trip::<ScenarioVersion>(body)
        }
        "put_session" | "get_session" => round_trip::<Session>(body),
        "reconcile_session" => round_trip::<ReconciliationResult>(body),
        "report_outcome" => round_trip::<OutcomeAnswer>(body),
        "create_plan" | "get_plan" | "put_policies" | "approve_plan" | "reject_plan" => {
            round_trip::<MigrationPlan>(body)
        }
        "list_plans" => round_trip::<PlanList>(body),
        "get_summary" => round_trip::<MigrationSummary>(body),
        "get_forecast" => round_trip::<PlanForecast>(body),
        "get_anchors" => round_trip::<AnchorPage>(body),
        "get_events" => round_trip::<EventList>(body),
        "deploy_plan" => round_trip::<DeploymentResult>(body),
        "deployment_status" | "pause_plan" => round_trip::<DeploymentStatus>(body),
        "resume_plan" | "withdraw_plan" => round_trip::<DeploymentResult>(body),
        "plan_diagram" => return None,
        other => Err(format!("no client type for {other}")),
    })
}

/// `/sessions/{session_id}` matches `/sessions/wa-1`.
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Every problem one exchange has with the document.
pub(super) fn check_exchange(document: &Value, schemas: &Schemas, x: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    let op = x.operation;
    let method = op.method.to_ascii_lowercase();
    let Some(spec) = document["paths"][op.path].get(&method) else {
        return vec![format!("{} {}: not in the document", op.method, op.path)];
    };
    let name = op.id;
    if !path_matches(op.path, &x.path) {
        problems.push(format!("{name}: sent to {} for {}", x.path, op.path));
    }
    let declared: BTreeSet<&str> = spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for (query, _) in &x.query {
        if !declared.contains(query) {
            problems.push(format!("{name}: query parameter {query} is not declared"));
        }
    }
    let request_schema = &spec["requestBody"]["content"]["application/json"]["schema"];
    match (&x.request_body, request_schema.is_null()) {
        (Some(body), false) => {
            for e in schemas.errors(request_schema, body) {
                problems.push(format!("{name} request: {e}"));
            }
        }
        (Some(_), true) => {
            problems.push(format!("{name}: sent a body the operation takes none of"))
        }
        (None, false) if spec["requestBody"]["required"] == true => {
            problems.push(format!("{name}: sent no body"))
        }
        (None, _) => {}
    }
    let status = x.status.to_string();
    let Some(response) = spec["responses"].get(&status) else {
        problems.push(format!("{name}: status {status} is not in the document"));
        return problems;
    };
    let Some((content_type, content)) = response["content"]
        .as_object()
        .and_then(|c| c.iter().next())
    else {
        return problems;
    };
    if !x
        .content_type
        .as_deref()
        .is_some_and(|sent| sent.starts_with(content_type.as_str()))
    {
        problems.push(format!(
            "{name}: answered {:?}, the document says {content_type}",
            x.content_type
        ));
    }
    if content_type != "application/json" {
        return problems;
    }
    let body: Value = match serde_json::from_slice(&x.response_body) {
        Ok(body) => body,
        Err(e) => return vec![format!("{name}: answer is not JSON: {e}")],
    };
    for e in schemas.errors(&content["schema"], &body) {
        problems.push(format!("{name} {status} answer: {e}"));
    }
    if (200..300).contains(&x.status) {
        match client_round_trip(name, &x.response_body) {
            Some(Ok(again)) => {
                let mut missing = Vec::new();
                lost(&body, &again, "", &mut missing);
                for m in missing {
                    problems.push(format!("{name}: the client type lost {m}"));
                }
                // What the client writes back is what the document describes.
                for e in schemas.errors(&content["schema"], &again) {
                    problems.push(format!("{name}: the client's type: {e}"));
                }
            }
            Some(Err(e)) => {
                problems.push(format!("{name}: the client cannot read the answer: {e}"))
            }
            None => {}
        }
    }
    problems
}
