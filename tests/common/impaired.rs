//! A participant on an impaired path: an impairment proxy ([`huizhen_impair`]) between one test
//! peer and the server's media socket, and counts of what flowed between two peers.
//!
//! Only the peer that joins through [`peer_via`] with a proxy takes that path (its offers'
//! candidates are rewritten to the proxy's address, `TestPeer::join_via`); the others reach the
//! server directly, as in the rest of the suite. Signaling is never impaired: it is TCP, straight
//! to the server.

use std::net::SocketAddr;
use std::time::Duration;

use huizhen_impair::{Proxy, ProxyConfig};

use super::TestServer;
use super::peer::{JoinOptions, TestPeer};

const CONNECT: Duration = Duration::from_secs(20);

/// A proxy on 127.0.0.1 in front of the server's (first) media worker, doing nothing to packets
/// until told to; `seed` fixes every decision it will make.
pub async fn proxy_for(s: &TestServer, seed: u64) -> Proxy {
    let upstream = s.server().media.local_addrs()[0];
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    config.seed = seed;
    Proxy::start(config).await.expect("proxy starts")
}

/// A publishing participant, connected and sending, whose media goes through `via` if given.
pub async fn peer_via(
    s: &TestServer,
    room: &str,
    role: &str,
    name: &str,
    marker: u8,
    via: Option<SocketAddr>,
) -> TestPeer {
    let token = s.invite(room, role).await;
    let opts = JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    };
    let p = match via {
        Some(via) => TestPeer::join_via(opts, via).await,
        None => TestPeer::join(opts).await,
    }
    .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e:#}"));
    p.start_media();
    p
}

/// Packets of one kind that one peer sent and another received from it, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub sent: u64,
    pub received: u64,
}

impl Count {
    pub fn of(from: &TestPeer, to: &TestPeer, kind: &str) -> Self {
        Self {
            sent: from.sent_packets(kind),
            received: to.received(&from.id(), kind).packets,
        }
    }

    /// Received over sent between `earlier` and `self`.
    pub fn ratio_since(&self, earlier: &Count) -> f64 {
        let sent = self.sent.saturating_sub(earlier.sent);
        let received = self.received.saturating_sub(earlier.received);
        assert!(sent > 0, "nothing sent in the window");
        received as f64 / sent as f64
    }
}

/// The share of `from`'s `kind` packets that reached `to` over the next `window`.
pub async fn delivered_share(from: &TestPeer, to: &TestPeer, kind: &str, window: Duration) -> f64 {
    let before = Count::of(from, to, kind);
    tokio::time::sleep(window).await;
    Count::of(from, to, kind).ratio_since(&before)
}
