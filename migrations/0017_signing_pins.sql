-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A clinician's signing PIN (src/auth/signing_pin.rs): an Argon2id hash like the password's,
-- NULL when none is set. `signing_pin_failures` counts the tries since the last right one,
-- each counted before it is checked; at the limit the PIN is erased. A password change erases
-- the PIN too.
ALTER TABLE users ADD COLUMN signing_pin_hash TEXT;
ALTER TABLE users ADD COLUMN signing_pin_failures BIGINT NOT NULL DEFAULT 0;
