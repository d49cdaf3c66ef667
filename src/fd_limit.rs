//! The process's open-file limit. Every HTTPS connection (a WebSocket included) holds a file
//! descriptor, and so do the listeners, the media workers' UDP sockets, the database and every
//! document being read or written. With the usual soft limit of 1024, a thousand idle
//! connections would leave none for anyone else: new connections, uploads and database work
//! would all fail until the attacker let go.
//!
//! [`raise`] lifts the soft limit to the hard one at start, which needs no privilege (the hard
//! limit is the administrator's: `LimitNOFILE=` in a systemd unit, `ulimit -Hn`, a container's
//! `--ulimit nofile`). [`connections_that_fit`] is how many connections the HTTPS listener may
//! hold while leaving room for the rest; startup lowers `limits.max_http_connections` to it, so
//! that the cap, not `EMFILE`, is what a flood of connections meets.
//!
//! This module owns nothing else and never lowers a limit.

/// Descriptors kept for everything but HTTPS connections: the two listeners, the database pool
/// (up to 16 connections), documents being uploaded, hashed or rendered, the runtime's own
/// (epoll, eventfds, signal pipe) and some slack. The media workers' sockets come on top.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// The open-file limit after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The limit in force (soft).
    pub soft: u64,
    /// The most it could be raised to without privilege.
    pub hard: u64,
}

/// Raises the soft open-file limit as far as the hard limit allows (where the hard limit is
/// unlimited, to the kernel's `fs.nr_open`) and returns the result. `None` where the limit
/// cannot be read (not Linux).
pub fn raise() -> std::io::Result<Option<FdLimit>> {
    imp::raise()
}

/// How many HTTPS connections fit within `limit` next to [`RESERVED_DESCRIPTORS`] and
/// `media_sockets` (one UDP socket per media worker, and the ICE-TCP listener and its cap of
/// connections) (at least 1).
pub fn connections_that_fit(limit: FdLimit, media_sockets: usize) -> usize {
    let others = RESERVED_DESCRIPTORS.saturating_add(media_sockets as u64);
    usize::try_from(limit.soft.saturating_sub(others).max(1)).unwrap_or(usize::MAX)
}

#[cfg(target_os = "linux")]
mod imp {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

    use super::FdLimit;

    /// Linux's default `fs.nr_open`, the ceiling of an unlimited hard limit.
    const DEFAULT_NR_OPEN: u64 = 1 << 20;

    pub fn raise() -> std::io::Result<Option<FdLimit>> {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        let target = if hard == RLIM_INFINITY {
            std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(DEFAULT_NR_OPEN)
        } else {
            hard
        };
        if soft < target {
            setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
        }
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        Ok(Some(FdLimit { soft, hard }))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn raise() -> std::io::Result<Option<super::FdLimit>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fits_leaves_the_reserve_and_the_media_sockets() {
        let limit = |soft| FdLimit { soft, hard: soft };
        assert_eq!(connections_that_fit(limit(1024), 1), 1024 - 256 - 1);
        assert_eq!(connections_that_fit(limit(65_536), 8), 65_536 - 256 - 8);
        // A limit below the reserve still lets one connection in (and startup warns).
        assert_eq!(connections_that_fit(limit(100), 4), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise().unwrap().expect("Linux reports its limit");
        assert!(limit.soft >= 1);
        if limit.hard != nix::sys::resource::RLIM_INFINITY {
            assert_eq!(limit.soft, limit.hard);
        }
        // Idempotent: a second start (the integration tests start many servers) changes nothing.
        assert_eq!(raise().unwrap(), Some(limit));
    }
}
