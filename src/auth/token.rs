//! Signed, scoped tokens: `hz1.<base64url JSON claims>.<base64url HMAC-SHA256>`.
//!
//! One format for four uses (clinician sessions, room invites, signaling resumes, participants'
//! HTTP access to their room); the `kind`
//! claim keeps one from being replayed as another. Tokens are bearer secrets: they are never
//! logged, and invite tokens travel in URL fragments so they never reach access logs.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::AuthError;
use crate::domain::clock::now_unix;
use crate::domain::ids::{RoomId, SessionId};
use crate::domain::role::Role;

const PREFIX: &str = "hz1.";
/// Tokens longer than this are refused before any decoding work.
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A signed-in clinician (HTTP API).
    Session,
    /// Entry to one room with one role.
    Invite,
    /// Takes over a participant whose signaling connection dropped.
    Resume,
    /// A participant's HTTP calls in their room (documents, records); honoured only while the
    /// participant is still in the room.
    Access,
}

/// What a token asserts. `sub` is the user id (session), invite id (invite) or participant id
/// (resume, access). A session token also names its server-side session (`sid`): a valid
/// signature is not enough, the session must be live and the token its newest (`crate::sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub kind: TokenKind,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The clinician session a session token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Makes every token unique; for resume tokens it is the participant's current resume epoch,
    /// for session tokens the session's renewal epoch (with `sid`, unique too).
    pub nonce: u64,
}

impl Claims {
    /// Judges a decoded token against a window of the caller's instead of its own `exp`: valid
    /// while `now` is before `until` (Unix seconds), else [`AuthError::Expired`].
    pub fn within(&self, until: i64, now: i64) -> Result<(), AuthError> {
        if now >= until {
            return Err(AuthError::Expired);
        }
        Ok(())
    }
}

/// The server's HMAC key.
#[derive(Clone)]
pub struct SigningKey {
    key: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Self { key }
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = B64
                    .decode(text.trim())
                    .map_err(|_| AuthError::Key(format!("{} is not base64url", path.display())))?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    AuthError::Key(format!("{} must hold 32 bytes", path.display()))
                })?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| AuthError::Key(e.to_string()))?;
                }
                write_private(path, B64.encode(key.key).as_bytes())
                    .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
                Ok(key)
            }
            Err(e) => Err(AuthError::Key(format!("{}: {e}", path.display()))),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let sig = B64.encode(self.mac(&payload));
        format!("{PREFIX}{payload}.{sig}")
    }

    /// A stable pseudonym for a value that must not be stored in clear (a client address in
    /// the audit trail): the same input gives the same 16 hex digits on this server, and the
    /// input cannot be recovered without the key.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(b"huizhen pseudonym v1\0");
        mac.update(value);
        mac.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The keyed hash an invitation's short code is stored and looked up by (64 hex digits):
    /// HMAC-SHA256 under the signing key, apart from every other use of it by its own label.
    /// Without the key, a copy of the database does not give the codes away, though there are
    /// only 10^9 of them.
    pub fn code_hash(&self, digits: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(b"huizhen invitation code v1\0");
        mac.update(digits.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Checks signature, kind and expiry. Room scoping is the caller's (it knows the room).
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, AuthError> {
        let claims = self.decode(token, kind)?;
        if claims.exp <= now_unix() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    /// Checks signature and kind, not expiry: for a caller that judges expiry itself against a
    /// clock it is given (sessions do, and audit an expired token presented with its claims),
    /// or against a window of its own: a patient's invitation opens their outcome page until
    /// `rooms.outcome_days` after the consultation, past the link's expiry for joining
    /// (`http/outcome.rs`; see [`Claims::within`]).
    pub fn decode(&self, token: &str, kind: TokenKind) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::InvalidToken);
        }
        let rest = token.strip_prefix(PREFIX).ok_or(AuthError::InvalidToken)?;
        let (payload, sig) = rest.split_once('.').ok_or(AuthError::InvalidToken)?;
        let sig = B64.decode(sig).map_err(|_| AuthError::InvalidToken)?;
        let mut mac = self.hmac();
        mac.update(payload.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::InvalidToken)?;
        let json = B64.decode(payload).map_err(|_| AuthError::InvalidToken)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| AuthError::InvalidToken)?;
        if claims.kind != kind {
            return Err(AuthError::WrongKind);
        }
        Ok(claims)
    }

    fn hmac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn mac(&self, payload: &str) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(kind: TokenKind, exp: i64) -> Claims {
        Claims {
            kind,
            sub: "i_x".into(),
            room: Some(RoomId::generate()),
            role: Some(Role::Patient),
            sid: None,
            exp,
            nonce: 7,
        }
    }

    #[test]
    fn round_trip() {
        let k = SigningKey::random();
        let c = claims(TokenKind::Invite, now_unix() + 60);
        let t = k.sign(&c);
        assert_eq!(k.verify(&t, TokenKind::Invite).unwrap(), c);
        // A session token carries its session id; tokens without one still read (as `None`).
        let s = Claims {
            kind: TokenKind::Session,
            sub: "u_x".into(),
            room: None,
            role: None,
            sid: Some(SessionId::generate()),
            exp: now_unix() + 60,
            nonce: 3,
        };
        assert_eq!(k.verify(&k.sign(&s), TokenKind::Session).unwrap(), s);
        // Other kinds do not carry the claim at all.
        let payload = t.strip_prefix(PREFIX).unwrap().split_once('.').unwrap().0;
        let json: serde_json::Value =
            serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        assert!(json.get("sid").is_none(), "{json}");
    }

    #[test]
    fn forged_expired_wrong_kind_and_other_key_are_refused() {
        let k = SigningKey::random();
        let t = k.sign(&claims(TokenKind::Invite, now_unix() + 60));
        assert_eq!(k.verify(&t, TokenKind::Session), Err(AuthError::WrongKind));
        assert_eq!(
            SigningKey::random().verify(&t, TokenKind::Invite),
            Err(AuthError::InvalidToken)
        );
        // Flip the role inside the payload but keep the signature.
        let (payload, sig) = t.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut json = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        json = json.replace("patient", "doctor");
        let forged = format!("{PREFIX}{}.{sig}", B64.encode(json));
        assert_eq!(
            k.verify(&forged, TokenKind::Invite),
            Err(AuthError::InvalidToken)
        );
        let old = k.sign(&claims(TokenKind::Invite, now_unix() - 1));
        assert_eq!(k.verify(&old, TokenKind::Invite), Err(AuthError::Expired));
        // `decode` leaves expiry to its caller, but not the signature or the kind.
        assert!(k.decode(&old, TokenKind::Invite).is_ok());
        assert_eq!(
            k.decode(&old, TokenKind::Session),
            Err(AuthError::WrongKind)
        );
        assert_eq!(
            SigningKey::random().decode(&old, TokenKind::Invite),
            Err(AuthError::InvalidToken)
        );
        for junk in ["", "hz1.", "hz1.a.b", "nope", &"x".repeat(5000)] {
            assert_eq!(
                k.verify(junk, TokenKind::Invite),
                Err(AuthError::InvalidToken)
            );
        }
    }

    #[test]
    fn a_window_of_the_callers_outlives_the_tokens_own_expiry() {
        let k = SigningKey::random();
        let now = now_unix();
        // An invitation whose joining window closed an hour ago.
        let link = k.sign(&claims(TokenKind::Invite, now - 3600));
        assert_eq!(k.verify(&link, TokenKind::Invite), Err(AuthError::Expired));
        // Read for the outcome page: signature and kind checked, then the page's own window.
        let c = k.decode(&link, TokenKind::Invite).unwrap();
        assert_eq!(c.within(now + 30 * 86_400, now), Ok(()));
        assert_eq!(c.within(now, now), Err(AuthError::Expired));
        assert_eq!(c.within(now - 1, now), Err(AuthError::Expired));
        // Never a forged token, another key's, or another kind of token.
        let (payload, sig) = link.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let json = String::from_utf8(B64.decode(payload).unwrap())
            .unwrap()
            .replace("patient", "observer");
        let forged = format!("{PREFIX}{}.{sig}", B64.encode(json));
        assert_eq!(
            k.decode(&forged, TokenKind::Invite),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            SigningKey::random().decode(&link, TokenKind::Invite),
            Err(AuthError::InvalidToken)
        );
        let access = k.sign(&claims(TokenKind::Access, now + 60));
        assert_eq!(
            k.decode(&access, TokenKind::Invite),
            Err(AuthError::WrongKind)
        );
    }

    #[test]
    fn key_file_is_created_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.key, b.key);
    }
}
