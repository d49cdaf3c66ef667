//! Redundant audio (RED, RFC 2198) between publishers that send it and subscribers that cannot
//! decode it.
//!
//! The server offers Opus with RED, RED first on the m-line (str0m writes it so), which is what
//! makes Chromium send it: each packet carries the previous Opus frame again before its own, so
//! a packet lost on the publisher's uplink costs nothing, the next one brings it. A subscriber
//! that negotiated RED gets those packets as they came and recovers losses on its own downlink
//! too. A subscriber that did not (a browser without RED, the webrtc-rs client) could not decode
//! them: it gets each packet's primary block as plain Opus, and where the publisher's uplink lost
//! a packet, its redundant copy in its place, so the recovery is done here for it.
//!
//! Parsing is str0m's (`RedDecoder`: bounded, never panics); what is ours is the bookkeeping of
//! which sequence numbers arrived ([`RedTracker`], once per producer) and the mapping of blocks
//! to the packets they stand for ([`unwrap`]).

use arrayvec::ArrayVec;
use str0m::media::Pt;
use str0m::rtp::RedDecoder;

/// How far back a redundant block may stand: as deep as str0m's own receiver recovers (libwebrtc
/// sends one level, the previous packet; deeper patterns such as 1, 3, 5 stay within it).
pub const MAX_DEPTH: u64 = 8;

/// Which recent sequence numbers of one RED-sending producer arrived or were rebuilt, so that a
/// loss is rebuilt once and a late original after its rebuilt copy is not sent twice.
#[derive(Debug, Default, Clone)]
pub struct RedTracker {
    /// The first sequence number seen: nothing before it is missing.
    first: Option<u64>,
    highest: u64,
    /// Bit `i`: `highest - i` arrived or was rebuilt.
    seen: u64,
}

/// One arriving packet, as the tracker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before. Bit `d - 1` of `missing`: `seq - d` has not arrived (`d` from 1 to
    /// [`MAX_DEPTH`]).
    New { missing: u8 },
    /// Seen (or rebuilt from redundancy) already, or too old to tell.
    Seen,
}

impl RedTracker {
    /// Records `seq` (an extended sequence number) as arrived.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        let Some(first) = self.first else {
            self.first = Some(seq);
            self.highest = seq;
            self.seen = 1;
            return Arrival::New { missing: 0 };
        };
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.highest = seq;
        } else if self.highest - seq >= 64 || self.is_seen(seq) {
            return Arrival::Seen;
        }
        self.mark(seq);
        let mut missing = 0u8;
        for d in 1..=MAX_DEPTH {
            let Some(earlier) = seq.checked_sub(d) else {
                break;
            };
            if earlier >= first && self.highest - earlier < 64 && !self.is_seen(earlier) {
                missing |= 1 << (d - 1);
            }
        }
        Arrival::New { missing }
    }

    /// Records `seq` as rebuilt from a later packet's redundancy.
    pub fn rebuilt(&mut self, seq: u64) {
        if seq <= self.highest && self.highest - seq < 64 {
            self.mark(seq);
        }
    }

    fn is_seen(&self, seq: u64) -> bool {
        self.seen & (1 << (self.highest - seq)) != 0
    }

    fn mark(&mut self, seq: u64) {
        self.seen |= 1 << (self.highest - seq);
    }
}

/// An earlier packet rebuilt from a redundant block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt<'a> {
    pub seq: u64,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// A RED packet taken apart for a subscriber without RED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped<'a> {
    /// The primary block: this packet's own Opus frame.
    pub primary: &'a [u8],
    /// Packets the publisher's uplink lost, rebuilt from this packet's redundant blocks, oldest
    /// first.
    pub rebuilt: ArrayVec<Rebuilt<'a>, { MAX_DEPTH as usize }>,
}

/// Why a RED packet cannot be taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    #[error("malformed RED payload")]
    Malformed,
    #[error("RED primary block is not the negotiated codec")]
    OtherCodec,
}

/// Takes apart the RED payload of packet `seq` (RTP time `timestamp`) whose primary must be
/// `primary_pt`. `missing` says which earlier packets did not arrive ([`Arrival::New`]); those a
/// redundant block carries come back in `rebuilt`. A block's distance is its timestamp offset
/// over the closest block's (the previous packet's, as every sender puts it last): Opus frames
/// of one sender keep one duration, so a block at twice the closest offset stands two packets
/// back. Blocks of another codec, or at no whole distance, are skipped.
pub fn unwrap(
    payload: &[u8],
    seq: u64,
    timestamp: u32,
    primary_pt: Pt,
    missing: u8,
) -> Result<Unwrapped<'_>, RedError> {
    let blocks = RedDecoder::decode(payload).map_err(|_| RedError::Malformed)?;
    let (primary, redundant) = blocks.split_last().ok_or(RedError::Malformed)?;
    if primary.pt != *primary_pt {
        return Err(RedError::OtherCodec);
    }
    let mut rebuilt = ArrayVec::new();
    let closest = redundant
        .iter()
        .rev()
        .find(|b| b.pt == primary.pt && b.timestamp_offset > 0)
        .map(|b| b.timestamp_offset);
    if let (Some(closest), true) = (closest, missing != 0) {
        for b in redundant {
            if b.pt != primary.pt || b.timestamp_offset == 0 || b.timestamp_offset % closest != 0 {
                continue;
            }
            let d = u64::from(b.timestamp_offset / closest);
            if d > MAX_DEPTH || missing & (1 << (d - 1)) == 0 || rebuilt.is_full() {
                continue;
            }
            let Some(seq) = seq.checked_sub(d) else {
                continue;
            };
            if rebuilt.iter().any(|r: &Rebuilt| r.seq == seq) {
                continue;
            }
            rebuilt.push(Rebuilt {
                seq,
                timestamp: timestamp.wrapping_sub(b.timestamp_offset),
                payload: b.payload,
            });
        }
        rebuilt.sort_unstable_by_key(|r| r.seq);
    }
    Ok(Unwrapped {
        primary: primary.payload,
        rebuilt,
    })
}

#[cfg(test)]
mod tests {
    use str0m::rtp::{RedEncoder, RedundantBlock};

    use super::*;

    const OPUS: u8 = 111;

    fn red(primary: &[u8], redundant: &[(u32, &[u8])]) -> Vec<u8> {
        let blocks: Vec<RedundantBlock> = redundant
            .iter()
            .map(|(offset, p)| RedundantBlock {
                pt: OPUS,
                timestamp_offset: *offset,
                payload: p.to_vec(),
            })
            .collect();
        RedEncoder::encode(OPUS, primary, &blocks)
    }

    #[test]
    fn tracker_reports_what_is_missing_once() {
        let mut t = RedTracker::default();
        assert_eq!(t.arrive(100), Arrival::New { missing: 0 });
        assert_eq!(t.arrive(101), Arrival::New { missing: 0 });
        // 102 lost.
        assert_eq!(t.arrive(103), Arrival::New { missing: 0b1 });
        t.rebuilt(102);
        // 104 and 105 lost: 106 misses both (and nothing before 100 counts).
        assert_eq!(t.arrive(106), Arrival::New { missing: 0b11 });
        // The late original of a rebuilt packet, a duplicate, a packet far too old.
        assert_eq!(t.arrive(102), Arrival::Seen);
        assert_eq!(t.arrive(106), Arrival::Seen);
        assert_eq!(t.arrive(20), Arrival::Seen);
        // 104 arrives late (reordered, not rebuilt): new, and 105 still missing behind 106.
        assert_eq!(t.arrive(104), Arrival::New { missing: 0 });
        assert_eq!(t.arrive(107), Arrival::New { missing: 0b10 });
    }

    #[test]
    fn tracker_survives_a_long_jump() {
        let mut t = RedTracker::default();
        t.arrive(5);
        assert_eq!(t.arrive(5 + 1000), Arrival::New { missing: 0xff });
        assert_eq!(t.arrive(5), Arrival::Seen);
        // What the jump skipped stays missing (a burst loss looks the same), 1005 arrived.
        assert_eq!(
            t.arrive(1006),
            Arrival::New {
                missing: 0b1111_1110
            }
        );
    }

    #[test]
    fn unwraps_the_primary_and_rebuilds_only_what_is_missing() {
        let p = red(b"now", &[(960, b"before")]);
        let u = unwrap(&p, 50, 96_000, Pt::from(OPUS), 0).unwrap();
        assert_eq!(u.primary, b"now");
        assert!(u.rebuilt.is_empty());

        let u = unwrap(&p, 50, 96_000, Pt::from(OPUS), 0b1).unwrap();
        assert_eq!(
            u.rebuilt.as_slice(),
            &[Rebuilt {
                seq: 49,
                timestamp: 96_000 - 960,
                payload: b"before"
            }]
        );
    }

    #[test]
    fn deeper_levels_stand_at_whole_distances() {
        // Levels 1, 3 and 5 packets back (20 ms frames at 48 kHz), RTP time near its wrap.
        let p = red(b"p", &[(4800, b"five"), (2880, b"three"), (960, b"one")]);
        let u = unwrap(&p, 10, 100, Pt::from(OPUS), 0b1_0101).unwrap();
        let got: Vec<(u64, u32, &[u8])> = u
            .rebuilt
            .iter()
            .map(|r| (r.seq, r.timestamp, r.payload))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 100u32.wrapping_sub(4800), &b"five"[..]),
                (7, 100u32.wrapping_sub(2880), &b"three"[..]),
                (9, 100u32.wrapping_sub(960), &b"one"[..]),
            ]
        );
        // Only what is missing: 3 back arrived.
        let u = unwrap(&p, 10, 100, Pt::from(OPUS), 0b1_0001).unwrap();
        assert_eq!(u.rebuilt.len(), 2);
        // A block at no whole distance from the closest is skipped.
        let p = red(b"p", &[(1500, b"odd"), (960, b"one")]);
        let u = unwrap(&p, 10, 100, Pt::from(OPUS), 0xff).unwrap();
        assert_eq!(u.rebuilt.len(), 1);
        assert_eq!(u.rebuilt[0].payload, b"one");
    }

    #[test]
    fn refuses_malformed_and_foreign_payloads() {
        assert_eq!(
            unwrap(&[], 1, 0, Pt::from(OPUS), 0),
            Err(RedError::Malformed)
        );
        // A redundant header announcing more bytes than follow.
        assert_eq!(
            unwrap(
                &[0x80 | OPUS, 0, 0, 200, OPUS, 1, 2],
                1,
                0,
                Pt::from(OPUS),
                1
            ),
            Err(RedError::Malformed)
        );
        // A header chain with no primary.
        assert_eq!(
            unwrap(&[0x80 | OPUS, 0, 0, 0], 1, 0, Pt::from(OPUS), 1),
            Err(RedError::Malformed)
        );
        let other = RedEncoder::encode(0, b"pcmu", &[]);
        assert_eq!(
            unwrap(&other, 1, 0, Pt::from(OPUS), 0),
            Err(RedError::OtherCodec)
        );
        // Redundancy of another codec is never taken for Opus.
        let mixed = RedEncoder::encode(
            OPUS,
            b"p",
            &[RedundantBlock {
                pt: 0,
                timestamp_offset: 960,
                payload: b"pcmu".to_vec(),
            }],
        );
        let u = unwrap(&mixed, 5, 9600, Pt::from(OPUS), 1).unwrap();
        assert!(u.rebuilt.is_empty());
        assert_eq!(u.primary, b"p");
    }
}
