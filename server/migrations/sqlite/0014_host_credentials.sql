-- Every render host has a credential of its own (`parallax host add NAME`): only the SHA-256 of
-- its secret is kept. A revoked host keeps its row, so its name can never register again. The
-- name its first certificate was issued for is bound to it: no other host is ever issued one for
-- that name, and it is issued none for another. The one host secret all hosts shared before is
-- gone.
CREATE TABLE host_credentials (
    name           TEXT PRIMARY KEY NOT NULL,
    secret_hash    TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    revoked_at_ms  BIGINT,
    certificate_name  TEXT UNIQUE
);
DELETE FROM settings WHERE name = 'host_secret';
