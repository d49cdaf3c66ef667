//! The limit: how fast could anything relay these packets on this machine?
//!
//! A minimal relay (receive one datagram, send it to N subscribers) on one thread and one UDP
//! socket, with no WebRTC at all, optionally paying the cipher cost SRTP would add: one
//! AES-128-GCM open per packet in and one seal per packet out. Its packets-out per CPU second,
//! against the SFU's, says how much of the SFU's cost is the kernel and the cipher and how much
//! is everything else.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crypto {
    /// Plain UDP relay: the kernel's cost alone.
    None,
    /// AES-128-GCM open on receive and seal per subscriber, as SRTP (AEAD) would.
    AesGcm,
}

#[derive(Debug, Clone, Copy)]
pub struct BaselineConfig {
    pub subscribers: usize,
    pub payload: usize,
    /// Packets per second offered to the relay.
    pub rate: u32,
    pub duration: Duration,
    pub crypto: Crypto,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub crypto: Crypto,
    pub subscribers: usize,
    pub payload_bytes: usize,
    pub offered_per_s: f64,
    pub relayed_in_per_s: f64,
    pub relayed_out_per_s: f64,
    pub delivered_per_s: f64,
    pub relay_cpu_seconds: f64,
    /// Packets sent per second of the relay thread's CPU time: the per-core ceiling.
    pub out_per_relay_cpu_second: f64,
}

fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).expect("16-byte key"))
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

pub fn run(cfg: BaselineConfig) -> anyhow::Result<BaselineReport> {
    let relay = UdpSocket::bind("127.0.0.1:0")?;
    relay.set_read_timeout(Some(Duration::from_millis(50)))?;
    let relay_addr = relay.local_addr()?;
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
    let relay_thread = {
        let stop = stop.clone();
        let crypto = cfg.crypto;
        std::thread::spawn(move || -> (u64, u64, f64) {
            let cpu0 = crate::stats::thread_cpu_seconds();
            let k = key();
            let mut buf = vec![0u8; 2048];
            let mut out = Vec::with_capacity(2048);
            let (mut rx, mut tx, mut seq) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, _)) = relay.recv_from(&mut buf) else {
                    continue;
                };
                rx += 1;
                let plain = match crypto {
                    Crypto::None => n,
                    Crypto::AesGcm => match k.open_in_place(nonce(rx), Aad::empty(), &mut buf[..n])
                    {
                        Ok(p) => p.len(),
                        Err(_) => continue,
                    },
                };
                for addr in &sub_addrs {
                    let sent = match crypto {
                        Crypto::None => relay.send_to(&buf[..plain], addr),
                        Crypto::AesGcm => {
                            seq += 1;
                            out.clear();
                            out.extend_from_slice(&buf[..plain]);
                            let _ = k.seal_in_place_append_tag(nonce(seq), Aad::empty(), &mut out);
                            relay.send_to(&out, addr)
                        }
                    };
                    if sent.is_ok() {
                        tx += 1;
                    }
                }
            }
            (rx, tx, crate::stats::thread_cpu_seconds() - cpu0)
        })
    };

    // The publisher: paced at `rate`, each packet encrypted with the sequence the relay expects.
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let k = key();
    let start = Instant::now();
    let mut sent = 0u64;
    let interval = Duration::from_secs(1).as_secs_f64() / cfg.rate.max(1) as f64;
    while start.elapsed() < cfg.duration {
        let due = (start.elapsed().as_secs_f64() / interval) as u64;
        while sent < due {
            sent += 1;
            let mut p = vec![0xA5u8; cfg.payload];
            if cfg.crypto == Crypto::AesGcm {
                let _ = k.seal_in_place_append_tag(nonce(sent), Aad::empty(), &mut p);
            }
            let _ = sender.send_to(&p, relay_addr);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (rx, tx, cpu) = relay_thread
        .join()
        .map_err(|_| anyhow::anyhow!("relay thread panicked"))?;
    let _ = drain.join();
    Ok(BaselineReport {
        crypto: cfg.crypto,
        subscribers: cfg.subscribers,
        payload_bytes: cfg.payload,
        offered_per_s: sent as f64 / elapsed,
        relayed_in_per_s: rx as f64 / elapsed,
        relayed_out_per_s: tx as f64 / elapsed,
        delivered_per_s: delivered.load(Ordering::Relaxed) as f64 / elapsed,
        relay_cpu_seconds: cpu,
        out_per_relay_cpu_second: if cpu > 0.0 { tx as f64 / cpu } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_relays_deliver() {
        for crypto in [Crypto::None, Crypto::AesGcm] {
            let r = run(BaselineConfig {
                subscribers: 2,
                payload: 500,
                rate: 500,
                duration: Duration::from_millis(500),
                crypto,
            })
            .unwrap();
            assert!(r.relayed_in_per_s > 0.0, "{r:?}");
            assert!(
                r.relayed_out_per_s > r.relayed_in_per_s,
                "fan-out of 2: {r:?}"
            );
            assert!(r.delivered_per_s > 0.0, "{r:?}");
        }
    }
}
