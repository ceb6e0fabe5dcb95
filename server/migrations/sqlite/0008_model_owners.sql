-- An upload belongs to the account that made it: its catalog id is that account's own (a hash of
-- the account and the content), so another account uploading the same bytes learns nothing, while
-- the files stay stored once per content under <data dir>/models/<content_id>/. Uploads from
-- before were named by their content, so for them the two are the same.
ALTER TABLE models ADD COLUMN content_id TEXT;
UPDATE models SET content_id = id WHERE source = 'upload';
CREATE INDEX models_by_owner ON models (uploaded_by);
CREATE INDEX models_by_content ON models (content_id);
