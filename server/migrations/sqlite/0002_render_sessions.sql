-- Accounts that lease render sessions. The key is only stored as an Argon2 hash.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Every render session, kept 30 days after it ended. Instants are Unix milliseconds (UTC).
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
