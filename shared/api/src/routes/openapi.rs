//! The OpenAPI 3.1 document of the API, generated from the code: the schemas are
//! derived from the request and response types (`utoipa::ToSchema`), the
//! operations from the `#[utoipa::path]` annotations on the handlers in
//! [`crate::routes`]. Served at `GET /openapi.json` (no tenant) and printed by
//! `migrations openapi`.
//!
//! What the annotations cannot say is added here, in one place: the
//! `X-Tenant-ID` header and the answers every tenant route can give (422 for a
//! missing or malformed header, 403 for a header that contradicts the
//! authorizer's tenant on AWS, 503 when the store throttles), request examples
//! from the README walkthrough, and the links of the plan lifecycle (create a
//! scenario → plan it → summary, policies, approve → deploy → status) that
//! clients and contract fuzzers follow.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToResponse, ToSchema};

use crate::error::ErrorDetail;

/// Routes that need no `X-Tenant-ID`.
pub const TENANTLESS_PATHS: [&str; 2] = ["/openapi.json", "/health"];

/// `{"detail": "Migration plan 3fa85f64-… not found"}`: every error except a
/// validation error.
#[derive(Serialize, ToSchema)]
pub struct ErrorMessage {
    #[schema(example = "Migration plan 3fa85f64-5717-4562-b3fc-2c963f66afa6 not found")]
    pub detail: String,
}

/// A request validation error, in FastAPI's shape with pydantic v2 error types.
#[derive(Serialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationError {
    pub detail: Vec<ErrorDetail>,
}

/// `GET /health`: the process answers and the store is reachable.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` (with 503) when the store did not answer.
    #[schema(example = "ok")]
    pub status: String,
    /// The store's error when it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// 404: the object does not exist for this tenant (another tenant's objects are 404 too).
#[derive(ToResponse)]
#[response(description = "Not found for this tenant; the detail names the id")]
pub struct NotFound(#[to_schema] pub ErrorMessage);

/// 409: a state conflict.
#[derive(ToResponse)]
#[response(
    description = "State conflict: wrong plan status, a concurrent change, an existing object"
)]
pub struct Conflict(#[to_schema] pub ErrorMessage);

/// 413: a body over 6 MB.
#[derive(ToResponse)]
#[response(description = "Request body over 6 MB")]
pub struct PayloadTooLarge(#[to_schema] pub ErrorMessage);

/// 422: request validation.
#[derive(ToResponse)]
#[response(description = "Validation error: every problem, located")]
pub struct ValidationFailed(#[to_schema] pub HttpValidationError);

/// Which version a plan diagram draws.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum DiagramSide {
    /// The version the plan migrates from.
    #[serde(rename = "v1")]
    V1,
    /// The version it migrates to (the default).
    #[serde(rename = "v2")]
    V2,
}

/// `GET /migration-plans/{plan_id}/diagram` is served by the console crate
/// (`console::api_router`), which depends on this one, so its handler cannot be
/// named here: it is described by this stand-in. The route-list test
/// (tests/tests/route_list.rs) checks that the console's router answers it and
/// the contract fuzzing checks the answers against this description.
#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/diagram", tag = "plans", operation_id = "plan_diagram",
    summary = "One side of a plan as an SVG diagram",
    description = "The whole version, or the neighbourhood of one anchor (a breadth-first ball of `radius` transitions). Anchors, inserted, deleted and edited steps are marked; on `v1`, deleted steps carry their session counts.",
    params(
        ("plan_id" = uuid::Uuid, Path, description = "The plan's id"),
        ("side" = Option<DiagramSide>, Query, description = "v1 or v2 (default v2)"),
        ("anchor" = Option<String>, Query, description = "An anchor content hash (or edited step key) of the plan to centre on"),
        ("radius" = Option<u32>, Query, minimum = 0, maximum = 25, description = "Transitions around the anchor"),
    ),
    responses(
        (status = 200, description = "The diagram", content_type = "image/svg+xml", body = String),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn plan_diagram() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "focal-migrations",
        description = "Migrate in-flight conversation sessions to new versions of a conversation flow: plan, review, approve, deploy, reconcile just in time. Every route except /openapi.json and /health needs `X-Tenant-ID: <uuid>`; another tenant's objects are 404.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::routes::put_scenario,
        crate::routes::get_scenario,
        crate::routes::get_scenario_version,
        crate::routes::put_session,
        crate::routes::get_session,
        crate::routes::reconcile_session,
        crate::routes::create_plan,
        crate::routes::list_plans,
        crate::routes::get_plan,
        crate::routes::get_summary,
        crate::routes::get_anchors,
        crate::routes::get_events,
        crate::routes::put_policies,
        crate::routes::approve_plan,
        crate::routes::reject_plan,
        crate::routes::deploy_plan,
        crate::routes::deployment_status,
        crate::routes::openapi_json,
        crate::routes::health,
        plan_diagram,
    ),
    components(
        schemas(ErrorMessage, HttpValidationError, Health, crate::services::reconcile::AuditEventSchema, DiagramSide),
        responses(NotFound, Conflict, PayloadTooLarge, ValidationFailed),
    ),
    tags(
        (name = "scenarios", description = "Scenario versions"),
        (name = "sessions", description = "Where sessions are; the just-in-time reconcile"),
        (name = "plans", description = "Migration plans: generate, review, tune, approve, reject"),
        (name = "deployments", description = "Deploy a plan and follow its marking"),
        (name = "meta", description = "The API's own description and health"),
    )
)]
struct ApiDoc;

/// The document as JSON, with what the annotations cannot express added.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
        // Serialising a derived document cannot fail; say so loudly if it does.
        json!({"openapi": "3.1.0", "info": {"title": format!("unavailable: {e}"), "version": ""}})
    });
    add_tenant_header(&mut doc);
    add_returned_session_fields(&mut doc);
    add_plan_paging_token(&mut doc);
    add_examples(&mut doc);
    add_links(&mut doc);
    doc
}

/// The document as pretty-printed JSON text.
pub fn document_text() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_default()
}

fn operations_mut(doc: &mut Value) -> Vec<(String, String, &mut Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, operation) in item.iter_mut() {
                    out.push((path.clone(), method.clone(), operation));
                }
            }
        }
    }
    out
}

/// `SessionInput` accepts the representation `GET /sessions/{id}` returns: its
/// server-set fields are accepted and ignored. They are parsed as "anything"
/// (never serialised back), which the derive leaves out of the schema.
fn add_returned_session_fields(doc: &mut Value) {
    let Some(properties) = schema_properties_mut(doc, "SessionInput") else {
        return;
    };
    for field in [
        "pending_migration",
        "pinned_version",
        "updated_at",
        "revision",
    ] {
        properties.insert(
            field.to_string(),
            json!({"description": "Set by the server (as GET returns it): accepted and ignored."}),
        );
    }
}

/// The `properties` of the component schema `name`, to add what the derive
/// cannot express.
fn schema_properties_mut<'a>(
    doc: &'a mut Value,
    name: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    doc.pointer_mut(&format!("/components/schemas/{name}/properties"))
        .and_then(Value::as_object_mut)
}

/// The plan routes answer with [`crate::services::plans::PlanResponse`]: the
/// plan plus, when it was too large to return whole, the token of its next
/// anchors. The token is listed in the `MigrationPlan` schema, where clients
/// have always found it, rather than in a second schema for the same object.
fn add_plan_paging_token(doc: &mut Value) {
    let Some(properties) = schema_properties_mut(doc, "MigrationPlan") else {
        return;
    };
    properties.insert(
        "anchors_next_token".to_string(),
        json!({
            "description": "Present when the plan was too large to return whole: the anchors above are\nthe first page, `GET /migration-plans/{id}/anchors` returns the rest.",
            "type": ["string", "null"]
        }),
    );
}

fn add_tenant_header(doc: &mut Value) {
    for (path, _, operation) in operations_mut(doc) {
        if TENANTLESS_PATHS.contains(&path.as_str()) {
            continue;
        }
        let header = json!({
            "name": "X-Tenant-ID",
            "in": "header",
            "required": true,
            "description": "The caller's tenant (a UUID in its canonical hyphenated form). On AWS it must be one of the caller's tenants (IAM: its binding in IamTenantBindings; JWT: the tenant claim), else 403.",
            "schema": {"type": "string", "format": "uuid"},
            "example": "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c"
        });
        match operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        {
            Some(params) => params.insert(0, header),
            None => operation["parameters"] = json!([header]),
        }
        let responses = &mut operation["responses"];
        responses["422"] = json!({"$ref": "#/components/responses/ValidationFailed"});
        responses["403"] = json!({
            "description": "X-Tenant-ID does not match the tenant the authorizer vouched for (AWS with the JWT authorizer)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}
        });
        responses["503"] = json!({
            "description": "The store throttled or the server is at capacity; retry after the Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}
        });
    }
}

const README_SCENARIO: &str = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
const STEP_A: &str = "00000000-0000-4000-8000-00000000000a";
const STEP_B: &str = "00000000-0000-4000-8000-00000000000b";
const STEP_C: &str = "00000000-0000-4000-8000-00000000000c";
const STEP_D: &str = "00000000-0000-4000-8000-00000000000d";

/// Version 1 of the README walkthrough: Welcome → Collect email → Done.
pub fn example_scenario_v1() -> Value {
    json!({
        "name": "Support flow", "version": 1, "entry_step_id": STEP_A,
        "steps": [
            {"id": STEP_A, "name": "Welcome", "transitions": [{"to_step_id": STEP_B}]},
            {"id": STEP_B, "name": "Collect email", "collects_profile_fields": ["email"],
             "transitions": [{"to_step_id": STEP_C}]},
            {"id": STEP_C, "name": "Done", "is_terminal": true}
        ]
    })
}

/// Version 2 of the walkthrough: an age check before "Collect email".
pub fn example_scenario_v2() -> Value {
    json!({
        "name": "Support flow", "version": 2, "entry_step_id": STEP_A,
        "steps": [
            {"id": STEP_A, "name": "Welcome", "transitions": [{"to_step_id": STEP_D}]},
            {"id": STEP_D, "name": "Check age", "collects_profile_fields": ["age"],
             "transitions": [{"to_step_id": STEP_B}]},
            {"id": STEP_B, "name": "Collect email", "collects_profile_fields": ["email"],
             "transitions": [{"to_step_id": STEP_C}]},
            {"id": STEP_C, "name": "Done", "is_terminal": true}
        ]
    })
}

fn add_examples(doc: &mut Value) {
    let bodies: [(&str, &str, Value); 6] = [
        ("/scenarios/{scenario_id}", "put", example_scenario_v1()),
        (
            "/sessions/{session_id}",
            "put",
            json!({
                "channel": "whatsapp", "active_scenario_id": README_SCENARIO,
                "active_scenario_version": 1, "active_step_id": STEP_B,
                "step_history": [], "variables": {}
            }),
        ),
        (
            "/scenarios/{scenario_id}/migration-plan",
            "post",
            json!({"created_by": "ops@example.com", "new_scenario": example_scenario_v2()}),
        ),
        (
            "/migration-plans/{plan_id}/approve",
            "post",
            json!({"approved_by": "lead"}),
        ),
        (
            "/migration-plans/{plan_id}/reject",
            "post",
            json!({"rejected_by": "lead", "reason": "ask the age later"}),
        ),
        (
            "/sessions/{session_id}/reconcile",
            "post",
            json!({"known_fields": {"age": 34}}),
        ),
    ];
    for (path, method, example) in bodies {
        let pointer = format!(
            "/paths/{}/{method}/requestBody/content/application~1json",
            path.replace('~', "~0").replace('/', "~1")
        );
        if let Some(content) = doc.pointer_mut(&pointer) {
            content["example"] = example;
        }
    }
    let path_examples = [
        ("scenario_id", README_SCENARIO),
        ("session_id", "wa-42"),
        ("version", "1"),
    ];
    for (_, _, operation) in operations_mut(doc) {
        let Some(params) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for param in params {
            let name = param["name"].as_str().unwrap_or("").to_string();
            if let Some((_, example)) = path_examples.iter().find(|(n, _)| *n == name)
                && param["in"] == "path"
            {
                param["example"] = if name == "version" {
                    json!(1)
                } else {
                    json!(example)
                };
            }
        }
    }
}

/// OpenAPI links: from a created scenario to its plan, from a plan to everything
/// done with it, from a deploy to its status, from a session write to the
/// session and its reconcile.
fn add_links(doc: &mut Value) {
    let plan_links = |from: &str| {
        let id = format!("$response.body#/{from}");
        json!({
            "GetPlan": {"operationId": "get_plan", "parameters": {"plan_id": id}},
            "GetSummary": {"operationId": "get_summary", "parameters": {"plan_id": id}},
            "GetAnchors": {"operationId": "get_anchors", "parameters": {"plan_id": id}},
            "GetEvents": {"operationId": "get_events", "parameters": {"plan_id": id}},
            "PutPolicies": {"operationId": "put_policies", "parameters": {"plan_id": id}},
            "Approve": {"operationId": "approve_plan", "parameters": {"plan_id": id},
                        "requestBody": {"approved_by": "lead"}},
            "Reject": {"operationId": "reject_plan", "parameters": {"plan_id": id}},
            "Deploy": {"operationId": "deploy_plan", "parameters": {"plan_id": id}},
            "DeploymentStatus": {"operationId": "deployment_status", "parameters": {"plan_id": id}}
        })
    };
    let links: [(&str, &str, &[&str], Value); 7] = [
        (
            "/scenarios/{scenario_id}",
            "put",
            &["201"],
            json!({
                "GetScenario": {"operationId": "get_scenario",
                                "parameters": {"scenario_id": "$response.body#/id"}},
                "GetScenarioVersion": {"operationId": "get_scenario_version",
                                       "parameters": {"scenario_id": "$response.body#/id",
                                                      "version": "$response.body#/version"}},
                "GeneratePlan": {"operationId": "create_plan",
                                 "parameters": {"scenario_id": "$response.body#/id"}},
                "ListPlans": {"operationId": "list_plans",
                              "parameters": {"scenario_id": "$response.body#/id"}}
            }),
        ),
        (
            "/scenarios/{scenario_id}/migration-plan",
            "post",
            &["201"],
            plan_links("id"),
        ),
        (
            "/migration-plans/{plan_id}",
            "get",
            &["200"],
            plan_links("id"),
        ),
        (
            "/migration-plans/{plan_id}/approve",
            "post",
            &["200"],
            json!({
                "Deploy": {"operationId": "deploy_plan", "parameters": {"plan_id": "$response.body#/id"}},
                "GetPlan": {"operationId": "get_plan", "parameters": {"plan_id": "$response.body#/id"}}
            }),
        ),
        (
            "/migration-plans/{plan_id}/policies",
            "put",
            &["200"],
            json!({
                "Approve": {"operationId": "approve_plan", "parameters": {"plan_id": "$response.body#/id"}},
                "GetSummary": {"operationId": "get_summary", "parameters": {"plan_id": "$response.body#/id"}}
            }),
        ),
        (
            "/migration-plans/{plan_id}/deploy",
            "post",
            &["200", "202"],
            json!({
                "DeploymentStatus": {"operationId": "deployment_status",
                                     "parameters": {"plan_id": "$response.body#/plan_id"}},
                "GetEvents": {"operationId": "get_events",
                              "parameters": {"plan_id": "$response.body#/plan_id"}}
            }),
        ),
        (
            "/sessions/{session_id}",
            "put",
            &["200", "201"],
            json!({
                "GetSession": {"operationId": "get_session",
                               "parameters": {"session_id": "$response.body#/session_id"}},
                "Reconcile": {"operationId": "reconcile_session",
                              "parameters": {"session_id": "$response.body#/session_id"}}
            }),
        ),
    ];
    for (path, method, statuses, links) in links {
        for status in statuses {
            let pointer = format!(
                "/paths/{}/{method}/responses/{status}",
                path.replace('~', "~0").replace('/', "~1")
            );
            if let Some(response) = doc.pointer_mut(&pointer) {
                response["links"] = links.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_tenant_route_taking_the_header() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 16, "{}", paths.len());
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let has_tenant = operation["parameters"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["name"] == "X-Tenant-ID"));
                assert_eq!(
                    has_tenant,
                    !TENANTLESS_PATHS.contains(&path.as_str()),
                    "{method} {path}"
                );
                assert!(
                    operation["operationId"].is_string(),
                    "{method} {path} has no operationId"
                );
            }
        }
    }

    #[test]
    fn a_session_sent_back_as_returned_is_valid_input() {
        let doc = document();
        let properties = &doc["components"]["schemas"]["SessionInput"]["properties"];
        let returned = &doc["components"]["schemas"]["Session"]["properties"];
        for field in returned.as_object().unwrap().keys() {
            assert!(properties.get(field).is_some(), "{field}");
        }
    }

    #[test]
    fn every_link_names_an_operation_of_the_document() {
        let doc = document();
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                ids.push(operation["operationId"].as_str().unwrap().to_string());
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for response in operation["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flatten() {
                        let target = link.1["operationId"].as_str().unwrap();
                        assert!(ids.iter().any(|id| id == target), "{target}");
                        links += 1;
                    }
                }
            }
        }
        assert!(links >= 20, "{links}");
    }

    #[test]
    fn the_walkthrough_examples_are_valid_requests() {
        use crate::services::plans::GenerateMigrationPlanRequest;
        let v1: planning::ScenarioInput = serde_json::from_value(example_scenario_v1()).unwrap();
        assert!(planning::validate::validate_scenario(&v1).is_ok());
        let doc = document();
        let plan_body = doc
            .pointer("/paths/~1scenarios~1{scenario_id}~1migration-plan/post/requestBody/content/application~1json/example")
            .cloned()
            .unwrap();
        let request: GenerateMigrationPlanRequest = serde_json::from_value(plan_body).unwrap();
        assert!(planning::validate::validate_scenario(&request.new_scenario).is_ok());
    }

    #[test]
    fn audit_event_schema_matches_the_store_type() {
        let event = store::AuditEvent {
            event_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            plan_id: uuid::Uuid::nil(),
            session_id: "s".into(),
            scenario_id: uuid::Uuid::nil(),
            from_version: 1,
            to_version: 2,
            migration_scenario: None,
            action: planning::ReconciliationAction::Continue,
            step_before: uuid::Uuid::nil(),
            step_after: uuid::Uuid::nil(),
            fields_filled: Default::default(),
            fields_asked: Vec::new(),
            blocked_by_checkpoint: false,
            at: chrono::Utc::now(),
        };
        let sent: Vec<String> = serde_json::to_value(&event)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let doc = document();
        let documented: Vec<String> = doc["components"]["schemas"]["AuditEvent"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut sent_sorted = sent.clone();
        sent_sorted.sort();
        let mut documented_sorted = documented.clone();
        documented_sorted.sort();
        assert_eq!(sent_sorted, documented_sorted);
    }
}
