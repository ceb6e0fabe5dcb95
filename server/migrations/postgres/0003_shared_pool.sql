-- The render pool replicas share (docs/SCALING.md): its state as one row, taken under the row's
-- lock for every change, and the render hosts' links: which replica holds each, where devices
-- reach it, and when that replica last vouched for it.
CREATE TABLE render_pool (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    state  TEXT
);
INSERT INTO render_pool (id, state) VALUES (1, NULL);

CREATE TABLE render_hosts (
    id        TEXT PRIMARY KEY NOT NULL,
    replica   TEXT NOT NULL,
    size      TEXT NOT NULL CHECK (size IN ('Standard', 'Premium')),
    endpoint  TEXT NOT NULL,
    adapter   TEXT NOT NULL,
    pid       BIGINT NOT NULL,
    device    BIGINT NOT NULL DEFAULT 0,
    seen_ms   BIGINT NOT NULL
);
CREATE INDEX render_hosts_replica ON render_hosts (replica);
CREATE INDEX render_sessions_active ON render_sessions (status) WHERE status IN ('Starting', 'Ready');
