/* cose: parses attacker-supplied COSE_Sign1 and verifies ES384 signatures.
 * Every structural rule maps to a stable error code (API.md). */
#include "cose.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <string.h>

#include "cbor_rd.h"
#include "cbor_wr.h"
#include "at_limits.h"

#define COSE_TAG_SIGN1 18
#define COSE_HDR_ALG 1
#define COSE_HDR_CRIT 2

/* {1: -35}: the only protected header genuine documents carry. */
static const uint8_t es384_protected[] = {0xa1, 0x01, 0x38, 0x22};

static const at_cbor_limits doc_limits = {AT_MAX_CBOR_DEPTH, AT_MAX_CBOR_ITEMS};

static at_err check_protected(at_span hdr, at_diag *d, const cbor_item_t *unprot)
{
    at_err rc = AT_E_INTERNAL;
    cbor_item_t *m = NULL;
    cbor_item_t *unprot_alg = at_cbor_map_get_int(unprot, COSE_HDR_ALG);
    if (at_cbor_map_get_int(unprot, COSE_HDR_CRIT))
        return at_fail(d, AT_E_NOT_COSE_SIGN1, "unprotected header: crit (2) must be protected");
    if (hdr.len == sizeof es384_protected && memcmp(hdr.p, es384_protected, hdr.len) == 0) {
        if (unprot_alg)
            return at_fail(d, AT_E_UNSUPPORTED_ALG,
                           "unprotected header: alg must not appear outside the protected header");
        return AT_OK;
    }
    if (hdr.len == 0) {
        if (unprot_alg)
            return at_fail(d, AT_E_UNSUPPORTED_ALG,
                           "protected header: empty; alg only in the unprotected header is not "
                           "accepted (expected -35, ES384, protected)");
        return at_fail(d, AT_E_UNSUPPORTED_ALG, "protected header: empty, expected {1: -35}");
    }
    at_cbor_limits lim = {4, 64};
    if ((rc = at_cbor_decode(hdr, &lim, &m, d)) != AT_OK) {
        at_diag_prefix(d, "protected header: ");
        rc = AT_E_NOT_COSE_SIGN1;
        goto out;
    }
    AT_ENSURE(cbor_isa_map(m), d, AT_E_NOT_COSE_SIGN1, "protected header: expected a map, got %s",
              at_cbor_type_name(m));
    cbor_item_t *alg = at_cbor_map_get_int(m, COSE_HDR_ALG);
    AT_ENSURE(alg || !unprot_alg, d, AT_E_UNSUPPORTED_ALG,
              "protected header: alg only in the unprotected header is not accepted");
    AT_ENSURE(alg, d, AT_E_UNSUPPORTED_ALG, "protected header: alg (1) missing, expected -35");
    AT_ENSURE(!unprot_alg, d, AT_E_UNSUPPORTED_ALG,
              "unprotected header: alg must not appear outside the protected header");
    int64_t v;
    AT_ENSURE(at_cbor_get_int64(alg, &v), d, AT_E_UNSUPPORTED_ALG,
              "protected header: alg is a %s, expected the integer -35", at_cbor_type_name(alg));
    AT_ENSURE(v == AT_COSE_ALG_ES384, d, AT_E_UNSUPPORTED_ALG,
              "protected header: alg %lld, expected -35 (ES384)", (long long)v);
    cbor_item_t *crit = at_cbor_map_get_int(m, COSE_HDR_CRIT);
    if (crit) {
        /* RFC 9052 §3.1: labels in crit must be understood; we understand
         * none beyond alg, which may not be listed there. */
        AT_ENSURE(cbor_isa_array(crit) && cbor_array_size(crit) > 0, d, AT_E_NOT_COSE_SIGN1,
                  "protected header: crit must be a non-empty array");
        cbor_item_t *first = cbor_array_get(crit, 0);
        int64_t label = 0;
        bool is_int = at_cbor_get_int64(first, &label);
        cbor_decref(&first);
        if (is_int)
            rc = at_fail(d, AT_E_UNSUPPORTED_ALG, "protected header: critical header %lld is not understood",
                         (long long)label);
        else
            rc = at_fail(d, AT_E_UNSUPPORTED_ALG, "protected header: critical text header is not understood");
        goto out;
    }
    rc = AT_OK;
out:
    if (m)
        cbor_decref(&m);
    return rc;
}

at_err at_cose_sign1_decode(at_span doc, at_cose_sign1 *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    cbor_item_t *root = NULL;
    memset(out, 0, sizeof *out);
    AT_ENSURE(doc.len <= AT_MAX_DOCUMENT_BYTES, d, AT_E_TOO_LARGE, "document: %zu bytes, at most %d accepted",
              doc.len, AT_MAX_DOCUMENT_BYTES);
    AT_ENSURE(doc.len > 0, d, AT_E_MALFORMED_CBOR, "document: empty");
    /* RFC 9052 §4.2: COSE_Sign1 may carry tag 18; no other tag, no nesting. */
    at_reader r;
    at_reader_init(&r, doc.p, doc.len);
    bool tagged = false;
    uint8_t ib = doc.p[0];
    if (ib >> 5 == AT_CBOR_TAG) {
        uint64_t tag = ib & 31;
        uint8_t b1 = 0;
        uint16_t b2 = 0;
        uint32_t b4 = 0;
        bool ok = at_reader_skip(&r, 1);
        switch (ib & 31) {
        case 24:
            ok = ok && at_reader_u8(&r, &b1);
            tag = b1;
            break;
        case 25:
            ok = ok && at_reader_u16(&r, &b2);
            tag = b2;
            break;
        case 26:
            ok = ok && at_reader_u32(&r, &b4);
            tag = b4;
            break;
        case 27:
            ok = ok && at_reader_u64(&r, &tag);
            break;
        default:
            ok = ok && (ib & 31) < 24;
        }
        AT_ENSURE(ok, d, AT_E_MALFORMED_CBOR, "document: malformed CBOR tag");
        AT_ENSURE(tag == COSE_TAG_SIGN1, d, AT_E_NOT_COSE_SIGN1,
                  "document: CBOR tag %llu, expected 18 (COSE_Sign1) or none", (unsigned long long)tag);
        AT_ENSURE(!at_reader_at_end(&r) && r.p[r.off] >> 5 != AT_CBOR_TAG, d, AT_E_NOT_COSE_SIGN1,
                  "document: tag 18 must wrap the COSE_Sign1 array directly");
        tagged = true;
    }
    if ((rc = at_cbor_decode(at_reader_rest(&r), &doc_limits, &root, d)) != AT_OK) {
        at_diag_prefix(d, "document: ");
        goto out;
    }
    const cbor_item_t *arr = root;
    AT_ENSURE(cbor_isa_array(arr), d, AT_E_NOT_COSE_SIGN1, "document: expected a 4-element array, got %s",
              at_cbor_type_name(arr));
    AT_ENSURE(cbor_array_size(arr) == 4, d, AT_E_NOT_COSE_SIGN1,
              "document: COSE_Sign1 array has %zu elements, expected 4", cbor_array_size(arr));
    cbor_item_t **h = cbor_array_handle(arr);
    at_span prot, payload, sig;
    AT_ENSURE(at_cbor_get_bytes(h[0], &prot), d, AT_E_NOT_COSE_SIGN1,
              "protected header: expected a byte string, got %s", at_cbor_type_name(h[0]));
    AT_ENSURE(cbor_isa_map(h[1]), d, AT_E_NOT_COSE_SIGN1, "unprotected header: expected a map, got %s",
              at_cbor_type_name(h[1]));
    AT_ENSURE(!at_cbor_is_null(h[2]), d, AT_E_NOT_COSE_SIGN1,
              "payload: detached payloads (null) are not accepted");
    AT_ENSURE(at_cbor_get_bytes(h[2], &payload), d, AT_E_NOT_COSE_SIGN1,
              "payload: expected a byte string, got %s", at_cbor_type_name(h[2]));
    AT_ENSURE(at_cbor_get_bytes(h[3], &sig), d, AT_E_NOT_COSE_SIGN1,
              "signature: expected a byte string, got %s", at_cbor_type_name(h[3]));
    if ((rc = check_protected(prot, d, h[1])) != AT_OK)
        goto out;
    AT_ENSURE(sig.len == AT_COSE_ES384_SIG_LEN, d, AT_E_BAD_SIGNATURE,
              "signature: %zu bytes, expected 96 (ES384 r||s)", sig.len);
    AT_ENSURE(payload.len > 0, d, AT_E_MISSING_FIELD, "payload: empty");
    out->tagged = tagged;
    out->protected_hdr = prot;
    out->payload = payload;
    out->signature = sig;
    out->root = root;
    root = NULL;
    rc = AT_OK;
out:
    if (root)
        cbor_decref(&root);
    return rc;
}

/* Sig_structure (RFC 9052 §4.4) for Signature1 with empty external_aad,
 * fed to the digest in pieces so the payload is never copied. */
static int feed_sig_structure(EVP_MD_CTX *ctx, at_span prot, at_span payload,
                              int (*update)(EVP_MD_CTX *, const void *, size_t))
{
    uint8_t head[16];
    at_buf b;
    at_buf_init(&b);
    at_cbor_put_head(&b, AT_CBOR_ARRAY, 4);
    at_cbor_put_text(&b, "Signature1");
    at_cbor_put_head(&b, AT_CBOR_BYTES, prot.len);
    int ok = at_buf_status(&b) == AT_OK && update(ctx, b.p, b.len) == 1 &&
             (prot.len == 0 || update(ctx, prot.p, prot.len) == 1);
    at_buf_cleanup(&b);
    if (!ok)
        return 0;
    size_t n = 0;
    head[n++] = 0x40; /* external_aad: h'' */
    at_buf hb;
    at_buf_init(&hb);
    at_cbor_put_head(&hb, AT_CBOR_BYTES, payload.len);
    if (at_buf_status(&hb) != AT_OK || hb.len > sizeof head - n) {
        at_buf_cleanup(&hb);
        return 0;
    }
    memcpy(head + n, hb.p, hb.len);
    n += hb.len;
    at_buf_cleanup(&hb);
    return update(ctx, head, n) == 1 && update(ctx, payload.p, payload.len) == 1;
}

static int verify_update(EVP_MD_CTX *c, const void *p, size_t n) { return EVP_DigestVerifyUpdate(c, p, n); }
static int sign_update(EVP_MD_CTX *c, const void *p, size_t n) { return EVP_DigestSignUpdate(c, p, n); }

at_err at_cose_sign1_verify(const at_cose_sign1 *m, EVP_PKEY *key, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    AT_ENSURE(m->signature.len == AT_COSE_ES384_SIG_LEN, d, AT_E_BAD_SIGNATURE,
              "signature: %zu bytes, expected 96", m->signature.len);
    r = BN_bin2bn(m->signature.p, 48, NULL);
    s = BN_bin2bn(m->signature.p + 48, 48, NULL);
    AT_ENSURE(r && s && (es = ECDSA_SIG_new()), d, AT_E_INTERNAL, "signature: out of memory");
    AT_OSSL(ECDSA_SIG_set0(es, r, s), d);
    r = s = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    AT_ENSURE(derlen > 0, d, AT_E_INTERNAL, "signature: DER encoding failed");
    AT_ENSURE((ctx = EVP_MD_CTX_new()), d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, key), d);
    AT_ENSURE(feed_sig_structure(ctx, m->protected_hdr, m->payload, verify_update), d, AT_E_INTERNAL,
              "signature: digest failed");
    int v = EVP_DigestVerifyFinal(ctx, der, (size_t)derlen);
    ERR_clear_error();
    AT_ENSURE(v == 1, d, AT_E_BAD_SIGNATURE,
              "signature: ES384 signature over Sig_structure does not verify with the leaf "
              "certificate's key");
    rc = AT_OK;
out:
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    OPENSSL_free(der);
    return rc;
}

at_err at_cose_sign1_sign(at_span prot, at_span payload, EVP_PKEY *key, uint8_t sig[AT_COSE_ES384_SIG_LEN],
                          at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    unsigned char der[160];
    size_t derlen = sizeof der;
    AT_ENSURE((ctx = EVP_MD_CTX_new()), d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, key), d);
    AT_ENSURE(feed_sig_structure(ctx, prot, payload, sign_update), d, AT_E_INTERNAL, "sign: digest failed");
    AT_OSSL(EVP_DigestSignFinal(ctx, der, &derlen), d);
    const unsigned char *p = der;
    AT_ENSURE((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)), d, AT_E_INTERNAL, "sign: bad DER signature");
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    AT_ENSURE(BN_bn2binpad(r, sig, 48) == 48 && BN_bn2binpad(s, sig + 48, 48) == 48, d, AT_E_INTERNAL,
              "sign: r/s too long for P-384");
    rc = AT_OK;
out:
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    return rc;
}

void at_cose_sign1_cleanup(at_cose_sign1 *m)
{
    if (m->root)
        cbor_decref(&m->root);
    memset(m, 0, sizeof *m);
}
