-- An operator revokes an account (`parallax account revoke`): the row stays, for the sessions,
-- uploads and spaces that name it, but its key and its tokens stop working. A rotated key
-- (`parallax account rotate-key`) replaces the hash. Unix milliseconds (UTC).
ALTER TABLE accounts ADD COLUMN revoked_at_ms BIGINT;
ALTER TABLE accounts ADD COLUMN key_rotated_at_ms BIGINT;
