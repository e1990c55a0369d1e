//! The HTTP client of deliveries to URLs tenants set: no redirects, a time-out, and (unless
//! private addresses are allowed for development) a resolver that refuses any name resolving to
//! a non-public address, so a name that pointed somewhere public when it was saved cannot point
//! at the metadata service or the VPC at delivery time (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::outbound::{self, AddressClass, Policy};

/// Resolves through the system, then keeps public addresses only; a name with none left fails.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addresses
                .iter()
                .copied()
                .filter(|address| outbound::classify(address.ip()) == AddressClass::Public)
                .collect();
            if public.is_empty() {
                let class = addresses.first().map_or(AddressClass::Reserved, |address| {
                    outbound::classify(address.ip())
                });
                return Err(format!("{host} resolves to {} only", class.describe()).into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A client for deliveries under `policy`, answering within `timeout`.
pub fn client(policy: Policy, timeout: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if !policy.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder
        .build()
        .expect("the HTTP client builds with static settings")
}

/// The start of an answer's body, at most `max` bytes: an answer that never ends is not waited
/// for, and a large one is not read.
pub async fn capped_text(mut response: reqwest::Response, max: usize) -> String {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(max);
    String::from_utf8_lossy(&body).into_owned()
}
