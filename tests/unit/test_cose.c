/* Unit tests for lib/cose.c: each structural rule of COSE_Sign1 decoding
 * with its exact code (tags, array shape, element types, protected header,
 * alg placement, crit, sizes, trailing bytes), and ES384 over the
 * Sig_structure, checked against genuine AWS signatures and an independent
 * encoding of the Sig_structure. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "at_limits.h"
#include "cose.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__})
#define S(...) AT_SPAN(B(__VA_ARGS__), sizeof B(__VA_ARGS__))

static const uint8_t es384[] = {0xa1, 0x01, 0x38, 0x22};
static uint8_t sig96[96];
static const uint8_t payload[] = {0xa1, 0x61, 'x', 0x01};

static at_err dec(at_span doc)
{
    at_cose_sign1 m;
    at_diag d = {{0}};
    at_err rc = at_cose_sign1_decode(doc, &m, &d);
    if (rc == AT_OK)
        at_cose_sign1_cleanup(&m);
    else
        assert_true(d.msg[0] != '\0');
    return rc;
}

static at_err dec_buf(const at_buf *b)
{
    assert_int_equal(at_buf_status(b), AT_OK);
    return dec(at_buf_span(b));
}

/* [prot, unprot, payload, sig] with prot/unprot given as encoded bytes. */
static at_err dec_parts(at_span prot, at_span unprot)
{
    at_buf b;
    at_buf_init(&b);
    tu_cose_raw(&b, prot, unprot, AT_SPAN(payload, sizeof payload), AT_SPAN(sig96, 96));
    at_err rc = dec_buf(&b);
    at_buf_cleanup(&b);
    return rc;
}

static at_span es384_span(void) { return AT_SPAN(es384, sizeof es384); }

static void genuine_documents_decode(void **state)
{
    for (size_t i = 0; i < TU_N_GENUINE; i++) {
        size_t len;
        uint8_t *doc = tu_read_genuine(tu_genuine[i], ".cbor", &len);
        at_cose_sign1 m;
        at_diag d = {{0}};
        assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
        assert_false(m.tagged);
        assert_int_equal(m.protected_hdr.len, 4);
        assert_memory_equal(m.protected_hdr.p, es384, 4);
        assert_int_equal(m.signature.len, 96);
        assert_true(m.payload.len > 4000);
        at_cose_sign1_cleanup(&m);
        assert_null(m.root);
        free(doc);
    }
}

static void tag18_accepted(void **state)
{
    size_t len;
    uint8_t *doc = tu_read_genuine("ev_ga_2023", ".cbor", &len);
    for (int form = 0; form < 2; form++) {
        at_buf b;
        at_buf_init(&b);
        if (form == 0)
            at_buf_u8(&b, 0xd2); /* inline form, which libcbor 0.8 cannot load */
        else
            at_buf_append(&b, B(0xd8, 0x12), 2);
        at_buf_append(&b, doc, len);
        at_cose_sign1 m;
        at_diag d = {{0}};
        assert_int_equal(at_cose_sign1_decode(at_buf_span(&b), &m, &d), AT_OK);
        assert_true(m.tagged);
        assert_int_equal(m.signature.len, 96);
        at_cose_sign1_cleanup(&m);
        at_buf_cleanup(&b);
    }
    free(doc);
}

static void other_tags_refused(void **state)
{
    size_t len;
    uint8_t *doc = tu_read_genuine("ev_ga_2023", ".cbor", &len);
    static const struct {
        uint8_t head[8];
        size_t n;
        at_err want;
    } cases[] = {
        {{0xd1}, 1, AT_E_NOT_COSE_SIGN1},              /* 17: COSE_Mac0 */
        {{0xd8, 0x62}, 2, AT_E_NOT_COSE_SIGN1},        /* 98: COSE_Sign */
        {{0xd8, 0x10}, 2, AT_E_NOT_COSE_SIGN1},        /* 16: COSE_Encrypt0 */
        {{0xc0}, 1, AT_E_NOT_COSE_SIGN1},              /* 0 */
        {{0xd9, 0xd9, 0xf7}, 3, AT_E_NOT_COSE_SIGN1},  /* 55799: self-described */
        {{0xda, 0, 1, 0, 18}, 5, AT_E_NOT_COSE_SIGN1}, /* 65554 */
        {{0xd2, 0xd2}, 2, AT_E_NOT_COSE_SIGN1},        /* nested tag 18 */
        {{0xd2, 0xd1}, 2, AT_E_NOT_COSE_SIGN1},        /* tag 17 inside 18 */
        {{0xdc}, 1, AT_E_MALFORMED_CBOR},              /* reserved ai 28 */
        {{0xdf}, 1, AT_E_MALFORMED_CBOR},              /* indefinite tag */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_buf b;
        at_buf_init(&b);
        at_buf_append(&b, cases[i].head, cases[i].n);
        at_buf_append(&b, doc, len);
        assert_int_equal(dec_buf(&b), cases[i].want);
        at_buf_cleanup(&b);
    }
    /* A tag head cut short. */
    assert_int_equal(dec(S(0xd8)), AT_E_MALFORMED_CBOR);
    assert_int_equal(dec(S(0xd9, 0x00)), AT_E_MALFORMED_CBOR);
    free(doc);
}

static void array_shape(void **state)
{
    at_buf b;
    at_buf_init(&b);
    for (unsigned n = 0; n <= 6; n++) {
        if (n == 4)
            continue;
        at_buf_reset(&b);
        at_cbor_put_head(&b, AT_CBOR_ARRAY, n);
        for (unsigned i = 0; i < n; i++) {
            if (i == 0)
                at_cbor_put_bytes(&b, es384_span());
            else if (i == 1)
                at_cbor_put_head(&b, AT_CBOR_MAP, 0);
            else
                at_cbor_put_bytes(&b, AT_SPAN(sig96, 96));
        }
        assert_int_equal(dec_buf(&b), AT_E_NOT_COSE_SIGN1);
    }
    /* Not an array at all. */
    assert_int_equal(dec(S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec(S(0x40)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec(S(0x01)), AT_E_NOT_COSE_SIGN1);
    /* An indefinite array of 4 is still an array of 4. */
    at_buf_reset(&b);
    at_cbor_put_indef_array(&b);
    at_cbor_put_bytes(&b, es384_span());
    at_cbor_put_head(&b, AT_CBOR_MAP, 0);
    at_cbor_put_bytes(&b, AT_SPAN(payload, sizeof payload));
    at_cbor_put_bytes(&b, AT_SPAN(sig96, 96));
    at_cbor_put_break(&b);
    assert_int_equal(dec_buf(&b), AT_OK);
    at_buf_cleanup(&b);
}

static void element_types(void **state)
{
    at_buf b;
    at_buf_init(&b);
    for (int which = 0; which < 4; which++) {
        for (int kind = 0; kind < 3; kind++) {
            at_buf_reset(&b);
            at_cbor_put_head(&b, AT_CBOR_ARRAY, 4);
            for (int i = 0; i < 4; i++) {
                if (i == which) {
                    /* a wrong type for this slot */
                    if (kind == 0)
                        at_cbor_put_text(&b, "x");
                    else if (kind == 1)
                        at_cbor_put_uint(&b, 1);
                    else if (i == 1)
                        at_cbor_put_head(&b, AT_CBOR_ARRAY, 0);
                    else
                        at_cbor_put_head(&b, AT_CBOR_MAP, 0);
                    continue;
                }
                if (i == 0)
                    at_cbor_put_bytes(&b, es384_span());
                else if (i == 1)
                    at_cbor_put_head(&b, AT_CBOR_MAP, 0);
                else if (i == 2)
                    at_cbor_put_bytes(&b, AT_SPAN(payload, sizeof payload));
                else
                    at_cbor_put_bytes(&b, AT_SPAN(sig96, 96));
            }
            assert_int_equal(dec_buf(&b), AT_E_NOT_COSE_SIGN1);
        }
    }
    at_buf_cleanup(&b);
}

static void detached_and_empty_payload(void **state)
{
    at_buf b;
    at_buf_init(&b);
    at_cbor_put_head(&b, AT_CBOR_ARRAY, 4);
    at_cbor_put_bytes(&b, es384_span());
    at_cbor_put_head(&b, AT_CBOR_MAP, 0);
    at_cbor_put_null(&b); /* RFC 9052 §4.1 detached payload */
    at_cbor_put_bytes(&b, AT_SPAN(sig96, 96));
    assert_int_equal(dec_buf(&b), AT_E_NOT_COSE_SIGN1);
    at_buf_reset(&b);
    tu_cose_raw(&b, es384_span(), S(0xa0), AT_SPAN_NULL, AT_SPAN(sig96, 96));
    assert_int_equal(dec_buf(&b), AT_E_MISSING_FIELD);
    /* Regression: a float payload used to abort inside libcbor. */
    at_buf_reset(&b);
    at_cbor_put_head(&b, AT_CBOR_ARRAY, 4);
    at_cbor_put_bytes(&b, es384_span());
    at_cbor_put_head(&b, AT_CBOR_MAP, 0);
    at_buf_append(&b, B(0xf9, 0x3c, 0x00), 3);
    at_cbor_put_bytes(&b, AT_SPAN(sig96, 96));
    assert_int_equal(dec_buf(&b), AT_E_NOT_COSE_SIGN1);
    at_buf_cleanup(&b);
}

static void protected_alg(void **state)
{
    /* {1: -7} ES256 */
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x26), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* {1: -36} ES512, {1: -37} PS256, {1: 0} */
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x38, 0x23), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x38, 0x24), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x00), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* {1: "ES384"}: the right name, the wrong type */
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x65, 'E', 'S', '3', '8', '4'), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* {1: h'22'} */
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x41, 0x22), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* {} and an empty bstr: no alg at all */
    assert_int_equal(dec_parts(S(0xa0), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(AT_SPAN_NULL, S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* {4: h'01'} kid but no alg */
    assert_int_equal(dec_parts(S(0xa1, 0x04, 0x41, 0x01), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* ES384 with an extra (non-critical) header is fine: the signature
     * covers the bytes as they are. Also a non-shortest encoding of 1. */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x01), S(0xa0)), AT_OK);
    assert_int_equal(dec_parts(S(0xa1, 0x18, 0x01, 0x38, 0x22), S(0xa0)), AT_OK);
    assert_int_equal(dec_parts(es384_span(), S(0xa0)), AT_OK);
    /* Unprotected headers other than alg/crit are allowed. */
    assert_int_equal(dec_parts(es384_span(), S(0xa1, 0x04, 0x41, 0x01)), AT_OK);
}

static void alg_only_unprotected(void **state)
{
    /* alg only in the unprotected header, protected empty bstr or {} */
    assert_int_equal(dec_parts(AT_SPAN_NULL, S(0xa1, 0x01, 0x38, 0x22)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(S(0xa0), S(0xa1, 0x01, 0x38, 0x22)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(S(0xa1, 0x04, 0x41, 0x01), S(0xa1, 0x01, 0x38, 0x22)), AT_E_UNSUPPORTED_ALG);
    /* alg in both headers (even equal): refused */
    assert_int_equal(dec_parts(es384_span(), S(0xa1, 0x01, 0x38, 0x22)), AT_E_UNSUPPORTED_ALG);
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x04, 0x40), S(0xa1, 0x01, 0x26)),
                     AT_E_UNSUPPORTED_ALG);
}

static void crit_headers(void **state)
{
    /* {1: -35, 2: [99]}: a critical header we do not understand */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x18, 0x63), S(0xa0)),
                     AT_E_UNSUPPORTED_ALG);
    /* {1: -35, 2: ["x"]} */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x61, 'x'), S(0xa0)),
                     AT_E_UNSUPPORTED_ALG);
    /* {1: -35, 2: [1]}: alg may not be listed as critical either */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01), S(0xa0)), AT_E_UNSUPPORTED_ALG);
    /* crit malformed: empty array, not an array (RFC 9052 §3.1) */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x02, 0x80), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x02, 0x01), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    /* crit in the unprotected header */
    assert_int_equal(dec_parts(es384_span(), S(0xa1, 0x02, 0x81, 0x04)), AT_E_NOT_COSE_SIGN1);
}

static void protected_not_a_map(void **state)
{
    assert_int_equal(dec_parts(S(0x80), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0x82, 0x01, 0x38), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0x01), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0xf6), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    /* Malformed contents of the protected bstr, and trailing bytes in it. */
    assert_int_equal(dec_parts(S(0xa1, 0x01), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x38, 0x22, 0x00), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0xa1, 0x01, 0x38, 0x22, 0xa0), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    /* A tag inside the protected header. */
    assert_int_equal(dec_parts(S(0xd2, 0xa1, 0x01, 0x38, 0x22), S(0xa0)), AT_E_NOT_COSE_SIGN1);
}

static void duplicate_keys(void **state)
{
    /* In the protected header: {1: -35, 1: -35} and {1: -7, 1: -35}. */
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    assert_int_equal(dec_parts(S(0xa2, 0x01, 0x26, 0x01, 0x38, 0x22), S(0xa0)), AT_E_NOT_COSE_SIGN1);
    /* In the unprotected header (part of the outer item). */
    assert_int_equal(dec_parts(es384_span(), S(0xa2, 0x04, 0x40, 0x04, 0x40)), AT_E_MALFORMED_CBOR);
}

static void signature_length(void **state)
{
    size_t lens[] = {0, 1, 64, 95, 97, 104, 132};
    uint8_t big[132] = {0};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        at_buf b;
        at_buf_init(&b);
        tu_cose_raw(&b, es384_span(), S(0xa0), AT_SPAN(payload, sizeof payload), AT_SPAN(big, lens[i]));
        assert_int_equal(dec_buf(&b), AT_E_BAD_SIGNATURE);
        at_buf_cleanup(&b);
    }
}

static void trailing_bytes(void **state)
{
    size_t len;
    uint8_t *doc = tu_read_genuine("anjuna_prod_2021", ".cbor", &len);
    const uint8_t *tails[] = {B(0x00), B(0xff), B(0x84), B(0xf6)};
    for (int tagged = 0; tagged < 2; tagged++)
        for (size_t i = 0; i < 4; i++) {
            at_buf b;
            at_buf_init(&b);
            if (tagged)
                at_buf_u8(&b, 0xd2);
            at_buf_append(&b, doc, len);
            at_buf_append(&b, tails[i], 1);
            assert_int_equal(dec_buf(&b), AT_E_MALFORMED_CBOR);
            /* A second whole document after the first. */
            at_buf_append(&b, doc, len);
            assert_int_equal(dec_buf(&b), AT_E_MALFORMED_CBOR);
            at_buf_cleanup(&b);
        }
    free(doc);
}

/* A document of exactly `total` bytes (payload padded to fit). */
static void doc_of_size(at_buf *b, size_t total)
{
    /* 1 (array) + 5 (prot) + 1 (unprot) + 2 + 96 (sig) + payload head/body */
    size_t fixed = 1 + 5 + 1 + 2 + 96;
    size_t body = total - fixed - 3; /* payload head is 3 bytes here */
    uint8_t *p = calloc(1, body);
    assert_non_null(p);
    p[0] = 0x40; /* contents irrelevant to the envelope */
    at_buf_reset(b);
    tu_cose_raw(b, es384_span(), S(0xa0), AT_SPAN(p, body), AT_SPAN(sig96, 96));
    free(p);
    assert_int_equal(b->len, total);
}

static void size_limit(void **state)
{
    at_buf b;
    at_buf_init(&b);
    doc_of_size(&b, AT_MAX_DOCUMENT_BYTES);
    assert_int_equal(dec_buf(&b), AT_OK);
    doc_of_size(&b, AT_MAX_DOCUMENT_BYTES + 1);
    assert_int_equal(dec_buf(&b), AT_E_TOO_LARGE);
    doc_of_size(&b, 60000);
    assert_int_equal(dec_buf(&b), AT_E_TOO_LARGE);
    at_buf_cleanup(&b);
    /* The limit is checked before anything else: even garbage is too_large. */
    uint8_t *junk = malloc(AT_MAX_DOCUMENT_BYTES + 1);
    memset(junk, 0xff, AT_MAX_DOCUMENT_BYTES + 1);
    assert_int_equal(dec(AT_SPAN(junk, AT_MAX_DOCUMENT_BYTES + 1)), AT_E_TOO_LARGE);
    free(junk);
    assert_int_equal(dec(AT_SPAN_NULL), AT_E_MALFORMED_CBOR);
}

static EVP_PKEY *p384(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-384");
    assert_non_null(k);
    return k;
}

static void sign_verify_roundtrip(void **state)
{
    EVP_PKEY *k = p384(), *other = p384();
    uint8_t sig[96];
    at_diag d = {{0}};
    const uint8_t body[] = "attestation payload";
    assert_int_equal(at_cose_sign1_sign(es384_span(), AT_SPAN(body, sizeof body), k, sig, &d), AT_OK);
    at_buf b;
    at_buf_init(&b);
    tu_cose_raw(&b, es384_span(), S(0xa0), AT_SPAN(body, sizeof body), AT_SPAN(sig, 96));
    at_cose_sign1 m;
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&b), &m, &d), AT_OK);
    assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_OK);
    assert_int_equal(at_cose_sign1_verify(&m, other, &d), AT_E_BAD_SIGNATURE);
    at_cose_sign1_cleanup(&m);

    /* Layout: 84 | 44 a1 01 38 22 | a0 | 54 <20 payload bytes> | 58 60 <r||s>.
     * Flip a payload byte, the first and last byte of r and of s. */
    assert_int_equal(b.p[7], 0x40 | sizeof body);
    size_t flips[] = {8, 8 + sizeof body - 1, b.len - 96, b.len - 49, b.len - 48, b.len - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        b.p[flips[i]] ^= 0x01;
        assert_int_equal(at_cose_sign1_decode(at_buf_span(&b), &m, &d), AT_OK);
        assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_E_BAD_SIGNATURE);
        at_cose_sign1_cleanup(&m);
        b.p[flips[i]] ^= 0x01;
    }
    /* The tag is outside the Sig_structure: a tagged copy verifies too. */
    at_buf t;
    at_buf_init(&t);
    at_buf_u8(&t, 0xd2);
    at_buf_append_span(&t, at_buf_span(&b));
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&t), &m, &d), AT_OK);
    assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_OK);
    at_cose_sign1_cleanup(&m);
    at_buf_cleanup(&t);

    /* r = 0, s = 0 and r = s = n-ish garbage never verify. */
    at_cose_sign1 z = {.protected_hdr = es384_span(), .payload = AT_SPAN(body, sizeof body)};
    uint8_t zero[96] = {0}, ff[96];
    memset(ff, 0xff, sizeof ff);
    z.signature = AT_SPAN(zero, 96);
    assert_int_equal(at_cose_sign1_verify(&z, k, &d), AT_E_BAD_SIGNATURE);
    z.signature = AT_SPAN(ff, 96);
    assert_int_equal(at_cose_sign1_verify(&z, k, &d), AT_E_BAD_SIGNATURE);
    z.signature = AT_SPAN(sig, 95);
    assert_int_equal(at_cose_sign1_verify(&z, k, &d), AT_E_BAD_SIGNATURE);
    /* The signature is over the protected bytes as received: a different
     * encoding of the same header does not verify. */
    z.signature = AT_SPAN(sig, 96);
    z.protected_hdr = S(0xa1, 0x18, 0x01, 0x38, 0x22);
    assert_int_equal(at_cose_sign1_verify(&z, k, &d), AT_E_BAD_SIGNATURE);
    z.protected_hdr = es384_span();
    assert_int_equal(at_cose_sign1_verify(&z, k, &d), AT_OK);

    at_buf_cleanup(&b);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

/* Sig_structure (RFC 9052 §4.4) encoded here by hand, independent of
 * lib/cose.c's encoder: 84 6a "Signature1" bstr(prot) 40 bstr(payload). */
static void sig_structure(at_buf *s, at_span prot, at_span body)
{
    at_buf_init(s);
    at_buf_u8(s, 0x84);
    at_buf_append(s, "\x6aSignature1", 11);
    at_buf_u8(s, (uint8_t)(0x40 | prot.len));
    at_buf_append_span(s, prot);
    at_buf_u8(s, 0x40);
    if (body.len < 24) {
        at_buf_u8(s, (uint8_t)(0x40 | body.len));
    } else if (body.len < 256) {
        at_buf_u8(s, 0x58);
        at_buf_u8(s, (uint8_t)body.len);
    } else if (body.len < 65536) {
        at_buf_u8(s, 0x59);
        at_buf_u16(s, (uint16_t)body.len);
    } else {
        at_buf_u8(s, 0x5a);
        at_buf_u32(s, (uint32_t)body.len);
    }
    at_buf_append_span(s, body);
}

/* ECDSA-SHA384 with OpenSSL over the hand-made Sig_structure, as raw r||s. */
static void independent_sign(EVP_PKEY *k, at_span prot, at_span body, uint8_t out[96])
{
    at_buf s;
    sig_structure(&s, prot, body);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t dl = sizeof der;
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha384(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(c, der, &dl, s.p, s.len), 1);
    const uint8_t *pp = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)dl);
    assert_non_null(es);
    const BIGNUM *r, *sv;
    ECDSA_SIG_get0(es, &r, &sv);
    assert_int_equal(BN_bn2binpad(r, out, 48), 48);
    assert_int_equal(BN_bn2binpad(sv, out + 48, 48), 48);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(c);
    at_buf_cleanup(&s);
}

static bool independent_verify(EVP_PKEY *k, at_span prot, at_span body, const uint8_t sig[96])
{
    at_buf s;
    sig_structure(&s, prot, body);
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 48, NULL), BN_bin2bn(sig + 48, 48, NULL)), 1);
    uint8_t *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    assert_true(dl > 0);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(c, NULL, EVP_sha384(), NULL, k), 1);
    int ok = EVP_DigestVerify(c, der, (size_t)dl, s.p, s.len);
    EVP_MD_CTX_free(c);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    at_buf_cleanup(&s);
    return ok == 1;
}

static void sig_structure_independent(void **state)
{
    EVP_PKEY *k = p384();
    at_diag d = {{0}};
    /* Payload sizes exercising every head length of the payload bstr,
     * including > 65535 (5-byte head), built without the decoder. */
    size_t sizes[] = {1, 23, 24, 255, 256, 4500, 65535, 65536, 70000};
    uint8_t *body = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        body[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t sig[96];
        independent_sign(k, es384_span(), AT_SPAN(body, sizes[i]), sig);
        at_cose_sign1 m = {
            .protected_hdr = es384_span(), .payload = AT_SPAN(body, sizes[i]), .signature = AT_SPAN(sig, 96)};
        assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_OK);
        /* And what at_cose_sign1_sign makes verifies independently. */
        assert_int_equal(at_cose_sign1_sign(es384_span(), AT_SPAN(body, sizes[i]), k, sig, &d), AT_OK);
        assert_true(independent_verify(k, es384_span(), AT_SPAN(body, sizes[i]), sig));
        sig[5] ^= 1;
        assert_false(independent_verify(k, es384_span(), AT_SPAN(body, sizes[i]), sig));
    }
    free(body);
    EVP_PKEY_free(k);
}

/* Genuine AWS signatures verify with the leaf key from the document; a
 * flipped payload byte does not. */
static void genuine_signatures(void **state)
{
    for (size_t i = 0; i < TU_N_GENUINE; i++) {
        size_t len;
        uint8_t *doc = tu_read_genuine(tu_genuine[i], ".cbor", &len);
        at_cose_sign1 m;
        at_nitro_payload p;
        at_diag d = {{0}};
        assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
        assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
        const uint8_t *cp = p.certificate.p;
        X509 *leaf = d2i_X509(NULL, &cp, (long)p.certificate.len);
        assert_non_null(leaf);
        EVP_PKEY *k = X509_get0_pubkey(leaf);
        assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_OK);
        at_nitro_payload_cleanup(&p);
        at_cose_sign1_cleanup(&m);
        /* Flip a byte inside the payload (the module_id's first char). */
        uint8_t *mid = memmem(doc, len, "module_id", 9);
        assert_non_null(mid);
        mid[11] ^= 0x01;
        assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
        assert_int_equal(at_cose_sign1_verify(&m, k, &d), AT_E_BAD_SIGNATURE);
        at_cose_sign1_cleanup(&m);
        X509_free(leaf);
        free(doc);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof sig96; i++)
        sig96[i] = (uint8_t)(i + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(genuine_documents_decode),
        cmocka_unit_test(tag18_accepted),
        cmocka_unit_test(other_tags_refused),
        cmocka_unit_test(array_shape),
        cmocka_unit_test(element_types),
        cmocka_unit_test(detached_and_empty_payload),
        cmocka_unit_test(protected_alg),
        cmocka_unit_test(alg_only_unprotected),
        cmocka_unit_test(crit_headers),
        cmocka_unit_test(protected_not_a_map),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(signature_length),
        cmocka_unit_test(trailing_bytes),
        cmocka_unit_test(size_limit),
        cmocka_unit_test(sign_verify_roundtrip),
        cmocka_unit_test(sig_structure_independent),
        cmocka_unit_test(genuine_signatures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
