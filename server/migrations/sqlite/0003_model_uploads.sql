-- Uploaded models: the file lives under <data dir>/models/<id>/, named as uploaded; `id` is the
-- content hash of everything uploaded, so the same upload twice is stored once.
ALTER TABLE models ADD COLUMN file_name TEXT;
ALTER TABLE models ADD COLUMN format TEXT;
ALTER TABLE models ADD COLUMN size_bytes BIGINT;
ALTER TABLE models ADD COLUMN uploaded_by TEXT;
