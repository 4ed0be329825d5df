//! Who may act for which tenant (docs/security.md): the trust model of the deployed API.
//!
//! Every request names its tenant in `X-Tenant-ID`. How far that header is
//! trusted depends on `AUTH_MODE`, which the SAM template always sets:
//!
//! - `iam` (the template's default: no JWT issuer given): API Gateway verifies the
//!   caller's SigV4 signature (`AWS_IAM` route authorization) and passes the
//!   caller's ARN in `requestContext.authorizer.iam.userArn`. The function looks
//!   that principal up in `IAM_TENANT_BINDINGS` — a JSON object from principal ARN
//!   to the tenants it may act for, or `["*"]` for a platform-wide runtime role —
//!   and serves the request only if `X-Tenant-ID` is one of them. An assumed-role
//!   session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) is the role
//!   (`arn:aws:iam::ACCOUNT:role/ROLE`); a role ARN in the bindings may carry its
//!   path (`role/service/ROLE`), which is dropped the same way, since an
//!   assumed-role ARN never shows it.
//! - `jwt` (a JWT issuer and audience given): API Gateway validates the token
//!   (issuer, audience, signature, expiry) and passes its claims; the claim named
//!   by `TENANT_CLAIM` holds the caller's tenant — or several, as a list
//!   (`a,b`, `a b`, `[a b]` as API Gateway renders an array claim, or a JSON
//!   array) — and `X-Tenant-ID` must be one of them. A claim never grants `*`.
//! - `header`: `X-Tenant-ID` is trusted as sent (a JWT tenant claim, if an
//!   authorizer happens to pass one, is still enforced). For `cargo lambda watch`
//!   on a laptop — the default when `AUTH_MODE` is unset — and for the
//!   explicitly unsafe `AllowAnonymousDemoAccess` stack. `migrations serve` does
//!   not use the Lambda adapter and always trusts the header (it listens on
//!   loopback).
//!
//! In `iam` and `jwt` mode nothing falls back to the header: a request without
//! the expected identity, from a principal with no binding, or for a tenant
//! outside its binding is a 403 `{"detail": "..."}`, decided before anything is
//! read, so it never tells whether an object exists. Each decision is logged with
//! the principal (the normalised role or user ARN, or the token's `sub`), the
//! tenant and the route template — never a path, a body or session data.
//!
//! What the functions trust: `requestContext.authorizer` is written by API
//! Gateway after it authenticated the caller. Anyone allowed to invoke a function
//! directly (`lambda:InvokeFunction`) can write any request context, so that
//! permission is as powerful as a `*` binding: grant it to nobody but API Gateway
//! (the template's invoke permissions) and administrators.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use uuid::Uuid;

/// How a Lambda decides which tenants a caller may act for (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Trust `X-Tenant-ID` (local runs, the anonymous demo stack).
    #[default]
    Header,
    /// The JWT authorizer's tenant claim lists the tenants.
    Jwt,
    /// The SigV4-verified IAM principal's bindings list the tenants.
    Iam,
}

impl AuthMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "header" => Some(AuthMode::Header),
            "jwt" => Some(AuthMode::Jwt),
            "iam" => Some(AuthMode::Iam),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Header => "header",
            AuthMode::Jwt => "jwt",
            AuthMode::Iam => "iam",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenants one principal may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `["*"]`: every tenant (the platform's runtime role).
    AnyTenant,
    Tenants(BTreeSet<Uuid>),
}

impl Grant {
    pub fn allows(&self, tenant: Uuid) -> bool {
        match self {
            Grant::AnyTenant => true,
            Grant::Tenants(tenants) => tenants.contains(&tenant),
        }
    }
}

/// `IAM_TENANT_BINDINGS`: normalised principal ARN → the tenants it may act for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantBindings {
    by_principal: BTreeMap<String, Grant>,
}

impl TenantBindings {
    /// Parse `{"arn:aws:iam::123456789012:role/runtime": ["*"],
    /// "arn:aws:iam::123456789012:role/ops-acme": ["<tenant uuid>", ...]}`.
    /// An empty text is no bindings. Tenants are canonical hyphenated UUIDs;
    /// `"*"` stands alone.
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(TenantBindings::default());
        }
        let raw: BTreeMap<String, Vec<String>> = serde_json::from_str(text).map_err(|_| {
            "expected a JSON object of principal ARN to a list of tenant UUIDs or [\"*\"]"
                .to_string()
        })?;
        let mut by_principal: BTreeMap<String, Grant> = BTreeMap::new();
        for (principal, tenants) in raw {
            if !principal.starts_with("arn:") {
                return Err(format!("{principal:?} is not an ARN"));
            }
            let grant = if tenants.iter().any(|t| t == "*") {
                if tenants.len() != 1 {
                    return Err(format!("{principal:?}: \"*\" must stand alone"));
                }
                Grant::AnyTenant
            } else {
                let mut set = BTreeSet::new();
                for tenant in &tenants {
                    let id = canonical_uuid(tenant)
                        .ok_or_else(|| format!("{principal:?}: {tenant:?} is not a tenant UUID"))?;
                    set.insert(id);
                }
                Grant::Tenants(set)
            };
            let key = normalize_principal(&principal);
            let merged = match (by_principal.remove(&key), grant) {
                (None, grant) => grant,
                (Some(Grant::AnyTenant), _) | (_, Grant::AnyTenant) => Grant::AnyTenant,
                (Some(Grant::Tenants(mut a)), Grant::Tenants(b)) => {
                    a.extend(b);
                    Grant::Tenants(a)
                }
            };
            by_principal.insert(key, merged);
        }
        Ok(TenantBindings { by_principal })
    }

    /// The grant of a caller, by its ARN as API Gateway reports it.
    pub fn grant_for(&self, principal_arn: &str) -> Option<&Grant> {
        self.by_principal.get(&normalize_principal(principal_arn))
    }

    pub fn len(&self) -> usize {
        self.by_principal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_principal.is_empty()
    }
}

/// The principal an ARN stands for: an assumed-role session is its role, and a
/// role is named without its path (`arn:aws:sts::1:assumed-role/R/S` and
/// `arn:aws:iam::1:role/path/R` are both `arn:aws:iam::1:role/R`). Any other
/// ARN (users, the account root, federated users) is kept as it is.
pub fn normalize_principal(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, _region, account, resource] = parts[..] else {
        return arn.to_string();
    };
    if prefix != "arn" {
        return arn.to_string();
    }
    let role = match service {
        "sts" => resource
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split('/').next()),
        "iam" => resource
            .strip_prefix("role/")
            .and_then(|rest| rest.rsplit('/').next()),
        _ => None,
    };
    match role {
        Some(role) if !role.is_empty() => format!("arn:{partition}:iam::{account}:role/{role}"),
        _ => arn.to_string(),
    }
}

/// The tenants a JWT tenant claim names: one UUID, or several separated by
/// commas or spaces, optionally in brackets (API Gateway's rendering of an array
/// claim) or as a JSON array. Anything that is not a canonical UUID is ignored,
/// so `*` or `admin` grant nothing.
pub fn tenants_in_claim(claim: &str) -> BTreeSet<Uuid> {
    claim
        .split(|c: char| c == ',' || c == '[' || c == ']' || c == '"' || c.is_whitespace())
        .filter_map(canonical_uuid)
        .collect()
}

/// A UUID in its canonical hyphenated form only (as the `Tenant` extractor takes it).
pub fn canonical_uuid(text: &str) -> Option<Uuid> {
    let text = text.trim();
    (text.len() == 36)
        .then(|| Uuid::parse_str(text).ok())
        .flatten()
}

/// Who API Gateway says is calling, from the request context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No authorizer identity (an unauthenticated route, `cargo lambda watch`).
    Anonymous,
    /// A JWT authorizer's claims: the token's subject and the tenant claim.
    Jwt {
        subject: Option<String>,
        tenant_claim: Option<String>,
    },
    /// A SigV4-verified IAM caller (`requestContext.authorizer.iam.userArn`).
    Iam { arn: String },
}

impl Caller {
    /// The principal for logs: the normalised ARN (never an STS session name) or
    /// the token's `sub`.
    pub fn principal(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Jwt { subject, .. } => {
                format!("jwt:{}", subject.as_deref().unwrap_or("(no sub)"))
            }
            Caller::Iam { arn } => normalize_principal(arn),
        }
    }
}

/// What the Lambda does with a request before the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Header mode without a tenant claim: `X-Tenant-ID` as sent.
    TrustHeader,
    /// The caller may act for this tenant; the handler's `Tenant` is pinned to it.
    Allow { tenant: Uuid },
    /// The caller is known but `X-Tenant-ID` is missing or malformed: the handler
    /// answers its 422, and no tenant the header could name is pinned.
    InvalidHeader,
    /// 403 before anything is read.
    Deny { reason: DenyReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// `jwt`/`iam` mode and the request carries no such identity.
    MissingIdentity,
    /// An IAM principal without a binding, or a token without a tenant in its claim.
    NoTenantsBound,
    /// `X-Tenant-ID` is not one of the caller's tenants.
    TenantNotBound,
}

impl DenyReason {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::MissingIdentity => "no caller identity for this auth mode",
            DenyReason::NoTenantsBound => "no tenants bound to the caller",
            DenyReason::TenantNotBound => "tenant not bound to the caller",
        }
    }

    /// For the 403's `detail`: says nothing about the objects of any tenant.
    pub fn detail(self, mode: AuthMode) -> String {
        match (self, mode) {
            (DenyReason::MissingIdentity, AuthMode::Iam) => {
                "Request is not signed: this API requires IAM (SigV4) authorization".into()
            }
            (DenyReason::MissingIdentity, _) => {
                "Request carries no token: this API requires a JWT bearer token".into()
            }
            (DenyReason::NoTenantsBound | DenyReason::TenantNotBound, _) => {
                "Caller is not authorized for this tenant".into()
            }
        }
    }
}

/// The configured policy of one function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantPolicy {
    pub mode: AuthMode,
    pub bindings: TenantBindings,
}

impl TenantPolicy {
    pub fn from_config(config: &crate::Config) -> Self {
        TenantPolicy {
            mode: config.auth_mode,
            bindings: config.iam_tenant_bindings.clone(),
        }
    }

    /// Decide a request from its caller and its raw `X-Tenant-ID` header.
    pub fn decide(&self, caller: &Caller, header: Option<&str>) -> Decision {
        let requested = header.and_then(canonical_uuid);
        let claimed = |claim: &Option<String>| -> Decision {
            let tenants = claim.as_deref().map(tenants_in_claim).unwrap_or_default();
            if tenants.is_empty() {
                return Decision::Deny {
                    reason: DenyReason::NoTenantsBound,
                };
            }
            match requested {
                None => Decision::InvalidHeader,
                Some(tenant) if tenants.contains(&tenant) => Decision::Allow { tenant },
                Some(_) => Decision::Deny {
                    reason: DenyReason::TenantNotBound,
                },
            }
        };
        match (self.mode, caller) {
            (AuthMode::Header, Caller::Jwt { tenant_claim, .. }) if tenant_claim.is_some() => {
                claimed(tenant_claim)
            }
            (AuthMode::Header, _) => Decision::TrustHeader,
            (AuthMode::Jwt, Caller::Jwt { tenant_claim, .. }) => claimed(tenant_claim),
            (AuthMode::Iam, Caller::Iam { arn }) => {
                let Some(grant) = self.bindings.grant_for(arn) else {
                    return Decision::Deny {
                        reason: DenyReason::NoTenantsBound,
                    };
                };
                match requested {
                    None => Decision::InvalidHeader,
                    Some(tenant) if grant.allows(tenant) => Decision::Allow { tenant },
                    Some(_) => Decision::Deny {
                        reason: DenyReason::TenantNotBound,
                    },
                }
            }
            (AuthMode::Jwt | AuthMode::Iam, _) => Decision::Deny {
                reason: DenyReason::MissingIdentity,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
    const B: &str = "11111111-1111-4111-8111-111111111111";

    fn uuid(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    #[test]
    fn assumed_role_sessions_and_role_paths_normalise_to_the_role() {
        assert_eq!(
            normalize_principal("arn:aws:sts::123456789012:assumed-role/runtime/i-0abc"),
            "arn:aws:iam::123456789012:role/runtime"
        );
        assert_eq!(
            normalize_principal("arn:aws:iam::123456789012:role/service/ops/runtime"),
            "arn:aws:iam::123456789012:role/runtime"
        );
        assert_eq!(
            normalize_principal("arn:aws-cn:sts::123456789012:assumed-role/r/s"),
            "arn:aws-cn:iam::123456789012:role/r"
        );
        for kept in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
            "not-an-arn",
            "arn:aws:sts::123456789012:assumed-role/",
        ] {
            assert_eq!(normalize_principal(kept), kept);
        }
    }

    #[test]
    fn bindings_parse_and_validate() {
        let json = format!(
            r#"{{"arn:aws:iam::1:role/runtime": ["*"],
                "arn:aws:iam::1:role/team/ops-acme": ["{A}"],
                "arn:aws:iam::1:user/alice": []}}"#
        );
        let b = TenantBindings::from_json(&json).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.grant_for("arn:aws:sts::1:assumed-role/runtime/session-1"),
            Some(&Grant::AnyTenant)
        );
        let ops = b
            .grant_for("arn:aws:sts::1:assumed-role/ops-acme/jane@example.com")
            .unwrap();
        assert!(ops.allows(uuid(A)) && !ops.allows(uuid(B)));
        assert!(
            !b.grant_for("arn:aws:iam::1:user/alice")
                .unwrap()
                .allows(uuid(A))
        );
        assert_eq!(b.grant_for("arn:aws:iam::2:role/runtime"), None);

        assert!(TenantBindings::from_json("").unwrap().is_empty());
        assert!(TenantBindings::from_json("{}").unwrap().is_empty());
        for bad in [
            "[]",
            "{\"arn:aws:iam::1:role/r\": \"*\"}",
            "{\"role/r\": [\"*\"]}",
            "{\"arn:aws:iam::1:role/r\": [\"acme\"]}",
            "{\"arn:aws:iam::1:role/r\": [\"*\", \"6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c\"]}",
            "{\"arn:aws:iam::1:role/r\": [\"{6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c}\"]}",
            "not json",
        ] {
            assert!(TenantBindings::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bindings_of_one_role_merge() {
        let json =
            format!(r#"{{"arn:aws:iam::1:role/a/r": ["{A}"], "arn:aws:iam::1:role/r": ["{B}"]}}"#);
        let b = TenantBindings::from_json(&json).unwrap();
        let grant = b.grant_for("arn:aws:iam::1:role/r").unwrap();
        assert!(grant.allows(uuid(A)) && grant.allows(uuid(B)));
    }

    #[test]
    fn tenant_claims_name_one_or_more_tenants() {
        assert_eq!(tenants_in_claim(A), [uuid(A)].into());
        let both: BTreeSet<Uuid> = [uuid(A), uuid(B)].into();
        for claim in [
            format!("{A},{B}"),
            format!("{A} {B}"),
            format!("[{A} {B}]"),
            format!("[\"{A}\",\"{B}\"]"),
        ] {
            assert_eq!(tenants_in_claim(&claim), both, "{claim}");
        }
        assert!(tenants_in_claim("*").is_empty());
        assert!(tenants_in_claim("admin").is_empty());
        assert!(tenants_in_claim("").is_empty());
    }

    #[test]
    fn decisions() {
        let bindings =
            TenantBindings::from_json(&format!(r#"{{"arn:aws:iam::1:role/ops": ["{A}"]}}"#))
                .unwrap();
        let iam = TenantPolicy {
            mode: AuthMode::Iam,
            bindings,
        };
        let ops = Caller::Iam {
            arn: "arn:aws:sts::1:assumed-role/ops/s".into(),
        };
        assert_eq!(
            iam.decide(&ops, Some(A)),
            Decision::Allow { tenant: uuid(A) }
        );
        assert_eq!(
            iam.decide(&ops, Some(B)),
            Decision::Deny {
                reason: DenyReason::TenantNotBound
            }
        );
        assert_eq!(iam.decide(&ops, None), Decision::InvalidHeader);
        assert_eq!(iam.decide(&ops, Some("acme")), Decision::InvalidHeader);
        let stranger = Caller::Iam {
            arn: "arn:aws:iam::1:user/x".into(),
        };
        assert_eq!(
            iam.decide(&stranger, Some(A)),
            Decision::Deny {
                reason: DenyReason::NoTenantsBound
            }
        );
        let token = Caller::Jwt {
            subject: Some("u".into()),
            tenant_claim: Some(A.into()),
        };
        for caller in [&Caller::Anonymous, &token] {
            assert_eq!(
                iam.decide(caller, Some(A)),
                Decision::Deny {
                    reason: DenyReason::MissingIdentity
                }
            );
        }

        let jwt = TenantPolicy {
            mode: AuthMode::Jwt,
            ..TenantPolicy::default()
        };
        assert_eq!(
            jwt.decide(&token, Some(A)),
            Decision::Allow { tenant: uuid(A) }
        );
        assert_eq!(
            jwt.decide(&token, Some(B)),
            Decision::Deny {
                reason: DenyReason::TenantNotBound
            }
        );
        let no_claim = Caller::Jwt {
            subject: Some("u".into()),
            tenant_claim: None,
        };
        assert_eq!(
            jwt.decide(&no_claim, Some(A)),
            Decision::Deny {
                reason: DenyReason::NoTenantsBound
            }
        );
        for caller in [&Caller::Anonymous, &ops] {
            assert_eq!(
                jwt.decide(caller, Some(A)),
                Decision::Deny {
                    reason: DenyReason::MissingIdentity
                }
            );
        }

        let header = TenantPolicy::default();
        assert_eq!(header.mode, AuthMode::Header);
        assert_eq!(
            header.decide(&Caller::Anonymous, Some(B)),
            Decision::TrustHeader
        );
        assert_eq!(header.decide(&ops, Some(B)), Decision::TrustHeader);
        // A tenant claim that an authorizer passes is enforced in every mode.
        assert_eq!(
            header.decide(&token, Some(B)),
            Decision::Deny {
                reason: DenyReason::TenantNotBound
            }
        );
        assert_eq!(
            header.decide(&token, Some(A)),
            Decision::Allow { tenant: uuid(A) }
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!(AuthMode::parse(" IAM "), Some(AuthMode::Iam));
        assert_eq!(AuthMode::parse("jwt"), Some(AuthMode::Jwt));
        assert_eq!(AuthMode::parse("header"), Some(AuthMode::Header));
        assert_eq!(AuthMode::parse("none"), None);
        assert_eq!(AuthMode::default(), AuthMode::Header);
    }
}
