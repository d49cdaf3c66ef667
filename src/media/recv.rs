//! Datagrams into a worker in batches: on Linux one `recvmmsg` system call reads up to
//! [`RECV_BATCH`] queued datagrams, elsewhere one `recv_from` each.
//!
//! Every publisher's packets land on its worker's one socket, so under load a wake-up finds
//! many queued. Reading them one system call each made the kernel's entry and exit a cost per
//! received packet; a batch pays it once.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Largest datagram read; WebRTC keeps packets under ~1200 bytes, this leaves headroom (a
/// longer one is cut short, as with `recv_from`).
pub const DATAGRAM_MAX: usize = 2048;
/// Most datagrams read in one system call.
pub const RECV_BATCH: usize = 64;

/// Room for one batch of datagrams, and (on Linux) the kernel's headers for it, kept by the
/// worker from one read to the next.
pub struct RecvBatch {
    buffers: Vec<u8>,
    /// Buffer slot, length and source of each datagram of the last read, in order.
    received: Vec<(usize, usize, SocketAddr)>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            buffers: vec![0; DATAGRAM_MAX * RECV_BATCH],
            received: Vec::with_capacity(RECV_BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, None),
        }
    }

    /// The datagrams of the last read: contents and source.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received.iter().map(|(slot, len, source)| {
            let start = slot * DATAGRAM_MAX;
            (&self.buffers[start..start + len], *source)
        })
    }

    /// Waits until the socket has datagrams, then reads what is queued (at most
    /// [`RECV_BATCH`]). An error is the socket's report for one datagram (an ICMP error for an
    /// earlier send on some systems), not the end of the socket. Cancel-safe: nothing is read
    /// until the socket is ready, and then without waiting.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<()> {
        loop {
            socket.readable().await?;
            // The runtime forgets the readiness only when a read finds nothing.
            match socket.try_io(tokio::io::Interest::READABLE, || self.read(socket)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Reads what is queued without waiting (datagrams without an IP source are left out of
    /// [`RecvBatch::datagrams`]); `WouldBlock` when nothing was queued.
    #[cfg(target_os = "linux")]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<()> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, recvmmsg};

        self.received.clear();
        let Self {
            buffers,
            received,
            headers,
        } = self;
        // The kernel writes each source address's length into its header, and the next read
        // starts from it: one socket's sources are all of one family (a dual-stack socket
        // reports IPv4 peers as mapped IPv6), so the length it leaves is the one it needs.
        {
            let mut chunks = buffers.chunks_mut(DATAGRAM_MAX);
            let slices: [[IoSliceMut<'_>; 1]; RECV_BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    chunks.next().expect("one buffer per datagram"),
                )]
            });
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for (slot, msg) in results.enumerate() {
                let source = msg.address.as_ref().and_then(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(SocketAddr::V4((*v4).into()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
                    }
                });
                // A datagram without an IP source cannot come from a WebRTC peer.
                if let Some(source) = source {
                    received.push((slot, msg.bytes.min(DATAGRAM_MAX), source));
                }
            }
            Ok(())
        }
    }

    /// The same, one `try_recv_from` per datagram.
    #[cfg(not(target_os = "linux"))]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<()> {
        self.received.clear();
        for slot in 0..RECV_BATCH {
            let start = slot * DATAGRAM_MAX;
            match socket.try_recv_from(&mut self.buffers[start..start + DATAGRAM_MAX]) {
                Ok((len, source)) => self.received.push((slot, len, source)),
                // What was read stays; an error comes again with the next read.
                Err(_) if slot > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn registered(addr: &str) -> io::Result<UdpSocket> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket)
    }

    /// Reads until `expected` datagrams have come, each as (source, number in its payload).
    async fn read_all(
        batch: &mut RecvBatch,
        socket: &UdpSocket,
        expected: usize,
    ) -> Vec<(SocketAddr, u32)> {
        let mut got = Vec::new();
        while got.len() < expected {
            tokio::time::timeout(Duration::from_secs(5), batch.recv(socket))
                .await
                .expect("every datagram in time")
                .unwrap();
            for (contents, source) in batch.datagrams() {
                got.push((source, u32::from_be_bytes(contents.try_into().unwrap())));
            }
        }
        got
    }

    /// More datagrams than a batch from two senders: each sender's arrive whole, in order and
    /// from the right source; a datagram sent after the socket was drained still wakes the
    /// reader.
    #[tokio::test]
    async fn a_burst_arrives_whole_and_the_next_datagram_still_wakes() {
        let socket = registered("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let senders = [
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        ];
        let per_sender = RECV_BATCH as u32 + 20;
        for n in 0..per_sender {
            for s in &senders {
                s.send_to(&n.to_be_bytes(), to).unwrap();
            }
        }
        let mut batch = RecvBatch::new();
        let got = read_all(&mut batch, &socket, 2 * per_sender as usize).await;
        let mut by_source: HashMap<SocketAddr, Vec<u32>> = HashMap::new();
        for (source, n) in got {
            by_source.entry(source).or_default().push(n);
        }
        for s in &senders {
            let expected: Vec<u32> = (0..per_sender).collect();
            assert_eq!(by_source[&s.local_addr().unwrap()], expected);
        }
        for round in 0..3u32 {
            senders[0]
                .send_to(&(1000 + round).to_be_bytes(), to)
                .unwrap();
            let got = read_all(&mut batch, &socket, 1).await;
            assert_eq!(got, vec![(senders[0].local_addr().unwrap(), 1000 + round)]);
        }
    }

    /// On an IPv6 socket sources are IPv6, and a long datagram is cut to the buffer, as
    /// `recv_from` would.
    #[tokio::test]
    async fn ipv6_sources_and_a_long_datagram() {
        let Ok(socket) = registered("[::1]:0") else {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        };
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sender.send_to(&vec![7u8; DATAGRAM_MAX + 100], to).unwrap();
        sender.send_to(&5u32.to_be_bytes(), to).unwrap();
        let mut batch = RecvBatch::new();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            tokio::time::timeout(Duration::from_secs(5), batch.recv(&socket))
                .await
                .expect("in time")
                .unwrap();
            seen.extend(
                batch
                    .datagrams()
                    .map(|(contents, source)| (contents.len(), source)),
            );
        }
        let from = sender.local_addr().unwrap();
        assert_eq!(seen, vec![(DATAGRAM_MAX, from), (4, from)]);
    }
}
