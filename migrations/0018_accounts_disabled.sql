-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- An account an administrator disabled (a clinician who left, a lost badge): when, or NULL.
-- A disabled account cannot sign in, is not in the directory and cannot be added to a care
-- team; its records and audit entries stay as they are. Enabling it again clears this.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
