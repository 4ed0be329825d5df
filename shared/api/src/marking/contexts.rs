//! The deploying plans a worker process serves, cached with their V1 step names
//! and the pages read ahead for their chains.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use planning::{MigrationPlan, ScenarioInput};
use store::{SessionPage, Store};
use uuid::Uuid;

use super::error::{MarkingError, MarkingResult};

/// Plans a process keeps at most; a worker mostly serves a handful at a time.
const PLAN_CONTEXTS: usize = 64;
/// Pages read ahead that a process keeps per plan (each at most one page).
const READ_AHEAD_PAGES: usize = 4;
/// A page read ahead is used only this soon after it was read: the next
/// message of a chain normally arrives within milliseconds, and an older read
/// is better done again.
const READ_AHEAD_MAX_AGE: Duration = Duration::from_secs(5);

pub(crate) fn step_names_of(v1: &ScenarioInput) -> BTreeMap<Uuid, String> {
    v1.steps.iter().map(|s| (s.id, s.name.clone())).collect()
}

/// Deploying plans with their V1 step names, kept per process (like the SDK
/// clients) so that a page costs no plan or scenario reads: both are immutable
/// once a plan deploys (policies freeze at approval, V1 is archived). A cached
/// status may be stale; that is harmless, because marking and recording are
/// conditional, and it is refreshed whenever a page turns out to be recorded already.
pub struct PlanContexts {
    entries: quick_cache::sync::Cache<(Uuid, Uuid), Arc<PreparedPlan>>,
}

impl Default for PlanContexts {
    fn default() -> Self {
        PlanContexts {
            entries: quick_cache::sync::Cache::new(PLAN_CONTEXTS),
        }
    }
}

pub(crate) struct PreparedPlan {
    pub(crate) plan: MigrationPlan,
    pub(crate) step_names: Arc<BTreeMap<Uuid, String>>,
    /// Pages read ahead while the page before them was being marked, by page id.
    read_ahead: Mutex<Vec<ReadAhead>>,
}

struct ReadAhead {
    page_id: String,
    read_at: Instant,
    page: SessionPage,
}

impl PreparedPlan {
    pub(crate) fn keep_read_ahead(&self, page_id: String, page: SessionPage) {
        if let Ok(mut pages) = self.read_ahead.lock() {
            pages.retain(|p| p.read_at.elapsed() < READ_AHEAD_MAX_AGE);
            if pages.len() >= READ_AHEAD_PAGES {
                pages.remove(0);
            }
            pages.push(ReadAhead {
                page_id,
                read_at: Instant::now(),
                page,
            });
        }
    }

    pub(crate) fn take_read_ahead(&self, page_id: &str) -> Option<SessionPage> {
        let mut pages = self.read_ahead.lock().ok()?;
        let index = pages.iter().position(|p| p.page_id == page_id)?;
        let found = pages.remove(index);
        (found.read_at.elapsed() < READ_AHEAD_MAX_AGE).then_some(found.page)
    }
}

impl PlanContexts {
    pub(crate) fn forget(&self, key: (Uuid, Uuid)) {
        self.entries.remove(&key);
    }

    /// The deploying plan of a message, from the cache or the store. A plan
    /// that is gone or no longer deploying is an error the worker drops.
    pub(crate) async fn deploying(
        &self,
        store: &dyn Store,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> MarkingResult<Arc<PreparedPlan>> {
        if let Some(found) = self.entries.get(&(tenant, plan_id)) {
            return Ok(found);
        }
        let plan = store
            .get_plan(tenant, plan_id)
            .await?
            .ok_or(MarkingError::PlanGone { plan_id })?;
        if !plan.status.walks_chains() {
            return Err(MarkingError::PlanNotDeploying {
                plan_id,
                status: plan.status,
            });
        }
        let v1 = store
            .get_scenario_version(plan.tenant_id, plan.scenario_id, plan.from_version)
            .await?
            .ok_or(MarkingError::FromVersionMissing {
                plan_id,
                version: plan.from_version,
            })?
            .definition();
        let prepared = Arc::new(PreparedPlan {
            step_names: Arc::new(step_names_of(&v1)),
            plan,
            read_ahead: Mutex::new(Vec::new()),
        });
        self.entries.insert((tenant, plan_id), prepared.clone());
        Ok(prepared)
    }
}
