//! A plan as the HTTP API returns it: whole when it fits the response limit,
//! else its first page of anchors and a token for the rest, and those pages
//! (`GET /migration-plans/{id}/anchors`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use planning::{AnchorMigrationPolicy, AnchorTransformation, MigrationPlan};
use serde::Serialize;
use store::Store;
use uuid::Uuid;

use super::{PageQuery, checked_limit, load};
use crate::config::Config;
use crate::services::error::{ServiceError, ServiceResult};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnchorPage {
    pub anchors: Vec<AnchorTransformation>,
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn encode_offset(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("anchors:{offset}"))
}

fn decode_offset(token: &str) -> ServiceResult<usize> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("anchors:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ServiceError::invalid_listing("next_token", "invalid pagination token", "value_error")
        })
}

/// Bytes `value` takes as JSON, counted as it is written: nothing is buffered
/// (a 10,000-step plan is ~100 MB of JSON).
fn json_len<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Take anchors from `offset` while they fit in `budget` bytes (at least one, so
/// paging always progresses), with their policies.
fn take_anchors(
    all: &[AnchorTransformation],
    all_policies: &BTreeMap<String, AnchorMigrationPolicy>,
    offset: usize,
    max_count: usize,
    budget: usize,
) -> (
    Vec<AnchorTransformation>,
    BTreeMap<String, AnchorMigrationPolicy>,
    Option<usize>,
) {
    let mut anchors = Vec::new();
    let mut policies = BTreeMap::new();
    let mut used = 0usize;
    let mut index = offset;
    while index < all.len() && anchors.len() < max_count {
        let anchor = &all[index];
        let policy = all_policies.get(&anchor.anchor_content_hash);
        let size = json_len(anchor) + policy.map(json_len).unwrap_or(0) + 2;
        if !anchors.is_empty() && used + size > budget {
            break;
        }
        used += size;
        anchors.push(anchor.clone());
        if let Some(p) = policy {
            policies.insert(anchor.anchor_content_hash.clone(), p.clone());
        }
        index += 1;
    }
    let next = (index < all.len()).then_some(index);
    (anchors, policies, next)
}

/// A plan as the HTTP API returns it: the stored plan, whole when it fits the
/// response limit, else with its first page of anchors and the token of the
/// next. The token is paging, not part of the plan, so it lives here and not in
/// the planning model (the OpenAPI document lists it under `MigrationPlan`, see
/// `openapi::PlanPagingToken`).
#[derive(Debug, Serialize)]
pub struct PlanResponse {
    #[serde(flatten)]
    pub plan: MigrationPlan,
    /// Present when the plan was too large to return whole: the anchors above are
    /// the first page, `GET /migration-plans/{id}/anchors` returns the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchors_next_token: Option<String>,
}

/// The plan as returned over HTTP: whole when it fits the response limit, else
/// with its first page of anchors (and their policies) and `anchors_next_token`.
pub(crate) fn fit_for_response(mut plan: MigrationPlan, max_bytes: usize) -> PlanResponse {
    // The skeleton is the plan without its anchors: moved out, not cloned. Anchors
    // are measured one by one until the budget is spent, so a 100 MB plan costs
    // ~5 MB of measuring, not a serialisation of the whole.
    let all = std::mem::take(&mut plan.transformation_map.anchors);
    let all_policies = std::mem::take(&mut plan.anchor_policies);
    let budget = max_bytes.saturating_sub(json_len(&plan) + 256);
    let (anchors, mut policies, next) = take_anchors(&all, &all_policies, 0, usize::MAX, budget);
    if next.is_none() {
        // Everything fits: the plan goes whole.
        plan.transformation_map.anchors = all;
        plan.anchor_policies = all_policies;
        return PlanResponse {
            plan,
            anchors_next_token: None,
        };
    }
    // Edited steps are not paged with the anchors: their policies always come along.
    policies.extend(
        all_policies
            .iter()
            .filter(|(key, _)| plan.transformation_map.edited_by_key(key).is_some())
            .map(|(key, policy)| (key.clone(), policy.clone())),
    );
    plan.transformation_map.anchors = anchors;
    plan.anchor_policies = policies;
    PlanResponse {
        plan,
        anchors_next_token: next.map(encode_offset),
    }
}

pub(crate) async fn anchors_page(
    store: &dyn Store,
    config: &Config,
    tenant: Uuid,
    plan_id: Uuid,
    query: PageQuery,
) -> ServiceResult<AnchorPage> {
    let limit = checked_limit(query.limit, 100, 1000)?;
    let offset = match &query.next_token {
        Some(token) => decode_offset(token)?,
        None => 0,
    };
    let plan = load(store, tenant, plan_id).await?;
    let budget = config.max_response_bytes.saturating_sub(1024);
    let (anchors, anchor_policies, next) = take_anchors(
        &plan.transformation_map.anchors,
        &plan.anchor_policies,
        offset,
        limit,
        budget,
    );
    Ok(AnchorPage {
        anchors,
        anchor_policies,
        next_token: next.map(encode_offset),
    })
}
