/* peer_ear: mutual attestation through the verifier, the prover behind
 * lib/peer (at_peer_prover). Each side holds a session and its EAR token
 * from attest-verifier. Its proof in the handshake is that token plus a
 * peer binding: a JWS the verifier signs (POST /v1/peer/bindings, on a
 * proof of the session key) naming the session, the instance and the
 * transcript hash, which carries this side's ephemeral key and both
 * nonces. The peer's proof is checked against the verifier's JWKS (fetched
 * once and cached, fetched again when a kid is unknown), the expected
 * policy name, and the binding: same session and instance as the token,
 * this handshake's transcript. Nothing unsigned next to the token is ever
 * trusted. Proof layout and checks: docs/mutual-attestation.md "Through
 * the verifier".
 * Trust boundary: the proof bytes and the verifier's answers are peer
 * input, parsed strictly and bounded; the session key stays in memory the
 * state wipes. */
#ifndef AT_PEER_EAR_H
#define AT_PEER_EAR_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "peer.h"
#include "vclient.h"

/* Largest token or binding carried (each; the proof holds both). */
#define AT_PEER_EAR_MAX_JWS 6144

typedef struct {
    const char *verifier_url;     /* base URL of attest-verifier */
    const char *session_id;       /* this side's live session */
    const uint8_t *session_key;   /* its key, AT_VCLIENT_SESSION_KEY_LEN bytes */
    const char *token;            /* this side's EAR token for that session */
    const char *peer_policy_name; /* the policy the peer's token must name */
    int64_t at_ms;                /* 0: wall clock; else check tokens at this time */
} at_peer_ear_opts;

typedef struct at_peer_ear at_peer_ear;

/* Everything in o is copied. Caller frees. */
at_err at_peer_ear_new(const at_peer_ear_opts *o, at_peer_ear **out, at_diag *d) AT_MUST_USE;
void at_peer_ear_free(at_peer_ear *e); /* wipes; accepts NULL */
/* The prover for at_peer_opts.prover (points into e: e must outlive it). */
void at_peer_ear_prover(at_peer_ear *e, at_peer_prover *out);
/* Use this JWKS instead of fetching it (tests, bench); new reference taken. */
void at_peer_ear_set_jwks(at_peer_ear *e, json_t *jwks);

#endif
