/* nitro: decodes attacker-supplied Nitro attestation payloads (field names
 * and value rules from AWS's CDDL and genuine documents, nitro-facts.md). */
#include "nitro.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbor_rd.h"

const char *at_format_name(at_format f)
{
    switch (f) {
    case AT_FORMAT_NITRO_ENCLAVE:
        return "nitro-enclave";
    case AT_FORMAT_NITRO_TPM:
        return "nitro-tpm";
    default:
        return "auto";
    }
}

bool at_format_parse(const char *name, at_format *out)
{
    if (strcmp(name, "auto") == 0)
        *out = AT_FORMAT_AUTO;
    else if (strcmp(name, "nitro-enclave") == 0)
        *out = AT_FORMAT_NITRO_ENCLAVE;
    else if (strcmp(name, "nitro-tpm") == 0)
        *out = AT_FORMAT_NITRO_TPM;
    else
        return false;
    return true;
}

static const at_cbor_limits payload_limits = {AT_MAX_CBOR_DEPTH, AT_MAX_CBOR_ITEMS};

/* bstr-or-null optional field (public_key, user_data, nonce) of min..1024
 * bytes. AWS's semantic validation: public_key, when present, is 1..1024
 * bytes; user_data and nonce 0..1024 (genuine documents carry empty
 * user_data, and 1024-byte user_data and nonce). */
static at_err optional_bytes(const cbor_item_t *map, const char *key, size_t min, bool *has, at_span *out,
                             at_diag *d)
{
    const cbor_item_t *v = at_cbor_map_get_text(map, key);
    *has = false;
    *out = AT_SPAN_NULL;
    if (!v || at_cbor_is_null(v))
        return AT_OK;
    at_span s;
    if (!at_cbor_get_bytes(v, &s))
        return at_fail(d, AT_E_BAD_FIELD, "%s: expected a byte string or null, got %s", key,
                       at_cbor_type_name(v));
    if (s.len < min || s.len > AT_MAX_OPTIONAL_FIELD)
        return at_fail(d, AT_E_BAD_FIELD, "%s: %zu bytes, expected %zu..%d or null", key, s.len, min,
                       AT_MAX_OPTIONAL_FIELD);
    *has = true;
    *out = s;
    return AT_OK;
}

static at_err cert_bytes(const cbor_item_t *v, const char *what, at_span *out, at_diag *d)
{
    if (!at_cbor_get_bytes(v, out))
        return at_fail(d, AT_E_BAD_FIELD, "%s: expected a byte string, got %s", what, at_cbor_type_name(v));
    if (out->len == 0 || out->len > AT_MAX_CERT_BYTES)
        return at_fail(d, AT_E_BAD_FIELD, "%s: %zu bytes, expected 1..%d", what, out->len, AT_MAX_CERT_BYTES);
    return AT_OK;
}

static int pcr_cmp(const void *a, const void *b)
{
    return (int)((const at_pcr *)a)->index - (int)((const at_pcr *)b)->index;
}

static at_err decode_pcrs(const cbor_item_t *v, const char *name, at_nitro_payload *out, at_diag *d)
{
    if (!cbor_isa_map(v))
        return at_fail(d, AT_E_BAD_FIELD, "%s: expected a map, got %s", name, at_cbor_type_name(v));
    size_t n = cbor_map_size(v);
    if (n == 0)
        return at_fail(d, AT_E_BAD_FIELD, "%s: empty", name);
    if (n > AT_MAX_PCRS)
        return at_fail(d, AT_E_BAD_FIELD, "%s: %zu entries, at most %d", name, n, AT_MAX_PCRS);
    struct cbor_pair *h = cbor_map_handle(v);
    for (size_t i = 0; i < n; i++) {
        int64_t idx;
        at_span val;
        if (!cbor_isa_uint(h[i].key) || !at_cbor_get_int64(h[i].key, &idx) || idx > AT_MAX_PCR_INDEX)
            return at_fail(d, AT_E_BAD_FIELD, "%s: key %zu is not a PCR index 0..%d", name, i,
                           AT_MAX_PCR_INDEX);
        if (!at_cbor_get_bytes(h[i].value, &val))
            return at_fail(d, AT_E_BAD_FIELD, "%s[%lld]: expected a byte string, got %s", name,
                           (long long)idx, at_cbor_type_name(h[i].value));
        /* digest is SHA384, so every PCR is 48 bytes. */
        if (val.len != AT_SHA384_LEN)
            return at_fail(d, AT_E_BAD_FIELD, "%s[%lld]: %zu bytes, expected 48 (SHA384)", name,
                           (long long)idx, val.len);
        out->pcrs[i].index = (uint8_t)idx;
        out->pcrs[i].len = (uint8_t)val.len;
        memcpy(out->pcrs[i].value, val.p, val.len);
    }
    out->n_pcrs = n;
    qsort(out->pcrs, n, sizeof out->pcrs[0], pcr_cmp);
    return AT_OK;
}

at_err at_nitro_payload_decode(at_span payload, at_format expect, at_nitro_payload *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_nitro_payload p;
    memset(&p, 0, sizeof p);
    cbor_item_t *m = NULL;
    if ((rc = at_cbor_decode(payload, &payload_limits, &m, d)) != AT_OK) {
        at_diag_prefix(d, "payload: ");
        goto out;
    }
    AT_ENSURE(cbor_isa_map(m), d, AT_E_BAD_FIELD, "payload: expected a map, got %s", at_cbor_type_name(m));
    p.map_indefinite = cbor_map_is_indefinite(m);
    {
        struct cbor_pair *h = cbor_map_handle(m);
        for (size_t i = 0; i < cbor_map_size(m); i++)
            AT_ENSURE(cbor_isa_string(h[i].key), d, AT_E_BAD_FIELD, "payload: key %zu is a %s, expected text",
                      i, at_cbor_type_name(h[i].key));
    }

    const cbor_item_t *v;
    at_span s;
    AT_ENSURE((v = at_cbor_map_get_text(m, "module_id")), d, AT_E_MISSING_FIELD, "module_id: missing");
    AT_ENSURE(at_cbor_get_text(v, &s), d, AT_E_BAD_FIELD, "module_id: expected text, got %s",
              at_cbor_type_name(v));
    AT_ENSURE(s.len > 0 && s.len <= AT_MAX_MODULE_ID, d, AT_E_BAD_FIELD,
              "module_id: %zu characters, expected 1..%d", s.len, AT_MAX_MODULE_ID);
    for (size_t i = 0; i < s.len; i++)
        AT_ENSURE(s.p[i] > 0x20 && s.p[i] < 0x7f, d, AT_E_BAD_FIELD,
                  "module_id: byte %zu is not printable ASCII", i);
    memcpy(p.module_id, s.p, s.len);

    AT_ENSURE((v = at_cbor_map_get_text(m, "digest")), d, AT_E_MISSING_FIELD, "digest: missing");
    AT_ENSURE(at_cbor_get_text(v, &s), d, AT_E_BAD_FIELD, "digest: expected text, got %s",
              at_cbor_type_name(v));
    AT_ENSURE(s.len == 6 && memcmp(s.p, "SHA384", 6) == 0, d, AT_E_BAD_FIELD,
              "digest: expected \"SHA384\", got \"%.*s\"", (int)(s.len > 32 ? 32 : s.len), s.p);

    AT_ENSURE((v = at_cbor_map_get_text(m, "timestamp")), d, AT_E_MISSING_FIELD, "timestamp: missing");
    int64_t ts;
    AT_ENSURE(cbor_isa_uint(v) && at_cbor_get_int64(v, &ts) && ts > 0, d, AT_E_BAD_FIELD,
              "timestamp: expected a positive integer (ms since the epoch), got %s", at_cbor_type_name(v));
    p.timestamp_ms = (uint64_t)ts;

    const cbor_item_t *enc_pcrs = at_cbor_map_get_text(m, "pcrs");
    const cbor_item_t *tpm_pcrs = at_cbor_map_get_text(m, "nitrotpm_pcrs");
    AT_ENSURE(!(enc_pcrs && tpm_pcrs), d, AT_E_BAD_FIELD,
              "pcrs: both pcrs and nitrotpm_pcrs present, expected exactly one");
    AT_ENSURE(enc_pcrs || tpm_pcrs, d, AT_E_MISSING_FIELD,
              "pcrs: neither pcrs (nitro-enclave) nor nitrotpm_pcrs (nitro-tpm) present");
    p.format = enc_pcrs ? AT_FORMAT_NITRO_ENCLAVE : AT_FORMAT_NITRO_TPM;
    AT_ENSURE(expect == AT_FORMAT_AUTO || expect == p.format, d, AT_E_FORMAT_MISMATCH,
              "format: expected %s, document is %s", at_format_name(expect), at_format_name(p.format));
    if ((rc = decode_pcrs(enc_pcrs ? enc_pcrs : tpm_pcrs, enc_pcrs ? "pcrs" : "nitrotpm_pcrs", &p, d)) !=
        AT_OK)
        goto out;

    AT_ENSURE((v = at_cbor_map_get_text(m, "certificate")), d, AT_E_MISSING_FIELD, "certificate: missing");
    if ((rc = cert_bytes(v, "certificate", &p.certificate, d)) != AT_OK)
        goto out;

    AT_ENSURE((v = at_cbor_map_get_text(m, "cabundle")), d, AT_E_MISSING_FIELD, "cabundle: missing");
    AT_ENSURE(cbor_isa_array(v), d, AT_E_BAD_FIELD, "cabundle: expected an array, got %s",
              at_cbor_type_name(v));
    size_t nb = cbor_array_size(v);
    AT_ENSURE(nb >= 1 && nb <= AT_MAX_CABUNDLE, d, AT_E_BAD_FIELD,
              "cabundle: %zu certificates, expected 1..%d", nb, AT_MAX_CABUNDLE);
    for (size_t i = 0; i < nb; i++) {
        char what[24];
        snprintf(what, sizeof what, "cabundle[%zu]", i);
        if ((rc = cert_bytes(cbor_array_handle(v)[i], what, &p.cabundle[i], d)) != AT_OK)
            goto out;
    }
    p.n_cabundle = nb;

    if ((rc = optional_bytes(m, "public_key", 1, &p.has_public_key, &p.public_key, d)) != AT_OK ||
        (rc = optional_bytes(m, "user_data", 0, &p.has_user_data, &p.user_data, d)) != AT_OK ||
        (rc = optional_bytes(m, "nonce", 0, &p.has_nonce, &p.nonce, d)) != AT_OK)
        goto out;

    p.root = m;
    m = NULL;
    *out = p;
    rc = AT_OK;
out:
    if (m)
        cbor_decref(&m);
    return rc;
}

void at_nitro_payload_cleanup(at_nitro_payload *p)
{
    if (p->root)
        cbor_decref(&p->root);
    memset(p, 0, sizeof *p);
}

const at_pcr *at_nitro_pcr(const at_nitro_payload *p, unsigned index)
{
    for (size_t i = 0; i < p->n_pcrs; i++)
        if (p->pcrs[i].index == index)
            return &p->pcrs[i];
    return NULL;
}

at_err at_pcr_extend(uint8_t pcr[AT_SHA384_LEN], at_span data)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha384(), NULL) == 1 &&
             EVP_DigestUpdate(c, pcr, AT_SHA384_LEN) == 1 &&
             (data.len == 0 || EVP_DigestUpdate(c, data.p, data.len) == 1) &&
             EVP_DigestFinal_ex(c, pcr, &n) == 1 && n == AT_SHA384_LEN;
    EVP_MD_CTX_free(c);
    return ok ? AT_OK : AT_E_INTERNAL;
}

at_err at_sha384_file(const char *path, uint8_t out[AT_SHA384_LEN], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t buf[65536];
    unsigned int n = 0;
    EVP_MD_CTX *c = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    AT_ENSURE(fd >= 0, d, AT_E_IO, "%s: %s", path, strerror(errno));
    AT_ENSURE((c = EVP_MD_CTX_new()) && EVP_DigestInit_ex(c, EVP_sha384(), NULL) == 1, d, AT_E_INTERNAL,
              "sha384: init failed");
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        AT_ENSURE(r >= 0, d, AT_E_IO, "%s: %s", path, strerror(errno));
        if (r == 0)
            break;
        AT_ENSURE(EVP_DigestUpdate(c, buf, (size_t)r) == 1, d, AT_E_INTERNAL, "sha384 failed");
    }
    AT_ENSURE(EVP_DigestFinal_ex(c, out, &n) == 1 && n == AT_SHA384_LEN, d, AT_E_INTERNAL, "sha384 failed");
    rc = AT_OK;
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(c);
    return rc;
}

at_err at_pcr_measure_file(uint8_t pcr[AT_SHA384_LEN], const char *path, at_diag *d)
{
    uint8_t digest[AT_SHA384_LEN];
    at_err rc = at_sha384_file(path, digest, d);
    if (rc == AT_OK)
        rc = at_pcr_extend(pcr, AT_SPAN(digest, sizeof digest));
    return rc;
}
