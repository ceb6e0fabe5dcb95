-- The space event log replicas share (docs/SCALING.md): each space's last event sequence and
-- when its next timeout is due, the events themselves (the last ones, for resumes on any
-- replica), and the replicas serving. The embedded coordinator keeps its events in memory and
-- leaves these empty; the tables are here so one store interface answers on both databases.
ALTER TABLE spaces ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN poll_at_ms INTEGER;
-- Bumped by every replica's write: a replica whose copy is this version need not read the body.
ALTER TABLE spaces ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE space_events (
    space          TEXT NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    change_number  INTEGER NOT NULL,
    event          TEXT NOT NULL,
    PRIMARY KEY (space, seq)
);

-- Which replica holds each connected member's socket, and which of its connections it is.
CREATE TABLE space_holders (
    space       TEXT NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    member      TEXT NOT NULL,
    replica     TEXT NOT NULL,
    connection  INTEGER NOT NULL,
    PRIMARY KEY (space, member)
);

CREATE TABLE replicas (
    id          TEXT PRIMARY KEY NOT NULL,
    started_ms  INTEGER NOT NULL,
    seen_ms     INTEGER NOT NULL
);
