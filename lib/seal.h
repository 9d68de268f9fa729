/* seal: what the verifier sends to an attested environment and how that
 * environment proves it holds the session key (API.md "Agent's attestation
 * binding"). Values are sealed with HPKE base mode, X25519 / HKDF-SHA256 /
 * AES-128-GCM, to the RFC 9458 key configuration the document attests,
 * with info "attest session key" or "attest secret <name>"; the result is
 * enc || ciphertext. Secret release requests carry a proof
 * "<unix_ms>.<base64url HMAC-SHA256(proof_key, "attest release v1\n" name
 * "\n" session "\n" unix_ms)>", where proof_key = HMAC-SHA256(session_key,
 * "attest session proof v1"). */
#ifndef AT_SEAL_H
#define AT_SEAL_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"

#define AT_SEAL_INFO_SESSION "attest session key"
#define AT_SEAL_INFO_SECRET_PREFIX "attest secret "

/* Seal pt to the X25519 key of a single RFC 9458 key configuration
 * (attacker-supplied bytes from a document: parsed strictly). Appends
 * enc || ct to out. */
at_err at_seal_to_key_config(at_span key_config, const char *info, at_span pt, at_buf *out,
                             at_diag *d) AT_MUST_USE;
/* Open enc || ct with the recipient's private key; appends the plaintext
 * to out (use a secret buffer). AT_E_DECRYPT_FAILED when it does not open. */
at_err at_seal_open(const at_hpke_key *sk, const char *info, at_span sealed, at_buf *out,
                    at_diag *d) AT_MUST_USE;

/* proof_key = HMAC-SHA256(session_key, "attest session proof v1"). */
void at_session_proof_key(at_span session_key, uint8_t out[32]);
/* A release proof for secret `name` in `session` at ts_ms, into out
 * (≥ 64 bytes). */
at_err at_release_proof_make(at_span proof_key, const char *name, const char *session, int64_t ts_ms,
                             char *out, size_t outlen) AT_MUST_USE;
/* A peer binding request (verifier POST /v1/peer/bindings) is proven like
 * a release, with name = AT_PEER_PROOF_PREFIX || transcript hex || ":" ||
 * peer session id (empty when none). Secret names cannot hold ':'. */
#define AT_PEER_PROOF_PREFIX "peer:"
/* Split an attacker-supplied proof into its timestamp and MAC. */
at_err at_release_proof_parse(const char *proof, int64_t *ts_ms, uint8_t mac[32], at_diag *d) AT_MUST_USE;
/* Constant-time check of a parsed proof. */
bool at_release_proof_check(at_span proof_key, const char *name, const char *session, int64_t ts_ms,
                            const uint8_t mac[32]);

/* Secrets at rest in the verifier's database: AES-256-GCM under a storage
 * key kept outside the database, bound to the secret's name and policy.
 * Stored form: 0x01 || nonce (12) || ciphertext || tag (16). */
#define AT_STORAGE_KEY_LEN 32
at_err at_storage_seal(const uint8_t key[AT_STORAGE_KEY_LEN], const char *name, const char *policy,
                       at_span pt, at_buf *out, at_diag *d) AT_MUST_USE;
/* Appends the plaintext to out (a secret buffer); AT_E_DECRYPT_FAILED when
 * the key, name or policy do not match. */
at_err at_storage_open(const uint8_t key[AT_STORAGE_KEY_LEN], const char *name, const char *policy,
                       at_span stored, at_buf *out, at_diag *d) AT_MUST_USE;

#endif
