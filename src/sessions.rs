//! Clinicians' sign-ins as server-side sessions: opened at sign-in, checked on every
//! authenticated request, renewed into a fresh token, and ended by signing out, by a password
//! change or by an administrator, before the token would have expired on its own.
//!
//! A session token (`auth::Claims` of kind `Session`) names its session (`sid`) and the
//! session's renewal epoch (`nonce`). A valid signature is necessary, not sufficient: the token
//! is honoured only while its session
//! - is not revoked (signed out, revoked by an administrator, or another session changed the
//!   password),
//! - is at the token's epoch (renewing moves the session to the next epoch, so the token it
//!   replaced stops working at once),
//! - was opened under the account's current password version,
//! - is before its idle deadline (`auth.session_idle_s` after sign-in or the last renewal; also
//!   the token's own expiry) and before its absolute end (`auth.session_hours` after sign-in,
//!   which renewing never moves).
//!
//! Renewal is explicit (`POST /auth/renew` gives a fresh token) rather than sliding on every
//! request: a stolen token is good for one idle window at most, and a request costs one read
//! by primary key, not a write.
//!
//! Time is passed in (`now`, Unix seconds), so tests can move it. This module never writes the
//! audit trail (the HTTP edge and the command line do) and knows nothing of HTTP.

use crate::auth::{Claims, SigningKey, TokenKind};
use crate::config::AuthConfig;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::role::AccountRole;
use crate::storage::{Db, RevokeReason, SessionRow, StorageError, User};

/// How long sessions live, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Without renewal a session ends this long after sign-in or its last renewal.
    pub idle_s: i64,
    /// A session ends this long after sign-in whatever happens.
    pub lifetime_s: i64,
}

impl Policy {
    pub fn from_config(auth: &AuthConfig) -> Self {
        Self {
            idle_s: i64::try_from(auth.session_idle_s).unwrap_or(i64::MAX),
            lifetime_s: i64::try_from(auth.session_hours.saturating_mul(3600)).unwrap_or(i64::MAX),
        }
    }
}

/// A fresh session token and the deadlines it lives under.
#[derive(Debug, Clone)]
pub struct Issued {
    /// A bearer secret: never logged.
    pub token: String,
    pub session: SessionId,
    /// When this token expires unless renewed (Unix seconds).
    pub expires_at: i64,
    /// When the session ends whatever happens.
    pub session_expires_at: i64,
}

/// The session of a request, checked, with its account as stored now.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub session: SessionRow,
}

/// Why a genuine session token (signed by this server) is no longer honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its session is not stored (never was, or ended long enough ago to be purged).
    Unknown,
    Revoked(RevokeReason),
    /// A newer token of the session exists: this one was renewed away (a request that crossed
    /// a renewal, or a copy of the token used by someone else).
    Superseded,
    /// The account's password changed after the session was opened.
    PasswordChanged,
    /// Past the session's absolute end.
    Expired,
    /// Not renewed within the idle window.
    Idle,
}

impl Refusal {
    /// The reason as the audit trail records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown_session",
            Refusal::Revoked(RevokeReason::SignedOut) => "signed_out",
            Refusal::Revoked(RevokeReason::Revoked) => "revoked",
            Refusal::Revoked(RevokeReason::PasswordChanged) => "password_changed",
            Refusal::Superseded => "superseded",
            Refusal::PasswordChanged => "password_changed",
            Refusal::Expired => "expired",
            Refusal::Idle => "idle_expired",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a session token of this server: malformed, forged, of another kind, or from before
    /// sessions were stored (no `sid`). Nothing to tell the audit trail about.
    #[error("not a session token")]
    Invalid,
    /// A genuine session token that is no longer honoured; `owner` is the account it belongs
    /// to, when its session is still stored.
    #[error("session {session} refused: {}", reason.as_str())]
    Refused {
        session: SessionId,
        owner: Option<(UserId, AccountRole)>,
        reason: Refusal,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Opens, checks, renews and ends sessions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sessions {
    db: Db,
    key: SigningKey,
    policy: Policy,
}

impl Sessions {
    pub fn new(db: Db, key: SigningKey, policy: Policy) -> Self {
        Self { db, key, policy }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Opens session `id` for `user`, whose password was just checked (under the password
    /// version `user` carries), from the client with pseudonym `client`. The caller picks the
    /// id, so that the audit entry it writes first can name the session.
    pub async fn open(
        &self,
        id: SessionId,
        user: &User,
        client: String,
        now: i64,
    ) -> Result<Issued, SessionError> {
        let expires_at = now.saturating_add(self.policy.lifetime_s);
        let row = SessionRow {
            id,
            user_id: user.id.clone(),
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(self.policy.idle_s).min(expires_at),
            expires_at,
            epoch: 0,
            password_version: user.password_version,
            client,
            revoked: None,
        };
        self.db.create_session(&row).await?;
        Ok(self.issue(&row))
    }

    /// Checks a bearer token: signature and kind, then its session (one lookup by primary key,
    /// which also loads the account).
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<Authenticated, SessionError> {
        let claims = self
            .key
            .decode(token, TokenKind::Session)
            .map_err(|_| SessionError::Invalid)?;
        let session = claims.sid.clone().ok_or(SessionError::Invalid)?;
        let user_id = UserId::parse(&claims.sub).ok_or(SessionError::Invalid)?;
        let Some((row, user)) = self.db.session_with_user(&session).await? else {
            return Err(SessionError::Refused {
                session,
                owner: None,
                reason: Refusal::Unknown,
            });
        };
        // Signed by us for another account: cannot happen without the key.
        if row.user_id != user_id {
            return Err(SessionError::Invalid);
        }
        match judge(&row, &user, &claims, now) {
            Ok(()) => Ok(Authenticated { user, session: row }),
            Err(reason) => Err(SessionError::Refused {
                session,
                owner: Some((user.id, user.role)),
                reason,
            }),
        }
    }

    /// Replaces the current token of `session` (of `user`) with a fresh one: the session moves
    /// to its next epoch (so the old token stops working) and its idle deadline to
    /// `now + idle`, never past its absolute end. Of concurrent renewals of one token exactly
    /// one succeeds; the others are refused as `Superseded` (or whatever ended the session
    /// meanwhile).
    pub async fn renew(
        &self,
        user: &User,
        session: &SessionRow,
        now: i64,
    ) -> Result<Issued, SessionError> {
        let s = session;
        let idle = now.saturating_add(self.policy.idle_s).min(s.expires_at);
        if self.db.renew_session(&s.id, s.epoch, now, idle).await? {
            let renewed = SessionRow {
                epoch: s.epoch + 1,
                renewed_at: now,
                idle_expires_at: idle,
                ..s.clone()
            };
            return Ok(self.issue(&renewed));
        }
        // Lost: say why, from the row as it is now.
        let reason = match self.db.session_with_user(&s.id).await? {
            None => Refusal::Unknown,
            Some((row, owner)) => judge(&row, &owner, &self.claims(s), now)
                .err()
                .unwrap_or(Refusal::Superseded),
        };
        Err(SessionError::Refused {
            session: s.id.clone(),
            owner: Some((user.id.clone(), user.role)),
            reason,
        })
    }

    /// Ends a session (its holder signs out); `false` if something else ended it first.
    pub async fn sign_out(&self, session: &SessionId, now: i64) -> Result<bool, SessionError> {
        Ok(self
            .db
            .revoke_session(session, now, RevokeReason::SignedOut)
            .await?)
    }

    /// Ends every live session of `user` (an administrator's decision); returns how many.
    pub async fn revoke_all(&self, user: &UserId, now: i64) -> Result<u64, SessionError> {
        Ok(revoke_all(&self.db, user, now).await?)
    }

    /// Sets a new password hash for `user`, who signed in under password version `version`,
    /// keeping the session `keep` that asked; every other live session of the account ends.
    /// Returns how many ended; `Conflict` if the password changed meanwhile (two changes
    /// checked against the same current password: one wins).
    pub async fn change_password(
        &self,
        user: &User,
        password_hash: &str,
        keep: &SessionId,
        now: i64,
    ) -> Result<u64, SessionError> {
        Ok(self
            .db
            .change_password(
                &user.id,
                password_hash,
                Some(user.password_version),
                Some(keep),
                now,
            )
            .await?)
    }

    /// Forgets sessions that ended over a day ago (until then a token presented from one is
    /// refused with the reason, not as unknown). Returns how many.
    pub async fn purge(&self, now: i64) -> Result<u64, SessionError> {
        Ok(self
            .db
            .purge_sessions(now.saturating_sub(24 * 3600))
            .await?)
    }

    fn claims(&self, row: &SessionRow) -> Claims {
        Claims {
            kind: TokenKind::Session,
            sub: row.user_id.to_string(),
            room: None,
            role: None,
            sid: Some(row.id.clone()),
            exp: row.idle_expires_at,
            nonce: u64::try_from(row.epoch).unwrap_or(0),
        }
    }

    fn issue(&self, row: &SessionRow) -> Issued {
        Issued {
            token: self.key.sign(&self.claims(row)),
            session: row.id.clone(),
            expires_at: row.idle_expires_at,
            session_expires_at: row.expires_at,
        }
    }
}

/// Whether `session` of `user` is still open: not signed out or revoked, not past either of its
/// deadlines, opened under the account's current password. A care-team seat's entry token is
/// honoured only while the session that took it is.
pub async fn still_open(
    db: &Db,
    session: &SessionId,
    user: &UserId,
    now: i64,
) -> Result<bool, StorageError> {
    let Some((row, account)) = db.session_with_user(session).await? else {
        return Ok(false);
    };
    Ok(&row.user_id == user
        && row.revoked.is_none()
        && row.password_version == account.password_version
        && row.expires_at > now
        && row.idle_expires_at > now)
}

/// Ends every live session of `user` as revoked by an administrator. The API and
/// `huizhen user revoke-sessions` both come here.
pub async fn revoke_all(db: &Db, user: &UserId, now: i64) -> Result<u64, StorageError> {
    db.revoke_sessions(user, None, now, RevokeReason::Revoked)
        .await
}

/// Sets a new password hash, ending every live session of the account: `huizhen user passwd`
/// (the API's [`Sessions::change_password`] keeps the session that asked). Returns how many
/// ended.
pub async fn reset_password(
    db: &Db,
    user: &UserId,
    password_hash: &str,
    now: i64,
) -> Result<u64, StorageError> {
    db.change_password(user, password_hash, None, None, now)
        .await
}

/// Whether the token with `claims` may use session `row` of `user` at `now`. The first reason
/// that applies is given, the most telling first (a renewed-away token whose session also
/// expired is reported as superseded).
fn judge(row: &SessionRow, user: &User, claims: &Claims, now: i64) -> Result<(), Refusal> {
    if let Some(revoked) = row.revoked {
        return Err(Refusal::Revoked(revoked.reason));
    }
    if i64::try_from(claims.nonce).ok() != Some(row.epoch) {
        return Err(Refusal::Superseded);
    }
    if row.password_version != user.password_version {
        return Err(Refusal::PasswordChanged);
    }
    if row.expires_at <= now {
        return Err(Refusal::Expired);
    }
    if row.idle_expires_at <= now || claims.exp <= now {
        return Err(Refusal::Idle);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Revoked;

    fn user(version: i64) -> User {
        User {
            id: UserId::generate(),
            username: "doc".into(),
            display_name: "Dr. Wang".into(),
            role: AccountRole::Doctor,
            password_hash: String::new(),
            created_at: 0,
            password_version: version,
            institution_id: crate::domain::ids::InstitutionId::generate(),
            department_id: None,
            title: String::new(),
            specialty: String::new(),
            accepts_referrals: false,
            signing_pin_hash: None,
            disabled_at: None,
        }
    }

    fn row(user: &User) -> SessionRow {
        SessionRow {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            created_at: 1000,
            renewed_at: 1000,
            idle_expires_at: 1000 + 1800,
            expires_at: 1000 + 12 * 3600,
            epoch: 2,
            password_version: user.password_version,
            client: "c".into(),
            revoked: None,
        }
    }

    fn claims(row: &SessionRow, epoch: u64) -> Claims {
        Claims {
            kind: TokenKind::Session,
            sub: row.user_id.to_string(),
            room: None,
            role: None,
            sid: Some(row.id.clone()),
            exp: row.idle_expires_at,
            nonce: epoch,
        }
    }

    #[test]
    fn the_session_state_decides_in_order() {
        let u = user(3);
        let r = row(&u);
        assert_eq!(judge(&r, &u, &claims(&r, 2), 1001), Ok(()));
        // The token of the previous epoch, even while the session lives.
        assert_eq!(
            judge(&r, &u, &claims(&r, 1), 1001),
            Err(Refusal::Superseded)
        );
        // Idle: at the deadline, not a second later.
        assert_eq!(
            judge(&r, &u, &claims(&r, 2), 1000 + 1800),
            Err(Refusal::Idle)
        );
        let mut late = r.clone();
        late.idle_expires_at = late.expires_at;
        assert_eq!(
            judge(&late, &u, &claims(&late, 2), late.expires_at),
            Err(Refusal::Expired)
        );
        let changed = user(4);
        let mut r2 = r.clone();
        r2.user_id = changed.id.clone();
        assert_eq!(
            judge(&r2, &changed, &claims(&r2, 2), 1001),
            Err(Refusal::PasswordChanged)
        );
        let mut out = r.clone();
        out.revoked = Some(Revoked {
            at: 1001,
            reason: RevokeReason::SignedOut,
        });
        assert_eq!(
            judge(&out, &u, &claims(&out, 1), 1002),
            Err(Refusal::Revoked(RevokeReason::SignedOut))
        );
    }

    #[test]
    fn policy_from_config() {
        let p = Policy::from_config(&AuthConfig::default());
        assert_eq!(
            p,
            Policy {
                idle_s: 1800,
                lifetime_s: 12 * 3600
            }
        );
    }
}
