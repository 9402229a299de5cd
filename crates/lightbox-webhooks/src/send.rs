//! One signed POST to a partner, and what came of it. The outbox worker and
//! the synchronous calls (someone is waiting) both send through here: a
//! short timeout, no redirects, a cap on the answer's size, and
//! destinations checked before any byte leaves (HTTPS, and no private or
//! loopback address unless `--webhook-allow-private`).
//!
//! [`Sender::post`] only reports an [`Outcome`]; the caller decides what it
//! means (the worker retries, a synchronous call falls back).

use crate::sign::{signature_header, SigningSecret};
use bytes::{Bytes, BytesMut};
use lightbox_domain::webhook::retry_after;
use lightbox_domain::Timestamp;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Longest one attempt may take, connecting and reading the answer included.
    pub timeout: Duration,
    /// Largest answer read; a longer one is a failure.
    pub max_response_bytes: usize,
    /// Allow `http://` and private, loopback and link-local destinations
    /// (on-premises partners on a LAN, tests).
    pub allow_private: bool,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            timeout: Duration::from_secs(15),
            max_response_bytes: 1024 * 1024,
            allow_private: false,
        }
    }
}

/// Where to send, and the secrets that sign (the current one first).
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: String,
    pub secrets: Vec<SigningSecret>,
}

/// What one POST came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx; its body (at most the cap).
    Delivered { status: u16, body: Bytes },
    /// Worth trying again: a non-2xx status (redirects included), a timeout,
    /// a connection failure, an oversized answer. `after` is the endpoint's
    /// `Retry-After`.
    Retry {
        status: Option<u16>,
        after: Option<Duration>,
        error: String,
    },
    /// `410 Gone`: the endpoint asks never to be called again.
    Gone,
    /// Refused before sending: trying again cannot help until the endpoint
    /// or the configuration changes.
    Failed { error: String },
}

/// Why a synchronous call produced no usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Failed(String),
    #[error("the endpoint answered with an unreadable body: {0}")]
    Unparseable(String),
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    config: SendConfig,
}

impl Sender {
    pub fn new(config: SendConfig) -> Sender {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would see the names, not the addresses, and defeat the check.
            .no_proxy()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .timeout(config.timeout);
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().expect("a TLS backend is compiled in");
        Sender { client, config }
    }

    pub fn config(&self) -> &SendConfig {
        &self.config
    }

    /// POSTs `body` to `to`, signed now as message `id`.
    pub async fn post(&self, to: &Destination, id: &str, body: &[u8]) -> Outcome {
        let url = match check_destination(&to.url, self.config.allow_private) {
            Ok(url) => url,
            Err(error) => return Outcome::Failed { error },
        };
        if to.secrets.is_empty() {
            return Outcome::Failed {
                error: "the endpoint has no signing secret".into(),
            };
        }
        let timestamp = Timestamp::now().millis() / 1000;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static("Lightbox-Webhooks/1"));
        let signature = signature_header(&to.secrets, id, timestamp, body);
        for (name, value) in [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    headers.insert(name, v);
                }
                Err(_) => {
                    return Outcome::Failed {
                        error: format!("{name} is not a valid header value"),
                    }
                }
            }
        }
        let request = self
            .client
            .post(url)
            .headers(headers)
            .body(body.to_vec())
            .send();
        // The client's timeout covers the body too; this one bounds the whole
        // attempt even if a slow answer trickles in.
        let deadline = self.config.timeout + Duration::from_secs(1);
        match tokio::time::timeout(deadline, self.exchange(request)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                status: None,
                after: None,
                error: format!("no answer within {:?}", self.config.timeout),
            },
        }
    }

    async fn exchange(
        &self,
        request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Outcome {
        let response = match request.await {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    status: None,
                    after: None,
                    // Without the URL: a partner's URL may carry a token, and
                    // errors are kept on the delivery and shown to operators.
                    error: describe(&e.without_url()),
                };
            }
        };
        let status = response.status();
        if status == StatusCode::GONE {
            return Outcome::Gone;
        }
        if !status.is_success() {
            let after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, Timestamp::now()));
            let error = if status.is_redirection() {
                format!("redirects are not followed (HTTP {})", status.as_u16())
            } else {
                format!("HTTP {}", status.as_u16())
            };
            return Outcome::Retry {
                status: Some(status.as_u16()),
                after,
                error,
            };
        }
        match read_capped(response, self.config.max_response_bytes).await {
            Ok(body) => Outcome::Delivered {
                status: status.as_u16(),
                body,
            },
            Err(error) => Outcome::Retry {
                status: Some(status.as_u16()),
                after: None,
                error,
            },
        }
    }

    /// A synchronous call: one signed POST (and one more only if the first
    /// could not connect), its 2xx answer parsed strictly as `T` (unknown
    /// fields ignored, a missing field or a wrong type is a failure).
    pub async fn call<T: DeserializeOwned>(
        &self,
        to: &Destination,
        id: &str,
        body: &[u8],
    ) -> Result<T, CallError> {
        let mut outcome = self.post(to, id, body).await;
        if let Outcome::Retry {
            status: None,
            error,
            ..
        } = &outcome
        {
            if error.contains("connect") {
                outcome = self.post(to, id, body).await;
            }
        }
        match outcome {
            Outcome::Delivered { body, .. } => {
                serde_json::from_slice(&body).map_err(|e| CallError::Unparseable(e.to_string()))
            }
            Outcome::Retry { error, .. } | Outcome::Failed { error } => {
                Err(CallError::Failed(error))
            }
            Outcome::Gone => Err(CallError::Failed("the endpoint answered 410 Gone".into())),
        }
    }
}

/// Reads at most `cap` bytes of the answer; more is an error.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Bytes, String> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("the answer is larger than {cap} bytes"));
    }
    let mut response = response;
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| describe(&e.without_url()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An error with its causes (reqwest's own message hides the reason).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let text = lightbox_domain::error::with_causes(e);
    if text.contains("operation timed out") || text.contains("timed out") {
        return format!("timed out: {text}");
    }
    text
}

/// Parses an endpoint URL and checks it may be called: `https://` with a
/// host; `http://` and literal private addresses only when `allow_private`.
/// (Names are checked again when resolved, by [`PublicOnly`].)
pub fn check_destination(url: &str, allow_private: bool) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(
                "http:// endpoints need --webhook-allow-private; use https:// otherwise".into(),
            )
        }
        other => return Err(format!("`{other}://` is not an HTTP(S) URL")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("endpoint URLs may not carry credentials".into());
    }
    let host = parsed.host_str().ok_or("the URL has no host")?;
    // The URL parser writes literal addresses in canonical form (`[::1]`, and
    // `0x7f.1` as `127.0.0.1`).
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if !allow_private && !is_public(ip) {
            return Err(private_refused(literal));
        }
    }
    Ok(parsed)
}

fn private_refused(what: &str) -> String {
    format!(
        "{what} is a private, loopback or reserved address (allowed with --webhook-allow-private)"
    )
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Resolves names to their public addresses only, so a public name that
/// points inside the network (or a rebinding trick) reaches nothing. Also
/// used for the files partners' access answers point to.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?
                .collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err::<Addrs, BoxError>(private_refused(&host).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn destinations_are_https_to_public_hosts_unless_allowed() {
        assert!(check_destination("https://hooks.example.com/x", false).is_ok());
        for refused in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
            "https://10.0.0.5/x",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(check_destination(refused, false).is_err(), "{refused}");
        }
        assert!(check_destination("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_destination("ftp://127.0.0.1/", true).is_err());
    }
}
