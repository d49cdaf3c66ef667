-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- A message a clinician wrote while the clinicians conferred privately (a huddle): it reached
-- the care team's clinicians only, and a patient's reload or a later join must not show it.
ALTER TABLE chat_messages ADD COLUMN huddle BIGINT NOT NULL DEFAULT 0;
