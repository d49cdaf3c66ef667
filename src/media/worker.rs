//! One media worker: a thread, a current-thread tokio runtime, one socket, one `Sfu`, and the
//! ICE-TCP connections of its peers (`tcp::TcpConns`).
//!
//! Every call into the `Sfu` is one unit of work run through [`Sfu::contained`]: a datagram,
//! an ICE-TCP frame, a room's command, a timer turn, one poll for output. A panic in one costs
//! the room it was working for (or, when no room can be blamed, the core is replaced and every
//! participant on it told their media failed), never the thread, its socket, its command queue
//! or the other rooms; the rest of a batch of datagrams goes on. Why that granularity is
//! sound is in `sfu/containment.rs`. Each contained panic is counted ([`PanicCounts`],
//! `huizhen_media_worker_panics_total`) and logged (at most once a second) with the worker's
//! index and what it cost, never the panic's message (it may quote an address or SDP); the
//! message goes to the process's panic hook as before.
//!
//! The worker's own code around the core (socket calls, the outbox, the ICE-TCP table) parses
//! nothing a peer sends (ICE-TCP framing runs in each connection's own task, where a panic
//! ends that task only), so a panic there is a bug of ours, not an input. It is fenced too, as
//! a whole: the loop runs under `catch_unwind`, and after a panic nothing the worker held is
//! trusted. The core is replaced (every participant on it told their media failed, as for a
//! core panic no room can be blamed for), the rooms' queues keep their way to their tasks but
//! drop what waited, the ICE-TCP connections are dropped (their transports are gone), and the
//! loop goes on with the same socket and command queue; it is counted as a `worker` recovery.
//! Should the repair itself panic, the thread ends as it did before the fence, logged.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::net::Protocol;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::outbox::{self, Outboxes};
use super::recv::RecvBatch;
use super::send::{SEND_BATCH, SendBatch};
use super::tcp::{self, CloseReason, Inbound, TcpConns, TcpLimits, TcpStats};
use super::{MediaError, QUEUE_CAPACITY, WorkerHandle, WorkerMsg};
use crate::sfu::{Contained, LocalAddrs, Recovery, Routed, Sfu, SfuStats};

/// Wake at least this often even with no timer due.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// Upper bounds of the turn histogram, in microseconds.
pub const TURN_BUCKETS_MICROS: [u64; 10] =
    [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000];

/// How long the worker takes from waking on received datagrams to having handed every packet
/// they caused to the kernel: the server's own share of the added latency (queueing in the
/// kernel before the wake-up is not in it).
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnHistogram {
    /// Turns at or under each bound of [`TURN_BUCKETS_MICROS`] (not cumulative); the turns over
    /// the last bound are `count` minus their sum.
    pub buckets: [u64; TURN_BUCKETS_MICROS.len()],
    pub count: u64,
    pub sum_micros: u64,
}

impl TurnHistogram {
    fn observe(&mut self, d: Duration) {
        let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = TURN_BUCKETS_MICROS.iter().position(|b| micros <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_micros += micros;
    }
}

/// Panics contained in a worker's media core, by how the core recovered (`sfu::Recovery`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicCounts {
    /// Nothing was half written: only the input was lost.
    pub nothing: u64,
    /// The room being worked for lost its transports on this worker.
    pub room: u64,
    /// The core was replaced: every room on the worker lost its transports.
    pub worker: u64,
    /// Participants told their media failed because of a panic.
    pub participants_failed: u64,
}

impl PanicCounts {
    pub fn total(&self) -> u64 {
        self.nothing + self.room + self.worker
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerStats {
    pub sfu: SfuStats,
    pub turns: TurnHistogram,
    pub rooms: usize,
    /// Events to rooms that found the room's queue full and waited in its backlog (none is
    /// dropped; see `media/outbox.rs`).
    pub events_deferred: u64,
    /// Waiting events a newer one for the same participant made redundant.
    pub events_coalesced: u64,
    /// Events waiting in backlogs now.
    pub events_waiting: usize,
    pub send_errors: u64,
    /// CPU time this worker thread has used, in seconds (Linux; 0 elsewhere).
    pub cpu_seconds: f64,
    /// ICE-TCP connections this worker holds.
    pub tcp_connections: usize,
    pub panics: PanicCounts,
}

pub(super) fn spawn(
    socket: std::net::UdpSocket,
    addrs: &LocalAddrs,
    tcp: Option<TcpLimits>,
    tcp_stats: Arc<TcpStats>,
) -> Result<(WorkerHandle, std::thread::JoinHandle<()>), MediaError> {
    let index = addrs.worker;
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let sfu = Sfu::with_addrs(addrs, Instant::now());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MediaError::Spawn)?;
    let thread = std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                match UdpSocket::from_std(socket) {
                    Ok(socket) => {
                        Worker::new(index, sfu, socket, rx, tcp, tcp_stats)
                            .supervise()
                            .await;
                    }
                    Err(e) => tracing::error!(error = %e, "media socket unusable"),
                }
            })
        })
        .map_err(MediaError::Spawn)?;
    Ok((
        WorkerHandle {
            tx,
            rooms: Default::default(),
        },
        thread,
    ))
}

struct Worker {
    index: u8,
    sfu: Sfu,
    socket: UdpSocket,
    commands: mpsc::Receiver<WorkerMsg>,
    /// Each room's event queue, and what waits for room in it.
    rooms: Outboxes,
    /// Datagrams of the current turn, read in one batch (kept to reuse its buffers).
    incoming: RecvBatch,
    /// Datagrams of the current turn waiting to be sent (kept to reuse its allocation).
    outgoing: Vec<str0m::net::Transmit>,
    sender: SendBatch,
    send_errors: u64,
    turns: TurnHistogram,
    /// This worker's ICE-TCP connections, and the frames read from them.
    tcp: TcpConns,
    tcp_in: mpsc::Receiver<Inbound>,
    tcp_stats: Arc<TcpStats>,
    /// For a fresh ICE-TCP table after a panic in the worker's own code.
    tcp_limits: Option<TcpLimits>,
    panics: Panics,
}

impl Worker {
    fn new(
        index: u8,
        sfu: Sfu,
        socket: UdpSocket,
        commands: mpsc::Receiver<WorkerMsg>,
        tcp_limits: Option<TcpLimits>,
        tcp_stats: Arc<TcpStats>,
    ) -> Self {
        let (tcp, tcp_in) = TcpConns::new(tcp_limits, tcp_stats.clone());
        Self {
            index,
            tcp_limits,
            panics: Panics::default(),
            tcp,
            tcp_in,
            tcp_stats,
            sfu,
            socket,
            commands,
            rooms: Outboxes::default(),
            incoming: RecvBatch::new(),
            outgoing: Vec::with_capacity(SEND_BATCH),
            sender: SendBatch::new(),
            send_errors: 0,
            turns: TurnHistogram::default(),
        }
    }

    /// Runs the loop until the server stops, fencing panics in the worker's own code (see the
    /// module docs).
    async fn supervise(mut self) {
        use futures_util::FutureExt;
        loop {
            // Sound to assert: after a panic, `self` is only used through `recover`, which
            // trusts nothing the loop held.
            match AssertUnwindSafe(self.run()).catch_unwind().await {
                Ok(()) => return,
                Err(_) => {
                    let repaired = std::panic::catch_unwind(AssertUnwindSafe(|| self.recover()));
                    if repaired.is_err() {
                        tracing::error!(
                            worker = self.index,
                            "a media worker could not recover from a panic in its own code; its thread ends"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Repairs the worker after a panic in its own code: a fresh core (everyone on it told
    /// `Failed`), the rooms' queues emptied, a fresh ICE-TCP table and fresh buffers.
    fn recover(&mut self) {
        let failed = self.sfu.replace_after_worker_panic();
        self.rooms.reset();
        let (tcp, tcp_in) = TcpConns::new(self.tcp_limits, self.tcp_stats.clone());
        // The old table's connections end with it (their transports are gone).
        self.tcp = tcp;
        self.tcp_in = tcp_in;
        self.incoming = RecvBatch::new();
        self.outgoing.clear();
        self.sender = SendBatch::new();
        self.panics.note(
            Instant::now(),
            self.index,
            Contained {
                recovery: Recovery::Worker { failed },
            },
        );
    }

    async fn run(&mut self) {
        loop {
            let mut received = None;
            let now = Instant::now();
            let latest = if self.rooms.waiting() > 0 {
                now + outbox::RETRY
            } else {
                now + MAX_IDLE
            };
            let next = self.sfu.contained(Sfu::next_timeout);
            let deadline = self.contain(next).flatten().unwrap_or(latest).min(latest);
            tokio::select! {
                biased;
                msg = self.commands.recv() => {
                    let Some(msg) = msg else {
                        // Every handle dropped: the server is shutting down.
                        return;
                    };
                    if matches!(msg, WorkerMsg::Stop) {
                        // What the last leaves queued (DTLS close alerts) goes out first.
                        let done = self.sfu.contained(|sfu| sfu.handle_timeout(Instant::now()));
                        self.contain(done);
                        self.flush().await;
                        self.tcp.close_all().await;
                        return;
                    }
                    self.handle_msg(msg);
                }
                // Frames from ICE-TCP connections, a batch at most per turn.
                Some(msg) = self.tcp_in.recv() => {
                    let now = Instant::now();
                    received = Some(now);
                    self.on_tcp(now, msg);
                    for _ in 1..tcp::RECV_BATCH {
                        let Ok(msg) = self.tcp_in.try_recv() else {
                            break;
                        };
                        self.on_tcp(now, msg);
                    }
                }
                // Up to a batch of datagrams, then timers and commands get a turn.
                res = self.incoming.recv(&self.socket) => {
                    match res {
                        Ok(_) => {
                            let now = Instant::now();
                            received = Some(now);
                            for (contents, source) in self.incoming.datagrams() {
                                // One datagram at a time: a panic loses it, not the batch.
                                let done = self
                                    .sfu
                                    .contained(|sfu| sfu.handle_receive(now, source, contents));
                                if let Err(c) = done {
                                    self.panics.note(Instant::now(), self.index, c);
                                }
                            }
                        }
                        // ICMP port unreachable from a peer that went away shows up here on
                        // some systems; it says nothing about the socket itself.
                        Err(e) => tracing::debug!(error = %e, "media recv error"),
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let done = self.sfu.contained(|sfu| sfu.handle_timeout(Instant::now()));
                    self.contain(done);
                }
            }
            self.flush().await;
            if let Some(woke) = received {
                self.turns.observe(woke.elapsed());
            }
        }
    }

    fn handle_msg(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::OpenRoom { room, events } => self.rooms.open(room, events),
            WorkerMsg::CloseRoom { room } => self.rooms.close(&room),
            WorkerMsg::Sfu(cmd) => {
                let done = self
                    .sfu
                    .contained(|sfu| sfu.handle_command(Instant::now(), cmd));
                self.contain(done);
            }
            WorkerMsg::Tcp(accepted) => {
                if let Some(first) = self.tcp.adopt(accepted) {
                    self.on_tcp(Instant::now(), first);
                }
            }
            WorkerMsg::Stop => {}
            #[cfg(any(test, feature = "fault-injection"))]
            WorkerMsg::PanicInWorkerLoop => {
                panic!("injected fault: a panic in the media worker's own loop")
            }
            WorkerMsg::Stats(reply) => {
                let sfu = self.sfu.contained(|sfu| sfu.stats());
                let _ = reply.send(WorkerStats {
                    sfu: self.contain(sfu).unwrap_or_default(),
                    turns: self.turns,
                    rooms: self.rooms.rooms(),
                    events_deferred: self.rooms.deferred,
                    events_coalesced: self.rooms.coalesced,
                    events_waiting: self.rooms.waiting(),
                    send_errors: self.send_errors,
                    cpu_seconds: thread_cpu_seconds(),
                    tcp_connections: self.tcp.len(),
                    panics: self.panics.counts,
                });
            }
        }
    }

    /// A frame from, or the end of, one of this worker's ICE-TCP connections.
    fn on_tcp(&mut self, now: Instant, msg: Inbound) {
        if !self.tcp.is_current(&msg) {
            return;
        }
        match msg {
            Inbound::Frame { peer, data, .. } => {
                self.tcp_stats.frames_in.fetch_add(1, Ordering::Relaxed);
                // A connection carries one peer connection: a frame nobody takes means it is
                // gone, or this is a stranger's connection (its first frame named no
                // transport of ours, or failed the STUN integrity check).
                // A frame whose handling panicked keeps its connection: if its transport was
                // dropped, the next frame finds nobody and closes it. An early ICE check (see
                // `Routed::Early`) keeps it too, a few times: the peer checks again once its
                // answer is applied.
                let routed = self
                    .sfu
                    .contained(|sfu| sfu.handle_receive_tcp(now, peer, &data));
                let close = match self.contain(routed) {
                    Some(Routed::Nobody) => true,
                    Some(Routed::Early) => self.tcp.early_check(peer),
                    Some(Routed::Taken) | None => false,
                };
                if close {
                    self.tcp.close(peer, CloseReason::Unrouted);
                    let done = self.sfu.contained(|sfu| sfu.tcp_closed(peer));
                    self.contain(done);
                }
            }
            Inbound::Closed { peer, reason, .. } => {
                self.tcp.close(peer, reason);
                let done = self.sfu.contained(|sfu| sfu.tcp_closed(peer));
                self.contain(done);
            }
        }
    }

    async fn flush(&mut self) {
        // Everything this turn produced, handed to the kernel in batches. A poll that panics
        // is contained and the rest is polled: each containment drops at least one room, or
        // the whole core, so this ends.
        loop {
            let t = match self.sfu.contained(Sfu::poll_transmit) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(c) => {
                    self.panics.note(Instant::now(), self.index, c);
                    continue;
                }
            };
            if t.proto != Protocol::Udp {
                self.tcp.send(t.destination, t.contents.into());
                continue;
            }
            self.outgoing.push(t);
            if self.outgoing.len() >= SEND_BATCH {
                self.send_errors += self.sender.send_all(&self.socket, &self.outgoing).await;
                self.outgoing.clear();
            }
        }
        if !self.outgoing.is_empty() {
            self.send_errors += self.sender.send_all(&self.socket, &self.outgoing).await;
            self.outgoing.clear();
        }
        // Never block the media thread on a slow room task, and never lose an event that
        // changes state: what waited goes first, what does not fit waits (`outbox`).
        self.rooms.retry();
        loop {
            match self.sfu.contained(Sfu::poll_event) {
                Ok(Some(event)) => self.rooms.deliver(event),
                Ok(None) => break,
                Err(c) => self.panics.note(Instant::now(), self.index, c),
            }
        }
    }

    /// The outcome of a contained unit of work: its result, or None after counting the panic.
    fn contain<R>(&mut self, done: Result<R, Contained>) -> Option<R> {
        match done {
            Ok(r) => Some(r),
            Err(c) => {
                self.panics.note(Instant::now(), self.index, c);
                None
            }
        }
    }
}

/// Panics contained in this worker: counted, and logged at most once per [`PANIC_LOG_EVERY`]
/// (a peer that finds a way to make the core panic on every datagram must not flood the
/// logs; the counter still sees every one).
#[derive(Debug, Default)]
struct Panics {
    counts: PanicCounts,
    logged: Option<Instant>,
    /// Panics since the last one logged.
    unlogged: u64,
}

const PANIC_LOG_EVERY: Duration = Duration::from_secs(1);

impl Panics {
    /// Counts and logs a contained panic: which worker, how the core recovered and how many
    /// participants were told their media failed. Nothing of the input or the panic's message
    /// (which may quote an address or SDP).
    fn note(&mut self, now: Instant, worker: u8, c: Contained) {
        match c.recovery {
            Recovery::Nothing => self.counts.nothing += 1,
            Recovery::Room { .. } => self.counts.room += 1,
            Recovery::Worker { .. } => self.counts.worker += 1,
        }
        self.counts.participants_failed += c.recovery.failed() as u64;
        if self
            .logged
            .is_some_and(|at| now.duration_since(at) < PANIC_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::error!(
            worker,
            recovery = c.recovery.as_str(),
            participants_failed = c.recovery.failed(),
            not_logged_before = self.unlogged,
            "a panic in the media core was contained; the worker goes on"
        );
        self.logged = Some(now);
        self.unlogged = 0;
    }
}

/// CPU time of the calling thread. Lets benchmarks compute work per core.
fn thread_cpu_seconds() -> f64 {
    super::cpu_seconds("/proc/thread-self/stat")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panic_is_counted_and_at_most_one_a_second_logged() {
        let mut p = Panics::default();
        let t0 = Instant::now();
        let room = Contained {
            recovery: Recovery::Room { failed: 2 },
        };
        let nothing = Contained {
            recovery: Recovery::Nothing,
        };
        p.note(t0, 0, room);
        for i in 1..=5 {
            p.note(t0 + Duration::from_millis(100 * i), 0, nothing);
        }
        assert_eq!(p.unlogged, 5);
        assert_eq!(p.logged, Some(t0));
        p.note(t0 + PANIC_LOG_EVERY, 0, room);
        assert_eq!(p.unlogged, 0);
        assert_eq!(p.logged, Some(t0 + PANIC_LOG_EVERY));
        assert_eq!(
            p.counts,
            PanicCounts {
                nothing: 5,
                room: 2,
                worker: 0,
                participants_failed: 4,
            }
        );
        assert_eq!(p.counts.total(), 7);
    }
}
