/* vclient: the attested side of the verifier protocol, shared by
 * attest-agent and attestctl: challenge, attestation (open the sealed
 * session key), release of a secret with a session-key proof (API.md).
 * Answers are peer input: bounded by httpc, parsed strictly; the session
 * key and released values exist only in memory the caller wipes. */
#ifndef AT_VCLIENT_H
#define AT_VCLIENT_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"

#define AT_VCLIENT_NONCE_MAX 64 /* a verifier nonce is 32 bytes; more is refused */
#define AT_VCLIENT_SESSION_KEY_LEN 32

/* Where the verifier is; both strings borrowed. */
typedef struct {
    const char *url;    /* base URL, e.g. http://127.0.0.1:8440 */
    const char *bearer; /* API token, or NULL */
} at_vclient;

/* A session the verifier admitted. key is a secret: at_wipe it. */
typedef struct {
    char id[80];
    uint8_t key[AT_VCLIENT_SESSION_KEY_LEN];
    int64_t expires_ms;
} at_vclient_session;

/* Every function below sets *status (may be NULL) to the HTTP status of
 * the verifier's answer, 0 when none came. With no answer the httpc code
 * (AT_E_UNAVAILABLE, AT_E_TOO_LARGE) and its diag (URL, connect result);
 * with a non-2xx answer the code the verifier named (AT_E_UNAVAILABLE when
 * none) and "verifier: METHOD PATH: HTTP n code: message". */

/* One call: body (may be NULL) as JSON to url+path. *answer (may be NULL)
 * receives the JSON answer whenever one came, the error object too (new
 * reference; NULL when the body is not JSON). AT_OK on 2xx. */
at_err at_vclient_call(const at_vclient *c, const char *method, const char *path, json_t *body, long *status,
                       json_t **answer, at_diag *d) AT_MUST_USE;

/* POST /v1/challenge: the nonce (1 to AT_VCLIENT_NONCE_MAX bytes) into
 * nonce, its length into *len. AT_E_BAD_FIELD when the answer has none. */
at_err at_vclient_challenge(const at_vclient *c, uint8_t nonce[AT_VCLIENT_NONCE_MAX], size_t *len,
                            long *status, at_diag *d) AT_MUST_USE;

/* POST /v1/attestations {evidence, policy, endpoint (omitted when NULL)},
 * then open session.key_sealed with key (HPKE, info AT_SEAL_INFO_SESSION).
 * AT_E_BAD_FIELD when the answer lacks the session id, the sealed key or
 * the expiry, or the key is not 32 bytes; the at_seal_open code when it
 * does not open. *out written only on success; *answer as for
 * at_vclient_call (the sealed key removed from it). */
at_err at_vclient_attest(const at_vclient *c, at_span evidence, const char *policy, const char *endpoint,
                         const at_hpke_key *key, at_vclient_session *out, long *status, json_t **answer,
                         at_diag *d) AT_MUST_USE;

/* POST /v1/secrets/NAME/release with a proof made from the session key at
 * ts_ms, then open the sealed value with key (info "attest secret NAME");
 * the value is appended to out (use a secret buffer). AT_E_BAD_FIELD when
 * the answer holds no sealed value. */
at_err at_vclient_release(const at_vclient *c, const char *session_id,
                          const uint8_t session_key[AT_VCLIENT_SESSION_KEY_LEN], const char *name,
                          int64_t ts_ms, const at_hpke_key *key, at_buf *out, long *status,
                          at_diag *d) AT_MUST_USE;

#endif
