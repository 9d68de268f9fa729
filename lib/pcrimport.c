/* pcrimport: merges build tools' measurement files into a policy document
 * (see pcrimport.h). Input is untrusted text: size-capped, parsed with
 * duplicate keys refused, every key and value checked. */
#include "pcrimport.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

/* "PCR12" -> 12, exactly as the tools write it (no "PCR_2", "pcr2",
 * "PCR02"); -1 otherwise. */
static int pcr_key(const char *k)
{
    if (strncmp(k, "PCR", 3) != 0 || !isdigit((unsigned char)k[3]) || (k[3] == '0' && k[4]))
        return -1;
    char *end;
    long n = strtol(k + 3, &end, 10);
    return *end || n < 0 || n > 31 ? -1 : (int)n;
}

static bool is_sha384_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 96;
}

static void add_value(json_t *pcrs, int idx, const char *hex)
{
    char key[8];
    snprintf(key, sizeof key, "%d", idx);
    json_t *arr = json_object_get(pcrs, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(pcrs, key, arr);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcasecmp(json_string_value(v), hex) == 0) return;
    char lower[200];
    snprintf(lower, sizeof lower, "%s", hex);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    json_array_append_new(arr, json_string(lower));
}

/* What a measurements file is: which tool wrote it, which policy format it
 * pins and which registers it must carry. */
typedef struct {
    const char *tool, *format;
    int expected[3];
} source_kind;
static const source_kind kind_eif = {"nitro-cli", "nitro-enclave", {0, 1, 2}};
static const source_kind kind_tpm = {"nitro-tpm-pcr-compute", "nitro-tpm", {4, 7, 12}};

struct merge {
    json_t *pcrs, *files;
    const source_kind *kind;
    const char *tool;
    char doc_format[32];
    uint32_t allow_missing;
};

static at_err merge_measurements(struct merge *m, const char *name, json_t *meas, at_diag *d)
{
    const char *alg = json_string_value(json_object_get(meas, "HashAlgorithm"));
    /* nitro-cli writes "Sha384 { ... }", nitro-tpm-pcr-compute (and the
     * KIWI-NG / Nix attestable-AMI files) "SHA384". */
    const source_kind *k2 = !alg                               ? NULL
                            : strncmp(alg, "Sha384 {", 8) == 0 ? &kind_eif
                            : strcmp(alg, "SHA384") == 0       ? &kind_tpm
                                                               : NULL;
    if (!k2)
        return at_fail(d, AT_E_BAD_REQUEST,
                       "%s: Measurements.HashAlgorithm %.64s: expected \"Sha384 { ... }\""
                       " (nitro-cli) or \"SHA384\" (nitro-tpm-pcr-compute)",
                       name, alg ? alg : "missing");
    if (m->kind && m->kind != k2)
        return at_fail(d, AT_E_BAD_REQUEST,
                       "%s: a %s file mixed with %s files: an enclave image"
                       " and an attestable AMI are different policies; import them separately",
                       name, k2->tool, m->kind->tool);
    m->kind = k2;
    uint32_t seen = 0;
    const char *k;
    json_t *v;
    json_object_foreach(meas, k, v)
    {
        if (strcmp(k, "HashAlgorithm") == 0)
            continue;
        int idx = pcr_key(k);
        if (idx < 0)
            return at_fail(d, AT_E_BAD_REQUEST,
                           "%s: unknown measurement key \"%.64s\" (expected HashAlgorithm or PCR0..PCR31)",
                           name, k);
        if (!json_is_string(v) || !is_sha384_hex(json_string_value(v)))
            return at_fail(d, AT_E_BAD_REQUEST, "%s: %s: expected 96 hex digits (SHA-384)", name, k);
        add_value(m->pcrs, idx, json_string_value(v));
        seen |= 1u << idx;
    }
    for (int e = 0; e < 3; e++) {
        int idx = m->kind->expected[e];
        if (!(seen & (1u << idx)) && !(m->allow_missing & (1u << idx)))
            return at_fail(d, AT_E_BAD_REQUEST,
                           "%s: PCR%d is missing (a %s file carries PCR%d, PCR%d"
                           " and PCR%d; --allow-missing %d if that is intended)",
                           name, idx, m->kind->tool, m->kind->expected[0], m->kind->expected[1],
                           m->kind->expected[2], idx);
    }
    m->tool = m->kind->tool;
    return AT_OK;
}

/* A policy document (attest-agent --print-pcrs, attestctl sim pcrs). */
static at_err merge_policy(struct merge *m, const char *name, json_t *j, json_t *ours, at_diag *d)
{
    const char *f = json_string_value(json_object_get(j, "format"));
    if (m->doc_format[0] && f && strcmp(m->doc_format, f) != 0)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: format %.32s, another file has %s", name, f, m->doc_format);
    if (f)
        snprintf(m->doc_format, sizeof m->doc_format, "%s", f);
    const char *k;
    json_t *arr;
    json_object_foreach(ours, k, arr)
    {
        size_t n;
        json_t *v;
        json_array_foreach(arr, n, v) if (json_is_string(v))
            add_value(m->pcrs, atoi(k), json_string_value(v));
    }
    m->tool = m->tool ? m->tool : "attest";
    return AT_OK;
}

at_err at_pcrimport(const at_span *files, const char *const *names, size_t n, const at_pcrimport_opts *o,
                    json_t **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    struct merge m = {.pcrs = json_object(), .files = json_array(), .allow_missing = o->allow_missing};
    json_t *pol = NULL;
    const char *format = o->format;
    AT_ENSURE(m.pcrs && m.files, d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE(n > 0, d, AT_E_BAD_REQUEST, "files: none given");
    AT_ENSURE(n <= AT_PCRIMPORT_MAX_FILES, d, AT_E_TOO_LARGE, "files: %zu given, at most %d", n,
              AT_PCRIMPORT_MAX_FILES);
    AT_ENSURE(!format || strcmp(format, "nitro-enclave") == 0 || strcmp(format, "nitro-tpm") == 0, d,
              AT_E_BAD_REQUEST, "--format %.32s: expected nitro-enclave or nitro-tpm", format);
    for (size_t i = 0; i < n; i++) {
        AT_ENSURE(files[i].len <= AT_PCRIMPORT_MAX_FILE, d, AT_E_TOO_LARGE, "%s: larger than %d bytes",
                  names[i], AT_PCRIMPORT_MAX_FILE);
        json_error_t je;
        json_t *j = json_loadb((const char *)files[i].p, files[i].len, JSON_REJECT_DUPLICATES, &je);
        AT_ENSURE(j, d, AT_E_BAD_REQUEST, "%s: line %d: %s", names[i], je.line, je.text);
        json_t *meas = json_object_get(j, "Measurements");
        json_t *ours = json_object_get(j, "pcrs");
        if (json_is_object(meas))
            rc = merge_measurements(&m, names[i], meas, d);
        else if (json_is_object(ours))
            rc = merge_policy(&m, names[i], j, ours, d);
        else
            rc = at_fail(d, AT_E_BAD_REQUEST,
                         "%s: no \"Measurements\" object (nitro-cli build-enclave or"
                         " describe-eif JSON, nitro-tpm-pcr-compute JSON) and no \"pcrs\" (a policy)",
                         names[i]);
        json_decref(j);
        if (rc != AT_OK)
            goto out;
        rc = AT_E_INTERNAL;
        json_array_append_new(m.files, json_string(names[i]));
    }
    const char *derived = m.kind ? m.kind->format : m.doc_format[0] ? m.doc_format : NULL;
    AT_ENSURE(!m.kind || !m.doc_format[0] || strcmp(m.kind->format, m.doc_format) == 0, d, AT_E_BAD_REQUEST,
              "a %s file mixed with a %s policy", m.kind ? m.kind->tool : "", m.doc_format);
    AT_ENSURE(!format || !derived || strcmp(format, derived) == 0, d, AT_E_BAD_REQUEST,
              "--format %s, but the input is %s (%s)", format, derived, m.kind ? m.kind->tool : "a policy");
    format = format ? format : derived ? derived : "nitro-enclave";
    pol = json_object();
    AT_ENSURE(pol, d, AT_E_INTERNAL, "out of memory");
    json_object_set_new(pol, "format", json_string(format));
    json_object_set(pol, "pcrs", m.pcrs);
    if (o->session_ttl_s)
        json_object_set_new(pol, "session_ttl_s", json_integer(o->session_ttl_s));
    if (o->max_document_age_s)
        json_object_set_new(pol, "max_document_age_s", json_integer(o->max_document_age_s));
    json_t *prov = json_object();
    json_object_set_new(prov, "tool", json_string(m.tool ? m.tool : "unknown"));
    json_object_set(prov, "files", m.files);
    json_object_set_new(pol, "provenance", prov);
    /* Validate what we produce, so mistakes show here. */
    at_policy *p = NULL;
    AT_TRY(at_policy_from_json(pol, &p, d));
    at_policy_free(p);
    *out = pol;
    pol = NULL;
    rc = AT_OK;
out:
    json_decref(pol);
    json_decref(m.pcrs);
    json_decref(m.files);
    return rc;
}
