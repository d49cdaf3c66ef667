-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); ids are prefixed random strings (see src/ids.rs).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE rooms (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    patient_ref TEXT,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT
);

CREATE INDEX rooms_created_at ON rooms (created_at);

CREATE TABLE invites (
    id         TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms(id),
    role       TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX invites_room ON invites (room_id);
