//! The synthetic media payload: who sent it, which packet of theirs it is, and when, so a
//! receiver in the same process computes loss, reordering and latency on one clock.
//!
//! Layout (big-endian), after a 2-byte VP8 prefix on video packets:
//! `b"HZ"`, kind (0 audio, 1 video), publisher (u32), sequence (u64), send time (u64, ns since
//! the run's epoch), then filler up to the packet size.

pub const HEADER_LEN: usize = 2 + 1 + 4 + 8 + 8;
const MAGIC: &[u8; 2] = b"HZ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub kind: Kind,
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// A VP8 payload descriptor (RFC 7741) plus the first byte of the frame: the SFU looks at these
/// to find keyframes, so they must be right.
pub fn vp8_prefix(first_of_frame: bool, keyframe: bool) -> [u8; 2] {
    match (first_of_frame, keyframe) {
        (true, true) => [0x10, 0x10],
        (true, false) => [0x10, 0x11],
        (false, _) => [0x00, 0x00],
    }
}

pub fn encode(stamp: Stamp, prefix: Option<[u8; 2]>, total_len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(total_len.max(HEADER_LEN + 2));
    if let Some(p) = prefix {
        buf.extend_from_slice(&p);
    }
    buf.extend_from_slice(MAGIC);
    buf.push(match stamp.kind {
        Kind::Audio => 0,
        Kind::Video => 1,
    });
    buf.extend_from_slice(&stamp.publisher.to_be_bytes());
    buf.extend_from_slice(&stamp.seq.to_be_bytes());
    buf.extend_from_slice(&stamp.sent_ns.to_be_bytes());
    buf.resize(total_len.max(buf.len()), 0xA5);
    buf
}

pub fn decode(payload: &[u8]) -> Option<Stamp> {
    // Audio has no prefix; video has two bytes of it.
    [0usize, 2].into_iter().find_map(|off| {
        let p = payload.get(off..off + HEADER_LEN)?;
        if &p[..2] != MAGIC {
            return None;
        }
        let kind = match p[2] {
            0 => Kind::Audio,
            1 => Kind::Video,
            _ => return None,
        };
        Some(Stamp {
            kind,
            publisher: u32::from_be_bytes(p[3..7].try_into().ok()?),
            seq: u64::from_be_bytes(p[7..15].try_into().ok()?),
            sent_ns: u64::from_be_bytes(p[15..23].try_into().ok()?),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_prefix() {
        let s = Stamp {
            kind: Kind::Video,
            publisher: 7,
            seq: 1 << 40,
            sent_ns: 123_456_789,
        };
        let v = encode(s, Some(vp8_prefix(true, true)), 1000);
        assert_eq!(v.len(), 1000);
        assert_eq!(decode(&v), Some(s));
        let a = Stamp {
            kind: Kind::Audio,
            ..s
        };
        assert_eq!(decode(&encode(a, None, 100)), Some(a));
        assert_eq!(decode(b"junk"), None);
    }
}
