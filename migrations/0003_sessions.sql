-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Clinicians' sign-ins as server-side sessions, so that one can be signed out, renewed and
-- revoked before its token expires. Times are Unix seconds.

-- Bumped by every password change. A session remembers the version it was opened (or kept)
-- under and is honoured only while the account still has it: a sign-in that checked the old
-- password while the password changed cannot outlive the change.
ALTER TABLE users ADD COLUMN password_version BIGINT NOT NULL DEFAULT 0;

-- One row per sign-in. Its tokens carry `sid` = id and `nonce` = epoch; only the token of the
-- current epoch is honoured, so renewing (epoch + 1) ends the token it replaced.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    renewed_at       BIGINT NOT NULL,
    -- Unless renewed before then, the session ends here (the current token's expiry).
    idle_expires_at  BIGINT NOT NULL,
    -- The absolute end, fixed at sign-in; renewal never moves it.
    expires_at       BIGINT NOT NULL,
    epoch            BIGINT NOT NULL,
    password_version BIGINT NOT NULL,
    -- A keyed pseudonym of the address that signed in (never the address itself).
    client           TEXT NOT NULL,
    revoked_at       BIGINT,
    -- signed_out, revoked or password_changed.
    revoked_reason   TEXT
);

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
