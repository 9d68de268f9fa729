/* ear: attestation results as EAR (IETF RATS "EAT Attestation Results",
 * Veraison's eat_profile) in a compact JWS ES256, signed by the verifier.
 * JOSE is libcjose's job; this module holds the verifier's signing keys
 * (current + previous, for rotation), publishes them as a JWKS, and checks
 * tokens against a JWKS for relying parties. Private keys stay behind this
 * interface (a later privilege-separated signer can replace it). */
#ifndef AT_EAR_H
#define AT_EAR_H

#include <jansson.h>
#include <stdbool.h>

#include "buf.h"
#include "err.h"

#define AT_EAR_PROFILE "tag:github.com,2023:veraison/ear"

/* AR4SI trustworthiness tiers as draft-ietf-rats-ear encodes them: each
 * claim of ear.trustworthiness-vector and ear.status (the worst claim). */
enum { AT_TIER_NONE = 0, AT_TIER_AFFIRMING = 2, AT_TIER_WARNING = 32, AT_TIER_CONTRAINDICATED = 96 };

/* What the verifier checked of one attestation, and how it went. */
typedef enum { AT_CHECK_NOT_RUN = 0, AT_CHECK_PASSED, AT_CHECK_FAILED } at_check;
typedef struct {
    at_check chain;      /* COSE signature and certificate chain to a pinned root */
    at_check identity;   /* the signed module_id (equal to the requested instance_id) */
    at_check pcrs;       /* every PCR the policy pins */
    at_check binding;    /* the signed user_data binding: purpose and endpoint */
    bool policy_lint_ok; /* the policy passes at_policy_lint (false: admitted by override) */
} at_ear_checks;

/* The trustworthiness vector derived from c (docs/ear-profile.md): a new
 * object with instance-identity, executables, hardware, configuration. */
json_t *at_ear_tvector(const at_ear_checks *c);
/* The ear.status name of the worst tier in a vector: none, affirming,
 * warning or contraindicated. */
const char *at_ear_status(const json_t *tvector);
/* Veraison's ear.veraison.key-attestation "akpub": base64url of the DER
 * SubjectPublicKeyInfo of the KEM public key in an HPKE key configuration
 * (X25519 only). Caller frees *akpub. */
at_err at_ear_akpub(at_span key_config, char **akpub, at_diag *d) AT_MUST_USE;

typedef struct at_signer at_signer;

/* A new ES256 (P-256) private key as JWK JSON with its RFC 7638 thumbprint
 * as "kid". Caller frees *jwk_json (it is secret: at_wipe_free). */
at_err at_signer_generate(char **jwk_json, at_diag *d) AT_MUST_USE;
/* Signer over private JWKs; keys[0] signs, all are published. Reference
 * counted: the caller holds one reference; at_signer_ref takes another,
 * at_signer_free drops one (the last frees; NULL ok). */
at_err at_signer_new(const char *const *jwk_jsons, size_t n, at_signer **out, at_diag *d) AT_MUST_USE;
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
at_err at_ear_verify(const char *jws, json_t *jwks, int64_t now_s, json_t **claims, at_diag *d) AT_MUST_USE;

#endif
