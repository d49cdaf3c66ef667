//! The sockets and tasks: one listening socket for clients; per client address, a socket towards
//! the upstream server, a task reading the server's answers, and a task per direction holding
//! datagrams until their delivery time. The main task owns every client; dropping the
//! [`Proxy`] ends them all.
//!
//! Bounded: at most `max_clients` clients, each idle one forgotten after `idle_timeout`, at most
//! [`MAX_IN_FLIGHT`] datagrams held per client and direction (more are dropped and counted).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

use crate::control::{Direction, Handle};
use crate::link::{Fate, Link};
use crate::profile::{Profile, SpecError};
use crate::rng::Rng;

/// Datagrams held for delivery, per client and direction.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Largest datagram relayed (larger ones are truncated by the socket, as by any UDP receiver
/// with this buffer): well above any path MTU.
pub const DATAGRAM_MAX: usize = 65_535;
pub const DEFAULT_MAX_CLIENTS: usize = 256;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle clients are looked for.
const SWEEP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients send.
    pub listen: SocketAddr,
    /// The server the proxy relays to.
    pub upstream: SocketAddr,
    /// Seeds every client's generators; the same seed and arrivals give the same decisions.
    pub seed: u64,
    pub uplink: Profile,
    pub downlink: Profile,
    pub max_clients: usize,
    pub idle_timeout: Duration,
}

impl ProxyConfig {
    /// A proxy from `listen` to `upstream` that does nothing to packets until told to.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            seed: 0,
            uplink: Profile::default(),
            downlink: Profile::default(),
            max_clients: DEFAULT_MAX_CLIENTS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] SpecError),
    #[error("max_clients must be at least 1")]
    NoClients,
}

/// A running proxy. Dropping it stops it and closes every socket it opened.
pub struct Proxy {
    handle: Handle,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds `config.listen` and starts relaying (on the current tokio runtime).
    pub async fn start(config: ProxyConfig) -> Result<Self, ProxyError> {
        config.uplink.validate()?;
        config.downlink.validate()?;
        if config.max_clients == 0 {
            return Err(ProxyError::NoClients);
        }
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let handle = Handle::new(config.uplink, config.downlink);
        let task = tokio::spawn(run(Arc::new(socket), config, handle.clone()));
        Ok(Self {
            handle,
            local_addr,
            task,
        })
    }

    /// Where clients send (the bound address, with the port chosen when `listen`'s was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A datagram waiting for its delivery time; `seq` keeps arrival order among equal times.
struct Held {
    at: Instant,
    seq: u64,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One direction of one client's path: its decisions and the queue to its delayer.
struct Path {
    direction: Direction,
    link: Link,
    seq: u64,
    tx: mpsc::Sender<Held>,
    handle: Handle,
}

impl Path {
    /// Decides a datagram's fate and hands what survives to the delayer.
    fn offer(&mut self, bytes: &[u8], now: Instant) {
        self.handle.count_arrival(self.direction);
        let profile = self.handle.effective(self.direction, now);
        let fate = self.link.decide(&profile, now, bytes.len());
        self.handle.count_fate(self.direction, &fate);
        if let Fate::Delivered { at, copies } = fate {
            for _ in 0..copies {
                self.seq += 1;
                let held = Held {
                    at,
                    seq: self.seq,
                    bytes: bytes.to_vec(),
                };
                if self.tx.try_send(held).is_err() {
                    self.handle.count_overflow(self.direction);
                }
            }
        }
    }
}

/// Aborts a client's tasks when the client is forgotten (or the proxy stops).
struct Tasks(Vec<AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

struct Client {
    uplink: Path,
    /// Milliseconds since the proxy started, at the last datagram either way.
    last_seen: Arc<AtomicU64>,
    _tasks: Tasks,
}

/// The address a client's upstream socket binds: loopback towards a loopback server (nothing
/// listens beyond this host in tests), otherwise any address of the upstream's family.
fn upstream_bind(upstream: SocketAddr) -> SocketAddr {
    let ip = match (upstream.ip().is_loopback(), upstream.ip()) {
        (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (false, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

async fn run(listen: Arc<UdpSocket>, config: ProxyConfig, handle: Handle) {
    let started = Instant::now();
    let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
    let mut next_index: u64 = 0;
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = listen.recv_from(&mut buf) => {
                // An error here is one datagram's (an ICMP error reported late): go on.
                let Ok((len, from)) = received else { continue };
                let now = Instant::now();
                if !clients.contains_key(&from) {
                    if clients.len() >= config.max_clients {
                        handle.count_client(false);
                        continue;
                    }
                    match open_client(&listen, &config, &handle, from, next_index, started).await {
                        Ok(c) => {
                            next_index += 1;
                            handle.count_client(true);
                            clients.insert(from, c);
                        }
                        Err(_) => continue,
                    }
                }
                if let Some(c) = clients.get_mut(&from) {
                    c.last_seen.store(millis_since(started), Ordering::Relaxed);
                    c.uplink.offer(&buf[..len], now);
                }
            }
            _ = sweep.tick() => {
                let idle = config.idle_timeout.as_millis() as u64;
                let now = millis_since(started);
                clients.retain(|_, c| now.saturating_sub(c.last_seen.load(Ordering::Relaxed)) < idle);
            }
        }
    }
}

fn millis_since(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// A new client's upstream socket, its answer reader and its two delayers. The `index`-th
/// client's generators are derived from the seed and its index, one per direction.
async fn open_client(
    listen: &Arc<UdpSocket>,
    config: &ProxyConfig,
    handle: &Handle,
    client: SocketAddr,
    index: u64,
    started: Instant,
) -> std::io::Result<Client> {
    let upstream = Arc::new(UdpSocket::bind(upstream_bind(config.upstream)).await?);
    let last_seen = Arc::new(AtomicU64::new(millis_since(started)));

    let (up_tx, up_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let up_delayer = tokio::spawn(deliver(
        up_rx,
        Arc::clone(&upstream),
        config.upstream,
        handle.clone(),
        Direction::Uplink,
    ));
    let (down_tx, down_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let down_delayer = tokio::spawn(deliver(
        down_rx,
        Arc::clone(listen),
        client,
        handle.clone(),
        Direction::Downlink,
    ));
    let downlink = Path {
        direction: Direction::Downlink,
        link: Link::new(Rng::derive(config.seed, index * 2 + 1)),
        seq: 0,
        tx: down_tx,
        handle: handle.clone(),
    };
    let reader = tokio::spawn(read_answers(
        Arc::clone(&upstream),
        config.upstream,
        downlink,
        Arc::clone(&last_seen),
        started,
    ));
    Ok(Client {
        uplink: Path {
            direction: Direction::Uplink,
            link: Link::new(Rng::derive(config.seed, index * 2)),
            seq: 0,
            tx: up_tx,
            handle: handle.clone(),
        },
        last_seen,
        _tasks: Tasks(vec![
            up_delayer.abort_handle(),
            down_delayer.abort_handle(),
            reader.abort_handle(),
        ]),
    })
}

/// The server's answers to one client, through the client's downlink.
async fn read_answers(
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    mut path: Path,
    last_seen: Arc<AtomicU64>,
    started: Instant,
) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        // Only the server's datagrams are relayed: the socket is the client's to the server.
        if from != upstream {
            continue;
        }
        last_seen.store(millis_since(started), Ordering::Relaxed);
        path.offer(&buf[..len], Instant::now());
    }
}

/// Holds datagrams until their time and sends them to `to`, at most [`MAX_IN_FLIGHT`] at once.
async fn deliver(
    mut rx: mpsc::Receiver<Held>,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    handle: Handle,
    direction: Direction,
) {
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse(h)| h.at <= now) {
            if let Some(Reverse(h)) = held.pop() {
                // A send error is the destination's (gone, unreachable): the datagram is lost,
                // as on a real path.
                if socket.send_to(&h.bytes, to).await.is_ok() {
                    handle.count_sent(direction, h.bytes.len());
                }
            }
        }
        let next = held.peek().map(|Reverse(h)| h.at);
        tokio::select! {
            got = rx.recv() => match got {
                Some(h) if held.len() < MAX_IN_FLIGHT => held.push(Reverse(h)),
                Some(_) => handle.count_overflow(direction),
                None => return,
            },
            _ = sleep_until(next) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every datagram back to its sender.
    async fn echo() -> (SocketAddr, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        (addr, t)
    }

    /// Sends `n` numbered datagrams from `client` every `gap`; counts the echoes within `wait`.
    async fn exchange(client: &UdpSocket, to: SocketAddr, n: u32, gap: Duration) -> Vec<u32> {
        for i in 0..n {
            client.send_to(&i.to_be_bytes(), to).await.unwrap();
            tokio::time::sleep(gap).await;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await
        {
            if len == 4 {
                got.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            }
        }
        got
    }

    #[tokio::test]
    async fn relays_both_ways_per_client_and_impairs_each_direction() {
        let (upstream, _echo) = echo().await;
        let proxy = Proxy::start(ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream))
            .await
            .unwrap();
        let to = proxy.local_addr();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gap = Duration::from_millis(1);
        assert_eq!(exchange(&a, to, 50, gap).await, (0..50).collect::<Vec<_>>());
        assert_eq!(exchange(&b, to, 10, gap).await.len(), 10);
        assert_eq!(proxy.handle().stats().clients, 2);

        // Loss on the downlink only: everything reaches the server, about half comes back.
        let h = proxy.handle();
        h.apply(Some(Direction::Downlink), "loss=50%").unwrap();
        let before = h.stats();
        let got = exchange(&a, to, 400, gap).await;
        let after = h.stats();
        assert_eq!(after.uplink.sent - before.uplink.sent, 400);
        assert_eq!(
            after.uplink.sent_bytes - before.uplink.sent_bytes,
            400 * 4,
            "four bytes each"
        );
        assert_eq!(after.downlink.received - before.downlink.received, 400);
        let lost = after.downlink.lost_random - before.downlink.lost_random;
        assert_eq!(got.len() as u64, 400 - lost);
        assert!((120..280).contains(&lost), "{lost}");

        // A blackout loses everything until it ends; then the path is back by itself.
        h.apply(None, "clean").unwrap();
        let end = h.blackout(Duration::from_millis(400));
        assert!(exchange(&a, to, 20, gap).await.is_empty());
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        assert_eq!(exchange(&a, to, 20, gap).await.len(), 20);
        assert!(h.stats().uplink.lost_blackout >= 20);
    }

    #[tokio::test]
    async fn the_client_limit_refuses_new_clients_only() {
        let (upstream, _echo) = echo().await;
        let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
        config.max_clients = 1;
        let proxy = Proxy::start(config).await.unwrap();
        let to = proxy.local_addr();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(exchange(&a, to, 5, Duration::ZERO).await.len(), 5);
        assert!(exchange(&b, to, 5, Duration::ZERO).await.is_empty());
        assert_eq!(exchange(&a, to, 5, Duration::ZERO).await.len(), 5);
        let s = proxy.handle().stats();
        assert_eq!((s.clients, s.refused_datagrams), (1, 5));
    }

    #[tokio::test]
    async fn bad_settings_refuse_to_start() {
        let mut config = ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        );
        config.uplink.duplicate = 2.0;
        assert!(matches!(
            Proxy::start(config).await,
            Err(ProxyError::Profile(_))
        ));
    }
}
