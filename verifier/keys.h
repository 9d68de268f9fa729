/* keys: every secret attest-verifier holds, behind one small interface:
 * the signing keys (EAR tokens, JWKS), the nonce MAC keys, the storage key
 * for secrets at rest and the bootstrap admin token file. Routes never see
 * key material: they ask for an operation (mint or check a nonce, seal or
 * open a stored value, a signer reference). Every call takes and returns
 * plain values, so the keys can later move into a separate, minimally
 * privileged process (OpenSMTPD's ca) without the routes changing.
 * Signing and nonce MAC keys live in the verifier_keys table; the storage
 * key in its own 0600 file beside the database (written atomically by
 * lib/file), so a copy of the database alone opens no secret. */
#ifndef AT_VERIFIER_KEYS_H
#define AT_VERIFIER_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "ear.h"
#include "err.h"
#include "nonce.h"

typedef struct verifier_keys verifier_keys;

/* The label proof keys of sessions are sealed under (with the session id
 * as the name): sessions.proof_key at rest. */
#define PROOF_KEY_SEAL_LABEL "session proof key"

/* Make sure a current signing key and nonce MAC key exist; with
 * rotate_signing, a new signing key becomes current (the current one
 * previous, the previous one retired). Each change gets its audit row. */
at_err keys_ensure(at_db *db, bool rotate_signing, at_diag *d) AT_MUST_USE;

/* Load the signing and nonce MAC keys; read the admin token file (or
 * create it with a fresh token, which is then registered as an admin
 * token); read the storage key file (or create it when the database holds
 * nothing sealed), check that it opens what is sealed, and seal proof keys
 * still stored in clear. Any failure: no keys, the start stops. */
at_err keys_open(at_db *db, const char *admin_token_file, const char *storage_key_file, verifier_keys **out,
                 at_diag *d) AT_MUST_USE;
void keys_close(verifier_keys *k); /* wipes; accepts NULL */

/* Reload the signing keys (SIGHUP after --rotate-signing-key elsewhere);
 * requests in flight keep the signer they hold. */
at_err keys_reload_signer(verifier_keys *k, at_diag *d) AT_MUST_USE;
/* Reload the signing keys when the database's current signing key is not
 * the one in use (a rotation by another process or replica); *changed says
 * whether it did. The verifier calls it every KEYS_REFRESH_S seconds. */
#define KEYS_REFRESH_S 2
at_err keys_refresh_signer(verifier_keys *k, bool *changed, at_diag *d) AT_MUST_USE;
/* The current signer, a reference (at_signer_free it). */
at_signer *keys_signer(verifier_keys *k);

/* Nonces (lib/nonce) under the current MAC key; checked against the
 * current and previous keys. */
at_err keys_nonce_issue(verifier_keys *k, int64_t now_ms, int ttl_s, uint8_t out[AT_NONCE_LEN],
                        int64_t *expires_ms) AT_MUST_USE;
at_err keys_nonce_check(verifier_keys *k, at_span nonce, int64_t now_ms, int64_t *expires_ms,
                        at_diag *d) AT_MUST_USE;

/* Secrets at rest (lib/seal at_storage_*) under the storage key, bound to
 * name and policy. Seal appends to out; open appends the plaintext to out
 * (a secret buffer), AT_E_DECRYPT_FAILED when key, name or policy differ. */
at_err keys_storage_seal(verifier_keys *k, const char *name, const char *policy, at_span plain, at_buf *out,
                         at_diag *d) AT_MUST_USE;
at_err keys_storage_open(verifier_keys *k, const char *name, const char *policy, at_span stored, at_buf *out,
                         at_diag *d) AT_MUST_USE;

/* sessions.proof_key at rest: the 32-byte proof key sealed under the
 * storage key, bound to the session id (a database reader cannot forge
 * release proofs). Seal appends to out; open is AT_E_DECRYPT_FAILED when
 * the storage key or the id do not match. */
at_err keys_proof_key_seal(verifier_keys *k, const char *session_id, const uint8_t key[32], at_buf *out,
                           at_diag *d) AT_MUST_USE;
at_err keys_proof_key_open(verifier_keys *k, const char *session_id, at_span sealed, uint8_t key[32],
                           at_diag *d) AT_MUST_USE;

#endif
