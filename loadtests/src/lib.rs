//! huizhen-loadtests: a load generator for huizhen.
//!
//! Starts synthetic participants against a running server over the real protocol (WSS
//! signaling, ICE, DTLS-SRTP over UDP), each a str0m peer connection on its own socket. They
//! publish Opus-sized audio and VP8-sized video whose payloads carry the publisher, a sequence
//! number and the send time, so receivers compute loss, reordering and latency on the one clock
//! of this process. Server-side figures (packets per second, CPU, memory) come from the
//! server's Prometheus endpoint and, given its process id, from /proc. The same participants can
//! be pointed at a Janus VideoRoom instead, for a side-by-side comparison.
//!
//! # Layout
//! - [`scenario`]: the named presets and what each one starts.
//! - [`peer`]: one synthetic participant, and the media every publisher sends.
//! - [`janus`]: the same participants in a Janus VideoRoom, for the side-by-side benchmark.
//! - [`payload`]: the stamped media payload.
//! - [`stats`]: measurements and the report.
//! - [`baseline`]: the limit: a bare UDP relay, with and without the cipher cost of SRTP.
//! - [`api`], [`tls`]: the server's HTTP API and metrics, TLS for development servers.

pub mod api;
pub mod baseline;
pub mod janus;
pub mod payload;
pub mod peer;
pub mod scenario;
pub mod stats;
pub mod tls;

pub use scenario::{KneeLimits, RunConfig, Scenario, Target, find_knee, run};
