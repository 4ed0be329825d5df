//! Typed configuration, read once from the environment at cold start.

use std::env;

/// Every knob of the service. Defaults suit local runs; the SAM template sets them on AWS.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Plans, scenario versions, ledger and audit events (`MIGRATIONS_TABLE`).
    pub main_table: String,
    /// Sessions, shared with the conversation runtime (`SESSIONS_TABLE`).
    pub sessions_table: String,
    /// The marking queue (`MARKING_QUEUE_URL`); absent means no fan-out queue is configured.
    pub marking_queue_url: Option<String>,
    /// The EventBridge bus lifecycle events go to (`EVENT_BUS_NAME`, a name or
    /// an ARN); absent means no events are sent.
    pub event_bus_name: Option<String>,
    /// Deployments marking at most this many sessions run inline (`INLINE_MARK_THRESHOLD`).
    pub inline_mark_threshold: u64,
    /// Sessions per marking page / queue message (`MARK_PAGE_SIZE`).
    pub mark_page_size: usize,
    /// Shards of the sessions table's step index (`STEP_INDEX_SHARDS`, 1–256):
    /// the `{shard}` of every `step_key` (a hash of the session id, see
    /// [`store::step_shard`]) and the number of parallel marking chains per step.
    /// Runtimes writing into the table must use the same value; changing it
    /// needs `migrations backfill-step-keys` (docs/operations.md, "Step index shards").
    pub step_index_shards: u32,
    /// Concurrent conditional writes while marking one page (`MARK_CONCURRENCY`).
    pub mark_concurrency: usize,
    /// Milliseconds a queue worker goes on walking a chain in process, page after
    /// page, before it hands the chain's next page to the queue
    /// (`MARK_CHAIN_BUDGET_MS`; 0: one page per message). Counted from the start of
    /// the delivered batch, so keep it well under the worker's timeout. Each hop
    /// through the queue costs a send and a receive (on Lambda up to the event
    /// source mapping's batching window), which a chain of 2,000 pages would pay
    /// 2,000 times; within the budget the next page is already read ahead.
    pub mark_chain_budget_ms: u64,
    /// Marking messages — chains, each walked for `mark_chain_budget_ms` — that one
    /// `migrations serve --queue sqs` worker holds at once (`MARK_WORKER_MESSAGES`).
    /// It receives only as many as it has room for, so the chains of a deployment
    /// spread over the worker processes instead of all landing on the first one
    /// that polls. On Lambda the event source mapping's `BatchSize` (1 in the
    /// template) plays this part.
    pub mark_worker_messages: usize,
    /// Deliveries of a marking message before it counts as failed; match the
    /// queue's redrive `maxReceiveCount` (`MARK_MAX_RECEIVES`).
    pub mark_max_receives: u32,
    /// Concurrent index queries while counting sessions (`COUNT_CONCURRENCY`).
    pub count_concurrency: usize,
    /// Days a pending plan stays valid (`PLAN_TTL_DAYS`).
    pub plan_ttl_days: i64,
    /// Hours after a migration in which the runtime's outcome report counts
    /// against its plan (`OUTCOME_WINDOW_HOURS`).
    pub outcome_window_hours: i64,
    /// Responses above this many bytes page the plan's anchors (`MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// JWT claim that carries the tenant id when an authorizer is configured (`TENANT_CLAIM`).
    pub tenant_claim: String,
    /// On AWS, one cheap request per SDK client during the cold start so the first
    /// API request does not pay for the connection and TLS handshake (`WARM_UP`).
    pub warm_up: bool,
    /// A marking chain that made no progress for this long is resumed by the next
    /// deploy call or sweep (`DEPLOY_LEASE_SECONDS`).
    pub deploy_lease_seconds: u64,
    /// Times the sweep resumes one chain before leaving it to an operator (a page
    /// that fails every time, e.g. in the dead-letter queue) (`DEPLOY_MAX_RESUMPTIONS`).
    pub deploy_max_resumptions: u64,
    /// How often `migrations serve` sweeps deploying plans (`DEPLOY_SWEEP_SECONDS`).
    pub deploy_sweep_seconds: u64,
    /// Plan computations (diffs) at once per process (`PLAN_CONCURRENCY`).
    pub plan_concurrency: usize,
    /// Plans with at most this many counted sessions at their from-version are
    /// forecast exactly, every session decided (`FORECAST_EXACT_LIMIT`).
    pub forecast_exact_limit: u64,
    /// Above the exact limit, sessions decided per anchor or deleted step at
    /// least, read as whole step-index shards (`FORECAST_SAMPLE_PER_STRATUM`).
    pub forecast_sample_per_stratum: u64,
    /// Forecasts computed at once per process (`FORECAST_CONCURRENCY`); the
    /// others wait, as plan computations do.
    pub forecast_concurrency: usize,
    /// Seconds a forecast is served again for the same plan revision
    /// (`FORECAST_CACHE_SECONDS`; 0: always computed).
    pub forecast_cache_seconds: u64,
    /// Days a deployed plan is kept after `deployed_at` (`PLAN_RETENTION_DAYS`).
    pub plan_retention_days: u32,
    /// Days a marking ledger item is kept (`LEDGER_RETENTION_DAYS`).
    pub ledger_retention_days: u32,
    /// Days an audit event is kept (`EVENT_RETENTION_DAYS`).
    pub event_retention_days: u32,
    /// How the Lambdas decide which tenants a caller may act for (`AUTH_MODE`:
    /// `header`, `jwt` or `iam`; unset is `header`, for `cargo lambda watch` — the SAM
    /// template always sets it). See `crate::auth`.
    pub auth_mode: crate::auth::AuthMode,
    /// IAM principal ARN → tenants it may act for, `["*"]` for all
    /// (`IAM_TENANT_BINDINGS`, JSON; used when `AUTH_MODE=iam`).
    pub iam_tenant_bindings: crate::auth::TenantBindings,
}

impl Config {
    /// The store's retention periods.
    pub fn retention(&self) -> store::Retention {
        store::Retention {
            deployed_plan_days: self.plan_retention_days,
            ledger_days: self.ledger_retention_days,
            event_days: self.event_retention_days,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            main_table: "focal-migrations".into(),
            sessions_table: "focal-sessions".into(),
            marking_queue_url: None,
            event_bus_name: None,
            inline_mark_threshold: 1_000,
            mark_page_size: 500,
            step_index_shards: store::DEFAULT_STEP_INDEX_SHARDS,
            mark_concurrency: 16,
            mark_chain_budget_ms: 20_000,
            mark_worker_messages: 4,
            mark_max_receives: 5,
            count_concurrency: 16,
            plan_ttl_days: 30,
            outcome_window_hours: 72,
            max_response_bytes: 5 * 1024 * 1024,
            tenant_claim: "tenant_id".into(),
            warm_up: true,
            deploy_lease_seconds: 60,
            deploy_max_resumptions: 5,
            deploy_sweep_seconds: 30,
            plan_concurrency: 2,
            forecast_exact_limit: 50_000,
            forecast_sample_per_stratum: 1_000,
            forecast_concurrency: 2,
            forecast_cache_seconds: 30,
            plan_retention_days: 400,
            ledger_retention_days: 30,
            event_retention_days: 400,
            auth_mode: crate::auth::AuthMode::Header,
            iam_tenant_bindings: crate::auth::TenantBindings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Config {
    /// Read from the process environment; fails fast with the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        let text = |name: &str, default: String| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(default)
        };
        Ok(Config {
            main_table: text("MIGRATIONS_TABLE", defaults.main_table),
            sessions_table: text("SESSIONS_TABLE", defaults.sessions_table),
            marking_queue_url: lookup("MARKING_QUEUE_URL").filter(|v| !v.trim().is_empty()),
            event_bus_name: lookup("EVENT_BUS_NAME").filter(|v| !v.trim().is_empty()),
            inline_mark_threshold: number(
                &lookup,
                "INLINE_MARK_THRESHOLD",
                defaults.inline_mark_threshold,
                0,
            )?,
            mark_page_size: number(&lookup, "MARK_PAGE_SIZE", defaults.mark_page_size, 1)?,
            step_index_shards: match number(
                &lookup,
                "STEP_INDEX_SHARDS",
                defaults.step_index_shards,
                1,
            )? {
                n if n > store::MAX_STEP_INDEX_SHARDS => {
                    return Err(ConfigError {
                        name: "STEP_INDEX_SHARDS",
                        value: n.to_string(),
                        reason: "above the maximum (256)",
                    });
                }
                n => n,
            },
            mark_concurrency: number(&lookup, "MARK_CONCURRENCY", defaults.mark_concurrency, 1)?,
            mark_chain_budget_ms: number(
                &lookup,
                "MARK_CHAIN_BUDGET_MS",
                defaults.mark_chain_budget_ms,
                0,
            )?,
            mark_worker_messages: number(
                &lookup,
                "MARK_WORKER_MESSAGES",
                defaults.mark_worker_messages,
                1,
            )?,
            mark_max_receives: number(&lookup, "MARK_MAX_RECEIVES", defaults.mark_max_receives, 1)?,
            count_concurrency: number(&lookup, "COUNT_CONCURRENCY", defaults.count_concurrency, 1)?,
            plan_ttl_days: number(&lookup, "PLAN_TTL_DAYS", defaults.plan_ttl_days, 1)?,
            outcome_window_hours: number(
                &lookup,
                "OUTCOME_WINDOW_HOURS",
                defaults.outcome_window_hours,
                1,
            )?,
            max_response_bytes: number(
                &lookup,
                "MAX_RESPONSE_BYTES",
                defaults.max_response_bytes,
                1024,
            )?,
            tenant_claim: text("TENANT_CLAIM", defaults.tenant_claim),
            warm_up: flag(&lookup, "WARM_UP", defaults.warm_up)?,
            deploy_lease_seconds: number(
                &lookup,
                "DEPLOY_LEASE_SECONDS",
                defaults.deploy_lease_seconds,
                0,
            )?,
            deploy_max_resumptions: number(
                &lookup,
                "DEPLOY_MAX_RESUMPTIONS",
                defaults.deploy_max_resumptions,
                0,
            )?,
            deploy_sweep_seconds: number(
                &lookup,
                "DEPLOY_SWEEP_SECONDS",
                defaults.deploy_sweep_seconds,
                1,
            )?,
            plan_concurrency: number(&lookup, "PLAN_CONCURRENCY", defaults.plan_concurrency, 1)?,
            forecast_exact_limit: number(
                &lookup,
                "FORECAST_EXACT_LIMIT",
                defaults.forecast_exact_limit,
                0,
            )?,
            forecast_sample_per_stratum: number(
                &lookup,
                "FORECAST_SAMPLE_PER_STRATUM",
                defaults.forecast_sample_per_stratum,
                1,
            )?,
            forecast_concurrency: number(
                &lookup,
                "FORECAST_CONCURRENCY",
                defaults.forecast_concurrency,
                1,
            )?,
            forecast_cache_seconds: number(
                &lookup,
                "FORECAST_CACHE_SECONDS",
                defaults.forecast_cache_seconds,
                0,
            )?,
            plan_retention_days: number(
                &lookup,
                "PLAN_RETENTION_DAYS",
                defaults.plan_retention_days,
                1,
            )?,
            ledger_retention_days: number(
                &lookup,
                "LEDGER_RETENTION_DAYS",
                defaults.ledger_retention_days,
                1,
            )?,
            event_retention_days: number(
                &lookup,
                "EVENT_RETENTION_DAYS",
                defaults.event_retention_days,
                1,
            )?,
            auth_mode: match lookup("AUTH_MODE").filter(|v| !v.trim().is_empty()) {
                None => defaults.auth_mode,
                Some(raw) => crate::auth::AuthMode::parse(&raw).ok_or(ConfigError {
                    name: "AUTH_MODE",
                    value: raw,
                    reason: "not header, jwt or iam",
                })?,
            },
            iam_tenant_bindings: match lookup("IAM_TENANT_BINDINGS") {
                None => defaults.iam_tenant_bindings,
                Some(raw) => crate::auth::TenantBindings::from_json(&raw).map_err(|_| ConfigError {
                    name: "IAM_TENANT_BINDINGS",
                    value: raw,
                    reason: "not a JSON object of principal ARN to a list of tenant UUIDs or [\"*\"]",
                })?,
            },
        })
    }
}

fn flag(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError {
                name,
                value: raw,
                reason: "not true or false",
            }),
        },
    }
}

fn number<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Copy,
{
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if v >= min => Ok(v),
            Ok(_) => Err(ConfigError {
                name,
                value: raw,
                reason: "below the minimum",
            }),
            Err(_) => Err(ConfigError {
                name,
                value: raw,
                reason: "not a number",
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_when_unset() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn reads_and_validates_numbers() {
        let env: HashMap<&str, &str> = [("INLINE_MARK_THRESHOLD", "50"), ("MARK_PAGE_SIZE", "0")]
            .into_iter()
            .collect();
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, "MARK_PAGE_SIZE");
        let env: HashMap<&str, &str> = [("INLINE_MARK_THRESHOLD", "50")].into_iter().collect();
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.inline_mark_threshold, 50);
    }

    #[test]
    fn reads_and_validates_the_warm_up_flag() {
        let read = |value: &str| {
            let value = value.to_string();
            Config::from_lookup(|k| (k == "WARM_UP").then(|| value.clone()))
        };
        assert!(read("").unwrap().warm_up);
        assert!(!read("false").unwrap().warm_up);
        assert!(!read(" 0 ").unwrap().warm_up);
        assert!(read("TRUE").unwrap().warm_up);
        assert_eq!(read("maybe").unwrap_err().name, "WARM_UP");
    }

    #[test]
    fn reads_and_bounds_the_step_index_shards() {
        let read = |value: &str| {
            let value = value.to_string();
            Config::from_lookup(|k| (k == "STEP_INDEX_SHARDS").then(|| value.clone()))
        };
        assert_eq!(read("").unwrap().step_index_shards, 8);
        assert_eq!(read("32").unwrap().step_index_shards, 32);
        assert_eq!(read("256").unwrap().step_index_shards, 256);
        assert_eq!(read("0").unwrap_err().name, "STEP_INDEX_SHARDS");
        assert_eq!(read("257").unwrap_err().name, "STEP_INDEX_SHARDS");
    }

    /// Every variable the parser reads, recorded by asking it.
    fn variables_read() -> Vec<String> {
        let names = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|name| {
            names.borrow_mut().push(name.to_string());
            None
        })
        .expect("defaults");
        let mut names = names.into_inner();
        names.sort();
        names.dedup();
        names
    }

    /// The configuration is defined once, here; the documentation's table and
    /// the template are kept in step with it by this test.
    #[test]
    fn every_variable_is_documented_and_the_template_sets_only_known_ones() {
        let read = variables_read();
        assert!(read.len() > 20, "{read:?}");
        let docs = include_str!("../../../docs/configuration.md");
        for name in &read {
            assert!(
                docs.lines()
                    .any(|line| line.starts_with('|') && line.contains(&format!("`{name}`"))),
                "docs/configuration.md has no row for {name}"
            );
        }
        // Every variable the template sets is one the code reads (or the
        // logger's, or the AWS SDK's own).
        let template = include_str!("../../../infra/template.yaml");
        let mut in_variables = false;
        let mut checked = 0;
        for line in template.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("Variables:") {
                in_variables = true;
                continue;
            }
            if !in_variables || trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let Some((key, _)) = trimmed.split_once(':') else {
                in_variables = false;
                continue;
            };
            if !key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                in_variables = false;
                continue;
            }
            assert!(
                read.iter().any(|n| n == key) || key == "RUST_LOG" || key.starts_with("AWS_"),
                "infra/template.yaml sets {key}, which the code never reads"
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} template variables found");
    }

    #[test]
    fn rejects_garbage() {
        let err = Config::from_lookup(|k| (k == "PLAN_TTL_DAYS").then(|| "soon".to_string()))
            .unwrap_err();
        assert_eq!(err.reason, "not a number");
    }
}
