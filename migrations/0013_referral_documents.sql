-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Documents attached to a consultation request: uploaded with it, or taken from one of the
-- patient's earlier consultations (a document of a room with the same patient reference, on
-- whose care team the requester is). The bytes are in the blob store, named by sha256, like a
-- room's documents. When the request's room opens (or at once, if it is open), each attachment
-- also becomes a clinicians-only document of the room (room_document).

CREATE TABLE referral_documents (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL REFERENCES referrals(id),
    sha256          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- 'upload', or 'consultation' with the room and document it was taken from.
    source          TEXT NOT NULL,
    source_room     TEXT REFERENCES rooms(id),
    source_document TEXT,
    attached_by     TEXT NOT NULL REFERENCES users(id),
    attached_at     BIGINT NOT NULL,
    -- The document it became in the request's room, once it has one.
    room_document   TEXT
);

CREATE INDEX referral_documents_referral ON referral_documents (referral_id, attached_at);
-- A document of an earlier consultation is attached to a request at most once (uploads have
-- no source document: NULLs are distinct in a unique index on both databases).
CREATE UNIQUE INDEX referral_documents_source ON referral_documents (referral_id, source_document);

-- What a request's attachments use of its limits, taken by one conditional UPDATE in the
-- transaction that inserts an attachment (counting rows before an insert would be a race).
ALTER TABLE referrals ADD COLUMN attachments BIGINT NOT NULL DEFAULT 0;
ALTER TABLE referrals ADD COLUMN attachment_bytes BIGINT NOT NULL DEFAULT 0;
