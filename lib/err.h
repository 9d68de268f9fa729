/* err: the one error vocabulary of attest.
 * A single X-macro table gives each failure its enum value, the stable string
 * published in API.md and the HTTP status that fits it. Codes never change
 * meaning once published. Human detail goes into a caller-owned at_diag. */
#ifndef AT_ERR_H
#define AT_ERR_H

#include <stddef.h>

#define AT_ERROR_TABLE(X)                                                 \
    X(AT_OK, "ok", 200)                                                   \
    X(AT_E_MALFORMED_CBOR, "malformed_cbor", 400)                         \
    X(AT_E_NOT_COSE_SIGN1, "not_cose_sign1", 400)                         \
    X(AT_E_UNSUPPORTED_ALG, "unsupported_alg", 400)                       \
    X(AT_E_MISSING_FIELD, "missing_field", 400)                           \
    X(AT_E_BAD_FIELD, "bad_field", 400)                                   \
    X(AT_E_BAD_SIGNATURE, "bad_signature", 422)                           \
    X(AT_E_CHAIN_INVALID, "chain_invalid", 422)                           \
    X(AT_E_CERT_EXPIRED, "cert_expired", 422)                             \
    X(AT_E_CERT_NOT_YET_VALID, "cert_not_yet_valid", 422)                 \
    X(AT_E_UNTRUSTED_ROOT, "untrusted_root", 422)                         \
    X(AT_E_NONCE_MISMATCH, "nonce_mismatch", 422)                         \
    X(AT_E_NONCE_UNKNOWN, "nonce_unknown", 422)                           \
    X(AT_E_NONCE_REUSED, "nonce_reused", 409)                             \
    X(AT_E_NONCE_EXPIRED, "nonce_expired", 422)                           \
    X(AT_E_PCR_MISMATCH, "pcr_mismatch", 403)                             \
    X(AT_E_POLICY_NOT_FOUND, "policy_not_found", 404)                     \
    X(AT_E_POLICY_LINT, "policy_lint", 422)                               \
    X(AT_E_DOCUMENT_TOO_OLD, "document_too_old", 422)                     \
    X(AT_E_CLOCK_SKEW, "clock_skew", 422)                                 \
    X(AT_E_KEY_REQUIRED, "key_required", 422)                             \
    X(AT_E_SESSION_EXPIRED, "session_expired", 401)                       \
    X(AT_E_TOO_LARGE, "too_large", 413)                                   \
    X(AT_E_UNAUTHORIZED, "unauthorized", 401)                             \
    X(AT_E_FORBIDDEN, "forbidden", 403)                                   \
    X(AT_E_NOT_FOUND, "not_found", 404)                                   \
    X(AT_E_CONFLICT, "conflict", 409)                                     \
    X(AT_E_RATE_LIMITED, "rate_limited", 429)                             \
    X(AT_E_BAD_REQUEST, "bad_request", 400)                               \
    X(AT_E_FORMAT_MISMATCH, "format_mismatch", 422)                       \
    X(AT_E_MODULE_ID_MISMATCH, "module_id_mismatch", 403)                 \
    X(AT_E_UNKNOWN_KEY_ID, "unknown_key_id", 400)                         \
    X(AT_E_UNSUPPORTED_SUITE, "unsupported_suite", 400)                   \
    X(AT_E_DECRYPT_FAILED, "decrypt_failed", 400)                         \
    X(AT_E_TRUNCATED, "truncated", 400)                                   \
    X(AT_E_SEQUENCE_OVERFLOW, "sequence_overflow", 400)                   \
    X(AT_E_TIMESTAMP_OUTSIDE_VALIDITY, "timestamp_outside_validity", 422) \
    X(AT_E_PURPOSE_MISMATCH, "purpose_mismatch", 403)                     \
    X(AT_E_ENDPOINT_MISMATCH, "endpoint_mismatch", 403)                   \
    X(AT_E_ENDPOINT_CONFLICT, "endpoint_conflict", 409)                   \
    X(AT_E_TRANSCRIPT_MISMATCH, "transcript_mismatch", 403)               \
    X(AT_E_REFLECTION, "reflection", 403)                                 \
    X(AT_E_UNEXPECTED_MESSAGE, "unexpected_message", 400)                 \
    X(AT_E_POLICY_MISMATCH, "policy_mismatch", 403)                       \
    X(AT_E_BINDING_MISMATCH, "binding_mismatch", 403)                     \
    X(AT_E_IO, "io", 500)                                                 \
    X(AT_E_UNAVAILABLE, "unavailable", 503)                               \
    X(AT_E_INTERNAL, "internal", 500)                                     \
    X(AT_E_SECRET_EXISTS, "secret_exists", 409)                           \
    X(AT_E_SECRET_NAME_MISMATCH, "secret_name_mismatch", 422)             \
    X(AT_E_NO_VERIFIED_INSTANCE, "no_verified_instance", 503)             \
    X(AT_E_ATTESTATION_EXPIRED, "attestation_expired", 503)               \
    X(AT_E_POLICY_REVOKED, "policy_revoked", 503)                         \
    X(AT_E_TOKEN_INVALID, "token_invalid", 502)                           \
    X(AT_E_INSTANCE_UNREACHABLE, "instance_unreachable", 502)             \
    X(AT_E_REPLAYED, "replayed", 409)                                     \
    X(AT_E_UPSTREAM_UNAVAILABLE, "upstream_unavailable", 502)             \
    X(AT_E_SESSION_NOT_FOUND, "session_not_found", 404)

typedef enum {
#define AT_ERR_ENUM(sym, str, http) sym,
    AT_ERROR_TABLE(AT_ERR_ENUM)
#undef AT_ERR_ENUM
        AT_ERR_COUNT
} at_err;

/* Human detail for one failure: which field, expected vs actual. Owned by
 * the caller (stack), never global: the servers run several threads. */
#define AT_DIAG_MAX 1024
typedef struct {
    char msg[AT_DIAG_MAX];
} at_diag;

/* Stable string for a code, e.g. "malformed_cbor". Never NULL. */
const char *at_err_str(at_err e);
/* HTTP status that fits a code. */
int at_err_http_status(at_err e);
/* Parse a stable string back to its code; AT_E_INTERNAL when unknown. */
at_err at_err_from_str(const char *s);

/* Record detail for the caller; diag may be NULL. Always returns code, so a
 * failure path reads `return at_fail(d, AT_E_BAD_FIELD, "nonce: ...")`. */
at_err at_fail(at_diag *d, at_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix the existing detail with context ("cabundle[2]: "). */
void at_diag_prefix(at_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the OpenSSL error queue (and clear it) to the detail. */
void at_diag_add_openssl(at_diag *d);

#define AT_MUST_USE __attribute__((warn_unused_result))

/* try-this-call: propagate a non-OK code. */
#define AT_TRY(expr)                \
    do {                            \
        at_err at_try_rc_ = (expr); \
        if (at_try_rc_ != AT_OK) {  \
            rc = at_try_rc_;        \
            goto out;               \
        }                           \
    } while (0)

/* ensure-condition-else-code, with detail. */
#define AT_ENSURE(cond, d, code, ...)               \
    do {                                            \
        if (!(cond)) {                              \
            rc = at_fail((d), (code), __VA_ARGS__); \
            goto out;                               \
        }                                           \
    } while (0)

/* OpenSSL's "1 means success": anything else is internal, with its queue. */
#define AT_OSSL(call, d)                                            \
    do {                                                            \
        if ((call) != 1) {                                          \
            rc = at_fail((d), AT_E_INTERNAL, "openssl: %s", #call); \
            at_diag_add_openssl(d);                                 \
            goto out;                                               \
        }                                                           \
    } while (0)

#endif
