//! Per-subscriber rewriting of one forwarded stream.
//!
//! A subscriber's stream starts where the subscriber joined, not where the publisher started:
//! sequence numbers are rebased so the subscriber sees a contiguous stream from a small number
//! (its SRTP rollover counter starts at zero, RFC 3711 §3.3.1), and video waits for a keyframe.
//!
//! A simulcast producer sends the same camera in up to three layers, each an RTP stream with
//! its own sequence numbers, timestamp origin and VP8 picture ids. A subscriber gets one layer
//! at a time on its one outgoing stream ([`LayerSwitch`]): a switch happens only at a keyframe
//! of the target layer, sequence numbers continue from the last one sent, the RTP timestamp is
//! offset so time runs on, and the VP8 PictureID / TL0PICIDX / KEYIDX continue (patched by
//! str0m while it serialises the packet, so the payload is never copied).

use std::time::Instant;

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use super::keyframe::{VideoCodec, starts_keyframe};

/// Where outgoing sequence numbers start; small so the SRTP ROC stays 0 for a long while.
const FIRST_OUT_SEQ: u64 = 1;
/// A jump larger than this means the publisher's stream restarted: rebase.
const MAX_SEQ_JUMP: u64 = 3000;

/// What to do with one incoming packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with this (extended) sequence number.
    Forward(u64),
    /// Hold back: video is waiting for a keyframe. The subscriber needs one requested.
    WaitKeyframe,
    /// Older than the start of this subscriber's stream, or a duplicate.
    Drop,
}

#[derive(Debug)]
pub struct Forwarder {
    video: bool,
    /// (first incoming seq, outgoing seq it maps to), set once forwarding starts.
    base: Option<(u64, u64)>,
    last_out: u64,
}

impl Forwarder {
    /// Audio (`video == false`) needs no keyframe to start.
    pub fn new(video: bool) -> Self {
        Self {
            video,
            base: None,
            last_out: FIRST_OUT_SEQ - 1,
        }
    }

    /// Start over from the next keyframe (publisher restarted, or the subscriber asked).
    pub fn restart(&mut self) {
        self.base = None;
    }

    pub fn waiting(&self) -> bool {
        self.base.is_none()
    }

    /// Starts (again) at `seq`, which must begin a keyframe: numbering continues after the
    /// last sequence number sent. Returns the outgoing number of `seq`.
    fn start_at(&mut self, seq: u64) -> u64 {
        let out = self.last_out + 1;
        self.base = Some((seq, out));
        self.last_out = out;
        out
    }

    /// `codec` is the video codec of this packet (None for audio, or a codec the SFU cannot
    /// inspect, which then starts at once).
    pub fn on_packet(&mut self, seq: u64, codec: Option<VideoCodec>, payload: &[u8]) -> Verdict {
        if let Some((first_in, first_out)) = self.base {
            let expected_in = first_in + (self.last_out - first_out);
            let jumped = seq > expected_in + MAX_SEQ_JUMP || seq + MAX_SEQ_JUMP < first_in;
            if !jumped {
                if seq < first_in {
                    return Verdict::Drop;
                }
                let out = first_out + (seq - first_in);
                self.last_out = self.last_out.max(out);
                return Verdict::Forward(out);
            }
            self.base = None;
        }
        let can_start = match (self.video, codec) {
            (true, Some(codec)) => starts_keyframe(codec, payload),
            _ => true,
        };
        if !can_start {
            return Verdict::WaitKeyframe;
        }
        let out = self.last_out + 1;
        self.base = Some((seq, out));
        self.last_out = out;
        Verdict::Forward(out)
    }
}

/// The rids the server offers for a simulcast camera, lowest resolution first (RFC 8853: the
/// order is the offerer's preference; browsers scale the last one least).
pub const LAYER_RIDS: [&str; 3] = ["q", "h", "f"];

/// A simulcast layer: one of [`LAYER_RIDS`], lowest first (ordered so). A producer without
/// simulcast sends [`Layer::LOW`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Layer(u8);

impl Layer {
    /// Rid `q`, a quarter of the full size.
    pub const LOW: Layer = Layer(0);
    /// Rid `h`, half the full size.
    pub const MEDIUM: Layer = Layer(1);
    /// Rid `f`, full size.
    pub const FULL: Layer = Layer(2);
    pub const ALL: [Layer; 3] = [Layer::LOW, Layer::MEDIUM, Layer::FULL];

    /// The layer a rid names, if it is one of ours.
    pub fn from_rid(rid: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.rid() == rid)
    }

    pub fn rid(self) -> &'static str {
        LAYER_RIDS[usize::from(self.0)]
    }

    /// Its position among [`LAYER_RIDS`] (0..3).
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Its bit in a set of layers (`u8`).
    pub fn bit(self) -> u8 {
        1 << self.0
    }

    /// The highest layer of a non-empty set, the lowest, by bits.
    pub(super) fn highest_of(set: u8) -> Option<Layer> {
        (set != 0).then(|| Layer(7 - set.leading_zeros() as u8))
    }

    pub(super) fn lowest_of(set: u8) -> Option<Layer> {
        (set != 0).then(|| Layer(set.trailing_zeros() as u8))
    }
}

/// RTP clock rate of every video codec the SFU forwards (RFC 7741 §4.1, RFC 6184 §8.1).
const VIDEO_CLOCK_HZ: u128 = 90_000;

/// One incoming packet of a simulcast producer, inspected once for all its subscribers.
#[derive(Debug, Clone, Copy)]
pub struct LayerPacket<'a> {
    pub layer: Layer,
    /// Extended sequence number in the layer's own stream.
    pub seq: u64,
    /// RTP timestamp in the layer's own time base.
    pub ts: u32,
    /// Arrival time: how far time runs on across a switch.
    pub at: Instant,
    /// Whether it begins a keyframe (the only place a subscriber may enter a layer).
    pub keyframe: bool,
    /// The VP8 payload descriptor, for VP8 packets whose descriptor parses.
    pub vp8: Option<&'a Vp8Descriptor>,
    /// Whether the descriptor's PictureID is the 15-bit form (7-bit otherwise).
    pub pid_15_bit: bool,
}

/// What to do with one packet of a simulcast producer for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerVerdict {
    /// Send it with this sequence number, timestamp and VP8 descriptor patch.
    Forward {
        seq: u64,
        ts: u32,
        vp8: Option<Vp8Patch>,
    },
    /// The subscriber waits to enter this layer: ask its publisher for a keyframe on it.
    WaitKeyframe(Layer),
    /// Older than the start of the subscriber's stream in this layer, or a duplicate.
    Drop,
    /// A layer the subscriber is not on (and not entering at this packet): not for it.
    OtherLayer,
}

/// Per-subscriber state of a simulcast consumer, alongside its [`Forwarder`] (which keeps
/// the outgoing sequence numbers; a switch is a restart of it at the new layer's keyframe).
#[derive(Debug, Default)]
pub struct LayerSwitch {
    /// The layer being forwarded; None before the first keyframe.
    current: Option<Layer>,
    /// Added (wrapping) to the current layer's RTP timestamps.
    ts_offset: u32,
    /// The newest timestamp sent and when its packet arrived, to continue from at a switch.
    last_ts: Option<(u32, Instant)>,
    /// Added (modulo each field's width) to the current layer's VP8 fields, and the newest
    /// values sent, to continue from at a switch.
    pid_offset: u16,
    tl0_offset: u8,
    key_offset: u8,
    last_vp8: Option<Vp8Sent>,
}

#[derive(Debug, Clone, Copy)]
struct Vp8Sent {
    pid: Option<u16>,
    tl0: Option<u8>,
    key: Option<u8>,
}

const PID_15_MASK: u16 = 0x7fff;
const PID_7_MASK: u16 = 0x7f;
const KEY_IDX_MASK: u8 = 0x1f;

impl LayerSwitch {
    /// The layer being forwarded, once one is.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// Decides for one packet; `target` is the layer this subscriber is to get, `seq` its
    /// outgoing numbering. The current layer keeps flowing until the target's keyframe comes,
    /// so a switch never leaves a gap in what the subscriber can decode.
    pub fn on_packet(
        &mut self,
        seq: &mut Forwarder,
        target: Layer,
        p: &LayerPacket<'_>,
    ) -> LayerVerdict {
        if !seq.waiting() && self.current == Some(p.layer) {
            // The layer being sent keeps flowing (its keyframes too) until the switch.
            return match seq.on_packet(p.seq, None, &[]) {
                Verdict::Forward(out) => self.rewrite(out, p),
                // Without a codec `on_packet` never waits (a jump rebases at once).
                Verdict::WaitKeyframe => LayerVerdict::WaitKeyframe(p.layer),
                Verdict::Drop => LayerVerdict::Drop,
            };
        }
        if p.layer != target {
            return LayerVerdict::OtherLayer;
        }
        if !p.keyframe {
            return LayerVerdict::WaitKeyframe(target);
        }
        // Entering `target` here: a first start, a switch, or a restart after a block.
        let out = seq.start_at(p.seq);
        self.enter(p);
        self.rewrite(out, p)
    }

    /// New offsets so that `p` continues what was sent before (or passes through unchanged
    /// on the very first start).
    fn enter(&mut self, p: &LayerPacket<'_>) {
        self.current = Some(p.layer);
        if let Some((last_ts, last_at)) = self.last_ts {
            let elapsed = p.at.saturating_duration_since(last_at);
            // Ticks of the 90 kHz clock since the last packet sent; at least one, so time
            // strictly advances into the new layer's first frame.
            let ticks = (elapsed.as_nanos() * VIDEO_CLOCK_HZ / 1_000_000_000).max(1);
            let out_ts = last_ts.wrapping_add(u32::try_from(ticks).unwrap_or(u32::MAX / 2));
            self.ts_offset = out_ts.wrapping_sub(p.ts);
        }
        if let (Some(d), Some(last)) = (p.vp8, self.last_vp8) {
            if let (Some(pid), Some(last_pid)) = (d.picture_id(), last.pid) {
                self.pid_offset = last_pid.wrapping_add(1).wrapping_sub(pid) & PID_15_MASK;
            }
            if let (Some(tl0), Some(last_tl0)) = (d.tl0_pic_idx(), last.tl0) {
                self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
            }
            if let (Some(key), Some(last_key)) = (d.key_idx(), last.key) {
                self.key_offset = last_key.wrapping_add(1).wrapping_sub(key) & KEY_IDX_MASK;
            }
        }
    }

    fn rewrite(&mut self, out_seq: u64, p: &LayerPacket<'_>) -> LayerVerdict {
        let ts = p.ts.wrapping_add(self.ts_offset);
        match self.last_ts {
            // Wrapping comparison: a late packet of an older frame leaves the newest as is.
            Some((last, _)) if (ts.wrapping_sub(last) as i32) < 0 => {}
            _ => self.last_ts = Some((ts, p.at)),
        }
        let vp8 = p.vp8.and_then(|d| self.patch(d, p.pid_15_bit));
        LayerVerdict::Forward {
            seq: out_seq,
            ts,
            vp8,
        }
    }

    /// The descriptor patch for `d` (None when nothing changes), remembering what was sent.
    fn patch(&mut self, d: &Vp8Descriptor, pid_15_bit: bool) -> Option<Vp8Patch> {
        let pid_mask = if pid_15_bit { PID_15_MASK } else { PID_7_MASK };
        let pid = d
            .picture_id()
            .map(|v| v.wrapping_add(self.pid_offset) & pid_mask);
        let tl0 = d.tl0_pic_idx().map(|v| v.wrapping_add(self.tl0_offset));
        let key = d
            .key_idx()
            .map(|v| v.wrapping_add(self.key_offset) & KEY_IDX_MASK);
        self.last_vp8 = Some(Vp8Sent { pid, tl0, key });
        if self.pid_offset == 0 && self.tl0_offset == 0 && self.key_offset == 0 {
            return None;
        }
        let mut b = d.patch();
        if let Some(v) = pid {
            b = b.picture_id(v);
        }
        if let Some(v) = tl0 {
            b = b.tl0_pic_idx(v);
        }
        if let Some(v) = key {
            b = b.key_idx(v);
        }
        // Every value was taken modulo its field's width, so this cannot fail; if it did, the
        // packet goes out unpatched rather than not at all.
        b.build().ok()
    }
}

/// Whether a VP8 payload's PictureID (if any) is the 15-bit form (RFC 7741 §4.2: the M bit).
pub fn vp8_pid_is_15_bit(payload: &[u8]) -> bool {
    matches!(payload, [x, i, m, ..] if x & 0x80 != 0 && i & 0x80 != 0 && m & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VP8: Option<VideoCodec> = Some(VideoCodec::Vp8);
    const KEY: &[u8] = &[0x10, 0x10];
    const DELTA: &[u8] = &[0x10, 0x11];
    const MIDDLE: &[u8] = &[0x00, 0x00];

    #[test]
    fn audio_starts_at_once_and_is_rebased() {
        let mut f = Forwarder::new(false);
        assert_eq!(f.on_packet(70_000, None, b"x"), Verdict::Forward(1));
        assert_eq!(f.on_packet(70_001, None, b"x"), Verdict::Forward(2));
        assert_eq!(
            f.on_packet(70_003, None, b"x"),
            Verdict::Forward(4),
            "gaps are kept"
        );
        assert_eq!(
            f.on_packet(70_002, None, b"x"),
            Verdict::Forward(3),
            "late packets keep their slot"
        );
        assert_eq!(
            f.on_packet(69_999, None, b"x"),
            Verdict::Drop,
            "before the start"
        );
    }

    #[test]
    fn video_waits_for_keyframe() {
        let mut f = Forwarder::new(true);
        assert_eq!(f.on_packet(10, VP8, DELTA), Verdict::WaitKeyframe);
        assert_eq!(f.on_packet(11, VP8, MIDDLE), Verdict::WaitKeyframe);
        assert_eq!(f.on_packet(12, VP8, KEY), Verdict::Forward(1));
        assert_eq!(f.on_packet(13, VP8, MIDDLE), Verdict::Forward(2));
    }

    #[test]
    fn publisher_restart_rebases_after_a_keyframe() {
        let mut f = Forwarder::new(true);
        assert_eq!(f.on_packet(50_000, VP8, KEY), Verdict::Forward(1));
        assert_eq!(f.on_packet(50_001, VP8, MIDDLE), Verdict::Forward(2));
        assert_eq!(f.on_packet(5, VP8, DELTA), Verdict::WaitKeyframe);
        assert_eq!(
            f.on_packet(6, VP8, KEY),
            Verdict::Forward(3),
            "continues after the last sent"
        );
        assert_eq!(f.on_packet(7, VP8, MIDDLE), Verdict::Forward(4));
    }

    mod layers {
        use std::time::{Duration, Instant};

        use str0m::rtp::Vp8Descriptor;

        use super::super::*;

        /// A VP8 payload with a 15-bit PictureID, TL0PICIDX and KEYIDX (RFC 7741 §4.2).
        fn vp8(pid: u16, tl0: u8, key: u8, keyframe: bool) -> Vec<u8> {
            vec![
                0x90,
                0xf0,
                0x80 | (pid >> 8) as u8,
                pid as u8,
                tl0,
                key & 0x1f,
                if keyframe { 0x10 } else { 0x11 },
                0,
                0,
            ]
        }

        /// A VP8 payload with a 7-bit PictureID only.
        fn vp8_short(pid: u8, keyframe: bool) -> Vec<u8> {
            vec![
                0x90,
                0x80,
                pid & 0x7f,
                if keyframe { 0x10 } else { 0x11 },
                0,
            ]
        }

        struct Sub {
            seq: Forwarder,
            layers: LayerSwitch,
        }

        impl Sub {
            fn new() -> Self {
                Self {
                    seq: Forwarder::new(true),
                    layers: LayerSwitch::default(),
                }
            }

            fn feed(
                &mut self,
                target: Layer,
                layer: Layer,
                seq: u64,
                ts: u32,
                at: Instant,
                payload: &[u8],
            ) -> LayerVerdict {
                let d = Vp8Descriptor::parse(payload).ok();
                let p = LayerPacket {
                    layer,
                    seq,
                    ts,
                    at,
                    keyframe: starts_keyframe(VideoCodec::Vp8, payload),
                    vp8: d.as_ref(),
                    pid_15_bit: vp8_pid_is_15_bit(payload),
                };
                self.layers.on_packet(&mut self.seq, target, &p)
            }
        }

        fn patch_of(payload: &[u8], pid: u16, tl0: u8, key: u8) -> Option<Vp8Patch> {
            let d = Vp8Descriptor::parse(payload).unwrap();
            Some(
                d.patch()
                    .picture_id(pid)
                    .tl0_pic_idx(tl0)
                    .key_idx(key)
                    .build()
                    .unwrap(),
            )
        }

        #[test]
        fn only_the_target_layer_starts_and_only_on_a_keyframe() {
            let t0 = Instant::now();
            let mut s = Sub::new();
            assert_eq!(
                s.feed(Layer(1), Layer(0), 100, 1000, t0, &vp8(10, 1, 1, true)),
                LayerVerdict::OtherLayer,
                "a keyframe of another layer is not for it"
            );
            assert_eq!(
                s.feed(Layer(1), Layer(1), 500, 9000, t0, &vp8(300, 5, 3, false)),
                LayerVerdict::WaitKeyframe(Layer(1))
            );
            // The first start passes timestamps and VP8 fields through unchanged.
            assert_eq!(
                s.feed(Layer(1), Layer(1), 501, 9000, t0, &vp8(301, 6, 3, true)),
                LayerVerdict::Forward {
                    seq: 1,
                    ts: 9000,
                    vp8: None
                }
            );
            assert_eq!(
                s.feed(Layer(1), Layer(1), 502, 12_000, t0, &vp8(302, 6, 3, false)),
                LayerVerdict::Forward {
                    seq: 2,
                    ts: 12_000,
                    vp8: None
                }
            );
            assert_eq!(s.layers.current(), Some(Layer(1)));
        }

        #[test]
        fn a_switch_waits_for_the_new_layers_keyframe_and_continues_every_field() {
            let t0 = Instant::now();
            let mut s = Sub::new();
            // On layer 2 (f): seq 7000.., ts 50_000.., pid 20_000.., tl0 200.., keyidx 30.
            let key_f = vp8(20_000, 200, 30, true);
            assert!(matches!(
                s.feed(Layer(2), Layer(2), 7000, 50_000, t0, &key_f),
                LayerVerdict::Forward { seq: 1, .. }
            ));
            let t1 = t0 + Duration::from_millis(33);
            assert!(matches!(
                s.feed(
                    Layer(2),
                    Layer(2),
                    7001,
                    53_000,
                    t1,
                    &vp8(20_001, 201, 30, false)
                ),
                LayerVerdict::Forward {
                    seq: 2,
                    ts: 53_000,
                    vp8: None
                }
            ));
            // Target now layer 0 (q). Its delta frames wait (a keyframe is asked for); layer 2
            // keeps flowing meanwhile, so the subscriber never freezes.
            assert_eq!(
                s.feed(Layer(0), Layer(0), 100, 7, t1, &vp8(5, 9, 2, false)),
                LayerVerdict::WaitKeyframe(Layer(0))
            );
            let t2 = t1 + Duration::from_millis(33);
            assert!(matches!(
                s.feed(
                    Layer(0),
                    Layer(2),
                    7002,
                    56_000,
                    t2,
                    &vp8(20_002, 202, 30, false)
                ),
                LayerVerdict::Forward {
                    seq: 3,
                    ts: 56_000,
                    ..
                }
            ));
            // Layer 0's keyframe, 10 ms after the last packet sent: the switch.
            let t3 = t2 + Duration::from_millis(10);
            let key_q = vp8(6, 10, 2, true);
            assert_eq!(
                s.feed(Layer(0), Layer(0), 101, 3007, t3, &key_q),
                LayerVerdict::Forward {
                    seq: 4,
                    ts: 56_000 + 900,
                    vp8: patch_of(&key_q, 20_003, 203, 31),
                },
                "seq, ts, PictureID, TL0PICIDX and KEYIDX all continue"
            );
            assert_eq!(s.layers.current(), Some(Layer(0)));
            // Later packets of the new layer keep the same offsets (KEYIDX wraps at 5 bits).
            let next = vp8(7, 10, 3, false);
            assert_eq!(
                s.feed(Layer(0), Layer(0), 102, 6007, t3, &next),
                LayerVerdict::Forward {
                    seq: 5,
                    ts: 56_900 + 3000,
                    vp8: patch_of(&next, 20_004, 203, 0),
                }
            );
            // Late packets of the old layer are no longer this subscriber's; packets of the
            // new layer older than its switch keyframe are dropped.
            assert_eq!(
                s.feed(
                    Layer(0),
                    Layer(2),
                    7003,
                    59_000,
                    t3,
                    &vp8(20_003, 203, 30, false)
                ),
                LayerVerdict::OtherLayer
            );
            assert_eq!(
                s.feed(Layer(0), Layer(0), 100, 7, t3, &vp8(5, 9, 2, false)),
                LayerVerdict::Drop
            );
        }

        #[test]
        fn timestamps_stay_monotonic_across_a_switch_at_the_same_instant() {
            let t0 = Instant::now();
            let mut s = Sub::new();
            s.feed(
                Layer(0),
                Layer(0),
                1,
                4_000_000_000,
                t0,
                &vp8(1, 1, 1, true),
            );
            // Layer 1's clock is far behind (its own random origin), and its keyframe arrives
            // in the same instant: time still advances, by one tick.
            let LayerVerdict::Forward { ts, seq, .. } =
                s.feed(Layer(1), Layer(1), 9, 10, t0, &vp8(1, 1, 1, true))
            else {
                panic!("the keyframe switches");
            };
            assert_eq!((seq, ts), (2, 4_000_000_001));
            // And wraps like RTP time.
            let LayerVerdict::Forward { ts, .. } = s.feed(
                Layer(1),
                Layer(1),
                10,
                10 + 300_000_000,
                t0,
                &vp8(2, 1, 1, false),
            ) else {
                panic!()
            };
            assert_eq!(ts, 4_000_000_001u32.wrapping_add(300_000_000));
        }

        #[test]
        fn a_seven_bit_picture_id_keeps_its_width() {
            let t0 = Instant::now();
            let mut s = Sub::new();
            s.feed(Layer(0), Layer(0), 1, 0, t0, &vp8_short(120, true));
            s.feed(Layer(0), Layer(0), 2, 3000, t0, &vp8_short(127, false));
            let key = vp8_short(40, true);
            let d = Vp8Descriptor::parse(&key).unwrap();
            assert_eq!(
                s.feed(Layer(1), Layer(1), 50, 0, t0, &key),
                LayerVerdict::Forward {
                    seq: 3,
                    ts: 3001,
                    // 127 + 1 wraps to 0 in seven bits.
                    vp8: Some(d.patch().picture_id(0).build().unwrap()),
                }
            );
        }

        #[test]
        fn a_restart_reenters_at_a_keyframe_and_continues() {
            let t0 = Instant::now();
            let mut s = Sub::new();
            s.feed(Layer(1), Layer(1), 10, 100, t0, &vp8(1, 1, 1, true));
            s.seq.restart();
            assert_eq!(
                s.feed(Layer(1), Layer(1), 11, 3100, t0, &vp8(2, 1, 1, false)),
                LayerVerdict::WaitKeyframe(Layer(1)),
                "after a block the subscriber waits for a keyframe"
            );
            assert!(matches!(
                s.feed(Layer(1), Layer(1), 12, 6100, t0, &vp8(3, 2, 1, true)),
                LayerVerdict::Forward { seq: 2, .. }
            ));
        }

        #[test]
        fn h264_and_undescribed_packets_get_seq_and_ts_only() {
            let t0 = Instant::now();
            let mut seq = Forwarder::new(true);
            let mut l = LayerSwitch::default();
            let p = |layer, seq, ts, keyframe| LayerPacket {
                layer,
                seq,
                ts,
                at: t0,
                keyframe,
                vp8: None,
                pid_15_bit: false,
            };
            assert_eq!(
                l.on_packet(&mut seq, Layer(0), &p(Layer(0), 5, 100, true)),
                LayerVerdict::Forward {
                    seq: 1,
                    ts: 100,
                    vp8: None
                }
            );
            assert_eq!(
                l.on_packet(&mut seq, Layer(2), &p(Layer(2), 900, 7, true)),
                LayerVerdict::Forward {
                    seq: 2,
                    ts: 101,
                    vp8: None
                }
            );
        }
    }
}
