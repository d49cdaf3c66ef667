//! A media worker's UDP socket: bound, non-blocking, and with kernel buffers large enough for
//! bursts.
//!
//! A worker reads its socket between turns; while a turn runs (a keyframe fanned out to a
//! lecture, a batch of DTLS handshakes as an audience arrives) datagrams queue in the kernel.
//! The kernel's default receive buffer (about 200 KiB) holds a couple of hundred packets, and
//! what does not fit is dropped before the server sees it: at loads near the knee that was
//! where most of the measured loss came from (docs/BENCHMARKS.md). The buffers asked for here
//! are capped by the system's `net.core.rmem_max` / `wmem_max`; a cap is logged with the
//! setting that lifts it.

use std::net::{SocketAddr, UdpSocket};

use super::MediaError;

/// What the kernel granted a socket, in bytes as it reports them (Linux counts its own
/// bookkeeping in, reporting twice what was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffers {
    pub receive: usize,
    pub send: usize,
}

/// Binds `addr` for a worker and asks for `buffer_bytes` of receive and send buffer (0: the
/// system's defaults).
pub fn open(addr: SocketAddr, buffer_bytes: usize) -> Result<(UdpSocket, Buffers), MediaError> {
    let socket = UdpSocket::bind(addr).map_err(|source| MediaError::Bind { addr, source })?;
    socket.set_nonblocking(true).map_err(MediaError::Spawn)?;
    let buffers = size_buffers(&socket, buffer_bytes).map_err(MediaError::Spawn)?;
    Ok((socket, buffers))
}

#[cfg(target_os = "linux")]
fn size_buffers(socket: &UdpSocket, bytes: usize) -> std::io::Result<Buffers> {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{getsockopt, setsockopt, sockopt};

    let fd = socket.as_raw_fd();
    if bytes > 0 {
        setsockopt(fd, sockopt::RcvBuf, &bytes)?;
        setsockopt(fd, sockopt::SndBuf, &bytes)?;
    }
    let granted = Buffers {
        receive: getsockopt(fd, sockopt::RcvBuf)?,
        send: getsockopt(fd, sockopt::SndBuf)?,
    };
    if bytes > 0 {
        // The kernel doubles what it grants; less than asked means the system's cap.
        if granted.receive / 2 < bytes {
            tracing::warn!(
                asked = bytes,
                granted = granted.receive / 2,
                "media socket receive buffer capped by the system: bursts beyond it are dropped; \
                 raise it with `sysctl -w net.core.rmem_max={bytes}`"
            );
        }
        if granted.send / 2 < bytes {
            tracing::warn!(
                asked = bytes,
                granted = granted.send / 2,
                "media socket send buffer capped by the system; raise it with \
                 `sysctl -w net.core.wmem_max={bytes}`"
            );
        }
    }
    Ok(granted)
}

#[cfg(not(target_os = "linux"))]
fn size_buffers(_socket: &UdpSocket, _bytes: usize) -> std::io::Result<Buffers> {
    Ok(Buffers {
        receive: 0,
        send: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the system allows a socket to ask for (`net.core.rmem_max` / `wmem_max`).
    fn system_cap(name: &str) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The buffers asked for are granted up to the system's cap, far above the default; 0
    /// leaves the defaults alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn buffers_are_granted_up_to_the_systems_cap() {
        let asked = 4 << 20;
        let (_default_socket, default) = open("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let (_socket, granted) = open("127.0.0.1:0".parse().unwrap(), asked).unwrap();
        let receive_cap = asked.min(system_cap("rmem_max"));
        let send_cap = asked.min(system_cap("wmem_max"));
        assert_eq!(granted.receive, 2 * receive_cap, "{granted:?}");
        assert_eq!(granted.send, 2 * send_cap, "{granted:?}");
        if receive_cap > default.receive {
            assert!(granted.receive > default.receive, "{granted:?} {default:?}");
        }
    }
}
