/* ear: attestation results as EAR (IETF RATS "EAT Attestation Results",
 * Veraison's eat_profile) in a compact JWS ES256, signed by the verifier.
 * JOSE is libcjose's job; this module holds the verifier's signing keys
 * (current + previous, for rotation), publishes them as a JWKS, and checks
 * tokens against a JWKS for relying parties. Private keys stay behind this
 * interface (a later privilege-separated signer can replace it). */
#ifndef AT_EAR_H
#define AT_EAR_H

#include <jansson.h>

#include "err.h"

#define AT_EAR_PROFILE "tag:github.com,2023:veraison/ear"

typedef struct at_signer at_signer;

/* A new ES256 (P-256) private key as JWK JSON with its RFC 7638 thumbprint
 * as "kid". Caller frees *jwk_json (it is secret: at_wipe_free). */
at_err at_signer_generate(char **jwk_json, at_diag *d) AT_MUST_USE;
/* Signer over private JWKs; keys[0] signs, all are published. Reference
 * counted: the caller holds one reference; at_signer_ref takes another,
 * at_signer_free drops one (the last frees; NULL ok). */
at_err at_signer_new(const char *const *jwk_jsons, size_t n, at_signer **out,
                     at_diag *d) AT_MUST_USE;
at_signer *at_signer_ref(at_signer *s);
void at_signer_free(at_signer *s);
const char *at_signer_kid(const at_signer *s);

/* Compact JWS (header alg ES256, kid, typ JWT) over the claims object.
 * Thread-safe. Caller frees *jws. */
at_err at_signer_sign(at_signer *s, json_t *claims, char **jws, at_diag *d) AT_MUST_USE;
/* {"keys":[public JWKs]} (new reference). */
json_t *at_signer_jwks(const at_signer *s);

/* Relying-party side: verify a compact JWS with the key named by its kid in
 * jwks (ES256 only), check exp/iat against now_s (with 60 s leeway) and the
 * EAR profile. On success *claims gets a new reference. */
at_err at_ear_verify(const char *jws, json_t *jwks, int64_t now_s, json_t **claims,
                     at_diag *d) AT_MUST_USE;

#endif
