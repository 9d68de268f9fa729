-- PostgreSQL dialect of ../0004_audit_checkpoint.sql (same version number): BIGINT for
-- millisecond times and ids (INTEGER is 32 bits here), BYTEA for BLOB.
-- The last audit row whose chain GET /v1/audit/verify recomputed and found
-- intact (id and hash). An incremental check starts from it; it is trusted
-- only while the row with that id still carries that hash.
CREATE TABLE audit_checkpoint (
    one         BIGINT PRIMARY KEY CHECK (one = 1),
    id          BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    verified_ms BIGINT NOT NULL
);
