-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Invitations for patients and observers: a window (valid from `not_before`, NULL: from its
-- creation, until `expires_at` as before), a number of uses (`max_uses`, NULL: unlimited;
-- `uses`, counted one conditional UPDATE at a time), a short code kept only as a keyed hash,
-- a label, and every use. Invites made before keep working: no window start, no limit.
-- Care-team seats (account_id set) use none of this.

ALTER TABLE invites ADD COLUMN not_before BIGINT;
ALTER TABLE invites ADD COLUMN max_uses BIGINT;
ALTER TABLE invites ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
-- HMAC-SHA256 (hex) of the code's nine digits under a key derived from the server's signing
-- key; NULL: no code. Never the code itself. Unique: one code opens one invitation.
ALTER TABLE invites ADD COLUMN code_hash TEXT;
-- Who it is for, as the clinician wrote it ("patient", "guardian", "interpreter"...).
ALTER TABLE invites ADD COLUMN label TEXT;

CREATE UNIQUE INDEX invites_code ON invites (code_hash);

-- Each join an invitation let in: the participant the room made of it, when (Unix ms), and a keyed
-- pseudonym of the client's address (never the address). `counted` is 1 for a use of the
-- invitation, 0 for the same browser coming back (a join that replaced this invitation's
-- previous participant: a reload); `taken_over` is 1 once a later join replaced this one, so a
-- participant is replaced without a new use once at most.
CREATE TABLE invite_uses (
    invite_id      TEXT NOT NULL REFERENCES invites(id),
    participant_id TEXT NOT NULL,
    used_at_ms     BIGINT NOT NULL,
    client         TEXT NOT NULL,
    counted        BIGINT NOT NULL,
    taken_over     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (invite_id, participant_id)
);
