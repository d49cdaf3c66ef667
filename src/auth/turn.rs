//! Short-lived TURN credentials in the shared-secret scheme of "A REST API for Access to TURN
//! Services" (draft-uberti-behave-turn-rest), which coturn implements as `use-auth-secret`:
//! the user name is `<expiry unix time>:<opaque id>` and the password is
//! `base64(HMAC-SHA1(secret, user name))`. The TURN server recomputes the password from the
//! same secret and refuses the user name once its expiry has passed; nothing is stored and no
//! static password is ever handed out.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::AuthError;

/// The secret shared with the TURN servers (coturn's `static-auth-secret`). Never printed.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

impl TurnSecret {
    /// Reads the secret from `path`: the file's text without the surrounding white space (a
    /// final newline), which must be what the TURN server is given as `static-auth-secret`.
    /// Unlike the signing key it is never created: it is shared with another program.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Key(format!("TURN secret {}: {e}", path.display())))?;
        Self::new(text.trim().as_bytes().to_vec()).ok_or_else(|| {
            AuthError::Key(format!(
                "TURN secret {} is empty or spans several lines",
                path.display()
            ))
        })
    }

    /// `None` for an empty secret or one with a line break (a configuration file cannot carry
    /// it to the TURN server).
    pub fn new(secret: Vec<u8>) -> Option<Self> {
        (!secret.is_empty() && !secret.iter().any(|b| matches!(b, b'\n' | b'\r')))
            .then_some(Self(secret))
    }

    /// The password for `username`: base64(HMAC-SHA1(secret, username)).
    pub fn credential(&self, username: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(username.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// One entry of a WebRTC configuration's `iceServers` (RTCIceServer): the URLs share the
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The configured TURN servers, their secret and how long credentials last.
#[derive(Debug, Clone)]
pub struct TurnServers {
    urls: Vec<String>,
    secret: TurnSecret,
    lifetime_s: u64,
}

impl TurnServers {
    /// `None` without URLs: nothing to hand out. A `turns:` URI that names its host by an IP
    /// address is warned about (once, here at start): Firefox ignores it.
    pub fn new(urls: Vec<String>, secret: TurnSecret, lifetime_s: u64) -> Option<Self> {
        for (entry, _) in urls.iter().enumerate().filter(|(_, u)| turns_by_address(u)) {
            // The entry's position, not the URI: the configuration says which it is.
            tracing::warn!(
                entry,
                "turn.urls: a turns: URI names an IP address; Firefox refuses it without \
                 connecting (TLS needs a DNS name that the TURN server's certificate carries)"
            );
        }
        (!urls.is_empty()).then_some(Self {
            urls,
            secret,
            lifetime_s,
        })
    }

    /// Credentials for `opaque_id` (a pseudonym: never a name, an account or a token), valid
    /// until `now_unix` + the lifetime.
    pub fn ice_servers(&self, opaque_id: &str, now_unix: i64) -> Vec<IceServer> {
        let lifetime = i64::try_from(self.lifetime_s).unwrap_or(i64::MAX);
        let username = format!("{}:{opaque_id}", now_unix.saturating_add(lifetime));
        vec![IceServer {
            urls: self.urls.clone(),
            credential: self.secret.credential(&username),
            username,
        }]
    }
}

/// Whether `url` is a `turns:` URI (TURN over TLS) whose host is an IPv4 or `[IPv6]` address
/// rather than a DNS name. Firefox refuses those before connecting ("TLS requires FQDN, not IP
/// address"), so a relay for networks that allow only TLS would fail its participants silently;
/// Chromium accepts them when the certificate names the address. A URI that is not `turns:`,
/// or not well formed (`config` refuses those), is not one.
pub fn turns_by_address(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("turns:") else {
        return false;
    };
    let address = rest.split_once('?').map_or(rest, |(a, _)| a);
    if address.starts_with('[') {
        return true;
    }
    let host = address.split_once(':').map_or(address, |(h, _)| h);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> TurnSecret {
        TurnSecret::new(b"north-wind-shared-secret".to_vec()).unwrap()
    }

    #[test]
    fn credential_matches_a_known_vector() {
        // printf '1700003600:3f2a9c0d1e4b5a67' \
        //   | openssl dgst -sha1 -hmac 'north-wind-shared-secret' -binary | base64
        assert_eq!(
            secret().credential("1700003600:3f2a9c0d1e4b5a67"),
            "kWmmWJGZAT19j+ohO+IgBe2MTWk="
        );
    }

    #[test]
    fn ice_servers_carry_expiry_and_pseudonym() {
        let turn = TurnServers::new(
            vec![
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:5349?transport=tcp".into(),
            ],
            secret(),
            3600,
        )
        .unwrap();
        let servers = turn.ice_servers("3f2a9c0d1e4b5a67", 1_700_000_000);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls.len(), 2);
        assert_eq!(servers[0].username, "1700003600:3f2a9c0d1e4b5a67");
        assert_eq!(servers[0].credential, "kWmmWJGZAT19j+ohO+IgBe2MTWk=");
        // Neither the secret nor the password is printed.
        let printed = format!("{turn:?} {servers:?}");
        assert!(!printed.contains("north-wind"), "{printed}");
        assert!(!printed.contains("kWmmWJGZ"), "{printed}");
        assert!(TurnServers::new(vec![], secret(), 3600).is_none());
    }

    #[test]
    fn turns_with_an_ip_address_is_recognised() {
        for by_address in [
            "turns:203.0.113.5:443?transport=tcp",
            "turns:203.0.113.5",
            "turns:[2001:db8::5]:443?transport=tcp",
            "turns:[2001:db8::5]",
        ] {
            assert!(turns_by_address(by_address), "{by_address}");
        }
        for fine in [
            "turns:turn.example-hospital.cn:443?transport=tcp",
            "turns:localhost:443",
            // A name that starts with digits is still a name.
            "turns:203.0.113.5.example.org:443",
            "turn:203.0.113.5:3478?transport=udp",
            "turn:[2001:db8::5]:3478?transport=tcp",
            "stun:203.0.113.5",
            "",
        ] {
            assert!(!turns_by_address(fine), "{fine}");
        }
    }

    #[test]
    fn unusable_secrets_are_refused() {
        assert!(TurnSecret::new(Vec::new()).is_none());
        assert!(TurnSecret::new(b"two\nlines".to_vec()).is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.secret");
        assert!(matches!(TurnSecret::load(&path), Err(AuthError::Key(_))));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(TurnSecret::load(&path), Err(AuthError::Key(_))));
        std::fs::write(&path, "north-wind-shared-secret\n").unwrap();
        let loaded = TurnSecret::load(&path).unwrap();
        assert_eq!(
            loaded.credential("1700003600:3f2a9c0d1e4b5a67"),
            "kWmmWJGZAT19j+ohO+IgBe2MTWk="
        );
    }
}
