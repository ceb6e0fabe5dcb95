-- The Postgres store's schema: the same tables and columns as the SQLite store's after its
-- migrations 0001 to 0011 (server/migrations/sqlite), so the store's queries run unchanged on both.
-- `rowid` stands in for SQLite's implicit row id where the order things were added is asked for.
-- Instants are Unix milliseconds (UTC); `created_at` texts are `YYYY-MM-DD HH:MM:SS` (UTC), as
-- SQLite's CURRENT_TIMESTAMP writes them.

-- The model catalog: the samples Parallax builds and the uploads of each account.
CREATE TABLE models (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    triangles    BIGINT NOT NULL CHECK (triangles >= 0),
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    file_name    TEXT,
    format       TEXT,
    size_bytes   BIGINT,
    uploaded_by  TEXT,
    content_id   TEXT,
    status       TEXT NOT NULL DEFAULT 'ready',
    failure      TEXT,
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX models_by_owner ON models (uploaded_by);
CREATE INDEX models_by_content ON models (content_id);

-- Accounts that lease render sessions. The key is only stored as an Argon2 hash.
CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    key_hash           TEXT NOT NULL,
    created_at         TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    revoked_at_ms      BIGINT,
    key_rotated_at_ms  BIGINT,
    rowid              BIGINT GENERATED ALWAYS AS IDENTITY
);

-- Every render session, kept 30 days after it ended.
CREATE TABLE render_sessions (
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    id                 TEXT NOT NULL,
    size               TEXT NOT NULL CHECK (size IN ('Standard', 'Premium')),
    max_lease_minutes  BIGINT NOT NULL CHECK (max_lease_minutes BETWEEN 0 AND 1440),
    status             TEXT NOT NULL CHECK (status IN ('Starting', 'Ready', 'Stopped', 'Expired', 'Error')),
    created_at_ms      BIGINT NOT NULL,
    ready_at_ms        BIGINT,
    ended_at_ms        BIGINT,
    error              TEXT,
    host               TEXT,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX render_sessions_by_end ON render_sessions (ended_at_ms);

-- Coordinator-wide settings, such as the secret that signs access tokens.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Shared spaces (MPSD model), each stored whole as JSON; its properties in a row of their own.
CREATE TABLE space_templates (
    name       TEXT PRIMARY KEY NOT NULL,
    constants  TEXT NOT NULL
);

CREATE TABLE spaces (
    name           TEXT PRIMARY KEY NOT NULL,
    body           TEXT NOT NULL,
    change_number  BIGINT NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);

CREATE TABLE space_properties (
    space          TEXT PRIMARY KEY NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    properties     TEXT NOT NULL,
    change_number  BIGINT NOT NULL
);

INSERT INTO space_templates (name, constants) VALUES
    ('default', '{}'),
    ('private', '{"visibility":"private"}'),
    ('review', '{"visibility":"private","selectPolicy":"arbiter_only"}'),
    ('large', '{"large":true,"maxMembers":1000}');

-- Conversions in Azure Remote Rendering's shape.
CREATE TABLE conversions (
    account_id     TEXT NOT NULL,
    id             TEXT NOT NULL,
    settings       TEXT NOT NULL,
    status         TEXT NOT NULL,
    error_code     TEXT,
    error_message  TEXT,
    model_id       TEXT,
    output_uri     TEXT,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
