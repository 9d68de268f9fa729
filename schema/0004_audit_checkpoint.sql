-- The last audit row whose chain GET /v1/audit/verify recomputed and found
-- intact (id and hash). An incremental check starts from it; it is trusted
-- only while the row with that id still carries that hash.
CREATE TABLE audit_checkpoint (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    id          INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    verified_ms INTEGER NOT NULL
);
