//! Headless WebRTC test participant for huizhen's integration tests.
//!
//! Two layers:
//!
//! * [`SignalingClient`]: a bare WebSocket client for `wss://HOST:PORT/ws` that accepts the
//!   server's self-signed certificate, sends JSON or raw frames, buffers every server message and
//!   records the close code. Use it to test the protocol without WebRTC (bad tokens, malformed
//!   messages, rate limits...).
//! * [`TestPeer`]: a full participant. It joins with a token, answers every `offer` with a
//!   webrtc-rs peer connection (loopback UDP only), publishes synthetic Opus/VP8 RTP carrying a
//!   per-peer marker byte, and counts what it receives from each other participant.
//!
//! Synthetic media format (so receivers can tell which publisher a packet came from):
//!
//! * audio: every 20 ms one packet, 48 kHz clock (timestamp += 960), payload =
//!   `[marker; 4] ++ counter.to_be_bytes() ++ filler` (100 bytes in total).
//! * video (VP8): 15 frames per second, timestamp += 6000, two packets per frame, RTP marker bit
//!   on the second. First packet: VP8 payload descriptor `0x10` (S=1, partition 0), then a
//!   10-byte VP8 *keyframe* header (frame tag with P=0, start code `9d 01 2a`, 320x240), then
//!   `[marker; 4] ++ counter.to_be_bytes()`, then filler. Second packet: descriptor `0x00`, then
//!   `[marker; 4] ++ counter.to_be_bytes()`, then filler. Every frame is a keyframe.
//! * a simulcast camera ([`TestPeer::join_simulcast`], simulcast.rs): three layers of the same
//!   shape with their own sizes, each carrying its own marker ([`layer_marker`]).
//! * The filler never contains four identical bytes in a row, so the first run of four identical
//!   bytes in a payload is the marker. The marker must not be `0x00`.
//!
//! Nothing here goes to non-loopback addresses: the ICE agent gathers only IPv4 loopback host
//! candidates and mDNS is disabled.
#![allow(dead_code, unused_imports)]

mod events;
mod media;
mod participant;
mod rtc;
mod signaling;
mod simulcast;
mod tls;

pub use events::*;
pub use media::*;
pub use participant::*;
pub use rtc::*;
pub use signaling::*;
pub use simulcast::*;
pub use tls::*;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::bundle_policy::RTCBundlePolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

/// Bound on WebSocket connect (TCP + TLS + upgrade).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on writing one WebSocket frame.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for `joined`/`resumed` (or an error) after `join`/`resume`.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for ICE gathering before sending an answer (the server needs no candidates).
pub(crate) const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on waiting for the server to close the socket after `leave`.
pub(crate) const LEAVE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most server messages kept unconsumed per buffer (oldest dropped beyond that).
pub(crate) const MAX_QUEUED_MESSAGES: usize = 4096;
/// Most server messages kept in the history.
pub(crate) const MAX_HISTORY: usize = 4096;
/// Most offer-handling errors remembered.
pub(crate) const MAX_OFFER_ERRORS: usize = 64;
/// Capacity of the queue between the socket reader and the offer worker.
pub(crate) const OFFER_QUEUE: usize = 64;
/// Capacity of the queue between callers and the socket writer.
pub(crate) const WRITER_QUEUE: usize = 256;
/// Polling period of the `wait_*` helpers that watch counters.
pub(crate) const POLL_PERIOD: Duration = Duration::from_millis(20);

/// Synthetic audio payload size in bytes (an Opus frame of a plausible size).
pub(crate) const AUDIO_PAYLOAD_BYTES: usize = 100;
/// Synthetic VP8 packet payload size in bytes.
pub(crate) const VIDEO_PAYLOAD_BYTES: usize = 1000;
/// A VP8 keyframe header: 3-byte frame tag (P=0 keyframe, version 0, show_frame=1), start code,
/// 320x240. Contains no run of four identical bytes.
pub(crate) const VP8_KEYFRAME_HEADER: [u8; 10] =
    [0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
