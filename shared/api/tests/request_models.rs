//! Property test: arbitrary JSON (and arbitrary bytes) sent as any request body
//! never panics the parser and always ends in a typed answer — the model, or a
//! 422 with located details — never an internal error.

use api::ApiError;
use api::extract::parse_json;
use api::services::plans::{
    ApprovePlanRequest, GenerateMigrationPlanRequest, RejectPlanRequest, UpdatePoliciesRequest,
};
use planning::{ReconcileRequest, ScenarioInput, SessionInput};
use proptest::prelude::*;
use serde_json::Value;

/// JSON values of every shape, nested, with the keys the models use (so that
/// generated bodies get past the first field and reach the deeper checks).
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "name",
        "version",
        "entry_step_id",
        "steps",
        "id",
        "transitions",
        "to_step_id",
        "channel",
        "active_scenario_id",
        "active_scenario_version",
        "active_step_id",
        "variables",
        "known_fields",
        "value",
        "confidence",
        "source",
        "policies",
        "scope_filter",
        "custom_conditions",
        "new_scenario",
        "approved_by",
        "reason",
        "session_id",
        "tenant_id",
        "revision",
        "step_history",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("00000000-0000-4000-8000-000000000001".into())),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(bytes: &[u8]) -> Result<(), String> {
    match parse_json::<T>(bytes) {
        Ok(_) => Ok(()),
        Err(ApiError::Validation(details)) if !details.is_empty() => Ok(()),
        Err(other) => Err(format!("{other:?}")),
    }
}

fn every_model(bytes: &[u8]) -> Result<(), String> {
    typed::<ScenarioInput>(bytes)?;
    typed::<SessionInput>(bytes)?;
    typed::<GenerateMigrationPlanRequest>(bytes)?;
    typed::<UpdatePoliciesRequest>(bytes)?;
    typed::<ApprovePlanRequest>(bytes)?;
    typed::<RejectPlanRequest>(bytes)?;
    typed::<ReconcileRequest>(bytes)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_is_a_model_or_a_422(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(every_model(&bytes), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_are_a_model_or_a_422(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert_eq!(every_model(&bytes), Ok(()));
    }

    #[test]
    fn deep_nesting_is_a_422(depth in 100usize..20_000) {
        let body = format!("{{\"variables\": {{\"a\": {}1{}}}}}", "[".repeat(depth), "]".repeat(depth));
        prop_assert_eq!(every_model(body.as_bytes()), Ok(()));
    }
}
