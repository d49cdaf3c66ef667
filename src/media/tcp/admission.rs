//! Who may hold an ICE-TCP connection: at most `media.tcp_max_connections` at once, and
//! `media.tcp_max_connections_per_address` from one address, under the caps the HTTPS listener
//! uses too (`crate::admission`), counted in the ICE-TCP metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use crate::admission::Cap;
use crate::admission::{Caps, Place};

use super::TcpStats;

pub struct Admission {
    caps: Arc<Caps>,
    stats: Arc<TcpStats>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize, stats: Arc<TcpStats>) -> Arc<Self> {
        Arc::new(Self {
            caps: Arc::new(Caps::new(max_total, max_per_address)),
            stats,
        })
    }

    /// Counts a connection from `ip` in, or says which cap it would exceed (and counts that).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Cap> {
        match self.caps.admit(ip) {
            Ok(place) => {
                self.stats.open.fetch_add(1, Ordering::Relaxed);
                Ok(Slot {
                    _place: place,
                    stats: self.stats.clone(),
                })
            }
            Err(cap) => {
                self.stats.refused(cap);
                Err(cap)
            }
        }
    }

    /// Connections open now (total, from the address of `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        self.caps.open(ip)
    }
}

/// One admitted connection's place under the caps; dropping it gives the place back. It goes
/// with the connection (shared by its reading and writing halves), so the place frees however
/// the connection ends.
#[must_use]
pub struct Slot {
    _place: Place,
    stats: Arc<TcpStats>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let stats = Arc::new(TcpStats::default());
        let a = Admission::new(3, 2, stats.clone());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let s1 = a.admit(one).unwrap();
        let s2 = a.admit(one).unwrap();
        assert_eq!(a.admit(one).err(), Some(Cap::PerAddress));
        let s3 = a.admit(two).unwrap();
        assert_eq!(
            a.admit("192.0.2.3".parse().unwrap()).err(),
            Some(Cap::Global)
        );
        assert_eq!(a.open(one), (3, 2));
        drop(s1);
        assert_eq!(a.open(one), (2, 1));
        let s4 = a.admit("192.0.2.2".parse().unwrap()).unwrap();
        drop((s2, s3, s4));
        assert_eq!(a.open(one), (0, 0));
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
        assert_eq!(stats.refused_per_address.load(Ordering::Relaxed), 1);
        assert_eq!(stats.refused_global.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a = Admission::new(10, 1, Arc::new(TcpStats::default()));
        let _s = a.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            a.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Cap::PerAddress)
        );
        let _t = a.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
    }

    #[test]
    fn concurrent_connections_never_exceed_the_caps() {
        let a = Admission::new(5, 3, Arc::new(TcpStats::default()));
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let held: Vec<Slot> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let a = a.clone();
                    s.spawn(move || {
                        let ip = if i % 2 == 0 {
                            ip
                        } else {
                            IpAddr::from([198, 51, 100, i as u8])
                        };
                        a.admit(ip).ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(held.len(), 5, "the global cap, exactly");
        assert!(a.open(ip).1 <= 3);
    }
}
