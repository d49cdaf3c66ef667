//! What a test peer sends and counts: the synthetic media format, statistics, offered tracks.

#![allow(dead_code)]

use super::*;

/// What this peer received on one (participant, kind) track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedStats {
    /// RTP packets read.
    pub packets: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Publisher marker bytes found in payloads (one entry if the SFU routed correctly).
    pub markers_seen: BTreeSet<u8>,
    /// Packets in which no marker was found.
    pub unmarked: u64,
    /// The marker of the latest marked packet (which simulcast layer arrives now, see
    /// [`layer_marker`]).
    pub last_marker: Option<u8>,
    /// Highest sender counter seen (packets carry a per-publisher, per-kind counter).
    pub max_counter: u32,
    /// The track's media is over: its m-line was stopped/removed in a later offer, or every
    /// reader of it ended (receiver stopped, peer connection closed).
    pub ended: bool,
    /// A later offer stopped the m-line (port 0 or inactive) or dropped it from `tracks`.
    pub mline_stopped: bool,
    /// Why the latest reader of this track ended (webrtc-rs's error), if one did.
    pub end_reason: Option<String>,
    /// How many times `on_track` fired for this track.
    pub tracks_started: u32,
    /// Read loops still running for this track (0 once webrtc-rs ended them).
    pub active_readers: u32,
    /// MID of the m-line, once `on_track` fired.
    pub mid: Option<String>,
    /// Negotiated codec, e.g. `audio/opus`, `video/VP8`.
    pub mime_type: Option<String>,
}

impl ReceivedStats {
    /// True when packets arrived and every marked one carried `marker`.
    pub fn only_marker(&self, marker: u8) -> bool {
        self.markers_seen.len() == 1 && self.markers_seen.contains(&marker)
    }
}

/// RTCP received for this peer's own published tracks (feedback from the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpStats {
    pub audio_packets: u64,
    pub video_packets: u64,
    pub pli: u64,
    pub fir: u64,
    pub nack: u64,
}

/// (participant_id, kind)
pub(crate) type TrackKey = (String, String);

/// One entry of an offer's `tracks` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTrack {
    pub mid: String,
    pub participant_id: String,
    pub kind: String,
}

/// Finds the publisher marker: the first run of four identical bytes followed by a 4-byte
/// big-endian counter.
pub fn find_marker(payload: &[u8]) -> Option<(u8, u32)> {
    payload
        .windows(8)
        .find(|w| w[0] == w[1] && w[1] == w[2] && w[2] == w[3])
        .map(|w| (w[0], u32::from_be_bytes([w[4], w[5], w[6], w[7]])))
}

/// Filler bytes with no run of four identical bytes (consecutive bytes always differ).
pub(crate) fn push_filler(buf: &mut Vec<u8>, total_len: usize) {
    let mut i: u8 = 0;
    while buf.len() < total_len {
        buf.push(1 + i % 200);
        i = i.wrapping_add(1);
    }
}

pub(crate) fn push_marker(buf: &mut Vec<u8>, marker: u8, counter: u32) {
    buf.extend_from_slice(&[marker; 4]);
    buf.extend_from_slice(&counter.to_be_bytes());
}

/// Synthetic Opus payload.
pub fn audio_payload(marker: u8, counter: u32) -> Bytes {
    let mut buf = Vec::with_capacity(AUDIO_PAYLOAD_BYTES);
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, AUDIO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// Synthetic VP8 payload: `first` is the first packet of a (key)frame.
pub fn video_payload(marker: u8, counter: u32, first: bool) -> Bytes {
    let mut buf = Vec::with_capacity(VIDEO_PAYLOAD_BYTES);
    if first {
        buf.push(0x10); // X=0 R=0 N=0 S=1 PID=0
        buf.extend_from_slice(&VP8_KEYFRAME_HEADER);
    } else {
        buf.push(0x00); // continuation packet
    }
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, VIDEO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// Synthetic H.264 payload: a single NAL unit, an IDR slice (type 5) on the first packet of a
/// frame and a non-IDR slice (type 1) on the other, so every frame starts a keyframe.
pub fn h264_payload(marker: u8, counter: u32, first: bool) -> Bytes {
    let mut buf = Vec::with_capacity(VIDEO_PAYLOAD_BYTES);
    buf.push(if first { 0x65 } else { 0x41 });
    push_marker(&mut buf, marker, counter);
    push_filler(&mut buf, VIDEO_PAYLOAD_BYTES);
    Bytes::from(buf)
}

/// The MIDs of m-lines that an SDP stops (port 0) or makes inactive.
pub(crate) fn stopped_mids(sdp: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut current: Option<(bool, Option<String>)> = None;
    let flush = |cur: &mut Option<(bool, Option<String>)>, out: &mut HashSet<String>| {
        if let Some((true, Some(mid))) = cur.take() {
            out.insert(mid);
        }
    };
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("m=") {
            flush(&mut current, &mut out);
            let port = rest.split_whitespace().nth(1).unwrap_or("");
            current = Some((port == "0", None));
        } else if let Some((stopped, mid)) = current.as_mut() {
            if let Some(m) = line.strip_prefix("a=mid:") {
                *mid = Some(m.trim().to_owned());
            } else if line == "a=inactive" {
                *stopped = true;
            }
        }
    }
    flush(&mut current, &mut out);
    out
}

pub(crate) fn parse_offer_tracks(offer: &Value) -> Result<Vec<OfferedTrack>> {
    let Some(tracks) = offer.get("tracks") else {
        return Ok(Vec::new());
    };
    let arr = tracks.as_array().context("offer.tracks is not an array")?;
    arr.iter()
        .map(|t| {
            let field = |name: &str| -> Result<String> {
                t.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("offer.tracks entry without string {name:?}: {t}"))
            };
            // A shared screen is counted apart from the camera: kind "screen".
            let screen = t.get("source").and_then(Value::as_str) == Some("screen");
            Ok(OfferedTrack {
                mid: field("mid")?,
                participant_id: field("participant_id")?,
                kind: if screen {
                    "screen".to_owned()
                } else {
                    field("kind")?
                },
            })
        })
        .collect()
}
