-- Browser sessions signed out before their token ran out: the token's id, refused by every
-- coordinator on the database until the token would have expired anyway (then the row goes).
CREATE TABLE signed_out_tokens (
    jti            TEXT PRIMARY KEY NOT NULL,
    expires_at_ms  BIGINT NOT NULL
);
