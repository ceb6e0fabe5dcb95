-- A model whose conversion runs after its upload has returned (a STEP file, read by a CAD kernel
-- that may take minutes) is `converting` until it ends: then `ready`, or `failed` with the reason.
-- Everything stored before was converted before it was stored.
ALTER TABLE models ADD COLUMN status TEXT NOT NULL DEFAULT 'ready';
ALTER TABLE models ADD COLUMN failure TEXT;
