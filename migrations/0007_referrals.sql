-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL.
-- Consultation requests (referrals): a clinician asks a department, or a named specialist in
-- it, to consult jointly; the times proposed with the request; every step of its life; and the
-- time slot of the consultation room a scheduled request opens.

CREATE TABLE referrals (
    id                    TEXT PRIMARY KEY,
    requester_id          TEXT NOT NULL REFERENCES users(id),
    -- The requester's institution when they asked: it holds the consultation's room.
    requester_institution TEXT NOT NULL REFERENCES institutions(id),
    target_department     TEXT NOT NULL REFERENCES departments(id),
    -- A named specialist of that department, or NULL for the department as a whole.
    target_specialist     TEXT REFERENCES users(id),
    -- The receiving clinician who last took a step on it (accepted, proposed a time, ...);
    -- NULL until one does, and again after it is forwarded. Their inbox lists it.
    receiver_id           TEXT REFERENCES users(id),
    -- Pseudonymous, never a name or an identity number.
    patient_ref           TEXT NOT NULL,
    reason                TEXT NOT NULL,
    question              TEXT NOT NULL,
    -- routine, urgent or emergency; urgency_rank orders inboxes (0 emergency, 1 urgent,
    -- 2 routine).
    urgency               TEXT NOT NULL,
    urgency_rank          BIGINT NOT NULL,
    -- The state's name and its details, each present exactly where the state has one:
    -- state_by (requester or receiver: who proposed the pending time, or cancelled), the slot
    -- (proposed or agreed) and state_reason (why declined or cancelled).
    state                 TEXT NOT NULL,
    state_by              TEXT,
    slot_start            BIGINT,
    slot_minutes          BIGINT,
    state_reason          TEXT,
    -- 1 until declined, closed or cancelled: open requests are listed first.
    is_open               BIGINT NOT NULL,
    -- The consultation room, from the time the request is first scheduled.
    room_id               TEXT REFERENCES rooms(id),
    -- Bumped by every step; a step applies only to the version it was decided on.
    version               BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- The inboxes: a specialist's own (named, or taken on by them), the department's, the
-- requester's outbox; open first, then by urgency and age.
CREATE INDEX referrals_specialist ON referrals (target_specialist, is_open, urgency_rank, created_at);
CREATE INDEX referrals_receiver ON referrals (receiver_id, is_open, urgency_rank, created_at);
CREATE INDEX referrals_department ON referrals (target_department, is_open, urgency_rank, created_at);
CREATE INDEX referrals_requester ON referrals (requester_id, is_open, urgency_rank, created_at);
CREATE INDEX referrals_room ON referrals (room_id);

-- The times the requester proposed with the request, in their order.
CREATE TABLE referral_slots (
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    position    BIGINT NOT NULL,
    start_at    BIGINT NOT NULL,
    minutes     BIGINT NOT NULL,
    PRIMARY KEY (referral_id, position)
);

-- Every step: its version is the request's version after it (1: the request itself), so a
-- request's steps are numbered without gaps and two steps can never claim one version.
CREATE TABLE referral_events (
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    version     BIGINT NOT NULL,
    -- create, accept, propose_time, decline, forward, start, issue_report, close, cancel.
    action      TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    actor_id    TEXT NOT NULL REFERENCES users(id),
    -- requester or receiver.
    side        TEXT NOT NULL,
    -- A JSON object: the slot, the new target, the reason.
    detail      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (referral_id, version)
);

-- A consultation's time slot (Unix seconds, minutes), where one was agreed.
ALTER TABLE rooms ADD COLUMN slot_start BIGINT;
ALTER TABLE rooms ADD COLUMN slot_minutes BIGINT;
