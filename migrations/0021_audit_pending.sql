-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Audit entries owed by a step already committed (storage/audit_pending.rs): written in the
-- transaction of a consultation request's step or a clinical record's change, removed in the
-- transaction that appends them
-- to the chain. A crash or a failed append between the two leaves the row here, and the server
-- appends it at its next start (or its hourly housekeeping): a committed step always reaches
-- the trail, and only once.
CREATE TABLE audit_pending (
    id      TEXT PRIMARY KEY,
    -- The event as JSON (audit::AuditEvent): actor, action, object, detail.
    event   TEXT NOT NULL,
    -- Unix milliseconds of the step, and the event's place among the step's own: the order
    -- in which rows left behind are appended.
    at_ms   BIGINT NOT NULL,
    ord     BIGINT NOT NULL
);
CREATE INDEX audit_pending_order ON audit_pending (at_ms, ord);
