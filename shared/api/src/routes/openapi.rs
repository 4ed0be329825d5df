//! The OpenAPI 3.1 document of the API, generated from the code: the schemas are
//! derived from the request and response types (`utoipa::ToSchema`), the
//! operations and their request examples (the README walkthrough) from the
//! `#[utoipa::path]` annotations on the handlers in [`crate::routes`]. Served at
//! `GET /openapi.json` (no tenant) and printed by `migrations openapi`.
//!
//! What the annotations cannot say is added by the `utoipa::Modify` steps the
//! derive registers, each on the typed document: [`TenantRoutes`] (the
//! `X-Tenant-ID` header and the answers every tenant route can give: 422 for a
//! missing or malformed header, 403 for a header that contradicts the
//! authorizer's tenant on AWS, 503 when the store throttles), the server-set
//! fields `SessionInput` accepts, the plan's paging token, the examples of the
//! path parameters, and the links of the plan lifecycle (create a scenario →
//! plan it → summary, policies, approve → deploy → status) that clients and
//! contract fuzzers follow.
//!
//! `GET /migration-plans/{plan_id}/diagram` is described on its handler in the
//! console crate, which depends on this one: [`document`] is this crate's part,
//! [`document_with`] merges the console's (`console::openapi()`, which registers
//! [`TenantRoutes`] too). The crates that have both assemble the whole document —
//! the scenarios Lambda and `migrations serve` serve it
//! (`routes::scenarios_router_with`, `routes::app_with`), `migrations openapi`
//! prints it — so no route is described twice.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{
    Content, ContentBuilder, HeaderBuilder, KnownFormat, Object, ObjectBuilder, OpenApi, Ref,
    RefOr, Required, ResponseBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{Modify, ToResponse, ToSchema};

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

#[derive(utoipa::OpenApi)]
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
        crate::routes::report_outcome,
        crate::routes::create_plan,
        crate::routes::list_plans,
        crate::routes::get_plan,
        crate::routes::get_summary,
        crate::routes::get_forecast,
        crate::routes::get_anchors,
        crate::routes::get_events,
        crate::routes::put_policies,
        crate::routes::approve_plan,
        crate::routes::reject_plan,
        crate::routes::deploy_plan,
        crate::routes::pause_plan,
        crate::routes::resume_plan,
        crate::routes::withdraw_plan,
        crate::routes::deployment_status,
        crate::routes::openapi_json,
        crate::routes::health,
    ),
    components(
        schemas(ErrorMessage, HttpValidationError, Health, crate::services::reconcile::AuditEventSchema),
        responses(NotFound, Conflict, PayloadTooLarge, ValidationFailed),
    ),
    modifiers(&TenantRoutes, &ReturnedSessionFields, &PlanPagingToken, &PathExamples, &LifecycleLinks),
    tags(
        (name = "scenarios", description = "Scenario versions"),
        (name = "sessions", description = "Where sessions are; the just-in-time reconcile"),
        (name = "plans", description = "Migration plans: generate, review, tune, approve, reject"),
        (name = "deployments", description = "Deploy a plan and follow its marking"),
        (name = "meta", description = "The API's own description and health"),
    )
)]
struct ApiDoc;

/// This crate's part of the document: every route but the console's diagram route.
pub fn document() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// The whole document: this crate's part and `parts`, the routes described in
/// crates that depend on this one (`console::openapi()`). `parts` brings its own
/// operations, schemas and responses; what this crate already has is kept.
pub fn document_with(parts: OpenApi) -> OpenApi {
    document().merge_from(parts)
}

/// A document as served and printed: pretty JSON, through `serde_json::Value`
/// (its keys sorted).
pub fn document_text(document: &OpenApi) -> String {
    let value = serde_json::to_value(document).unwrap_or_else(|e| {
        // Serialising a derived document cannot fail; say so loudly if it does.
        json!({"openapi": "3.1.0", "info": {"title": format!("unavailable: {e}"), "version": ""}})
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The operations of a path.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The component schema `name`, an object.
fn schema_object_mut<'a>(openapi: &'a mut OpenApi, name: &str) -> Option<&'a mut Object> {
    match openapi.components.as_mut()?.schemas.get_mut(name)? {
        RefOr::T(Schema::Object(object)) => Some(object),
        _ => None,
    }
}

/// `{"detail": …}` as JSON.
fn error_message() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorMessage")))
        .build()
}

/// Every route outside [`TENANTLESS_PATHS`] takes `X-Tenant-ID` (its first
/// parameter) and can answer 422 (the header missing or malformed), 403 (the
/// header contradicts the authorizer's tenant) and 503 (throttled, or at
/// capacity). Registered by every description of tenant routes: this crate's
/// and the console's.
pub struct TenantRoutes;

impl Modify for TenantRoutes {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if TENANTLESS_PATHS.contains(&path.as_str()) {
                continue;
            }
            for operation in operations_mut(item) {
                let header = ParameterBuilder::new()
                    .name("X-Tenant-ID")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some("The caller's tenant (a UUID in its canonical hyphenated form). On AWS it must be one of the caller's tenants (IAM: its binding in IamTenantBindings; JWT: the tenant claim), else 403."))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                    ))
                    .example(Some(json!("6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c")))
                    .build();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .insert(0, header);
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "422".to_string(),
                    Ref::from_response_name("ValidationFailed").into(),
                );
                responses.insert(
                    "403".to_string(),
                    ResponseBuilder::new()
                        .description("X-Tenant-ID does not match the tenant the authorizer vouched for (AWS with the JWT authorizer)")
                        .content("application/json", error_message())
                        .into(),
                );
                responses.insert(
                    "503".to_string(),
                    ResponseBuilder::new()
                        .description("The store throttled or the server is at capacity; retry after the Retry-After seconds")
                        .header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(Object::with_type(Type::Integer))
                                .description(Some("seconds"))
                                .build(),
                        )
                        .content("application/json", error_message())
                        .into(),
                );
            }
        }
    }
}

/// `SessionInput` accepts the representation `GET /sessions/{id}` returns: its
/// server-set fields are accepted and ignored. They are parsed as "anything"
/// (never serialised back), which the derive leaves out of the schema.
struct ReturnedSessionFields;

impl Modify for ReturnedSessionFields {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(session) = schema_object_mut(openapi, "SessionInput") else {
            return;
        };
        for field in [
            "pending_migration",
            "pinned_version",
            "updated_at",
            "revision",
        ] {
            session.properties.insert(
                field.to_string(),
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .description(Some(
                        "Set by the server (as GET returns it): accepted and ignored.",
                    ))
                    .into(),
            );
        }
    }
}

/// The plan routes answer with [`crate::services::plans::PlanResponse`]: the
/// plan plus, when it was too large to return whole, the token of its next
/// anchors. The token is listed in the `MigrationPlan` schema, where clients
/// have always found it, rather than in a second schema for the same object.
struct PlanPagingToken;

impl Modify for PlanPagingToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(plan) = schema_object_mut(openapi, "MigrationPlan") else {
            return;
        };
        plan.properties.insert(
            "anchors_next_token".to_string(),
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("Present when the plan was too large to return whole: the anchors above are\nthe first page, `GET /migration-plans/{id}/anchors` returns the rest."))
                .into(),
        );
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

/// The walkthrough's session: at "Collect email" of version 1.
pub fn example_session() -> Value {
    json!({
        "channel": "whatsapp", "active_scenario_id": README_SCENARIO,
        "active_scenario_version": 1, "active_step_id": STEP_B,
        "step_history": [], "variables": {}
    })
}

/// The walkthrough's plan request: from version 1 to version 2.
pub fn example_plan_request() -> Value {
    json!({"created_by": "ops@example.com", "new_scenario": example_scenario_v2()})
}

/// The walkthrough's values of the path parameters, on every operation that
/// has them.
struct PathExamples;

impl Modify for PathExamples {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                for param in operation.parameters.iter_mut().flatten() {
                    if param.parameter_in != ParameterIn::Path {
                        continue;
                    }
                    let example = match param.name.as_str() {
                        "scenario_id" => json!(README_SCENARIO),
                        "session_id" => json!("wa-42"),
                        "version" => json!(1),
                        _ => continue,
                    };
                    // The example of a parameter is set through its builder only.
                    *param = ParameterBuilder::from(std::mem::take(param))
                        .example(Some(example))
                        .build();
                }
            }
        }
    }
}

/// A link to `operation_id`, its parameters taken from fields of the response
/// body. utoipa 5 writes `Link`'s own `operation_id` and `request_body` fields
/// under those snake-case names, which OpenAPI does not know (utoipa 6 renames
/// them): the link carries `operationId` (and `requestBody`, [`with_body`]) among
/// its extensions, which are written as they are named.
fn link(operation_id: &str, parameters: &[(&str, &str)]) -> Link {
    parameters
        .iter()
        .fold(LinkBuilder::new(), |link, (name, field)| {
            link.parameter(*name, format!("$response.body#/{field}"))
        })
        .extensions(Some(Extensions::from_iter([("operationId", operation_id)])))
        .build()
}

/// `link` with a request body (see [`link`]).
fn with_body(mut link: Link, body: Value) -> Link {
    link.extensions
        .get_or_insert_with(Extensions::default)
        .insert("requestBody".to_string(), body);
    link
}

/// OpenAPI links: from a created scenario to its plan, from a plan to everything
/// done with it, from a deploy to its status, from a session write to the
/// session and its reconcile.
struct LifecycleLinks;

impl Modify for LifecycleLinks {
    fn modify(&self, openapi: &mut OpenApi) {
        let scenario = |operation_id| link(operation_id, &[("scenario_id", "id")]);
        let plan = |operation_id| link(operation_id, &[("plan_id", "id")]);
        let deployment = |operation_id| link(operation_id, &[("plan_id", "plan_id")]);
        let session = |operation_id| link(operation_id, &[("session_id", "session_id")]);
        let version = [("scenario_id", "id"), ("version", "version")];
        let from_plan = [
            ("GetPlan", plan("get_plan")),
            ("GetSummary", plan("get_summary")),
            ("GetForecast", plan("get_forecast")),
            ("GetAnchors", plan("get_anchors")),
            ("GetEvents", plan("get_events")),
            ("PutPolicies", plan("put_policies")),
            (
                "Approve",
                with_body(plan("approve_plan"), json!({"approved_by": "lead"})),
            ),
            ("Reject", plan("reject_plan")),
            ("Deploy", plan("deploy_plan")),
            ("DeploymentStatus", plan("deployment_status")),
        ];
        let mut links = |operation_id, statuses: &[&str], links: &[(&str, Link)]| {
            set_links(openapi, operation_id, statuses, links)
        };
        links(
            "put_scenario",
            &["201"],
            &[
                ("GetScenario", scenario("get_scenario")),
                ("GetScenarioVersion", link("get_scenario_version", &version)),
                ("GeneratePlan", scenario("create_plan")),
                ("ListPlans", scenario("list_plans")),
            ],
        );
        links("create_plan", &["201"], &from_plan);
        links("get_plan", &["200"], &from_plan);
        links(
            "approve_plan",
            &["200"],
            &[
                ("Deploy", plan("deploy_plan")),
                ("GetPlan", plan("get_plan")),
            ],
        );
        links(
            "put_policies",
            &["200"],
            &[
                ("Approve", plan("approve_plan")),
                ("GetSummary", plan("get_summary")),
                ("GetForecast", plan("get_forecast")),
            ],
        );
        links(
            "deploy_plan",
            &["200", "202"],
            &[
                ("DeploymentStatus", deployment("deployment_status")),
                ("GetEvents", deployment("get_events")),
                ("Pause", deployment("pause_plan")),
            ],
        );
        links(
            "pause_plan",
            &["200"],
            &[
                ("Resume", deployment("resume_plan")),
                ("Withdraw", deployment("withdraw_plan")),
                ("DeploymentStatus", deployment("deployment_status")),
            ],
        );
        links(
            "put_session",
            &["200", "201"],
            &[
                ("GetSession", session("get_session")),
                ("Reconcile", session("reconcile_session")),
            ],
        );
    }
}

/// The links of the answers `statuses` of the operation `operation_id`.
fn set_links(openapi: &mut OpenApi, operation_id: &str, statuses: &[&str], links: &[(&str, Link)]) {
    for item in openapi.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            if operation.operation_id.as_deref() != Some(operation_id) {
                continue;
            }
            for status in statuses {
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
                    response.links = links
                        .iter()
                        .map(|(name, link)| (name.to_string(), RefOr::T(link.clone())))
                        .collect();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This crate's part of the document, as JSON (as clients read it).
    fn document() -> Value {
        serde_json::to_value(super::document()).unwrap()
    }

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
