-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Shared documents, chat, annotations, clinical records, who took part, and the audit trail.
-- Times are Unix seconds unless the column name ends in _ms.

-- Who took part in each consultation, and when (the summary page and the audit trail read it).
CREATE TABLE participants (
    id        TEXT PRIMARY KEY,
    room_id   TEXT NOT NULL REFERENCES rooms(id),
    invite_id TEXT NOT NULL,
    role      TEXT NOT NULL,
    name      TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at   BIGINT
);

CREATE INDEX participants_room ON participants (room_id);

-- A document exists only once it is complete and its SHA-256 was checked; its bytes live in
-- the blob store under that hash.
CREATE TABLE documents (
    id             TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL REFERENCES rooms(id),
    sha256         TEXT NOT NULL,
    size           BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    visibility     TEXT NOT NULL,
    shared_by      TEXT NOT NULL,
    shared_by_role TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

CREATE INDEX documents_room ON documents (room_id, created_at_ms);

-- Unfinished uploads; the received bytes are in <data_dir>/uploads/<id>.part.
CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL REFERENCES rooms(id),
    participant_id TEXT NOT NULL,
    -- The upload belongs to the person (their invite), so a reloaded page can resume it.
    invite_id      TEXT NOT NULL,
    role           TEXT NOT NULL,
    name           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    visibility     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE INDEX uploads_invite ON uploads (invite_id);

CREATE TABLE annotations (
    id            TEXT PRIMARY KEY,
    document_id   TEXT NOT NULL REFERENCES documents(id),
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    page          BIGINT NOT NULL,
    shape         TEXT NOT NULL,
    author        TEXT NOT NULL,
    author_role   TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX annotations_document ON annotations (document_id);

CREATE TABLE chat_messages (
    id             TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL REFERENCES rooms(id),
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

CREATE INDEX chat_messages_room ON chat_messages (room_id, created_at_ms);

-- Clinical records: every version is a row; an issued version is never updated, a correction
-- is a new row whose `supersedes` names the old one. `body` is canonical JSON, `body_sha256`
-- its hash. Prescription state changes are rows in record_events.
CREATE TABLE records (
    id            TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    kind          TEXT NOT NULL,
    supersedes    TEXT REFERENCES records(id),
    status        TEXT NOT NULL,
    body          TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    author        TEXT NOT NULL,
    author_name   TEXT NOT NULL,
    author_role   TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX records_room ON records (room_id, created_at_ms);
CREATE UNIQUE INDEX records_one_successor ON records (supersedes);

CREATE TABLE record_events (
    id          TEXT PRIMARY KEY,
    record_id   TEXT NOT NULL REFERENCES records(id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    note        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);

CREATE INDEX record_events_record ON record_events (record_id);

-- The audit trail: append-only, hash-chained. Entry n holds the hash of entry n-1
-- (`prev_hash`) and its own hash over every other column; `seq` has no gaps.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    action        TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    object_sha256 TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

CREATE INDEX audit_log_room ON audit_log (room_id);
