/* policy: parses owner-supplied policy JSON strictly (it arrives over the
 * network from authenticated owners, still untrusted in shape), lints it and
 * evaluates documents against it. */
#include "policy.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "hash.h"

void at_policy_free(at_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_pcrs; i++)
        free(p->pcrs[i].values);
    for (size_t i = 0; i < p->n_module_ids; i++)
        free(p->module_ids[i]);
    free(p->module_ids);
    json_decref(p->provenance);
    free(p);
}

static bool parse_index(const char *key, unsigned *out)
{
    /* "0".."31", no sign, no leading zeros, no spaces. */
    size_t n = strlen(key);
    if (n == 0 || n > 2 || (n == 2 && key[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (key[i] < '0' || key[i] > '9')
            return false;
        v = v * 10 + (unsigned)(key[i] - '0');
    }
    if (v > AT_MAX_PCR_INDEX)
        return false;
    *out = v;
    return true;
}

static int pcr_cmp(const void *a, const void *b)
{
    return (int)((const at_policy_pcr *)a)->index - (int)((const at_policy_pcr *)b)->index;
}

static at_err parse_pcrs(json_t *obj, at_policy *p, at_diag *d)
{
    if (!json_is_object(obj))
        return at_fail(d, AT_E_BAD_FIELD, "pcrs: expected an object {\"index\": [hex, ...]}");
    if (json_object_size(obj) > AT_MAX_PCRS)
        return at_fail(d, AT_E_BAD_FIELD, "pcrs: %zu entries, at most %d", json_object_size(obj),
                       AT_MAX_PCRS);
    const char *key;
    json_t *arr;
    json_object_foreach(obj, key, arr)
    {
        unsigned idx;
        if (!parse_index(key, &idx))
            return at_fail(d, AT_E_BAD_FIELD, "pcrs: key \"%.16s\" is not a PCR index 0..%d", key,
                           AT_MAX_PCR_INDEX);
        if (!json_is_array(arr))
            return at_fail(d, AT_E_BAD_FIELD, "pcrs.%s: expected an array of hex strings", key);
        size_t n = json_array_size(arr);
        if (n > AT_POLICY_MAX_VALUES_PER_PCR)
            return at_fail(d, AT_E_BAD_FIELD, "pcrs.%s: %zu values, at most %d", key, n,
                           AT_POLICY_MAX_VALUES_PER_PCR);
        at_policy_pcr *pp = &p->pcrs[p->n_pcrs];
        pp->index = (uint8_t)idx;
        pp->values = calloc(n ? n : 1, sizeof *pp->values);
        if (!pp->values)
            return at_fail(d, AT_E_INTERNAL, "out of memory");
        p->n_pcrs++;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(arr, i);
            const char *hex = json_string_value(v);
            size_t got = 0;
            if (!hex)
                return at_fail(d, AT_E_BAD_FIELD, "pcrs.%s[%zu]: expected a hex string", key, i);
            size_t hl = json_string_length(v);
            if (hl != 2 * AT_SHA384_LEN)
                return at_fail(d, AT_E_BAD_FIELD,
                               "pcrs.%s[%zu]: %zu hex digits, expected 96 (SHA-384 for %s)", key, i, hl,
                               at_format_name(p->format));
            if (at_hex_decode(hex, hl, pp->values[i], AT_SHA384_LEN, &got) != AT_OK)
                return at_fail(d, AT_E_BAD_FIELD, "pcrs.%s[%zu]: not hex", key, i);
            for (size_t j = 0; j < i; j++)
                if (memcmp(pp->values[j], pp->values[i], AT_SHA384_LEN) == 0)
                    return at_fail(d, AT_E_BAD_FIELD, "pcrs.%s[%zu]: duplicate of value %zu", key, i, j);
            pp->n++;
        }
    }
    qsort(p->pcrs, p->n_pcrs, sizeof p->pcrs[0], pcr_cmp);
    return AT_OK;
}

static at_err int_field(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out, at_diag *d)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return AT_OK;
    if (!json_is_integer(v))
        return at_fail(d, AT_E_BAD_FIELD, "%s: expected an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return at_fail(d, AT_E_BAD_FIELD, "%s: %lld, expected %lld..%lld", key, (long long)x, (long long)min,
                       (long long)max);
    *out = x;
    return AT_OK;
}

static at_err bool_field(json_t *obj, const char *key, bool *out, at_diag *d)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return AT_OK;
    if (!json_is_boolean(v))
        return at_fail(d, AT_E_BAD_FIELD, "%s: expected true or false", key);
    *out = json_is_true(v);
    return AT_OK;
}

at_err at_policy_from_json(json_t *obj, at_policy **out, at_diag *d)
{
    static const char *known[] = {"format",        "pcrs",          "max_document_age_s",
                                  "session_ttl_s", "require_nonce", "require_public_key",
                                  "module_ids",    "provenance"};
    at_err rc = AT_E_INTERNAL;
    at_policy *p = NULL;
    AT_ENSURE(json_is_object(obj), d, AT_E_BAD_FIELD, "policy: expected a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(key, known[i]) == 0;
        AT_ENSURE(ok, d, AT_E_BAD_FIELD, "policy: unknown key \"%.64s\"", key);
    }
    AT_ENSURE((p = calloc(1, sizeof *p)), d, AT_E_INTERNAL, "out of memory");
    p->max_document_age_s = AT_POLICY_DEFAULT_MAX_AGE_S;
    p->session_ttl_s = AT_POLICY_DEFAULT_SESSION_TTL_S;
    p->require_nonce = true;
    p->require_public_key = true;

    json_t *fmt = json_object_get(obj, "format");
    AT_ENSURE(fmt, d, AT_E_BAD_FIELD, "format: missing (nitro-enclave or nitro-tpm)");
    AT_ENSURE(json_is_string(fmt) && at_format_parse(json_string_value(fmt), &p->format) &&
                  p->format != AT_FORMAT_AUTO,
              d, AT_E_BAD_FIELD, "format: expected \"nitro-enclave\" or \"nitro-tpm\"");
    json_t *pcrs = json_object_get(obj, "pcrs");
    AT_ENSURE(pcrs, d, AT_E_BAD_FIELD, "pcrs: missing");
    AT_TRY(parse_pcrs(pcrs, p, d));
    AT_TRY(int_field(obj, "max_document_age_s", 1, AT_POLICY_MAX_DOC_AGE_S, &p->max_document_age_s, d));
    AT_TRY(int_field(obj, "session_ttl_s", AT_POLICY_MIN_SESSION_TTL_S, AT_POLICY_MAX_SESSION_TTL_S,
                     &p->session_ttl_s, d));
    AT_TRY(bool_field(obj, "require_nonce", &p->require_nonce, d));
    AT_TRY(bool_field(obj, "require_public_key", &p->require_public_key, d));
    json_t *ids = json_object_get(obj, "module_ids");
    if (ids) {
        AT_ENSURE(json_is_array(ids) && json_array_size(ids) > 0 &&
                      json_array_size(ids) <= AT_POLICY_MAX_MODULE_IDS,
                  d, AT_E_BAD_FIELD, "module_ids: expected a non-empty array of at most %d strings",
                  AT_POLICY_MAX_MODULE_IDS);
        AT_ENSURE((p->module_ids = calloc(json_array_size(ids), sizeof *p->module_ids)), d, AT_E_INTERNAL,
                  "out of memory");
        for (size_t i = 0; i < json_array_size(ids); i++) {
            json_t *s = json_array_get(ids, i);
            AT_ENSURE(json_is_string(s) && json_string_length(s) > 0 &&
                          json_string_length(s) <= AT_MAX_MODULE_ID &&
                          strlen(json_string_value(s)) == json_string_length(s),
                      d, AT_E_BAD_FIELD, "module_ids[%zu]: expected a string of 1..%d characters", i,
                      AT_MAX_MODULE_ID);
            AT_ENSURE((p->module_ids[i] = strdup(json_string_value(s))), d, AT_E_INTERNAL, "out of memory");
            p->n_module_ids++;
        }
    }
    json_t *prov = json_object_get(obj, "provenance");
    if (prov) {
        AT_ENSURE(json_is_object(prov), d, AT_E_BAD_FIELD, "provenance: expected an object");
        p->provenance = json_deep_copy(prov);
        AT_ENSURE(p->provenance, d, AT_E_INTERNAL, "out of memory");
    }
    *out = p;
    p = NULL;
    rc = AT_OK;
out:
    at_policy_free(p);
    return rc;
}

at_err at_policy_parse(const char *text, size_t len, at_policy **out, at_diag *d)
{
    if (len > AT_POLICY_MAX_JSON_BYTES)
        return at_fail(d, AT_E_TOO_LARGE, "policy: %zu bytes, at most %d", len, AT_POLICY_MAX_JSON_BYTES);
    json_error_t je;
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!obj)
        return at_fail(d, AT_E_BAD_FIELD, "policy: invalid JSON at line %d column %d: %s", je.line, je.column,
                       je.text);
    at_err rc = at_policy_from_json(obj, out, d);
    json_decref(obj);
    return rc;
}

static bool all_zero(const uint8_t *v, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= v[i];
    return acc == 0;
}

static const at_policy_pcr *policy_pcr(const at_policy *p, unsigned index)
{
    for (size_t i = 0; i < p->n_pcrs; i++)
        if (p->pcrs[i].index == index)
            return &p->pcrs[i];
    return NULL;
}

at_err at_policy_lint(const at_policy *p, at_diag *d)
{
    char msg[AT_DIAG_MAX] = "";
    size_t used = 0;
    int findings = 0;
#define FINDING(...)                                                                  \
    do {                                                                              \
        findings++;                                                                   \
        if (used < sizeof msg) {                                                      \
            int w_ = snprintf(msg + used, sizeof msg - used, "%s", used ? "; " : ""); \
            used += w_ > 0 ? (size_t)w_ : 0;                                          \
        }                                                                             \
        if (used < sizeof msg) {                                                      \
            int w_ = snprintf(msg + used, sizeof msg - used, __VA_ARGS__);            \
            used += w_ > 0 ? (size_t)w_ : 0;                                          \
        }                                                                             \
    } while (0)
    if (p->n_pcrs == 0)
        FINDING("pcrs: no PCR listed, so any code would be admitted");
    for (size_t i = 0; i < p->n_pcrs; i++) {
        if (p->pcrs[i].n == 0)
            FINDING("pcrs.%u: empty allow-list admits nothing", p->pcrs[i].index);
        if (p->format == AT_FORMAT_NITRO_ENCLAVE && p->pcrs[i].index <= 2)
            for (size_t j = 0; j < p->pcrs[i].n; j++)
                if (all_zero(p->pcrs[i].values[j], AT_SHA384_LEN))
                    FINDING("pcrs.%u: all-zero value is a debug-mode enclave (anyone can "
                            "read its memory)",
                            p->pcrs[i].index);
    }
    if (p->format == AT_FORMAT_NITRO_TPM && policy_pcr(p, 4) && !policy_pcr(p, 12) && !policy_pcr(p, 7))
        FINDING("pcrs: nitro-tpm policy pins PCR4 without PCR12 or PCR7, so the boot loader can "
                "append an unmeasured kernel command line (GHSA-xrv8-2pf5-f3q7); pin PCR12 "
                "(standard boot) or PCR7 (Secure Boot) too");
#undef FINDING
    if (findings)
        return at_fail(d, AT_E_POLICY_LINT, "policy lint (%d finding%s): %s", findings,
                       findings > 1 ? "s" : "", msg);
    return AT_OK;
}

json_t *at_policy_to_json(const at_policy *p)
{
    json_t *o = json_object(), *pcrs = json_object();
    if (!o || !pcrs) {
        json_decref(o);
        json_decref(pcrs);
        return NULL;
    }
    json_object_set_new(o, "format", json_string(at_format_name(p->format)));
    for (size_t i = 0; i < p->n_pcrs; i++) {
        json_t *arr = json_array();
        for (size_t j = 0; j < p->pcrs[i].n; j++) {
            char hex[2 * AT_SHA384_LEN + 1];
            at_hex_encode(p->pcrs[i].values[j], AT_SHA384_LEN, hex);
            json_array_append_new(arr, json_string(hex));
        }
        char key[8];
        snprintf(key, sizeof key, "%u", p->pcrs[i].index);
        json_object_set_new(pcrs, key, arr);
    }
    json_object_set_new(o, "pcrs", pcrs);
    json_object_set_new(o, "max_document_age_s", json_integer(p->max_document_age_s));
    json_object_set_new(o, "session_ttl_s", json_integer(p->session_ttl_s));
    json_object_set_new(o, "require_nonce", json_boolean(p->require_nonce));
    json_object_set_new(o, "require_public_key", json_boolean(p->require_public_key));
    if (p->module_ids) {
        json_t *ids = json_array();
        for (size_t i = 0; i < p->n_module_ids; i++)
            json_array_append_new(ids, json_string(p->module_ids[i]));
        json_object_set_new(o, "module_ids", ids);
    }
    if (p->provenance)
        json_object_set(o, "provenance", p->provenance);
    return o;
}

char *at_policy_canonical_json(const at_policy *p)
{
    json_t *o = at_policy_to_json(p);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

at_err at_policy_sha256(const at_policy *p, uint8_t out[32])
{
    char *s = at_policy_canonical_json(p);
    if (!s)
        return AT_E_INTERNAL;
    at_err rc = at_sha256(AT_SPAN(s, strlen(s)), out, NULL);
    free(s);
    return rc;
}

static bool value_allowed(const at_policy_pcr *pp, const uint8_t *v)
{
    bool hit = false;
    for (size_t j = 0; j < pp->n; j++)
        hit |= CRYPTO_memcmp(pp->values[j], v, AT_SHA384_LEN) == 0;
    return hit;
}

at_err at_policy_eval_pcrs(const at_policy *p, const at_nitro_payload *doc, at_pcr_report *report, at_diag *d)
{
    at_pcr_report local;
    at_pcr_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < p->n_pcrs; i++) {
        const at_policy_pcr *pp = &p->pcrs[i];
        const at_pcr *have = at_nitro_pcr(doc, pp->index);
        if (have && have->len == AT_SHA384_LEN && value_allowed(pp, have->value))
            continue;
        at_pcr_failure *f = &r->failures[r->n_failures++];
        f->index = pp->index;
        f->missing = !have;
        if (have)
            memcpy(f->actual, have->value, AT_SHA384_LEN);
    }
    if (r->n_failures == 0)
        return AT_OK;
    /* "PCR4: got <hex>, expected one of [<hex>, ...]; PCR12: missing" */
    char msg[AT_DIAG_MAX];
    size_t used = 0;
    for (size_t k = 0; k < r->n_failures && used < sizeof msg; k++) {
        const at_pcr_failure *f = &r->failures[k];
        const at_policy_pcr *pp = policy_pcr(p, f->index);
        int w;
        if (f->missing) {
            w = snprintf(msg + used, sizeof msg - used, "%sPCR%u: missing from the document", k ? "; " : "",
                         f->index);
        } else {
            char got[2 * AT_SHA384_LEN + 1], want[2 * AT_SHA384_LEN + 1] = "";
            at_hex_encode(f->actual, AT_SHA384_LEN, got);
            if (pp->n)
                at_hex_encode(pp->values[0], AT_SHA384_LEN, want);
            w = snprintf(msg + used, sizeof msg - used, "%sPCR%u: got %s, expected %s%s%s%s", k ? "; " : "",
                         f->index, got, pp->n > 1 ? "one of [" : "",
                         pp->n ? want : "nothing (empty allow-list)", pp->n > 1 ? ", ..." : "",
                         pp->n > 1 ? "]" : "");
        }
        used += w > 0 ? (size_t)w : 0;
    }
    return at_fail(d, AT_E_PCR_MISMATCH, "%zu PCR%s not allowed by the policy: %s", r->n_failures,
                   r->n_failures > 1 ? "s" : "", msg);
}

at_err at_policy_check(const at_policy *p, const at_nitro_payload *doc, int64_t now_ms, at_pcr_report *report,
                       at_diag *d)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (doc->format != p->format)
        return at_fail(d, AT_E_FORMAT_MISMATCH, "format: policy is for %s, document is %s",
                       at_format_name(p->format), at_format_name(doc->format));
    at_err rc = at_policy_eval_pcrs(p, doc, report, d);
    if (rc != AT_OK)
        return rc;
    if (p->module_ids) {
        bool ok = false;
        for (size_t i = 0; i < p->n_module_ids; i++)
            ok = ok || strcmp(p->module_ids[i], doc->module_id) == 0;
        if (!ok)
            return at_fail(d, AT_E_MODULE_ID_MISMATCH,
                           "module_id: %s is not one of the policy's %zu module ids", doc->module_id,
                           p->n_module_ids);
    }
    if (p->require_public_key && (!doc->has_public_key || doc->public_key.len == 0))
        return at_fail(d, AT_E_KEY_REQUIRED,
                       "public_key: the policy requires an attested public key, the document "
                       "has none");
    if (p->require_nonce && (!doc->has_nonce || doc->nonce.len == 0))
        return at_fail(d, AT_E_NONCE_MISMATCH, "nonce: the policy requires a nonce, the document has none");
    int64_t age_ms = now_ms - (int64_t)doc->timestamp_ms;
    if (age_ms > p->max_document_age_s * 1000)
        return at_fail(d, AT_E_DOCUMENT_TOO_OLD,
                       "timestamp: document is %lld s old, the policy allows %lld s",
                       (long long)(age_ms / 1000), (long long)p->max_document_age_s);
    return AT_OK;
}

json_t *at_pcr_report_json(const at_policy *p, const at_pcr_report *r)
{
    json_t *arr = json_array();
    for (size_t k = 0; arr && k < r->n_failures; k++) {
        const at_pcr_failure *f = &r->failures[k];
        const at_policy_pcr *pp = policy_pcr(p, f->index);
        json_t *o = json_object(), *allowed = json_array();
        char hex[2 * AT_SHA384_LEN + 1];
        json_object_set_new(o, "index", json_integer(f->index));
        if (f->missing) {
            json_object_set_new(o, "actual", json_null());
        } else {
            at_hex_encode(f->actual, AT_SHA384_LEN, hex);
            json_object_set_new(o, "actual", json_string(hex));
        }
        for (size_t j = 0; pp && j < pp->n; j++) {
            at_hex_encode(pp->values[j], AT_SHA384_LEN, hex);
            json_array_append_new(allowed, json_string(hex));
        }
        json_object_set_new(o, "allowed", allowed);
        json_array_append_new(arr, o);
    }
    return arr;
}
