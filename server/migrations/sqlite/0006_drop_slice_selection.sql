-- The first slice's one global selection (`PUT /v1/selection`) is gone: spaces keep their own
-- selection in `spaces.properties`.
DROP TABLE IF EXISTS space_selections;
