-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- What each person and each room has used of the document quotas, as counters that an upload
-- takes from with one conditional UPDATE (`crate::storage` documents.rs): a count of rows
-- checked before an insert is a race (two requests both see 3 of 4 and both insert).
-- An open upload holds its place in every counter from its start; finishing it turns that
-- place into the document's, discarding it gives the place back. The counters change only in
-- the transactions that insert or delete the uploads and documents they count.

-- Per person: an upload belongs to the invite, so a reloaded page keeps the same counters.
CREATE TABLE document_quota_invites (
    invite_id    TEXT PRIMARY KEY,
    -- Uploads started and not yet finished or discarded.
    open_uploads BIGINT NOT NULL DEFAULT 0 CHECK (open_uploads >= 0),
    -- Documents shared, and places held by open uploads.
    documents    BIGINT NOT NULL DEFAULT 0 CHECK (documents >= 0),
    -- Their bytes (an open upload's declared size).
    bytes        BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);

-- Per room: everyone's documents, and those of participants who are not clinicians (so that
-- patients cannot take the places kept for the care team).
CREATE TABLE document_quota_rooms (
    room_id                 TEXT PRIMARY KEY REFERENCES rooms(id),
    documents               BIGINT NOT NULL DEFAULT 0 CHECK (documents >= 0),
    non_clinician_documents BIGINT NOT NULL DEFAULT 0 CHECK (non_clinician_documents >= 0)
);

-- What existing rows have used. A document names the participant who shared it, whose row
-- names the invite. 'doctor' and 'specialist' are the clinicians of `Role::is_clinician`.
INSERT INTO document_quota_invites (invite_id, open_uploads, documents, bytes)
SELECT invite_id, SUM(o), SUM(n), SUM(b) FROM (
    SELECT invite_id, 1 AS o, 1 AS n, size AS b FROM uploads
    UNION ALL
    SELECT p.invite_id, 0 AS o, 1 AS n, d.size AS b
    FROM documents d JOIN participants p ON p.id = d.shared_by
) used
GROUP BY invite_id;

INSERT INTO document_quota_rooms (room_id, documents, non_clinician_documents)
SELECT room_id, COUNT(*), SUM(CASE WHEN role IN ('doctor', 'specialist') THEN 0 ELSE 1 END)
FROM (
    SELECT room_id, role FROM uploads
    UNION ALL
    SELECT room_id, shared_by_role AS role FROM documents
) used
GROUP BY room_id;
