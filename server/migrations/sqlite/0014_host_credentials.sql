-- Every render host has a credential of its own (`parallax host add NAME`): only the SHA-256 of
-- its secret is kept. A revoked host keeps its row, so its name can never register again. The
-- one host secret all hosts shared before is gone.
CREATE TABLE host_credentials (
    name           TEXT PRIMARY KEY NOT NULL,
    secret_hash    TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    revoked_at_ms  BIGINT
);
DELETE FROM settings WHERE name = 'host_secret';
