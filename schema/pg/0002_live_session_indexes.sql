-- PostgreSQL dialect of ../0002_live_session_indexes.sql (same version number): BIGINT for
-- millisecond times and ids (INTEGER is 32 bits here), BYTEA for BLOB.
-- Live sessions are few, ended ones pile up: index only the live ones.
-- Re-attestation ends an instance's live session (per attestation), the
-- gateways list live sessions by policy, the pruner ends expired ones.
CREATE INDEX sessions_live_by_instance ON sessions (instance_id) WHERE ended_ms IS NULL;
CREATE INDEX sessions_live_by_policy ON sessions (policy, expires_ms) WHERE ended_ms IS NULL;
CREATE INDEX sessions_live_by_expiry ON sessions (expires_ms) WHERE ended_ms IS NULL;
CREATE INDEX sessions_by_policy_version ON sessions (policy, policy_version) WHERE ended_ms IS NULL;
