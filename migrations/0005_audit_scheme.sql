-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- The audit chain becomes keyed: each entry's hash is an HMAC-SHA256 under the audit key, a
-- file kept outside the database (src/audit/key.rs). Entries already written keep their plain
-- SHA-256 hashes and say so; history is never rewritten. Verification checks each entry by its
-- scheme and refuses an unkeyed entry after a keyed one.
ALTER TABLE audit_log ADD COLUMN scheme TEXT NOT NULL DEFAULT 'sha256';
