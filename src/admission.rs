//! Caps on the connections strangers can open: at most `max_total` at once, and at most
//! `max_per_address` from one address (an IPv6 client counted by its /64, as one host has a
//! whole /64 to pick from; an IPv4-mapped IPv6 address as its IPv4 address). Counting and
//! admitting are one step under one lock, so concurrent connections cannot both take the last
//! place. The HTTPS listener (`http::conn`) and the ICE-TCP listener (`media::tcp`) each hold
//! one, adding their own metrics and errors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

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

/// The key a client address is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())),
            },
        }
    }
}

/// Connections open now, in total and per address. A std mutex: nothing awaits while it is
/// held, and admitting is a few map operations.
#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: an entry goes when its count reaches 0.
    by_address: HashMap<AddressKey, usize>,
}

impl Caps {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            open: Mutex::default(),
        }
    }

    /// Counts a connection from `ip` in, or says which cap it would exceed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Place, Cap> {
        let key = AddressKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_address = open.by_address.get(&key).copied().unwrap_or(0);
        if from_address >= self.max_per_address {
            return Err(Cap::PerAddress);
        }
        if open.total >= self.max_total {
            return Err(Cap::Global);
        }
        open.total += 1;
        open.by_address.insert(key, from_address + 1);
        Ok(Place {
            caps: self.clone(),
            key,
        })
    }

    /// Connections open now (total, from the address of `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from = open.by_address.get(&AddressKey::of(ip)).copied();
        (open.total, from.unwrap_or(0))
    }

    /// Addresses with a connection open.
    pub fn addresses(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.by_address.len()
    }
}

/// One admitted connection's place under the caps; dropping it gives the place back, however
/// the connection ends.
#[must_use]
#[derive(Debug)]
pub struct Place {
    caps: Arc<Caps>,
    key: AddressKey,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2:aaaa::1")),
            AddressKey::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::of(ip("2001:db8:1:3::1"))
        );
        // A dual-stack listener sees IPv4 clients as mapped addresses: still one per address.
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.7")),
            AddressKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            AddressKey::of(ip("::ffff:192.0.2.7")),
            AddressKey::of(ip("::ffff:192.0.2.8"))
        );
        assert_eq!(
            AddressKey::of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            AddressKey::of(ip("::"))
        );
    }

    #[test]
    fn places_come_back_and_no_address_is_left_behind() {
        let caps = Arc::new(Caps::new(3, 2));
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let a1 = caps.admit(a).unwrap();
        let a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(Cap::PerAddress));
        let b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(ip("192.0.2.3")).err(), Some(Cap::Global));
        drop((a1, b1));
        assert_eq!(caps.open(a), (1, 1));
        assert_eq!(caps.addresses(), 1, "b has nothing open: no entry");
        drop(a2);
        assert_eq!((caps.open(a), caps.addresses()), ((0, 0), 0));
    }
}
