-- A space's properties on their own: a selection rewrites this small column, not the whole body
-- with every member (about 250 bytes a member). NULL: the body's properties are current.
ALTER TABLE spaces ADD COLUMN properties TEXT;
