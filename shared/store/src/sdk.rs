//! The AWS SDK configuration every process loads: the Lambdas, `migrations`
//! and the tests.
//!
//! The SDK's default HTTPS client is rustls on aws-lc, whose C library takes a
//! minute of CPU to build for each target. This workspace builds with the SDK's
//! default client turned off and gives it rustls on ring instead — the same
//! hyper client and the system's trust store, with the crypto library the rest
//! of the workspace (the tests' HTTP client) already compiles. Endpoints,
//! region and credentials still come from the standard `AWS_*` variables and
//! files, so DynamoDB Local and a local SQS need no code.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The SDK configuration from the environment, with [`https_client`]. Every
/// SDK client of the workspace is built from it: a client built without an
/// HTTP client fails its first request.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK's hyper client over rustls with ring, trusting the system's roots.
/// Built as the SDK builds its default client: the configuration's connect
/// and read timeouts and sleep, and a proxy from `HTTPS_PROXY`/`NO_PROXY`.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .proxy_config(ProxyConfig::from_env());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A client on this HTTPS client opens a TLS connection to an `https://`
    /// endpoint: the listener reads a TLS handshake record (a ClientHello).
    /// The handshake then fails, as nothing answers it; what matters is that
    /// the SDK had a client and that it speaks TLS.
    #[tokio::test]
    async fn the_sdk_client_speaks_tls_to_an_https_endpoint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_bytes = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut header = [0u8; 3];
            socket.read_exact(&mut header).await.unwrap();
            header
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .http_client(https_client())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let request = tokio::spawn(async move { client.list_tables().send().await });
        let header = tokio::time::timeout(Duration::from_secs(30), first_bytes)
            .await
            .expect("the client connected within 30 s")
            .unwrap();
        // Content type 22 (handshake), protocol major version 3.
        assert_eq!(header[..2], [0x16, 0x03], "a TLS record, not {header:?}");
        request.abort();
    }
}
