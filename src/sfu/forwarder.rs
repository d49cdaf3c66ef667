//! Per-subscriber rewriting of one forwarded stream.
//!
//! A subscriber's stream starts where the subscriber joined, not where the publisher started:
//! sequence numbers are rebased so the subscriber sees a contiguous stream from a small number
//! (its SRTP rollover counter starts at zero, RFC 3711 §3.3.1), and video waits for a keyframe.

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
}
