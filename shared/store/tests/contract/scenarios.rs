//! Scenarios: creating the first version conflicts with any existing version,
//! and the current and archived versions read back as written.

use std::sync::Arc;

use store::Store;
use uuid::Uuid;

use super::fixtures::*;

pub async fn scenario_create_conflict(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let v1 = scenario(tenant, sid, 1, 3);
    assert_eq!(s.get_current_scenario(tenant, sid).await.ok(), Some(None));
    s.create_scenario(&v1).await.expect("create");
    assert!(is_conflict(&s.create_scenario(&v1).await));
    let mut other_version = scenario(tenant, sid, 4, 2);
    other_version.name = "again".into();
    assert!(
        is_conflict(&s.create_scenario(&other_version).await),
        "any version of an existing scenario conflicts"
    );
    assert_eq!(
        s.get_current_scenario(tenant, sid).await.expect("get"),
        Some(v1.clone())
    );
    assert_eq!(
        s.get_scenario_version(tenant, sid, 1).await.expect("get"),
        Some(v1)
    );
    assert_eq!(
        s.get_scenario_version(tenant, sid, 2).await.expect("get"),
        None
    );
}
