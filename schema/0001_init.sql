-- attest verifier schema, version 1.
-- Keys the verifier creates for itself (signing key for attestation results,
-- MAC key for nonces). Shared by every replica that shares this database.
CREATE TABLE verifier_keys (
    kid        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('signing', 'nonce_mac')),
    material   TEXT NOT NULL,            -- private JWK (signing) or base64 (MAC)
    state      TEXT NOT NULL CHECK (state IN ('current', 'previous', 'retired')),
    created_ms INTEGER NOT NULL
);

-- API bearer tokens; only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'owner', 'auditor', 'gateway', 'agent')),
    label        TEXT,
    created_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER
);

-- Policies are versioned: PUT makes a new version, nothing edits one.
CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE policy_versions (
    name           TEXT NOT NULL REFERENCES policies (name),
    version        INTEGER NOT NULL,
    body           TEXT NOT NULL,        -- canonical JSON
    sha256         TEXT NOT NULL,        -- of body
    created_ms     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    lint_overridden INTEGER NOT NULL DEFAULT 0,
    revoked_ms     INTEGER,
    PRIMARY KEY (name, version)
);

-- Nonces are stateless until consumed; consuming one inserts it here, and
-- the primary key makes a second use fail.
CREATE TABLE nonces_used (
    nonce      BLOB PRIMARY KEY,
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER NOT NULL
);
CREATE INDEX nonces_used_expiry ON nonces_used (expires_ms);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL,
    policy         TEXT NOT NULL,
    policy_version INTEGER NOT NULL,
    format         TEXT NOT NULL,
    module_id      TEXT NOT NULL,
    pcrs           TEXT NOT NULL,        -- JSON {"index": "hex"}
    pcr_sha256     TEXT NOT NULL,
    key_config     BLOB,
    endpoint       TEXT,
    proof_key      BLOB NOT NULL,        -- MAC key derived from the session key
    token          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL,
    ended_ms       INTEGER,
    end_reason     TEXT
);
CREATE INDEX sessions_by_policy ON sessions (policy, expires_ms);
CREATE INDEX sessions_by_instance ON sessions (instance_id);

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    value      BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Release proofs already accepted (replay protection until they go stale).
CREATE TABLE proofs_used (
    mac        BLOB PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);

-- Append-only, hash-chained audit log: hash = SHA-256(prev_hash || row).
CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    time_ms         INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'error')),
    code            TEXT,
    message         TEXT,
    policy          TEXT,
    instance_id     TEXT,
    session_id      TEXT,
    pcr_sha256      TEXT,
    evidence_sha256 TEXT,
    client          TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (time_ms);
-- The last row's id and hash, written in the same transaction as the row,
-- so a truncated tail is detected too.
CREATE TABLE audit_head (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    hash    TEXT NOT NULL
);
