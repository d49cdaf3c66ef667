//! Just enough STUN (RFC 8489) to route a datagram from an address the SFU has not seen yet:
//! the local ICE ufrag in a connectivity check's USERNAME. str0m validates the message itself
//! (integrity, fingerprint) once it reaches the right transport; this only picks which one, in
//! O(1), so that traffic from unknown addresses (a new peer, or junk sprayed at the public
//! media port) never costs a scan of every transport.
//!
//! Every local ufrag starts with the index of the media worker that made it, as two hex digits
//! ([`worker_credentials`]): a TCP connection arrives at one listener for all workers, and its
//! first STUN request says, through [`worker_of_ufrag`], which worker's thread it belongs to,
//! with no table shared between threads.

use str0m::IceCreds;

/// STUN's fixed header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The receiver's ufrag named in a STUN message's USERNAME (`receiver:sender` in ICE), if
/// `datagram` is a well-formed STUN message that carries one.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    let header = datagram.get(..HEADER_LEN)?;
    // The two top bits of every STUN message are zero (RFC 7983 demultiplexing).
    if header[0] & 0xC0 != 0 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if declared % 4 != 0 || HEADER_LEN + declared != datagram.len() {
        return None;
    }
    let mut rest = &datagram[HEADER_LEN..];
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        // Attribute values are padded to a multiple of four bytes.
        rest = rest.get(4 + len.next_multiple_of(4)..)?;
    }
    None
}

/// Fresh ICE credentials for a peer connection of media worker `worker`: str0m's random ones,
/// the ufrag's first two characters replaced by the worker's index in hex. The rest of the
/// ufrag (14 characters of 60) stays random: ufrags must be unique, not secret (the password is
/// the secret, and keeps all its randomness).
pub fn worker_credentials(worker: u8) -> IceCreds {
    tagged(IceCreds::new(), worker)
}

/// `creds` with the ufrag's first two characters replaced by `worker`'s index in hex: how an
/// ICE restart's credentials (str0m makes them random) keep naming the worker.
pub fn tagged(mut creds: IceCreds, worker: u8) -> IceCreds {
    let rest = creds.ufrag.get(2..).unwrap_or_default();
    creds.ufrag = format!("{worker:02x}{rest}");
    creds
}

/// The media worker a local ufrag made by [`worker_credentials`] belongs to.
pub fn worker_of_ufrag(ufrag: &str) -> Option<u8> {
    let tag = ufrag.get(..2)?;
    if !tag
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u8::from_str_radix(tag, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ufrag_names_its_worker() {
        for worker in [0u8, 1, 9, 10, 255] {
            let creds = worker_credentials(worker);
            assert_eq!(creds.ufrag.len(), 16, "{}", creds.ufrag);
            assert_eq!(worker_of_ufrag(&creds.ufrag), Some(worker));
            assert!(creds.pass.len() >= 22);
        }
        assert_ne!(worker_credentials(3).ufrag, worker_credentials(3).ufrag);
        for bad in ["", "0", "0G12", "+1ab", "A1xx", "é1"] {
            assert_eq!(worker_of_ufrag(bad), None, "{bad}");
        }
    }

    /// A binding request with the given attributes (type, value), padded as on the wire.
    fn message(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut d = vec![0x00, 0x01];
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn the_username_names_the_local_ufrag_first() {
        let d = message(&[(0x0024, &[0, 0, 0, 1]), (ATTR_USERNAME, b"srvUfrag:peer")]);
        assert_eq!(local_ufrag(&d), Some("srvUfrag"));
        // Padding after an odd-length attribute is skipped correctly.
        let d = message(&[(0x8022, b"abcde"), (ATTR_USERNAME, b"u1:p2")]);
        assert_eq!(local_ufrag(&d), Some("u1"));
    }

    #[test]
    fn anything_else_names_nobody() {
        assert_eq!(
            local_ufrag(&message(&[(0x0024, &[0, 0, 0, 1])])),
            None,
            "no USERNAME"
        );
        assert_eq!(local_ufrag(&message(&[(ATTR_USERNAME, b"nocolon")])), None);
        assert_eq!(local_ufrag(&message(&[(ATTR_USERNAME, b":peer")])), None);
        assert_eq!(
            local_ufrag(&message(&[(ATTR_USERNAME, &[0xff, b':', b'x'])])),
            None
        );
        let good = message(&[(ATTR_USERNAME, b"a:b")]);
        assert_eq!(local_ufrag(&good[..good.len() - 1]), None, "truncated");
        let mut cookie = good.clone();
        cookie[4] ^= 1;
        assert_eq!(local_ufrag(&cookie), None, "no magic cookie");
        let mut rtp = good.clone();
        rtp[0] = 0x80;
        assert_eq!(local_ufrag(&rtp), None, "RTP/RTCP first byte");
        let mut long = good.clone();
        long[23] = 200; // the attribute claims more than the message holds
        assert_eq!(local_ufrag(&long), None);
        assert_eq!(local_ufrag(&[]), None);
        assert_eq!(local_ufrag(&[0; 19]), None);
    }
}
