//! The limit: how fast could anything relay these packets on this machine?
//!
//! A minimal relay (receive one datagram, send it to N subscribers) on one thread and one UDP
//! socket, with no WebRTC at all, optionally paying the cipher cost SRTP would add: one
//! AES-128-GCM open per packet in and one seal per packet out. Its packets-out per CPU second,
//! against the SFU's, says how much of the SFU's cost is the kernel and the cipher and how much
//! is everything else.
//!
//! Two ways to move the datagrams ([`Io`]): one system call per datagram (`recv_from`, then a
//! `send_to` per subscriber), or the server's own media I/O (`huizhen::media`: `recvmmsg`
//! batches in, `sendmmsg` batches out, on a current-thread runtime as a media worker runs).
//! Either way the relay's socket asks for the server's default buffer size, so that a burst
//! the server would have held is not dropped here.
//!
//! An SRTP-like packet carries its stream and sequence number in a clear 12-byte header (as an
//! RTP header's SSRC and sequence number) that the cipher authenticates but does not encrypt,
//! and its nonce is made from them. A datagram the kernel drops therefore costs only itself.
//! (An earlier version took the nonce from the count of datagrams received, so one drop made
//! every later packet fail to open and the relay stop relaying without a word.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use huizhen::config::DEFAULT_SOCKET_BUFFER_BYTES;
use huizhen::media::{DATAGRAM_MAX, RecvBatch, SendBatch, open_socket};
use serde::Serialize;
use str0m::net::{Protocol, Transmit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crypto {
    /// Plain UDP relay: the kernel's cost alone.
    None,
    /// AES-128-GCM open on receive and seal per subscriber, as SRTP (AEAD) would.
    AesGcm,
}

/// How the relay moves datagrams between its socket and the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Io {
    /// One `recv_from` per datagram in, one `send_to` per datagram out.
    PerDatagram,
    /// The server's media I/O: `recvmmsg` and `sendmmsg` batches (one datagram a call
    /// where the system has no such calls).
    Batched,
}

#[derive(Debug, Clone, Copy)]
pub struct BaselineConfig {
    pub subscribers: usize,
    pub payload: usize,
    /// Packets per second offered to the relay.
    pub rate: u32,
    pub duration: Duration,
    pub crypto: Crypto,
    pub io: Io,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub crypto: Crypto,
    pub io: Io,
    pub subscribers: usize,
    pub payload_bytes: usize,
    pub offered_per_s: f64,
    pub relayed_in_per_s: f64,
    pub relayed_out_per_s: f64,
    pub delivered_per_s: f64,
    /// Datagrams the relay received but could not open (none unless something is broken).
    pub open_failures: u64,
    pub relay_cpu_seconds: f64,
    /// Packets sent per second of the relay thread's CPU time: the per-core ceiling.
    pub out_per_relay_cpu_second: f64,
}

/// The clear header of an SRTP-like packet: stream (4 bytes) and sequence number (8 bytes).
const HEADER: usize = 12;

fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).expect("16-byte key"))
}

/// One nonce per stream and sequence number, as SRTP makes its nonce from SSRC and index: the
/// publisher is stream 0, the relay's copy to subscriber i stream i + 1, so no two packets
/// sealed under the one key share a nonce.
fn nonce(stream: u32, seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&stream.to_be_bytes());
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals `payload` as packet `seq` of `stream` into `out`: header, ciphertext, tag.
fn protect(key: &LessSafeKey, stream: u32, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    let (head, body) = out.split_at_mut(HEADER);
    let tag = key
        .seal_in_place_separate_tag(nonce(stream, seq), Aad::from(&*head), body)
        .expect("AES-GCM seals any payload under 64 GiB");
    out.extend_from_slice(tag.as_ref());
}

/// Opens a packet in place: its payload, or None when it is too short or does not
/// authenticate.
fn unprotect<'a>(key: &LessSafeKey, packet: &'a mut [u8]) -> Option<&'a [u8]> {
    if packet.len() < HEADER + AES_128_GCM.tag_len() {
        return None;
    }
    let (head, body) = packet.split_at_mut(HEADER);
    let stream = u32::from_be_bytes(head[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(head[4..].try_into().ok()?);
    key.open_in_place(nonce(stream, seq), Aad::from(&*head), body)
        .ok()
        .map(|p| &*p)
}

/// What the relay thread counted.
#[derive(Debug, Default)]
struct Counts {
    rx: u64,
    tx: u64,
    open_failures: u64,
    cpu_seconds: f64,
}

/// The relay's work on one received datagram, whatever moves it: `each(subscriber, bytes)`
/// once per subscriber with what to send.
struct Relay {
    crypto: Crypto,
    key: LessSafeKey,
    subscribers: Vec<SocketAddr>,
    /// Next sequence number of each subscriber's stream.
    seqs: Vec<u64>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    counts: Counts,
}

impl Relay {
    fn new(crypto: Crypto, subscribers: Vec<SocketAddr>) -> Self {
        Self {
            crypto,
            key: key(),
            seqs: vec![0; subscribers.len()],
            subscribers,
            scratch: Vec::with_capacity(DATAGRAM_MAX),
            out: Vec::with_capacity(DATAGRAM_MAX),
            counts: Counts::default(),
        }
    }

    fn relay(&mut self, datagram: &[u8], mut each: impl FnMut(SocketAddr, &[u8])) {
        self.counts.rx += 1;
        match self.crypto {
            Crypto::None => {
                for addr in &self.subscribers {
                    each(*addr, datagram);
                }
            }
            Crypto::AesGcm => {
                self.scratch.clear();
                self.scratch.extend_from_slice(datagram);
                let Some(payload) = unprotect(&self.key, &mut self.scratch) else {
                    self.counts.open_failures += 1;
                    return;
                };
                for (i, addr) in self.subscribers.iter().enumerate() {
                    self.seqs[i] += 1;
                    protect(
                        &self.key,
                        i as u32 + 1,
                        self.seqs[i],
                        payload,
                        &mut self.out,
                    );
                    each(*addr, &self.out);
                }
            }
        }
    }
}

pub fn run(cfg: BaselineConfig) -> anyhow::Result<BaselineReport> {
    let (relay_socket, _) = open_socket("127.0.0.1:0".parse()?, DEFAULT_SOCKET_BUFFER_BYTES)?;
    let relay_addr = relay_socket.local_addr()?;
    let subs: Vec<UdpSocket> = (0..cfg.subscribers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let sub_addrs: Vec<SocketAddr> = subs
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));

    // Subscribers: drain and count, so the kernel never drops for full buffers on our side.
    let drain = {
        let (stop, delivered) = (stop.clone(), delivered.clone());
        for s in &subs {
            s.set_nonblocking(true)?;
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut any = false;
                for s in &subs {
                    while s.recv(&mut buf).is_ok() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        any = true;
                    }
                }
                if !any {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };

    // The relay under test.
    let relay = Relay::new(cfg.crypto, sub_addrs);
    let relay_thread = {
        let stop = stop.clone();
        let io = cfg.io;
        std::thread::spawn(move || -> anyhow::Result<Counts> {
            let cpu0 = crate::stats::thread_cpu_seconds();
            let mut counts = match io {
                Io::PerDatagram => relay_per_datagram(relay_socket, relay, &stop)?,
                Io::Batched => relay_batched(relay_socket, relay, &stop)?,
            };
            counts.cpu_seconds = crate::stats::thread_cpu_seconds() - cpu0;
            Ok(counts)
        })
    };

    // The publisher: paced at `rate`, each packet sealed under its own sequence number.
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let k = key();
    let plain = vec![0xA5u8; cfg.payload];
    let mut packet = Vec::with_capacity(cfg.payload + HEADER + 16);
    let start = Instant::now();
    let mut sent = 0u64;
    let interval = Duration::from_secs(1).as_secs_f64() / cfg.rate.max(1) as f64;
    while start.elapsed() < cfg.duration {
        let due = (start.elapsed().as_secs_f64() / interval) as u64;
        while sent < due {
            sent += 1;
            match cfg.crypto {
                Crypto::None => {
                    packet.clear();
                    packet.extend_from_slice(&plain);
                }
                Crypto::AesGcm => protect(&k, 0, sent, &plain, &mut packet),
            }
            let _ = sender.send_to(&packet, relay_addr);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let counts = relay_thread
        .join()
        .map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    let _ = drain.join();
    Ok(BaselineReport {
        crypto: cfg.crypto,
        io: cfg.io,
        subscribers: cfg.subscribers,
        payload_bytes: cfg.payload,
        offered_per_s: sent as f64 / elapsed,
        relayed_in_per_s: counts.rx as f64 / elapsed,
        relayed_out_per_s: counts.tx as f64 / elapsed,
        delivered_per_s: delivered.load(Ordering::Relaxed) as f64 / elapsed,
        open_failures: counts.open_failures,
        relay_cpu_seconds: counts.cpu_seconds,
        out_per_relay_cpu_second: if counts.cpu_seconds > 0.0 {
            counts.tx as f64 / counts.cpu_seconds
        } else {
            0.0
        },
    })
}

/// One `recv_from` per datagram in, one `send_to` per copy out.
fn relay_per_datagram(
    socket: UdpSocket,
    mut relay: Relay,
    stop: &AtomicBool,
) -> anyhow::Result<Counts> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut tx = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        relay.relay(&buf[..n], |addr, bytes| {
            if socket.send_to(bytes, addr).is_ok() {
                tx += 1;
            }
        });
    }
    relay.counts.tx = tx;
    Ok(relay.counts)
}

/// The server's media I/O: batches in with [`RecvBatch`], the copies of a batch out with
/// [`SendBatch`], on a current-thread runtime.
fn relay_batched(socket: UdpSocket, mut relay: Relay, stop: &AtomicBool) -> anyhow::Result<Counts> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let local = socket.local_addr()?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let mut recv = RecvBatch::new();
        let mut send = SendBatch::new();
        let mut out: Vec<Transmit> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            // Woken now and then to see the stop flag; the read is cancel-safe.
            match tokio::time::timeout(Duration::from_millis(50), recv.recv(&socket)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => continue,
            }
            for (datagram, _) in recv.datagrams() {
                relay.relay(datagram, |destination, bytes| {
                    out.push(Transmit {
                        proto: Protocol::Udp,
                        source: local,
                        destination,
                        contents: bytes.to_vec().into(),
                    });
                });
            }
            let failed = send.send_all(&socket, &out).await;
            relay.counts.tx += out.len() as u64 - failed;
            out.clear();
        }
        Ok(relay.counts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relay_delivers_what_it_opens() {
        for io in [Io::PerDatagram, Io::Batched] {
            for crypto in [Crypto::None, Crypto::AesGcm] {
                let r = run(BaselineConfig {
                    subscribers: 2,
                    payload: 500,
                    rate: 500,
                    duration: Duration::from_millis(500),
                    crypto,
                    io,
                })
                .unwrap();
                assert!(r.relayed_in_per_s > 0.0, "{r:?}");
                assert_eq!(r.open_failures, 0, "{r:?}");
                assert!(
                    r.relayed_out_per_s > 1.9 * r.relayed_in_per_s,
                    "fan-out of 2: {r:?}"
                );
                assert!(r.delivered_per_s > 0.0, "{r:?}");
            }
        }
    }

    #[test]
    fn a_lost_packet_costs_only_itself() {
        let k = key();
        let payload = [0x5Au8; 300];
        let mut packets: Vec<Vec<u8>> = (1..=10)
            .map(|seq| {
                let mut p = Vec::new();
                protect(&k, 0, seq, &payload, &mut p);
                p
            })
            .collect();
        // The kernel drops packets 3 and 7; every other one still opens, whole.
        for (i, p) in packets.iter_mut().enumerate() {
            if i == 2 || i == 6 {
                continue;
            }
            assert_eq!(unprotect(&k, p), Some(&payload[..]), "packet {}", i + 1);
        }
    }

    #[test]
    fn a_forged_or_short_packet_does_not_open() {
        let k = key();
        let mut p = Vec::new();
        protect(&k, 0, 1, b"payload", &mut p);
        let mut header_changed = p.clone();
        header_changed[11] ^= 1;
        assert_eq!(unprotect(&k, &mut header_changed), None);
        let mut body_changed = p.clone();
        body_changed[HEADER] ^= 1;
        assert_eq!(unprotect(&k, &mut body_changed), None);
        assert_eq!(unprotect(&k, &mut p[..HEADER + 3]), None);
        assert_eq!(unprotect(&k, &mut p), Some(&b"payload"[..]));
    }
}
