//! Every operation of the API the client calls: its `operationId`, method and
//! path template, as the OpenAPI document names them. Each call of
//! [`Client`](crate::Client) goes through one of these constants, and the e2e
//! test `client_contract` fails when this list and the document differ either
//! way, or when a call reaches a route other than its operation's.

/// One operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The document's `operationId`.
    pub id: &'static str,
    pub method: &'static str,
    /// The document's path template (`/sessions/{session_id}`).
    pub path: &'static str,
}

const fn op(id: &'static str, method: &'static str, path: &'static str) -> Operation {
    Operation { id, method, path }
}

pub const HEALTH: Operation = op("health", "GET", "/health");
pub const OPENAPI_JSON: Operation = op("openapi_json", "GET", "/openapi.json");
pub const PUT_SCENARIO: Operation = op("put_scenario", "PUT", "/scenarios/{scenario_id}");
pub const GET_SCENARIO: Operation = op("get_scenario", "GET", "/scenarios/{scenario_id}");
pub const GET_SCENARIO_VERSION: Operation = op(
    "get_scenario_version",
    "GET",
    "/scenarios/{scenario_id}/versions/{version}",
);
pub const PUT_SESSION: Operation = op("put_session", "PUT", "/sessions/{session_id}");
pub const GET_SESSION: Operation = op("get_session", "GET", "/sessions/{session_id}");
pub const RECONCILE_SESSION: Operation = op(
    "reconcile_session",
    "POST",
    "/sessions/{session_id}/reconcile",
);
pub const REPORT_OUTCOME: Operation =
    op("report_outcome", "POST", "/sessions/{session_id}/outcome");
pub const CREATE_PLAN: Operation = op(
    "create_plan",
    "POST",
    "/scenarios/{scenario_id}/migration-plan",
);
pub const LIST_PLANS: Operation = op("list_plans", "GET", "/migration-plans");
pub const GET_PLAN: Operation = op("get_plan", "GET", "/migration-plans/{plan_id}");
pub const GET_SUMMARY: Operation = op("get_summary", "GET", "/migration-plans/{plan_id}/summary");
pub const GET_FORECAST: Operation =
    op("get_forecast", "GET", "/migration-plans/{plan_id}/forecast");
pub const GET_ANCHORS: Operation = op("get_anchors", "GET", "/migration-plans/{plan_id}/anchors");
pub const GET_EVENTS: Operation = op("get_events", "GET", "/migration-plans/{plan_id}/events");
pub const PUT_POLICIES: Operation =
    op("put_policies", "PUT", "/migration-plans/{plan_id}/policies");
pub const APPROVE_PLAN: Operation =
    op("approve_plan", "POST", "/migration-plans/{plan_id}/approve");
pub const REJECT_PLAN: Operation = op("reject_plan", "POST", "/migration-plans/{plan_id}/reject");
pub const DEPLOY_PLAN: Operation = op("deploy_plan", "POST", "/migration-plans/{plan_id}/deploy");
pub const DEPLOYMENT_STATUS: Operation = op(
    "deployment_status",
    "GET",
    "/migration-plans/{plan_id}/deployment-status",
);
pub const PAUSE_PLAN: Operation = op("pause_plan", "POST", "/migration-plans/{plan_id}/pause");
pub const RESUME_PLAN: Operation = op("resume_plan", "POST", "/migration-plans/{plan_id}/resume");
pub const WITHDRAW_PLAN: Operation = op(
    "withdraw_plan",
    "POST",
    "/migration-plans/{plan_id}/withdraw",
);
pub const PLAN_DIAGRAM: Operation = op("plan_diagram", "GET", "/migration-plans/{plan_id}/diagram");

/// All of them.
pub const OPERATIONS: &[Operation] = &[
    HEALTH,
    OPENAPI_JSON,
    PUT_SCENARIO,
    GET_SCENARIO,
    GET_SCENARIO_VERSION,
    PUT_SESSION,
    GET_SESSION,
    RECONCILE_SESSION,
    REPORT_OUTCOME,
    CREATE_PLAN,
    LIST_PLANS,
    GET_PLAN,
    GET_SUMMARY,
    GET_FORECAST,
    GET_ANCHORS,
    GET_EVENTS,
    PUT_POLICIES,
    APPROVE_PLAN,
    REJECT_PLAN,
    DEPLOY_PLAN,
    DEPLOYMENT_STATUS,
    PAUSE_PLAN,
    RESUME_PLAN,
    WITHDRAW_PLAN,
    PLAN_DIAGRAM,
];

impl Operation {
    /// The path with each `{name}` replaced by its value, percent-encoded as a
    /// path segment. Panics on a name the template lacks or a placeholder left
    /// unfilled: both are mistakes in this crate, caught by its tests.
    pub(crate) fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut path = self.path.to_owned();
        for (name, value) in values {
            let placeholder = format!("{{{name}}}");
            assert!(
                path.contains(&placeholder),
                "{} has no {placeholder}",
                self.path
            );
            path = path.replace(&placeholder, &encode_segment(value));
        }
        assert!(!path.contains('{'), "{} left unfilled: {path}", self.id);
        path
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters, so a
/// session id such as `wa:+33 6/12` stays one path segment (and a query
/// value one value).
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_unique_and_fill_their_paths() {
        let ids: std::collections::BTreeSet<_> = OPERATIONS.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), OPERATIONS.len());
        let routes: std::collections::BTreeSet<_> =
            OPERATIONS.iter().map(|o| (o.method, o.path)).collect();
        assert_eq!(routes.len(), OPERATIONS.len());
        assert_eq!(
            GET_SCENARIO_VERSION.fill(&[("scenario_id", "s"), ("version", "3")]),
            "/scenarios/s/versions/3"
        );
    }

    #[test]
    fn path_values_stay_one_segment() {
        assert_eq!(
            GET_SESSION.fill(&[("session_id", "wa:+33 6/12")]),
            "/sessions/wa%3A%2B33%206%2F12"
        );
        assert_eq!(
            GET_SESSION.fill(&[("session_id", "a-b.c_d~e")]),
            "/sessions/a-b.c_d~e"
        );
    }

    #[test]
    #[should_panic(expected = "left unfilled")]
    fn a_missing_value_is_a_bug() {
        GET_SCENARIO_VERSION.fill(&[("scenario_id", "s")]);
    }
}
