//! The TCP proxy: the same impairments, as a TCP path shows them. Clients connect to the proxy;
//! for each connection the proxy connects to the upstream server and relays bytes both ways,
//! each direction through its own [`Link`] deciding on every chunk read, as the UDP relay does
//! for every datagram (see the crate docs for determinism: the `index`-th connection's
//! generators come from the seed and its index).
//!
//! A TCP path never loses or reorders what it carries: the sender's stack retransmits. So here
//! a fate becomes a delay, never a gap:
//! - delivered: at its time, never before an earlier chunk (TCP is in order; `reorder` and
//!   duplication do not apply, and a duplicate is delivered once);
//! - lost at random or in a burst: delivered one retransmission timeout ([`TcpProxyConfig::rto`])
//!   later than it would have been (what a retransmission costs the application);
//! - dropped by the full queue in front of the rate cap: held back and offered again once the
//!   queue has drained what it holds (the proxy stops reading, so the sender's own window
//!   fills: back-pressure, as a real bottleneck gives);
//! - during a blackout: held until the path is back (a stalled connection, not a reset), then
//!   offered again.
//!
//! Bounded: at most `max_connections` connections at once (more are closed at once and counted
//! in [`Stats::refused_datagrams`]), at most [`MAX_HELD_CHUNKS`] chunks of at most
//! [`CHUNK_BYTES`] held per connection and direction (the reader then waits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::control::{Direction, Handle};
use crate::link::{Cause, Fate, Link};
use crate::profile::Profile;
use crate::relay::ProxyError;
use crate::rng::Rng;

/// Largest chunk read (and decided on) at once.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks held for delivery per connection and direction before the reader waits.
pub const MAX_HELD_CHUNKS: usize = 256;
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// What one retransmission costs a lost segment, by default (Linux's minimum RTO).
pub const DEFAULT_RTO: Duration = Duration::from_millis(200);
/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a held chunk looks again whether the path is back or the queue drained.
const RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct TcpProxyConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The server the proxy connects to for each client.
    pub upstream: SocketAddr,
    pub seed: u64,
    pub uplink: Profile,
    pub downlink: Profile,
    pub max_connections: usize,
    /// The delay a lost segment adds (one retransmission).
    pub rto: Duration,
}

impl TcpProxyConfig {
    /// A proxy from `listen` to `upstream` that does nothing to the bytes until told to.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            seed: 0,
            uplink: Profile::default(),
            downlink: Profile::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            rto: DEFAULT_RTO,
        }
    }
}

/// A running TCP proxy. Dropping it stops accepting and closes every connection it relays.
pub struct TcpProxy {
    handle: Handle,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Binds `config.listen` and starts relaying (on the current tokio runtime).
    pub async fn start(config: TcpProxyConfig) -> Result<Self, ProxyError> {
        config.uplink.validate()?;
        config.downlink.validate()?;
        if config.max_connections == 0 {
            return Err(ProxyError::NoClients);
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let handle = Handle::new(config.uplink, config.downlink);
        let task = tokio::spawn(accept(listener, config, handle.clone()));
        Ok(Self {
            handle,
            local_addr,
            task,
        })
    }

    /// Where clients connect (the bound address, with the port chosen when `listen`'s was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts clients; each connection's tasks are children of this one's set, so stopping the
/// proxy (aborting this task) drops and closes them all.
async fn accept(listener: TcpListener, config: TcpProxyConfig, handle: Handle) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut connections = tokio::task::JoinSet::new();
    let mut index: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept is that client's (reset before it was taken): go on.
                let Ok((client, _)) = accepted else { continue };
                if open.load(Ordering::Relaxed) >= config.max_connections {
                    handle.count_client(false);
                    drop(client);
                    continue;
                }
                handle.count_client(true);
                open.fetch_add(1, Ordering::Relaxed);
                let gone = OnDrop(Arc::clone(&open));
                connections.spawn(relay(client, config.clone(), handle.clone(), index, gone));
                index += 1;
            }
            // Reaps finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts a connection as closed when its relay ends, however it ends.
struct OnDrop(Arc<AtomicUsize>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client's connection, relayed both ways until either side closes.
async fn relay(
    client: TcpStream,
    config: TcpProxyConfig,
    handle: Handle,
    index: u64,
    _gone: OnDrop,
) {
    let Ok(Ok(server)) =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(config.upstream)).await
    else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let uplink = Pump {
        direction: Direction::Uplink,
        link: Link::new(Rng::derive(config.seed, index * 2)),
        handle: handle.clone(),
        rto: config.rto,
    };
    let downlink = Pump {
        direction: Direction::Downlink,
        link: Link::new(Rng::derive(config.seed, index * 2 + 1)),
        handle,
        rto: config.rto,
    };
    // Either direction ending (a close, an error) ends the other: a half-open relay would
    // hold a connection nobody uses.
    tokio::select! {
        _ = uplink.run(client_read, server_write) => {}
        _ = downlink.run(server_read, client_write) => {}
    }
}

/// One direction of one connection.
struct Pump {
    direction: Direction,
    link: Link,
    handle: Handle,
    rto: Duration,
}

impl Pump {
    /// Reads chunks, decides each one's delivery time, and writes them at that time, in order.
    async fn run(mut self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(MAX_HELD_CHUNKS);
        let direction = self.direction;
        let handle = self.handle.clone();
        let writer = async move {
            while let Some((at, bytes)) = rx.recv().await {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
                handle.count_sent(direction, bytes.len());
            }
            // The reader saw the end: pass the close on once everything before it is written.
            let _ = to.shutdown().await;
        };
        let reader = async move {
            let mut buf = vec![0u8; CHUNK_BYTES];
            let mut last: Option<Instant> = None;
            loop {
                // Behind a rate cap no chunk may be larger than its queue, or it would never fit.
                let profile = self.handle.profile(self.direction);
                let most = match profile.rate_bps {
                    Some(_) => profile.queue_bytes.clamp(1, CHUNK_BYTES),
                    None => CHUNK_BYTES,
                };
                let n = match from.read(&mut buf[..most]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let at = self.schedule(n, &mut last).await;
                if tx.send((at, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        };
        // The writer finishes what the reader handed over, then closes its half.
        let (_, ()) = tokio::join!(reader, writer);
    }

    /// When a chunk of `len` bytes read now is to be written: held through a blackout or a full
    /// queue, one RTO later when "lost", never before the previous chunk.
    async fn schedule(&mut self, len: usize, last: &mut Option<Instant>) -> Instant {
        self.handle.count_arrival(self.direction);
        let mut counted = false;
        loop {
            let now = Instant::now();
            let profile = self.handle.effective(self.direction, now);
            let fate = self.link.decide(&profile, now, len);
            if !counted {
                self.handle.count_fate(self.direction, &fate);
                counted = true;
            }
            let at = match fate {
                Fate::Delivered { at, .. } => at,
                Fate::Lost(Cause::Loss) => now + profile.delay + self.rto,
                Fate::Lost(Cause::Blackout | Cause::Queue) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let at = last.map_or(at, |l| l.max(at));
            *last = Some(at);
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back on each connection.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Writes `bytes` through `stream` and reads the same number back, with the time it took.
    async fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> (Vec<u8>, Duration) {
        let t0 = Instant::now();
        stream.write_all(bytes).await.unwrap();
        let mut back = vec![0u8; bytes.len()];
        tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut back))
            .await
            .expect("echo within 20 s")
            .unwrap();
        (back, t0.elapsed())
    }

    #[tokio::test]
    async fn loss_becomes_delay_and_nothing_is_lost_or_reordered() {
        let upstream = echo().await;
        let mut config = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
        config.seed = 7;
        config.uplink = Profile::default()
            .with_spec("loss=30%,jitter=20ms")
            .unwrap();
        let proxy = TcpProxy::start(config).await.unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for i in 0..40u8 {
            let chunk = vec![i; 100];
            let (back, _) = round_trip(&mut c, &chunk).await;
            sent.extend_from_slice(&chunk);
            got.extend_from_slice(&back);
        }
        assert_eq!(got, sent, "every byte, in order");
        let s = proxy.handle().stats();
        assert!(s.uplink.lost_random > 0, "{s:?}");
        assert_eq!(s.uplink.sent, s.uplink.received);
        assert_eq!(
            s.uplink.sent_bytes,
            sent.len() as u64,
            "every byte counted once"
        );
        assert_eq!(s.clients, 1);
    }

    #[tokio::test]
    async fn a_blackout_stalls_the_connection_and_it_resumes() {
        let upstream = echo().await;
        let proxy = TcpProxy::start(TcpProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            upstream,
        ))
        .await
        .unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut c, b"before").await.0, b"before");
        let end = proxy.handle().blackout(Duration::from_millis(600));
        let (back, took) = round_trip(&mut c, b"during").await;
        assert_eq!(back, b"during");
        assert!(
            Instant::now() >= end,
            "held until the path came back ({took:?})"
        );
        assert!(proxy.handle().stats().uplink.lost_blackout >= 1);
        assert_eq!(round_trip(&mut c, b"after").await.0, b"after");
    }

    #[tokio::test]
    async fn a_rate_cap_paces_a_bulk_transfer() {
        let upstream = echo().await;
        let mut config = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
        // 400 kbit/s with a small queue: 40 kB take about 0.8 s, which the reader waits out.
        config.downlink = Profile::default()
            .with_spec("rate=400kbit,queue=8000")
            .unwrap();
        let proxy = TcpProxy::start(config).await.unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let (back, took) = round_trip(&mut c, &data).await;
        assert_eq!(back, data);
        // At least the time 40 kB need at the cap (a lower bound: the cap cannot be beaten).
        assert!(took >= Duration::from_millis(700), "{took:?}");
        assert!(
            proxy.handle().stats().downlink.lost_queue > 0,
            "the queue filled and held the reader"
        );
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed() {
        let upstream = echo().await;
        let mut config = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
        config.max_connections = 1;
        let proxy = TcpProxy::start(config).await.unwrap();
        let mut a = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut a, b"a").await.0, b"a");
        let mut b = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut buf = [0u8; 1];
        let _ = b.write_all(b"b").await;
        let read = tokio::time::timeout(Duration::from_secs(5), b.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
        assert_eq!(proxy.handle().stats().refused_datagrams, 1);
        // The first still works; once it closes, a new one is taken.
        assert_eq!(round_trip(&mut a, b"a").await.0, b"a");
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut c, b"c").await.0, b"c");
    }

    #[tokio::test]
    async fn bad_settings_refuse_to_start() {
        let mut config = TcpProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        );
        config.max_connections = 0;
        assert!(matches!(
            TcpProxy::start(config).await,
            Err(ProxyError::NoClients)
        ));
    }
}
