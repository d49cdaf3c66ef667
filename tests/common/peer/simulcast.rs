//! A test peer's camera in simulcast layers, as a browser sends it when the server's offer asks
//! (docs/SIMULCAST.md, section 4).
//!
//! webrtc-rs sends simulcast as an answerer with one track per layer, each made with its rid
//! (`q`, `h`, `f`, the rids the server offers, lowest first): the first is added to the peer
//! connection, the others to its sender as further encodings, before anything is sent. Each
//! encoding gets its own SSRC and carries its rid in a header extension, which must be
//! registered (it is not among webrtc-rs's defaults): without it the answer has no rid
//! extension and the server can map no layer. webrtc-rs's answer repeats a simulcast m-line's
//! `a=rid` and `a=simulcast` lines (it echoes the offer's rids and then its own encodings'), so
//! answers are cleaned of repeated lines before they are sent.
//!
//! Each layer is a publish loop of its own, with its own sequence and timestamp origins (as a
//! browser's encoders have), its own size, and its own marker byte ([`layer_marker`]), so a
//! receiver can tell which layer it is sent now. Every frame is a VP8 keyframe, as in the
//! single-layer format (mod.rs), so the server can switch layers at any frame.

#![allow(dead_code)]

use super::*;

use webrtc::api::media_engine::MediaEngine;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::sdp::extmap::{SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};

/// The rids the server offers for a camera, lowest first.
pub const LAYER_RIDS: [&str; 3] = ["q", "h", "f"];

/// The shape of one layer's frames: 15 frames a second of `packets` packets, each of
/// `payload_bytes` bytes. About 35, 130 and 360 kbit/s with headers: a 300 kbit/s link
/// carries the lowest two and not the top one, and an unimpaired one climbs to the top soon.
#[derive(Debug, Clone, Copy)]
pub struct LayerShape {
    pub packets: u32,
    pub payload_bytes: usize,
}

/// Each layer's shape, lowest first.
pub const LAYER_SHAPES: [LayerShape; 3] = [
    LayerShape {
        packets: 1,
        payload_bytes: 250,
    },
    LayerShape {
        packets: 2,
        payload_bytes: 500,
    },
    LayerShape {
        packets: 4,
        payload_bytes: 700,
    },
];

/// The marker byte of a publisher's layer `layer` (0 = `q`): the publisher's marker for the
/// lowest, then one more per layer. Give simulcast publishers markers that leave room for it.
pub fn layer_marker(marker: u8, layer: usize) -> u8 {
    marker.wrapping_add(layer as u8)
}

/// The header extensions a simulcast sender needs on video: mid and rid (and the repair rid
/// of retransmissions), which the server maps layers by.
pub(crate) fn register_simulcast_extensions(media: &mut MediaEngine) -> Result<()> {
    for uri in [
        SDES_MID_URI,
        SDES_RTP_STREAM_ID_URI,
        SDES_REPAIR_RTP_STREAM_ID_URI,
    ] {
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RTPCodecType::Video,
                Some(RTCRtpTransceiverDirection::Sendonly),
            )
            .with_context(|| format!("registering header extension {uri}"))?;
    }
    Ok(())
}

/// Adds the camera as three VP8 encodings of one sender (rids [`LAYER_RIDS`]), before the first
/// offer; their tracks go to `shared.layers`, for [`TestPeer::start_media`].
pub(crate) async fn add_simulcast_camera(
    pc: &Arc<RTCPeerConnection>,
    shared: &Arc<Shared>,
    stream_id: &str,
) -> Result<()> {
    let tracks: Vec<Arc<TrackLocalStaticRTP>> = LAYER_RIDS
        .iter()
        .map(|rid| {
            Arc::new(TrackLocalStaticRTP::new_with_rid(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    ..Default::default()
                },
                "video".to_owned(),
                (*rid).to_owned(),
                stream_id.to_owned(),
            ))
        })
        .collect();
    let sender = pc
        .add_track(Arc::clone(&tracks[0]) as Arc<dyn TrackLocal + Send + Sync>)
        .await
        .context("adding the camera's lowest layer")?;
    for track in &tracks[1..] {
        sender
            .add_encoding(Arc::clone(track) as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .context("adding a camera layer")?;
    }
    let t = tokio::spawn(drain_sender_rtcp(sender, Arc::clone(shared), true));
    shared.register_task(t.abort_handle());
    *lock(&shared.layers) = tracks;
    Ok(())
}

/// `sdp` without repeated `a=rid:` and `a=simulcast:` lines within an m-section (webrtc-rs
/// writes them twice for a sender with several encodings).
pub fn dedupe_simulcast_lines(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut seen: HashSet<&str> = HashSet::new();
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.starts_with("m=") {
            seen.clear();
        } else if (body.starts_with("a=rid:") || body.starts_with("a=simulcast:"))
            && !seen.insert(body)
        {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// A layer's VP8 payload: `first` begins a keyframe (descriptor S=1 and a keyframe header),
/// then the layer's marker and the counter, then filler up to `len` bytes.
pub fn layer_payload(marker: u8, counter: u32, first: bool, len: usize) -> Bytes {
    let mut buf = Vec::with_capacity(len);
    if first {
        buf.push(0x10);
        buf.extend_from_slice(&VP8_KEYFRAME_HEADER);
    } else {
        buf.push(0x00);
    }
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, len);
    Bytes::from(buf)
}

/// Sends layer `layer` of the camera for ever: [`LAYER_SHAPES`]'s frames at 15 per second.
pub(crate) async fn publish_layer(
    track: Arc<TrackLocalStaticRTP>,
    marker: u8,
    layer: usize,
    shared: Arc<Shared>,
) {
    let shape = LAYER_SHAPES[layer];
    let marker = layer_marker(marker, layer);
    let start = start_value(marker).rotate_left(11 + layer as u32);
    let mut seq = start as u16;
    let mut timestamp = start.rotate_left(3);
    let mut counter: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_micros(66_667));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for i in 0..shape.packets {
            counter = counter.wrapping_add(1);
            let pkt = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: i + 1 == shape.packets,
                    sequence_number: seq,
                    timestamp,
                    ..Default::default()
                },
                payload: layer_payload(marker, counter, i == 0, shape.payload_bytes),
            };
            write_packet(&track, &pkt, &shared, true).await;
            seq = seq.wrapping_add(1);
        }
        timestamp = timestamp.wrapping_add(6000);
    }
}
