//! Datagrams out of a worker's socket in batches: on Linux one `sendmmsg` system call carries
//! up to [`SEND_BATCH`] datagrams (to as many destinations), elsewhere one `send_to` each.
//!
//! A forwarded packet goes to every subscriber, so a worker's turn ends with a burst of
//! datagrams to different peers (a lecture: a video packet to each of hundreds of viewers).
//! One system call per datagram made the kernel's entry and exit a per-packet cost; batching
//! pays it once per burst. What the kernel does per datagram (UDP, routing, delivery) stays.

use std::io;

use str0m::net::Transmit;
use tokio::net::UdpSocket;

/// Most datagrams handed to the kernel in one system call.
pub const SEND_BATCH: usize = 64;

/// The kernel's headers for one batch and the batch's destinations, kept by the worker from
/// one send to the next (a turn sends a batch or more; none of it is allocated per send).
pub struct SendBatch {
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    #[cfg(target_os = "linux")]
    destinations: Vec<Option<nix::sys::socket::SockaddrStorage>>,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(SEND_BATCH, None),
            #[cfg(target_os = "linux")]
            destinations: Vec::with_capacity(SEND_BATCH),
        }
    }

    /// Sends every datagram in `batch`, in order; returns how many could not be sent (an
    /// error for that datagram, e.g. an unreachable destination: the others still go).
    pub async fn send_all(&mut self, socket: &UdpSocket, batch: &[Transmit]) -> u64 {
        let mut failed = 0;
        let mut start = 0;
        while start < batch.len() {
            let end = (start + SEND_BATCH).min(batch.len());
            match self.send_some(socket, &batch[start..end]).await {
                Ok(sent) => start += sent,
                // The first datagram of the rest failed (the kernel reports an error only
                // when nothing was sent): count it, skip it, go on with the next.
                Err(e) => {
                    tracing::debug!(error = %e, "media send error");
                    failed += 1;
                    start += 1;
                }
            }
        }
        failed
    }

    /// Sends a prefix of `datagrams` (at most [`SEND_BATCH`], at least one sent), waiting
    /// while the socket's buffer is full.
    #[cfg(target_os = "linux")]
    async fn send_some(&mut self, socket: &UdpSocket, datagrams: &[Transmit]) -> io::Result<usize> {
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmmsg};
        use tokio::io::Interest;

        let mut slices = [[IoSlice::new(&[])]; SEND_BATCH];
        for (slice, t) in slices.iter_mut().zip(datagrams) {
            *slice = [IoSlice::new(&t.contents)];
        }
        let slices = &slices[..datagrams.len()];
        self.destinations.clear();
        self.destinations.extend(
            datagrams
                .iter()
                .map(|t| Some(SockaddrStorage::from(t.destination))),
        );
        loop {
            let sent = socket.try_io(Interest::WRITABLE, || {
                sendmmsg(
                    socket.as_raw_fd(),
                    &mut self.headers,
                    slices,
                    &self.destinations,
                    [],
                    MsgFlags::empty(),
                )
                .map(|results| results.count())
                .map_err(io::Error::from)
            });
            match sent {
                // sendmmsg sends at least one datagram or fails; zero would loop forever.
                Ok(n) => return Ok(n.max(1)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
                Err(e) => return Err(e),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    async fn send_some(&mut self, socket: &UdpSocket, datagrams: &[Transmit]) -> io::Result<usize> {
        let t = &datagrams[0];
        socket.send_to(&t.contents, t.destination).await.map(|_| 1)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use str0m::net::Protocol;

    use super::*;

    fn datagram(from: SocketAddr, to: SocketAddr, n: u32) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: n.to_be_bytes().to_vec().into(),
        }
    }

    /// More datagrams than one batch, to three receivers, with one that cannot be sent in the
    /// middle: the rest all arrive, each receiver's in order, and the failure is counted.
    #[tokio::test]
    async fn a_burst_arrives_whole_and_a_bad_destination_costs_only_its_datagram() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let from = sender.local_addr().unwrap();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let total = 2 * SEND_BATCH as u32 + 10;
        let bad = SEND_BATCH as u32 + 3;
        let batch: Vec<Transmit> = (0..total)
            .map(|n| {
                let to = if n == bad {
                    // Port 0 is no destination: the kernel refuses this one datagram.
                    "127.0.0.1:0".parse().unwrap()
                } else {
                    receivers[n as usize % 3].local_addr().unwrap()
                };
                datagram(from, to, n)
            })
            .collect();
        assert_eq!(SendBatch::new().send_all(&sender, &batch).await, 1);
        for (r, socket) in receivers.iter().enumerate() {
            let expected: Vec<u32> = (0..total)
                .filter(|n| *n != bad && *n as usize % 3 == r)
                .collect();
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < expected.len() {
                let n =
                    tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv(&mut buf))
                        .await
                        .expect("every datagram in time")
                        .unwrap();
                got.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
            }
            assert_eq!(got, expected, "receiver {r}");
        }
    }
}
