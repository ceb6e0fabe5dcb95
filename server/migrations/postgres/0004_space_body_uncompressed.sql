-- A space's body is rewritten whole at every join and status change (its members are in it):
-- kept out of line but uncompressed, which costs disk and saves the compression of up to a few
-- hundred KB at every write (docs/BENCHMARKS.md, "Replicas").
ALTER TABLE spaces ALTER COLUMN body SET STORAGE EXTERNAL;
