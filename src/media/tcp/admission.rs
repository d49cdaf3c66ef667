//! Who may hold an ICE-TCP connection: at most `media.tcp_max_connections` at once, and
//! `media.tcp_max_connections_per_address` from one address (an IPv6 client counted by its
//! /64, as one host has a whole /64 to pick from). Counting and admitting are one step under
//! one lock, so concurrent connections cannot both take the last place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::TcpStats;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Global,
    PerAddress,
}

impl Cap {
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::Global => "global",
            Cap::PerAddress => "per_address",
        }
    }
}

/// A client's address as counted: an IPv4 address (an IPv4-mapped IPv6 address is its IPv4
/// address), or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AddressKey(IpAddr);

impl AddressKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())),
            },
        }
    }
}

pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    stats: Arc<TcpStats>,
    /// A std mutex: nothing awaits while it is held.
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: an entry goes when its count reaches 0.
    by_address: HashMap<AddressKey, usize>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize, stats: Arc<TcpStats>) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            stats,
            open: Mutex::default(),
        })
    }

    /// Counts a connection from `ip` in, or says which cap it would exceed (and counts that).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Cap> {
        let key = AddressKey::of(ip);
        let refused = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let from_address = open.by_address.get(&key).copied().unwrap_or(0);
            if from_address >= self.max_per_address {
                Some(Cap::PerAddress)
            } else if open.total >= self.max_total {
                Some(Cap::Global)
            } else {
                open.total += 1;
                open.by_address.insert(key, from_address + 1);
                None
            }
        };
        match refused {
            None => {
                self.stats.open.fetch_add(1, Ordering::Relaxed);
                Ok(Slot {
                    admission: self.clone(),
                    key,
                })
            }
            Some(cap) => {
                self.stats.refused(cap);
                Err(cap)
            }
        }
    }

    /// Connections open now (total, from the address of `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from = open.by_address.get(&AddressKey::of(ip)).copied();
        (open.total, from.unwrap_or(0))
    }
}

/// One admitted connection's place under the caps; dropping it gives the place back. It goes
/// with the connection (shared by its reading and writing halves), so the place frees however
/// the connection ends.
#[must_use]
pub struct Slot {
    admission: Arc<Admission>,
    key: AddressKey,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        let mut open = a.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.key);
            }
        }
        drop(open);
        a.stats.open.fetch_sub(1, Ordering::Relaxed);
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
