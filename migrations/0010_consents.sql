-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A patient's consent for one purpose in one consultation: given (with the version of the words
-- shown), and withdrawn. Withdrawing closes the row; giving again makes a new one, so the
-- history stays.
CREATE TABLE consents (
    id              TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL REFERENCES rooms(id),
    participant_id  TEXT NOT NULL,
    invite_id       TEXT NOT NULL,
    -- recording, observer_present or external_sharing.
    purpose         TEXT NOT NULL,
    wording_version TEXT NOT NULL,
    given_at        BIGINT NOT NULL,
    withdrawn_at    BIGINT
);

CREATE INDEX consents_room ON consents (room_id, purpose);
