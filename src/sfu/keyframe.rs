//! Codec-level peeks into RTP payloads: does this packet start a keyframe?
//!
//! A subscriber that starts (or restarts) mid-stream can only decode from a keyframe, so the
//! forwarder holds video back until one begins. Only the first bytes are read; nothing is copied.

/// The video codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// True when `payload` is the first RTP packet of a keyframe.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
    }
}

/// RFC 7741 §4.2 payload descriptor, then the VP8 frame header whose P bit is 0 on keyframes.
fn vp8_starts_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits, the M bit says which.
            let Some(&pid) = p.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// RFC 6184: a single IDR/SPS NAL unit, a STAP-A aggregating one, or the first FU-A fragment of one.
fn h264_starts_keyframe(p: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&header) = p.first() else {
        return false;
    };
    match header & 0x1f {
        t @ 1..=23 => t == IDR || t == SPS,
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                let Some(&nal) = p.get(i + 2) else {
                    return false;
                };
                if matches!(nal & 0x1f, IDR | SPS) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, IDR | SPS)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8() {
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x10, 0x02]));
        assert!(
            !starts_keyframe(VideoCodec::Vp8, &[0x10, 0x11]),
            "P bit set: interframe"
        );
        assert!(
            !starts_keyframe(VideoCodec::Vp8, &[0x00, 0x10]),
            "not a frame start"
        );
        // Extended descriptor with a 15-bit picture id.
        assert!(starts_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0x80, 0x81, 0x23, 0x50]
        ));
        assert!(
            !starts_keyframe(VideoCodec::Vp8, &[0x90, 0x80, 0x81]),
            "truncated"
        );
        assert!(!starts_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn h264() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A holding SPS.
        assert!(starts_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42]
        ));
        // STAP-A with a truncated size field.
        assert!(!starts_keyframe(VideoCodec::H264, &[0x78, 0x00]));
        // FU-A start of IDR, and a middle fragment.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
    }
}
