-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A patient's consent recorded on a consultation request, before the patient is a participant
-- of any room: the requesting clinician attests that the patient agreed to the words of
-- `wording_version` for `purpose` (today only external_sharing: the request's documents may be
-- read by the clinicians of the receiving institution). Withdrawing closes the row (when, and
-- which clinician recorded it); giving again makes a new one, so the history stays, as in
-- `consents` (migration 0010).
CREATE TABLE referral_consents (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL REFERENCES referrals(id),
    purpose         TEXT NOT NULL,
    wording_version TEXT NOT NULL,
    attested_by     TEXT NOT NULL REFERENCES users(id),
    given_at        BIGINT NOT NULL,
    withdrawn_at    BIGINT,
    withdrawn_by    TEXT REFERENCES users(id)
);

CREATE INDEX referral_consents_referral ON referral_consents (referral_id, purpose, given_at);
