-- Issue 15: the per-client rate limit shared by every replica. One row per key (a client IP)
-- with its GCRA state: the theoretical arrival time in microseconds since the epoch, and the
-- last grant (what the upsert's RETURNING reports). UNLOGGED: no WAL, cheap writes; the table
-- is emptied by a crash, which only hands every client a fresh budget. The fill factor leaves
-- room on each page for HOT updates (the row is rewritten on every request).
CREATE UNLOGGED TABLE rate_limits (
    key     TEXT PRIMARY KEY,
    tat     BIGINT NOT NULL,
    granted BIGINT NOT NULL
) WITH (fillfactor = 70);
