-- The space event log replicas share (docs/SCALING.md): each space's last event sequence and
-- when its next timeout is due, the events themselves (the last ones, for resumes on any
-- replica), and the replicas serving.
ALTER TABLE spaces ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN poll_at_ms BIGINT;
-- Bumped by every replica's write: a replica whose copy is this version need not read the body.
ALTER TABLE spaces ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX spaces_poll_at ON spaces (poll_at_ms) WHERE poll_at_ms IS NOT NULL;

CREATE TABLE space_events (
    space          TEXT NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    change_number  BIGINT NOT NULL,
    event          TEXT NOT NULL,
    PRIMARY KEY (space, seq)
);

-- Which replica holds each connected member's socket, and which of its connections it is.
CREATE TABLE space_holders (
    space       TEXT NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    member      TEXT NOT NULL,
    replica     TEXT NOT NULL,
    connection  BIGINT NOT NULL,
    PRIMARY KEY (space, member)
);

CREATE INDEX space_holders_replica ON space_holders (replica);

CREATE TABLE replicas (
    id          TEXT PRIMARY KEY NOT NULL,
    started_ms  BIGINT NOT NULL,
    seen_ms     BIGINT NOT NULL
);
