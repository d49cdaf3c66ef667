//! Name resolution for webhook attempts: a host name is resolved at each attempt and only the
//! addresses the policy allows are connected to, so a name that points (or is made to point,
//! DNS rebinding) at loopback, the intranet or cloud metadata is refused then, not only when
//! the URL was set.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::AddressPolicy;

#[derive(Debug, thiserror::Error)]
#[error("the endpoint's name resolves to no address allowed for webhooks")]
pub struct NotAllowed;

pub struct Filtering(pub AddressPolicy);

impl Resolve for Filtering {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(NotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
