//! The HTTPS listener's connections: who gets one, and how long a connection may hold it
//! without doing its part. Everything here happens below HTTP; the router never sees it.
//!
//! A connection costs a file descriptor and some memory whether or not it ever sends a request,
//! so a client that opens connections and then idles, or sends a request one byte at a time,
//! could otherwise hold them for ever and lock everyone else out. [`GuardedAcceptor`] wraps
//! axum-server's rustls acceptor:
//!
//! 1. **Admission.** A new TCP connection is admitted only under the global cap
//!    (`limits.max_http_connections`) and the cap per client address
//!    (`limits.max_connections_per_address`; IPv6 clients are counted by /64, since one host
//!    has a whole /64 to pick from). Counting and admitting are one step under one lock
//!    ([`Admission`]). A refused connection is closed at once, before the TLS handshake, and
//!    counted; its [`Slot`] lives inside the connection's stream, so the place frees whenever
//!    the connection ends, however it ends.
//! 2. **TLS handshake deadline** (`server.tls_handshake_timeout_s`).
//! 3. **Request head deadline** (`server.header_read_timeout_s`): hyper's HTTP/1 header-read
//!    timeout, set in [`listener`]. Hyper starts that clock whenever an HTTP/1.1 connection
//!    waits for a request head, between keep-alive requests too, so it is also how long an idle
//!    HTTP/1.1 connection stays open. [`HeaderTimer`] counts the ones that run out.
//! 4. **Idle deadline** (`server.idle_timeout_s`), kept by [`ConnIo`] around the TLS stream:
//!    a connection that has moved no byte in either direction for that long is closed, *unless*
//!    the server is the one being slow or the connection is a WebSocket:
//!    - it is suspended while a handler is working on a request whose body has fully arrived
//!      (a long export or an upload being checked is not the client's fault);
//!    - it stops for good once a response says `101 Switching Protocols`: a quiet consultation
//!      must keep its signaling WebSocket, which has its own join deadline
//!      (`rooms.join_timeout_s`) and its own cap (`limits.max_connections`).
//!
//!    It runs in every other state: after the handshake before the protocol is known, between
//!    HTTP/2 requests, while a request body is arriving (an upload chunk that stops half way
//!    is the slow-POST attack; one that keeps coming, however slowly, resets it with every
//!    byte), and while a response is being written (a client that stops reading).
//!
//! Why bytes rather than requests: a byte clock needs no knowledge of HTTP/1 versus HTTP/2
//! framing, catches stalled bodies and stalled readers with the same rule, and never cuts a
//! transfer that is making progress. HTTP/2 keep-alive pings are left off: they would be
//! bytes, and would keep an idle HTTP/2 connection open for ever. Browsers use HTTP/2 for the
//! API (one connection per browser, which matters behind a shared NAT) and HTTP/1.1 for the
//! WebSocket.
//!
//! The idle deadline is checked when the connection's task finds the socket with nothing to
//! give or take, which is whenever it is waiting on the client; hyper polls the socket for a
//! closed connection even while a handler runs.
//!
//! HTTP/2 has no request-head deadline (hyper has none): a client that drips an HTTP/2 header
//! block keeps bytes moving, and holds only its own connection, within its address's cap.
//!
//! This module never reads or answers HTTP itself, and never logs a client's address.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::admission::{Cap, Caps, Place};
use crate::metrics::{ConnectionCap, ConnectionDeadline, Metrics};

/// The listener's caps and deadlines.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The HTTPS listener on `addr`: TLS from `tls`, every connection guarded by `settings`.
pub fn listener(
    addr: SocketAddr,
    tls: RustlsConfig,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
) -> axum_server::Server<SocketAddr, GuardedAcceptor<RustlsAcceptor>> {
    // Our deadline comes first; rustls' own is a backstop that should never be the one to fire.
    let rustls = RustlsAcceptor::new(tls).handshake_timeout(settings.handshake_timeout * 2);
    let acceptor = GuardedAcceptor {
        inner: rustls,
        admission: Arc::new(Admission::new(
            settings.max_connections,
            settings.max_per_address,
            metrics.clone(),
        )),
        handshake_timeout: settings.handshake_timeout,
        idle_timeout: settings.idle_timeout,
        metrics: metrics.clone(),
    };
    let mut server = axum_server::bind(addr).acceptor(acceptor);
    server
        .http_builder()
        .http1()
        .timer(HeaderTimer { metrics })
        .header_read_timeout(settings.header_read_timeout);
    server
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    #[error("too many connections")]
    TooManyConnections,
    #[error("too many connections from one address")]
    TooManyFromAddress,
    #[error("TLS handshake not finished in time")]
    HandshakeTimeout,
    #[error("connection idle for too long")]
    Idle,
}

impl From<ConnError> for io::Error {
    fn from(e: ConnError) -> Self {
        let kind = match e {
            ConnError::TooManyConnections | ConnError::TooManyFromAddress => {
                io::ErrorKind::ConnectionRefused
            }
            ConnError::HandshakeTimeout | ConnError::Idle => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, e)
    }
}

/// The listener's connection caps (`crate::admission`), counted in the HTTP metrics.
pub struct Admission {
    caps: Arc<Caps>,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            caps: Arc::new(Caps::new(max_total, max_per_address)),
            metrics,
        }
    }

    /// Counts a connection from `ip` in, or says which cap it would exceed (and counts that).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, ConnError> {
        match self.caps.admit(ip) {
            Ok(place) => {
                self.metrics
                    .http_connections
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Slot {
                    _place: place,
                    metrics: self.metrics.clone(),
                })
            }
            Err(cap) => {
                let cap = match cap {
                    Cap::Global => ConnectionCap::Global,
                    Cap::PerAddress => ConnectionCap::PerAddress,
                };
                self.metrics.connection_refused(cap);
                tracing::debug!(cap = cap.as_str(), "connection refused: cap reached");
                Err(match cap {
                    ConnectionCap::Global => ConnError::TooManyConnections,
                    ConnectionCap::PerAddress => ConnError::TooManyFromAddress,
                })
            }
        }
    }

    /// Connections open now (total, from the address of `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        self.caps.open(ip)
    }
}

/// One admitted connection's place under the caps; dropping it gives the place back.
#[must_use]
pub struct Slot {
    _place: Place,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics
            .http_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// axum-server's acceptor with admission, the handshake deadline and the idle deadline (see the
/// module docs).
#[derive(Clone)]
pub struct GuardedAcceptor<A> {
    inner: A,
    admission: Arc<Admission>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<A, S> Accept<TcpStream, S> for GuardedAcceptor<A>
where
    A: Accept<TcpStream, ConnService<S>>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = ConnIo<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slot = match stream.peer_addr() {
            Ok(peer) => self.admission.admit(peer.ip()).map_err(io::Error::from),
            Err(e) => Err(e),
        };
        let slot = match slot {
            Ok(slot) => slot,
            // Dropping the stream closes the connection now.
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let state = Arc::new(ConnState::default());
        let service = ConnService {
            inner: service,
            state: state.clone(),
        };
        let handshake = self.inner.accept(stream, service);
        let (limit, idle, metrics) = (
            self.handshake_timeout,
            self.idle_timeout,
            self.metrics.clone(),
        );
        Box::pin(async move {
            let (io, service) = match tokio::time::timeout(limit, handshake).await {
                Ok(accepted) => accepted?,
                Err(_) => {
                    metrics.connection_timed_out(ConnectionDeadline::Handshake);
                    return Err(ConnError::HandshakeTimeout.into());
                }
            };
            Ok((ConnIo::new(io, state, idle, slot, metrics), service))
        })
    }
}

/// What the HTTP side of one connection tells its stream.
#[derive(Debug, Default)]
struct ConnState {
    /// Handlers working on a request whose body has fully arrived.
    working: AtomicUsize,
    /// The connection was upgraded (101): the idle deadline no longer applies.
    upgraded: AtomicBool,
}

/// One request's phase, for [`ConnState::working`]: receiving its body, working, done. A
/// request counts as working between its body's end and its response, and a body that ends
/// after the response was given (or never) does not count at all.
struct RequestPhase {
    state: Arc<ConnState>,
    phase: AtomicU8,
}

const RECEIVING: u8 = 0;
const WORKING: u8 = 1;
const DONE: u8 = 2;

impl RequestPhase {
    fn body_complete(&self) {
        if self
            .phase
            .compare_exchange(RECEIVING, WORKING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.state.working.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Ends a request's phase when its response future completes or is dropped.
struct InFlight(Arc<RequestPhase>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.phase.swap(DONE, Ordering::AcqRel) == WORKING {
            self.0.state.working.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The service of one connection: marks each request's phase and notes an upgrade.
#[derive(Clone)]
pub struct ConnService<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S, B> Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<TrackedBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let phase = Arc::new(RequestPhase {
            state: self.state.clone(),
            phase: AtomicU8::new(RECEIVING),
        });
        let req = req.map(|body| {
            if body.is_end_stream() {
                phase.body_complete();
            }
            TrackedBody {
                inner: body,
                phase: phase.clone(),
            }
        });
        let in_flight = InFlight(phase);
        let state = self.state.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await;
            if response
                .as_ref()
                .is_ok_and(|r| r.status() == StatusCode::SWITCHING_PROTOCOLS)
            {
                state.upgraded.store(true, Ordering::Release);
            }
            drop(in_flight);
            response
        })
    }
}

/// A request body that tells its request's phase when it has fully arrived.
pub struct TrackedBody {
    inner: Incoming,
    phase: Arc<RequestPhase>,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.phase.body_complete();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's stream: keeps its [`Slot`] and the idle deadline.
pub struct ConnIo<T> {
    io: T,
    state: Arc<ConnState>,
    idle: Duration,
    /// When a byte last moved either way (or the server was last seen working).
    last_active: Instant,
    deadline: Pin<Box<Sleep>>,
    expired: bool,
    metrics: Arc<Metrics>,
    _slot: Slot,
}

impl<T> ConnIo<T> {
    fn new(
        io: T,
        state: Arc<ConnState>,
        idle: Duration,
        slot: Slot,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = Instant::now();
        Self {
            io,
            state,
            idle,
            last_active: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
            expired: false,
            metrics,
            _slot: slot,
        }
    }

    /// Called when the socket had nothing to give or take: an error once the idle deadline has
    /// passed, otherwise pending (with the deadline's timer registered to wake the task).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.state.upgraded.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        loop {
            ready!(self.deadline.as_mut().poll(cx));
            let now = Instant::now();
            if self.state.working.load(Ordering::Acquire) > 0 {
                // The server is busy, not the client: that counts as activity.
                self.last_active = now;
            }
            let due = self.last_active + self.idle;
            if due > now {
                self.deadline.as_mut().reset(due);
                continue;
            }
            self.expired = true;
            self.metrics.connection_timed_out(ConnectionDeadline::Idle);
            return Poll::Ready(ConnError::Idle.into());
        }
    }

    fn expired_error() -> io::Error {
        ConnError::Idle.into()
    }

    /// Passes `poll` through, noting activity when it completes and checking the idle
    /// deadline when it is pending.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut T, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.expired {
            return Poll::Ready(Err(Self::expired_error()));
        }
        match poll(&mut self.io, cx) {
            Poll::Pending => self.poll_idle(cx).map(Err),
            ready => {
                self.last_active = Instant::now();
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut()
            .watch(cx, |io, cx| Pin::new(io).poll_read(cx, buf))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .watch(cx, |io, cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .watch(cx, |io, cx| Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .watch(cx, |io, cx| Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .watch(cx, |io, cx| Pin::new(io).poll_shutdown(cx))
    }
}

/// hyper's HTTP/1 timer: tokio's, counting the sleeps that run out. hyper's HTTP/1 server uses
/// its timer for nothing but the request-head deadline, and closes the connection when a sleep
/// runs out, so each one counted is a connection closed by that deadline.
#[derive(Clone)]
pub struct HeaderTimer {
    metrics: Arc<Metrics>,
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeaderSleep {
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
            metrics: self.metrics.clone(),
            counted: false,
        })
    }
}

struct HeaderSleep {
    sleep: Pin<Box<Sleep>>,
    metrics: Arc<Metrics>,
    counted: bool,
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        ready!(self.sleep.as_mut().poll(cx));
        if !self.counted {
            self.counted = true;
            self.metrics
                .connection_timed_out(ConnectionDeadline::Header);
        }
        Poll::Ready(())
    }
}

impl hyper::rt::Sleep for HeaderSleep {}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    use tokio::io::AsyncReadExt;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_refuse_per_address_then_globally_and_give_places_back() {
        let metrics = Arc::new(Metrics::default());
        let admission = Arc::new(Admission::new(3, 2, metrics.clone()));
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(
            admission.admit(a).err(),
            Some(ConnError::TooManyFromAddress)
        );
        let b1 = admission.admit(b).unwrap();
        assert_eq!(
            admission.admit(c).err(),
            Some(ConnError::TooManyConnections)
        );
        assert_eq!(metrics.http_connections.load(Ordering::Relaxed), 3);
        drop(a1);
        assert_eq!(admission.open(a), (2, 1));
        let _c1 = admission.admit(c).unwrap();
        drop(b1);
        assert_eq!(admission.open(b), (2, 0));
        assert_eq!(metrics.refused(ConnectionCap::Global), 1);
        assert_eq!(metrics.refused(ConnectionCap::PerAddress), 1);
    }

    /// Many threads admitting and dropping at once never get past either cap.
    #[test]
    fn caps_hold_under_concurrent_admission() {
        const THREADS: usize = 8;
        let metrics = Arc::new(Metrics::default());
        let admission = Arc::new(Admission::new(10, 4, metrics.clone()));
        let most = Arc::new(Mutex::new((0, 0)));
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (admission, most) = (admission.clone(), most.clone());
                scope.spawn(move || {
                    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (t % 3) as u8));
                    let mut held = Vec::new();
                    for i in 0..2000 {
                        if let Ok(slot) = admission.admit(addr) {
                            held.push(slot);
                        }
                        let (total, from) = admission.open(addr);
                        let mut m = most.lock().unwrap();
                        *m = (m.0.max(total), m.1.max(from));
                        drop(m);
                        if i % 3 == 0 {
                            held.pop();
                        }
                        if held.len() > 3 {
                            held.clear();
                        }
                    }
                });
            }
        });
        let (total, from) = *most.lock().unwrap();
        assert!(
            total <= 10 && from <= 4,
            "saw {total} open, {from} from one address"
        );
        assert_eq!(admission.open(ip("192.0.2.0")), (0, 0));
        assert_eq!(metrics.http_connections.load(Ordering::Relaxed), 0);
    }

    fn conn(
        idle: Duration,
    ) -> (
        tokio::io::DuplexStream,
        ConnIo<tokio::io::DuplexStream>,
        Arc<ConnState>,
        Arc<Metrics>,
    ) {
        let metrics = Arc::new(Metrics::default());
        let admission = Arc::new(Admission::new(1, 1, metrics.clone()));
        let slot = admission.admit(ip("192.0.2.1")).unwrap();
        let (client, server) = tokio::io::duplex(1024);
        let state = Arc::new(ConnState::default());
        let io = ConnIo::new(server, state.clone(), idle, slot, metrics.clone());
        (client, io, state, metrics)
    }

    const IDLE: Duration = Duration::from_millis(200);
    /// Far more than IDLE: long enough that the deadline would certainly have run out.
    const LONG: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_connection_that_waits_on_its_client_is_closed_when_idle() {
        let (_client, mut io, _, metrics) = conn(IDLE);
        let err = tokio::time::timeout(LONG * 5, io.read(&mut [0; 16]))
            .await
            .expect("the idle deadline ends the read")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(metrics.timed_out(ConnectionDeadline::Idle), 1);
        assert_eq!(metrics.http_connections.load(Ordering::Relaxed), 1);
        drop(io);
        // The slot is given back with the stream.
        assert_eq!(metrics.http_connections.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_deadline_waits_while_a_handler_works_and_never_after_an_upgrade() {
        let (_client, mut io, state, _) = conn(IDLE);
        state.working.store(1, Ordering::Release);
        assert!(
            tokio::time::timeout(LONG, io.read(&mut [0; 16]))
                .await
                .is_err(),
            "still open while the server works"
        );
        state.working.store(0, Ordering::Release);
        let read = tokio::time::timeout(LONG * 5, io.read(&mut [0; 16])).await;
        assert!(matches!(read, Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut));

        let (_client, mut io, state, metrics) = conn(IDLE);
        state.upgraded.store(true, Ordering::Release);
        assert!(
            tokio::time::timeout(LONG, io.read(&mut [0; 16]))
                .await
                .is_err(),
            "a WebSocket stays open however quiet"
        );
        assert_eq!(metrics.timed_out(ConnectionDeadline::Idle), 0);
    }

    #[tokio::test]
    async fn a_request_counts_as_working_from_its_body_s_end_to_its_response() {
        let state = Arc::new(ConnState::default());
        let phase = |s: &Arc<ConnState>| {
            Arc::new(RequestPhase {
                state: s.clone(),
                phase: AtomicU8::new(RECEIVING),
            })
        };
        let p = phase(&state);
        let in_flight = InFlight(p.clone());
        assert_eq!(state.working.load(Ordering::Acquire), 0);
        p.body_complete();
        p.body_complete();
        assert_eq!(state.working.load(Ordering::Acquire), 1);
        drop(in_flight);
        assert_eq!(state.working.load(Ordering::Acquire), 0);
        // A body that ends after the response (or a response without reading it): not counted.
        let p = phase(&state);
        drop(InFlight(p.clone()));
        p.body_complete();
        assert_eq!(state.working.load(Ordering::Acquire), 0);
    }
}
