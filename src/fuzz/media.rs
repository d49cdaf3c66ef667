//! The `media_session` target: what a connected peer can send the media core once ICE and
//! DTLS are up, which no fresh transport reaches (a datagram from an address with no ICE
//! check behind it goes nowhere).
//!
//! A session is two str0m clients (a publisher and a subscriber, as browsers would be)
//! connected to a real `Sfu` through in-memory queues on a virtual clock, as in
//! `src/sfu/tests.rs`. Each input then either sends raw datagrams from one client's address
//! (DTLS records, SRTP and SRTCP that fail their authentication, STUN, anything), or has the
//! publisher write RTP packets whose header fields and payloads the input chooses, encrypted
//! properly, so that they pass SRTP and reach the forwarding: keyframe detection, the
//! subscriber's rewriting, NACK and RED bookkeeping. The world then runs 60 ms of virtual time
//! (media forwarded, feedback sent back, timers fired).
//!
//! Connecting costs a DTLS handshake, so one session per thread serves every input, and a new
//! one is made only when the last one failed (a fuzzed DTLS alert can close it) or after
//! [`INPUTS_PER_SESSION`] inputs, which bounds how much history a crash can depend on. A crash
//! that needs that history may not replay alone from its input; the target's seeds and
//! regressions replay through `tests/fuzz_corpus.rs` as every target's do.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::domain::ids::{ParticipantId, RoomId};
use crate::sfu::{Answer, PublishKinds, Sfu, SfuCommand, SfuEvent, TransportOptions};

/// Inputs one session serves before it is made again.
const INPUTS_PER_SESSION: u32 = 2_000;
/// Virtual time a session may take to connect.
const CONNECT_MS: u64 = 5_000;
/// Virtual time each input runs for after what it sent.
const RUN_MS: u64 = 60;
/// The largest datagram an input sends (the server's receive buffer takes more; a path's MTU
/// does not).
const MAX_DATAGRAM: usize = 1_500;
/// At most this many packets or datagrams per input.
const MAX_SENDS: usize = 64;

const SERVER: &str = "127.0.0.1:40000";

struct Peer {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    connected: bool,
    /// RTP packets it received (forwarded from the other).
    received: u64,
    /// Its own m-lines (to send on), from the latest offer.
    audio: Option<Mid>,
    video: Option<Mid>,
}

struct Session {
    sfu: Sfu,
    now: Instant,
    peers: [Peer; 2],
    to_server: VecDeque<(SocketAddr, Vec<u8>)>,
    inputs: u32,
    failed: bool,
}

impl Session {
    /// Two peers connected to a new `Sfu`, both publishing audio and video; `None` if they
    /// do not connect (which would be a bug elsewhere, and is not this target's to find).
    fn connect() -> Option<Self> {
        let now = Instant::now();
        let server: SocketAddr = SERVER.parse().expect("address");
        let mut sfu = Sfu::new(&[server], now);
        let room = RoomId::generate();
        let peers = [2u8, 3].map(|host| {
            let addr = SocketAddr::from(([127, 0, 0, host], 5000));
            // RTP mode: the publisher writes packets, not frames, so an input chooses their
            // header fields.
            let mut rtc = RtcConfig::new()
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_opus(true, true)
                .enable_vp8(true)
                .enable_h264(true)
                .build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
            let id = ParticipantId::generate();
            sfu.handle_command(
                now,
                SfuCommand::AddTransport {
                    room: room.clone(),
                    participant: id.clone(),
                    publish: PublishKinds {
                        audio: true,
                        video: true,
                    },
                    subscribe: true,
                    options: TransportOptions::default(),
                },
            );
            Peer {
                id,
                addr,
                rtc,
                connected: false,
                received: 0,
                audio: None,
                video: None,
            }
        });
        let mut s = Session {
            sfu,
            now,
            peers,
            to_server: VecDeque::new(),
            inputs: 0,
            failed: false,
        };
        for _ in 0..CONNECT_MS {
            s.step();
            if s.failed {
                return None;
            }
            if s.peers.iter().all(|p| p.connected && p.audio.is_some()) {
                // A little longer: SRTP keys in place on both sides, first feedback sent.
                s.run(100);
                return (!s.failed).then_some(s);
            }
        }
        None
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    /// One millisecond: time passes, then every datagram and event moves until all sides are
    /// quiet.
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let server: SocketAddr = SERVER.parse().expect("address");
        for _ in 0..50 {
            let mut moved = false;
            for p in &mut self.peers {
                if p.rtc.handle_input(Input::Timeout(self.now)).is_err() {
                    self.failed = true;
                    return;
                }
                loop {
                    match p.rtc.poll_output() {
                        Ok(Output::Timeout(_)) => break,
                        Ok(Output::Transmit(t)) => {
                            self.to_server.push_back((p.addr, t.contents.to_vec()));
                        }
                        Ok(Output::Event(Event::Connected)) => p.connected = true,
                        Ok(Output::Event(Event::RtpPacket(_))) => p.received += 1,
                        Ok(Output::Event(_)) => {}
                        Err(_) => {
                            self.failed = true;
                            return;
                        }
                    }
                }
            }
            while let Some((from, data)) = self.to_server.pop_front() {
                moved = true;
                self.sfu.handle_receive(self.now, from, &data);
            }
            self.sfu.handle_timeout(self.now);
            while let Some(t) = self.sfu.poll_transmit() {
                let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination) else {
                    continue;
                };
                let Ok(receive) = Receive::new(Protocol::Udp, server, p.addr, &t.contents) else {
                    continue;
                };
                // A client that cannot take what the server sent is the client's business
                // (str0m refuses some inputs with an error); the server must only not crash.
                let _ = p.rtc.handle_input(Input::Receive(self.now, receive));
                moved = true;
            }
            while let Some(event) = self.sfu.poll_event() {
                moved = true;
                match event {
                    SfuEvent::Offer {
                        participant, offer, ..
                    } => self.answer(&participant, offer.offer_id, &offer),
                    SfuEvent::Failed { .. } => self.failed = true,
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The client answers the server's offer as a browser would.
    fn answer(&mut self, participant: &ParticipantId, offer_id: u64, offer: &crate::sfu::OfferOut) {
        let Some(p) = self.peers.iter_mut().find(|p| &p.id == participant) else {
            return;
        };
        let Ok(sdp) = SdpOffer::from_sdp_string(&offer.sdp) else {
            self.failed = true;
            return;
        };
        let Ok(answer) = p.rtc.sdp_api().accept_offer(sdp) else {
            self.failed = true;
            return;
        };
        p.audio = offer.publish_mids.audio.as_deref().map(Mid::from);
        p.video = offer.publish_mids.video.as_deref().map(Mid::from);
        self.sfu.handle_command(
            self.now,
            SfuCommand::Answer {
                participant: participant.clone(),
                offer_id,
                answer: Answer::parse(&answer.to_sdp_string()),
            },
        );
    }

    /// Raw datagrams from a peer's address: `[peer][length: u16 BE][bytes]…`.
    fn datagrams(&mut self, mut data: &[u8]) {
        for _ in 0..MAX_SENDS {
            let [who, hi, lo, rest @ ..] = data else {
                return;
            };
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(MAX_DATAGRAM);
            let (datagram, rest) = rest.split_at(len.min(rest.len()));
            let from = self.peers[usize::from(who & 1)].addr;
            self.sfu.handle_receive(self.now, from, datagram);
            data = rest;
        }
    }

    /// RTP from the publisher, encrypted by its SRTP context:
    /// `[flags][seq: u16][time: u32][length: u8][payload]…`; flags: bit 0 video, bit 1
    /// marker, bits 2–3 which of the m-line's payload types.
    fn packets(&mut self, mut data: &[u8]) {
        let now = self.now;
        let p = &mut self.peers[0];
        for _ in 0..MAX_SENDS {
            let [flags, s0, s1, t0, t1, t2, t3, len, rest @ ..] = data else {
                return;
            };
            let (payload, rest) = rest.split_at(usize::from(*len).min(rest.len()));
            data = rest;
            let (mid, kind) = if flags & 1 == 1 {
                (p.video, MediaKind::Video)
            } else {
                (p.audio, MediaKind::Audio)
            };
            let Some(mid) = mid else { continue };
            let pts: Vec<_> = p
                .rtc
                .codec_config()
                .iter()
                .filter(|c| c.spec().codec.kind() == kind)
                .map(|c| c.pt())
                .collect();
            if pts.is_empty() {
                continue;
            }
            let pt = pts[usize::from((flags >> 2) & 3) % pts.len()];
            let mut api = p.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            let seq = u64::from(u16::from_be_bytes([*s0, *s1]));
            let time = u32::from_be_bytes([*t0, *t1, *t2, *t3]);
            let write = RtpWrite::new(pt, seq.into(), time, now, payload.to_vec());
            tx.write_rtp(write.marker(flags & 2 == 2));
        }
    }
}

/// The target: `[mode][rest]`; mode even: raw datagrams, odd: the publisher's RTP.
pub fn media_session(data: &[u8]) {
    thread_local! {
        static SESSION: std::cell::RefCell<Option<Session>> =
            const { std::cell::RefCell::new(None) };
    }
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    SESSION.with_borrow_mut(|slot| {
        if slot
            .as_ref()
            .is_some_and(|s| s.failed || s.inputs >= INPUTS_PER_SESSION)
        {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Session::connect();
        }
        let Some(s) = slot.as_mut() else {
            return;
        };
        s.inputs += 1;
        if mode & 1 == 0 {
            s.datagrams(rest);
        } else {
            s.packets(rest);
        }
        s.run(RUN_MS);
    });
}

/// Seeds: a DTLS-looking record and an SRTP-looking packet from each peer, and audio and video
/// packets from the publisher (a VP8 keyframe start, an Opus frame).
pub fn seeds() -> Vec<Vec<u8>> {
    let datagram = |who: u8, bytes: &[u8]| {
        let mut d = vec![0, who];
        d.extend((bytes.len() as u16).to_be_bytes());
        d.extend(bytes);
        d
    };
    let packet = |flags: u8, seq: u16, time: u32, payload: &[u8]| {
        let mut d = vec![flags];
        d.extend(seq.to_be_bytes());
        d.extend(time.to_be_bytes());
        d.push(payload.len() as u8);
        d.extend(payload);
        d
    };
    let mut rtp = vec![1];
    rtp.extend(packet(
        1 | 2,
        1,
        90_000,
        &[0x10, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00],
    ));
    rtp.extend(packet(0, 1, 48_000, &[0x78, 0x01, 0x02, 0x03]));
    rtp.extend(packet(1 | 2, 2, 93_000, &[0x11, 0x00, 0x00]));
    vec![
        [
            datagram(0, &[22, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 1, 0]),
            datagram(1, &[0x80, 0xc8, 0, 6, 1, 2, 3, 4]),
        ]
        .concat(),
        rtp,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness connects, and the publisher's packets (the RTP seed) pass SRTP and are
    /// forwarded to the subscriber: the target reaches what it is for.
    #[test]
    fn a_session_connects_and_forwards_what_the_publisher_writes() {
        let mut s = Session::connect().expect("connects");
        let before = s.peers[1].received;
        let rtp = &seeds()[1];
        assert_eq!(rtp[0] & 1, 1, "the RTP seed");
        for _ in 0..10 {
            s.packets(&rtp[1..]);
            s.run(RUN_MS);
        }
        assert!(!s.failed);
        assert!(s.peers[1].received > before, "nothing was forwarded");
        // Raw datagrams are taken without harm.
        s.datagrams(&seeds()[0][1..]);
        s.run(RUN_MS);
    }
}
