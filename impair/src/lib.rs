//! huizhen-impair: a UDP and TCP impairment proxy, for huizhen's tests and for anyone tuning a
//! deployment where `netem` is not available.
//!
//! Clients send to the proxy; for each client address the proxy opens a socket of its own
//! towards the upstream server and relays the answers back, as a NAT would. Each direction of
//! each client's path (uplink: client → server; downlink: server → client) is impaired on its
//! own, by the [`Profile`] set for that direction: seeded random or bursty (Gilbert-Elliott)
//! loss, delay and jitter with or without reordering, duplication, a bandwidth cap with a
//! bounded tail-drop queue, and blackouts. The settings can change during a run through the
//! [`Handle`].
//!
//! Deterministic for a seed: each client's direction has its own generator, derived from the
//! seed, the client's order of arrival and the direction, and the decisions ([`link::Link`])
//! depend only on it and on the packets' arrival times and sizes.
//!
//! # Layout
//! - `rng`: the seeded generator (fixed here, so a seed means the same in every version).
//! - `profile`: what a direction does to packets, and its text form (`loss=10%,jitter=30ms`).
//! - `link`: the sans-IO decision for one packet on one direction of one path.
//! - `control`: the [`Handle`]: settings changed during a run, and counters.
//! - `relay`: the sockets and tasks that move datagrams and hold them until due.
//! - `tcp`: the same for TCP connections (ICE-TCP, TURN over TCP), where loss and blackouts
//!   become delays and stalls, as a TCP path shows them.

pub mod control;
pub mod link;
pub mod profile;
pub mod relay;
pub mod rng;
pub mod tcp;

pub use control::{Direction, DirectionStats, Handle, Stats};
pub use profile::{GilbertElliott, Loss, Profile, SpecError};
pub use relay::{Proxy, ProxyConfig, ProxyError};
pub use tcp::{TcpProxy, TcpProxyConfig};
