-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Whether those who come with an invitation wait until a clinician admits them (1), or go
-- straight in (0). Consultations made before the waiting room existed keep going straight in.
ALTER TABLE rooms ADD COLUMN waiting_room BIGINT NOT NULL DEFAULT 0;
