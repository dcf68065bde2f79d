//! The `ToolEndpoint` over HTTPS (reqwest), behind the SSRF guard: every address a tool's
//! host resolves to is checked against the policy before a connection is made (a name
//! that resolves to an internal address is refused, whatever it is called), an address
//! written in the URL is checked as it is, and no redirect is followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use oratio_core::tools::EgressPolicy;
use oratio_core::tools::execution::{EndpointRequest, EndpointResponse, SendError, ToolEndpoint};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The most of an answer read (larger answers fail as too large).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Resolves names, keeping only the addresses the policy allows.
struct GuardedResolver {
    policy: EgressPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to addresses tools may not reach")]
struct Internal(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Internal(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub struct HttpToolEndpoint {
    client: reqwest::Client,
    policy: EgressPolicy,
}

impl HttpToolEndpoint {
    pub fn new(policy: EgressPolicy) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Oratio-Tools/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }
}

fn is_internal(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if cause.is::<Internal>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error and its causes, without the URL (a webhook's path can be its secret).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl ToolEndpoint for HttpToolEndpoint {
    async fn send(&self, request: EndpointRequest, timeout: Duration) -> Result<EndpointResponse, SendError> {
        // The URL was checked at registration; it is checked again here, for the policy of
        // the platform that sends it.
        oratio_core::tools::valid_url(&request.url, self.policy).map_err(|e| SendError::Refused(e.to_string()))?;
        let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes()).expect("a method");
        let mut builder = self.client.request(method, &request.url).timeout(timeout).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let sent = tokio::time::timeout(timeout, async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    body.extend_from_slice(&chunk[..MAX_BODY_BYTES - body.len()]);
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(EndpointResponse { status, body })
        })
        .await;
        match sent {
            Err(_) => Err(SendError::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_timeout() => Err(SendError::Timeout),
            Ok(Err(e)) if is_internal(&e) => Err(SendError::Refused(
                "the endpoint's host resolves to a loopback, link-local or private address".into(),
            )),
            Ok(Err(e)) => Err(SendError::Unreachable(describe(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;
    use oratio_core::tools::Method;

    fn request(url: &str) -> EndpointRequest {
        EndpointRequest { method: Method::Post, url: url.into(), headers: Vec::new(), body: b"{}".to_vec() }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_internal_address_is_refused_before_connecting() {
        let guarded = GuardedResolver { policy: EgressPolicy::PUBLIC };
        let resolved = guarded.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(resolved.is_err_and(|e| e.to_string().contains("may not reach")));
        let embedded = GuardedResolver { policy: EgressPolicy::EMBEDDED };
        assert!(embedded.resolve(Name::from_str("localhost").unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn the_public_policy_refuses_internal_endpoints_and_follows_no_redirect() {
        let endpoint = HttpToolEndpoint::new(EgressPolicy::PUBLIC).unwrap();
        for url in ["https://127.0.0.1:9/x", "https://169.254.169.254/latest/meta-data/", "http://example.com/x"] {
            let sent = endpoint.send(request(url), Duration::from_secs(2)).await;
            assert!(matches!(sent, Err(SendError::Refused(_))), "{url}: {sent:?}");
        }
        // A redirect (to the metadata service) is answered as it is, not followed.
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async {
                (axum::http::StatusCode::FOUND, [("location", "http://169.254.169.254/latest/meta-data/")])
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let local = HttpToolEndpoint::new(EgressPolicy::EMBEDDED).unwrap();
        let answer = local.send(request(&url), Duration::from_secs(2)).await.expect("an answer");
        assert_eq!(answer.status, 302);
    }
}
