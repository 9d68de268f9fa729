/* policy: PCR policies (API.md "Policy document"): strict parsing of the
 * JSON an owner submits, canonical form and digest, the lint that refuses
 * known traps, and evaluation of a decoded document against a policy with a
 * report naming every failing PCR (expected vs actual). */
#ifndef AT_POLICY_H
#define AT_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "nitro.h"

typedef struct {
    uint8_t index;
    size_t n; /* allowed values */
    uint8_t (*values)[AT_SHA384_LEN];
} at_policy_pcr;

typedef struct {
    at_format format;
    at_policy_pcr pcrs[AT_MAX_PCRS]; /* sorted by index */
    size_t n_pcrs;
    int64_t max_document_age_s; /* default 300 */
    int64_t session_ttl_s;      /* default 600, at least 5 */
    bool require_nonce;         /* default true */
    bool require_public_key;    /* default true */
    char **module_ids;          /* NULL = any */
    size_t n_module_ids;
    json_t *provenance; /* NULL = none recorded */
} at_policy;

#define AT_POLICY_DEFAULT_MAX_AGE_S 300
#define AT_POLICY_DEFAULT_SESSION_TTL_S 600
#define AT_POLICY_MIN_SESSION_TTL_S 5
#define AT_POLICY_MAX_SESSION_TTL_S (7 * 24 * 3600)
#define AT_POLICY_MAX_DOC_AGE_S (24 * 3600)
#define AT_POLICY_MAX_JSON_BYTES (64 * 1024)
#define AT_POLICY_MAX_VALUES_PER_PCR 64
#define AT_POLICY_MAX_MODULE_IDS 256

/* Parse and validate a policy document. Unknown keys, wrong types, values
 * that do not fit the format's digest: AT_E_BAD_FIELD naming the field.
 * Does not lint. On success the caller owns *out (at_policy_free). */
at_err at_policy_parse(const char *json, size_t len, at_policy **out, at_diag *d) AT_MUST_USE;
at_err at_policy_from_json(json_t *obj, at_policy **out, at_diag *d) AT_MUST_USE;
void at_policy_free(at_policy *p);

/* Known traps, refused with AT_E_POLICY_LINT (callers may let an explicit
 * override through): a nitro-tpm policy pinning PCR4 without PCR12 or PCR7
 * (GHSA-xrv8-2pf5-f3q7), an all-zero PCR0/1/2 value (debug-mode enclave),
 * an empty allow-list, no PCR at all. The detail lists every finding. */
at_err at_policy_lint(const at_policy *p, at_diag *d) AT_MUST_USE;

/* The normalised policy (defaults filled, keys sorted, compact) as JSON
 * text, and its SHA-256. Caller frees the text. */
char *at_policy_canonical_json(const at_policy *p);
at_err at_policy_sha256(const at_policy *p, uint8_t out[32]) AT_MUST_USE;
/* The normalised policy as a JSON object (new reference). */
json_t *at_policy_to_json(const at_policy *p);

typedef struct {
    uint8_t index;
    bool missing; /* the document lacks this PCR */
    uint8_t actual[AT_SHA384_LEN];
} at_pcr_failure;

typedef struct {
    at_pcr_failure failures[AT_MAX_PCRS];
    size_t n_failures;
} at_pcr_report;

/* Every listed PCR must be present and equal one allowed value. Fills report
 * (when not NULL) with every failing index; AT_E_PCR_MISMATCH with a message
 * naming each index, the value seen and the values allowed. */
at_err at_policy_eval_pcrs(const at_policy *p, const at_nitro_payload *doc, at_pcr_report *report,
                           at_diag *d) AT_MUST_USE;

/* Everything a policy says about a document except nonce freshness: format,
 * module id, PCRs, required public key and nonce presence, and the age of the
 * document at reference time now_ms (AT_E_DOCUMENT_TOO_OLD). */
at_err at_policy_check(const at_policy *p, const at_nitro_payload *doc, int64_t now_ms, at_pcr_report *report,
                       at_diag *d) AT_MUST_USE;

/* Describe a failing report as JSON: [{"index":N,"actual":"hex"|null,
 * "allowed":["hex",...]}]. New reference. */
json_t *at_pcr_report_json(const at_policy *p, const at_pcr_report *r);

#endif
