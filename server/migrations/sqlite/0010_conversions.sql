-- Conversions in Azure Remote Rendering's shape: an account's model file in a storage container,
-- converted into the catalog and written back to an output container. `settings` is the JSON the
-- conversion was created with (without access signatures): a second PUT of the same id must
-- bring the same settings. `status` is NotStarted, Running, Succeeded, Failed or Cancelled.
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
