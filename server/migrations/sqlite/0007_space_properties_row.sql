-- A space's properties in a row of their own. SQLite rewrites a whole row on any update, and a
-- large space's row holds every member (about 250 KB at 1,000): a selection wrote ~150 pages of
-- it, 4 ms before every broadcast. Now it writes this small row.
CREATE TABLE space_properties (
    space TEXT PRIMARY KEY NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    properties TEXT NOT NULL,
    change_number INTEGER NOT NULL
);

INSERT INTO space_properties (space, properties, change_number)
    SELECT name, properties, change_number FROM spaces WHERE properties IS NOT NULL;

ALTER TABLE spaces DROP COLUMN properties;
