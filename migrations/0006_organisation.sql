-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- The network's organisation (institutions and their departments), clinicians' places in it,
-- the care team of each consultation, and who signed a clinical record.

CREATE TABLE institutions (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    -- hospital, township_clinic or internet_hospital.
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE departments (
    id             TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions(id),
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (institution_id, name)
);

-- Accounts and rooms made before institutions existed belong to this one; the network's
-- administrator renames it (`huizhen institution rename`) or moves the accounts.
INSERT INTO institutions (id, name, kind, created_at)
VALUES ('ins_0000000000000000', 'Default institution', 'hospital', 0);

-- SQLite refuses ADD COLUMN ... REFERENCES with a non-NULL default while foreign keys are on;
-- the code always names an existing institution.
ALTER TABLE users ADD COLUMN institution_id TEXT NOT NULL DEFAULT 'ins_0000000000000000';
ALTER TABLE users ADD COLUMN department_id TEXT;
-- A professional title as people address the clinician (主任医师, Attending physician).
ALTER TABLE users ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN specialty TEXT NOT NULL DEFAULT '';
-- 1 while the clinician takes new referrals (the directory's "accepts referrals now").
ALTER TABLE users ADD COLUMN accepts_referrals BIGINT NOT NULL DEFAULT 0;

CREATE INDEX users_institution ON users (institution_id);
CREATE INDEX users_department ON users (department_id);

-- The institution that holds the consultation: its clinicians see it.
ALTER TABLE rooms ADD COLUMN institution_id TEXT NOT NULL DEFAULT 'ins_0000000000000000';
CREATE INDEX rooms_institution ON rooms (institution_id, created_at);

-- Link invites name no account. A care-team seat is an invite that belongs to one account: the
-- clinician enters the room with their session, not a link, and removing them from the care
-- team revokes the seat (which removes them from the live room like any revoked invite).
ALTER TABLE invites ADD COLUMN account_id TEXT;

-- The clinicians of a consultation, each with the role they take in its room.
CREATE TABLE care_team (
    room_id    TEXT NOT NULL REFERENCES rooms(id),
    user_id    TEXT NOT NULL REFERENCES users(id),
    -- doctor or specialist.
    role       TEXT NOT NULL,
    seat       TEXT NOT NULL REFERENCES invites(id),
    added_by   TEXT NOT NULL REFERENCES users(id),
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX care_team_user ON care_team (user_id);

-- Every room's creator was its care team: give them a seat (a revoked-never, account-bound
-- invite whose id derives from the room's), so existing consultations keep their clinician.
INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at, account_id)
SELECT 'i_' || substr(id, 3), id, 'doctor', created_by, created_at, 9223372036854775807, created_by
FROM rooms;

INSERT INTO care_team (room_id, user_id, role, seat, added_by, added_at)
SELECT id, created_by, 'doctor', 'i_' || substr(id, 3), created_by, created_at FROM rooms;

-- A record is signed by the account that issued it; what was shown is kept as it was then.
ALTER TABLE records ADD COLUMN signed_by TEXT;
ALTER TABLE records ADD COLUMN signer_name TEXT;
ALTER TABLE records ADD COLUMN signer_title TEXT;
ALTER TABLE records ADD COLUMN signer_institution TEXT;
ALTER TABLE records ADD COLUMN signed_at_ms BIGINT;
