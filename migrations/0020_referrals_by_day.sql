-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A clinician's requests of the last day, counted at each new request against the daily cap
-- (storage/referrals.rs): by requester and time, without reading their whole history.
CREATE INDEX referrals_requester_created ON referrals (requester_id, created_at);
