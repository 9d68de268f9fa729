-- PostgreSQL dialect of ../0003_state_guards.sql (same version number): BIGINT for
-- millisecond times and ids (INTEGER is 32 bits here), BYTEA for BLOB.
-- attest verifier schema, version 3: state that must not silently go wrong.
-- Time high-water mark: the largest cutoff the pruner ever used. Single-use
-- records (nonces_used, proofs_used) that expired before it may be gone, so
-- a nonce or release proof expiring at or before it is refused whatever the
-- wall clock says (a clock set back after a prune cannot revive one).
CREATE TABLE clock_watermark (
    one              BIGINT PRIMARY KEY CHECK (one = 1),
    pruned_before_ms BIGINT NOT NULL
);
INSERT INTO clock_watermark (one, pruned_before_ms) VALUES (1, 0);

-- API tokens expire (NULL = never) and may be limited to named policies
-- (comma-separated policy names, NULL = every policy).
ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT;
ALTER TABLE api_tokens ADD COLUMN policies TEXT;

-- sessions.proof_key now holds the proof key sealed under the storage key
-- (lib/seal at_storage_seal, name = session id); the verifier re-seals
-- rows written in clear by earlier versions when it starts.
