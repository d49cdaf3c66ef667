-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- The server looks every few seconds for sessions revoked lately (signed out, ended by an
-- administrator or the command line, a password change), to end the care-team seats taken
-- under them (src/rooms/seat_sessions.rs): without an index that would read every session.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
