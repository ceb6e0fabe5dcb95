-- The model catalog: sample models now, uploads later. `id` is stable and opaque to clients.
CREATE TABLE models (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    triangles   BIGINT NOT NULL CHECK (triangles >= 0),
    source      TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- What each space shows, so a restarted coordinator shows the same model again.
CREATE TABLE space_selections (
    space          TEXT PRIMARY KEY,
    model_id       TEXT NOT NULL REFERENCES models (id),
    change_number  BIGINT NOT NULL CHECK (change_number >= 0),
    updated_at     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
