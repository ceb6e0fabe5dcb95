-- Shared spaces (MPSD model). A space is stored whole, as JSON, with its member tokens' hashes:
-- every change rewrites its row, in order, so a restart finds it exactly as it was.
CREATE TABLE space_templates (
    name TEXT PRIMARY KEY NOT NULL,
    -- The constants the template fixes (JSON, absent fields are the creator's choice).
    constants TEXT NOT NULL
);

CREATE TABLE spaces (
    name TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    change_number INTEGER NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO space_templates (name, constants) VALUES
    ('default', '{}'),
    ('private', '{"visibility":"private"}'),
    ('review', '{"visibility":"private","selectPolicy":"arbiter_only"}'),
    ('large', '{"large":true,"maxMembers":1000}');
