//! SigV4 signing (service `execute-api`) for stacks behind IAM authorization,
//! done by the `aws-sigv4` crate; credentials come from any
//! `ProvideCredentials` (aws-config's default chain refreshes them).

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::Error;

/// Signs each attempt of each call, with fresh credentials and time.
#[derive(Clone)]
pub struct SigV4 {
    credentials: SharedCredentialsProvider,
    region: Arc<str>,
    service: Arc<str>,
    /// A fixed signing time, for tests only.
    time: Option<SystemTime>,
}

impl SigV4 {
    /// Sign for API Gateway (`execute-api`) in `region`.
    pub fn new(credentials: impl ProvideCredentials + 'static, region: impl Into<String>) -> Self {
        SigV4 {
            credentials: SharedCredentialsProvider::new(credentials),
            region: Arc::from(region.into()),
            service: Arc::from("execute-api"),
            time: None,
        }
    }

    /// Fixed credentials (an access key, a secret and an optional session token).
    pub fn with_keys(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<String>,
        region: impl Into<String>,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "focal-migrations-client",
        );
        SigV4::new(credentials, region)
    }

    #[cfg(test)]
    pub(crate) fn at(mut self, time: SystemTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Add `authorization`, `x-amz-date` (and `x-amz-security-token` for
    /// temporary credentials) to `headers`, signing the method, the URL, every
    /// header already there (the tenant header among them) and the body.
    pub(crate) async fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), Error> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::Signing(format!("credentials: {e}")))?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(self.time.unwrap_or_else(SystemTime::now))
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::Signing(e.to_string()))?
            .into();
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(port) => format!("{h}:{port}"),
                    None => h.to_owned(),
                })
            })
            .ok_or_else(|| Error::Signing(format!("no host in {url}")))?;
        // The host header is part of the signature: reqwest adds the same one.
        headers.insert(
            "host",
            HeaderValue::from_str(&host).map_err(|e| Error::Signing(e.to_string()))?,
        );
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
            .collect();
        let request =
            SignableRequest::new(method, url, pairs.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| Error::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| Error::Signing(e.to_string()))?
            .into_parts();
        let (signed_headers, _query) = instructions.into_parts();
        for header in signed_headers {
            let name = HeaderName::from_static(header.name());
            let mut value =
                HeaderValue::from_str(header.value()).map_err(|e| Error::Signing(e.to_string()))?;
            value.set_sensitive(header.sensitive());
            headers.insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn signed(signer: &SigV4, body: &[u8], tenant: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant-id", HeaderValue::from_str(tenant).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(signer.sign(
                "POST",
                "https://abc.execute-api.eu-west-1.amazonaws.com/sessions/s-1/reconcile",
                &mut headers,
                body,
            ))
            .expect("signed");
        headers
    }

    fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn the_signature_covers_the_tenant_and_the_body() {
        // 2026-01-02T03:04:05Z
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let signer =
            SigV4::with_keys("AKIDEXAMPLE", "secret", Some("token".into()), "eu-west-1").at(at);
        let headers = signed(&signer, b"{}", "t-1");
        let authorization = text(&headers, "authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/execute-api/aws4_request"
            ),
            "{authorization}"
        );
        assert!(
            authorization
                .contains("SignedHeaders=host;x-amz-date;x-amz-security-token;x-tenant-id"),
            "{authorization}"
        );
        assert_eq!(text(&headers, "x-amz-date"), "20260102T030405Z");
        assert_eq!(text(&headers, "x-amz-security-token"), "token");
        assert_eq!(
            text(&headers, "host"),
            "abc.execute-api.eu-west-1.amazonaws.com"
        );

        // Same request, same signature; another body or tenant, another one.
        let again = signed(&signer, b"{}", "t-1");
        assert_eq!(text(&again, "authorization"), authorization);
        let other_body = signed(&signer, b"{\"dry_run\":true}", "t-1");
        assert_ne!(text(&other_body, "authorization"), authorization);
        let other_tenant = signed(&signer, b"{}", "t-2");
        assert_ne!(text(&other_tenant, "authorization"), authorization);
    }
}
