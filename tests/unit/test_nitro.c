/* Unit tests for lib/nitro.c: the payload value rules (definite and
 * indefinite maps, null vs empty optional fields, digest, PCR count, index
 * and length, pcrs vs nitrotpm_pcrs, required fields, sizes, cabundle
 * bounds, format, module_id) with exact codes, and the PCR extend and
 * file-measurement helpers against SHA-384 computed here with OpenSSL. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "at_limits.h"
#include "cose.h"

static const uint64_t TS = 1700000000123ULL;

static tu_payload P; /* rebuilt by each test */

static void fresh(at_format f, bool definite)
{
    tu_payload_cleanup(&P);
    tu_payload_default(&P, NULL, f, TS);
    P.definite = definite;
}

static at_err decode_p(at_format expect)
{
    at_diag d = {{0}};
    at_err rc = tu_payload_decode(&P, expect, &d);
    if (rc != AT_OK)
        assert_true(d.msg[0] != '\0');
    return rc;
}

static void decode_into(at_nitro_payload *out, at_format expect)
{
    at_buf b;
    at_buf_init(&b);
    tu_payload_encode(&P, &b);
    at_diag d = {{0}};
    at_err rc = at_nitro_payload_decode(at_buf_span(&b), expect, out, &d);
    if (rc != AT_OK)
        fprintf(stderr, "decode: %s: %s\n", at_err_str(rc), d.msg);
    assert_int_equal(rc, AT_OK);
    at_buf_cleanup(&b); /* the payload keeps its own copy in the tree */
}

static void definite_and_indefinite_maps(void **state)
{
    for (int def = 0; def < 2; def++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, def);
        at_nitro_payload p;
        decode_into(&p, AT_FORMAT_AUTO);
        assert_int_equal(p.map_indefinite, !def);
        assert_int_equal(p.format, AT_FORMAT_NITRO_ENCLAVE);
        assert_string_equal(p.module_id, "i-0123456789abcdef0-enc0123456789abcdef");
        assert_true(p.timestamp_ms == TS);
        assert_int_equal(p.n_pcrs, 16);
        for (unsigned i = 0; i < 16; i++) {
            assert_int_equal(p.pcrs[i].index, i);
            assert_int_equal(p.pcrs[i].len, 48);
            assert_int_equal(p.pcrs[i].value[0], i + 1);
        }
        assert_int_equal(p.n_cabundle, 4);
        assert_int_equal(p.certificate.len, 5);
        assert_false(p.has_nonce || p.has_user_data || p.has_public_key);
        at_nitro_payload_cleanup(&p);
        assert_null(p.root);
    }
    fresh(AT_FORMAT_NITRO_TPM, false);
    at_nitro_payload p;
    decode_into(&p, AT_FORMAT_NITRO_TPM);
    assert_int_equal(p.format, AT_FORMAT_NITRO_TPM);
    assert_int_equal(p.n_pcrs, 24);
    at_nitro_payload_cleanup(&p);
}

static void optional_fields(void **state)
{
    static const char *keys[] = {"public_key", "user_data", "nonce"};
    uint8_t big[AT_MAX_OPTIONAL_FIELD + 1];
    memset(big, 0xab, sizeof big);
    for (int k = 0; k < 3; k++) {
        at_nitro_payload p;
        /* null, absent, empty, 1 byte, 1024 bytes; public_key is never
         * empty (AWS: 1..1024 bytes when present), below. */
        for (int mode = 0; mode < 5; mode++) {
            if (k == 0 && mode == 2)
                continue;
            fresh(AT_FORMAT_NITRO_ENCLAVE, false);
            size_t want_len = 0;
            if (mode == 1)
                tu_payload_del(&P, keys[k]);
            else if (mode >= 2) {
                want_len = mode == 2 ? 0 : mode == 3 ? 1 : AT_MAX_OPTIONAL_FIELD;
                at_cbor_put_bytes(tu_payload_val(&P, keys[k]), AT_SPAN(big, want_len));
            }
            decode_into(&p, AT_FORMAT_AUTO);
            bool has = k == 0 ? p.has_public_key : k == 1 ? p.has_user_data : p.has_nonce;
            at_span v = k == 0 ? p.public_key : k == 1 ? p.user_data : p.nonce;
            assert_int_equal(has, mode >= 2);
            assert_int_equal(v.len, want_len);
            if (want_len)
                assert_memory_equal(v.p, big, want_len);
            at_nitro_payload_cleanup(&p);
        }
        fresh(AT_FORMAT_NITRO_ENCLAVE, true);
        at_cbor_put_bytes(tu_payload_val(&P, keys[k]), AT_SPAN(big, AT_MAX_OPTIONAL_FIELD + 1));
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
        assert_int_equal(AT_MAX_OPTIONAL_FIELD, 1024);
        fresh(AT_FORMAT_NITRO_ENCLAVE, true);
        at_cbor_put_text(tu_payload_val(&P, keys[k]), "abc");
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
        fresh(AT_FORMAT_NITRO_ENCLAVE, true);
        at_cbor_put_uint(tu_payload_val(&P, keys[k]), 0);
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
        fresh(AT_FORMAT_NITRO_ENCLAVE, true);
        at_cbor_put_bool(tu_payload_val(&P, keys[k]), 0);
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
        /* Regression: a float here used to abort inside libcbor. */
        fresh(AT_FORMAT_NITRO_ENCLAVE, true);
        at_buf_append(tu_payload_val(&P, keys[k]), "\xf9\x3c\x00", 3);
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    }
}

/* AWS's semantic validation: public_key, when present, is 1..1024 bytes;
 * an empty one is refused, never reported as a present key. user_data and
 * nonce may be empty (genuine documents carry an empty user_data). */
static void empty_public_key_refused(void **state)
{
    for (int def = 0; def < 2; def++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, def);
        at_cbor_put_bytes(tu_payload_val(&P, "public_key"), AT_SPAN_NULL);
        at_buf b;
        at_buf_init(&b);
        tu_payload_encode(&P, &b);
        at_nitro_payload p;
        at_diag d = {{0}};
        assert_int_equal(at_nitro_payload_decode(at_buf_span(&b), AT_FORMAT_AUTO, &p, &d), AT_E_BAD_FIELD);
        assert_string_equal(d.msg, "public_key: 0 bytes, expected 1..1024 or null");
        at_buf_cleanup(&b);
    }
    fresh(AT_FORMAT_NITRO_TPM, false);
    at_cbor_put_bytes(tu_payload_val(&P, "public_key"), AT_SPAN_NULL);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
}

/* AWS's CDDL: every cabundle entry is 1..1024 bytes, like the leaf. */
static void cabundle_entries_at_most_1024_bytes(void **state)
{
    static uint8_t big[AT_MAX_CERT_BYTES + 1];
    for (size_t n = AT_MAX_CERT_BYTES; n <= AT_MAX_CERT_BYTES + 1; n++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_buf *b = tu_payload_val(&P, "cabundle");
        at_cbor_put_head(b, AT_CBOR_ARRAY, 2);
        at_cbor_put_bytes(b, AT_SPAN(big, 10));
        at_cbor_put_bytes(b, AT_SPAN(big, n));
        at_diag d = {{0}};
        assert_int_equal(tu_payload_decode(&P, AT_FORMAT_AUTO, &d), n <= 1024 ? AT_OK : AT_E_BAD_FIELD);
        if (n > 1024)
            assert_string_equal(d.msg, "cabundle[1]: 1025 bytes, expected 1..1024");
    }
}

static void digest_rule(void **state)
{
    static const char *bad[] = {"SHA256", "sha384", "SHA512", "SHA384 ", "SHA3840", "SHA38", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_cbor_put_text(tu_payload_val(&P, "digest"), bad[i]);
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    }
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "digest"), AT_SPAN("SHA384", 6));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_null(tu_payload_val(&P, "digest"));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
}

static void pcr_lengths(void **state)
{
    size_t lens[] = {0, 1, 32, 47, 49, 64};
    for (int tpm = 0; tpm < 2; tpm++)
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            at_format f = tpm ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
            fresh(f, false);
            tu_put_pcrs(tu_payload_val(&P, tpm ? "nitrotpm_pcrs" : "pcrs"), 0, 16, lens[i]);
            assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
        }
    /* One short PCR among good ones. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf *b = tu_payload_val(&P, "pcrs");
    uint8_t v[48] = {1};
    at_cbor_put_head(b, AT_CBOR_MAP, 3);
    at_cbor_put_uint(b, 0);
    at_cbor_put_bytes(b, AT_SPAN(v, 48));
    at_cbor_put_uint(b, 1);
    at_cbor_put_bytes(b, AT_SPAN(v, 32));
    at_cbor_put_uint(b, 2);
    at_cbor_put_bytes(b, AT_SPAN(v, 48));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    /* Value of the wrong type. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    b = tu_payload_val(&P, "pcrs");
    at_cbor_put_head(b, AT_CBOR_MAP, 1);
    at_cbor_put_uint(b, 0);
    at_cbor_put_text(b, "000000000000000000000000000000000000000000000000");
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
}

static void pcr_count_and_index(void **state)
{
    /* 32 PCRs (0..31) is the most there can be. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    tu_put_pcrs(tu_payload_val(&P, "pcrs"), 0, 32, 48);
    at_nitro_payload p;
    decode_into(&p, AT_FORMAT_AUTO);
    assert_int_equal(p.n_pcrs, 32);
    assert_non_null(at_nitro_pcr(&p, 31));
    assert_null(at_nitro_pcr(&p, 32));
    at_nitro_payload_cleanup(&p);
    /* 33 PCRs */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    tu_put_pcrs(tu_payload_val(&P, "pcrs"), 0, 33, 48);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    /* index 32, and a large index */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    tu_put_pcrs(tu_payload_val(&P, "pcrs"), 17, 16, 48);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    uint8_t v[48] = {7};
    const struct {
        int kind;
        int64_t key;
    } keys[] = {{0, 32}, {0, 255}, {0, 256}, {0, 1LL << 40}, {1, -1}, {2, 0}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_buf *b = tu_payload_val(&P, "pcrs");
        at_cbor_put_head(b, AT_CBOR_MAP, 2);
        at_cbor_put_uint(b, 0);
        at_cbor_put_bytes(b, AT_SPAN(v, 48));
        if (keys[i].kind == 2)
            at_cbor_put_text(b, "1");
        else
            at_cbor_put_int(b, keys[i].key);
        at_cbor_put_bytes(b, AT_SPAN(v, 48));
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    }
    /* Empty map, not a map. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_head(tu_payload_val(&P, "pcrs"), AT_CBOR_MAP, 0);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_head(tu_payload_val(&P, "pcrs"), AT_CBOR_ARRAY, 0);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    /* The same index twice is a duplicate key. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf *b = tu_payload_val(&P, "pcrs");
    at_cbor_put_head(b, AT_CBOR_MAP, 2);
    for (int i = 0; i < 2; i++) {
        at_cbor_put_uint(b, 3);
        at_cbor_put_bytes(b, AT_SPAN(v, 48));
    }
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_MALFORMED_CBOR);
}

static void pcrs_sorted(void **state)
{
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf *b = tu_payload_val(&P, "pcrs");
    uint8_t v[48];
    unsigned order[] = {16, 2, 0, 31, 1};
    at_cbor_put_head(b, AT_CBOR_MAP, 5);
    for (int i = 0; i < 5; i++) {
        at_cbor_put_uint(b, order[i]);
        memset(v, (int)order[i], sizeof v);
        at_cbor_put_bytes(b, AT_SPAN(v, 48));
    }
    at_nitro_payload p;
    decode_into(&p, AT_FORMAT_AUTO);
    unsigned sorted[] = {0, 1, 2, 16, 31};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p.pcrs[i].index, sorted[i]);
        assert_int_equal(p.pcrs[i].value[47], sorted[i]);
        const at_pcr *q = at_nitro_pcr(&p, sorted[i]);
        assert_ptr_equal(q, &p.pcrs[i]);
    }
    assert_null(at_nitro_pcr(&p, 3));
    at_nitro_payload_cleanup(&p);
}

static void pcrs_both_or_neither(void **state)
{
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    tu_put_pcrs(tu_payload_val(&P, "nitrotpm_pcrs"), 0, 24, 48);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_TPM, true);
    tu_put_pcrs(tu_payload_val(&P, "pcrs"), 0, 16, 48);
    assert_int_equal(decode_p(AT_FORMAT_NITRO_TPM), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    tu_payload_del(&P, "pcrs");
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_MISSING_FIELD);
    /* A near miss of the name is not a PCR field. */
    at_cbor_put_head(tu_payload_val(&P, "PCRs"), AT_CBOR_MAP, 0);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_MISSING_FIELD);
}

static void required_fields(void **state)
{
    static const char *req[] = {"module_id", "digest", "timestamp", "certificate", "cabundle"};
    for (int def = 0; def < 2; def++)
        for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
            fresh(i % 2 ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE, def);
            tu_payload_del(&P, req[i]);
            assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_MISSING_FIELD);
        }
    /* null is not "present" for a required field either: it is a bad value. */
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_cbor_put_null(tu_payload_val(&P, req[i]));
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    }
}

static void field_types(void **state)
{
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "module_id"), AT_SPAN("i-1", 3));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    /* timestamp: text, 0, negative, above int64, float */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_text(tu_payload_val(&P, "timestamp"), "1700000000000");
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_uint(tu_payload_val(&P, "timestamp"), 0);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_int(tu_payload_val(&P, "timestamp"), -5);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_uint(tu_payload_val(&P, "timestamp"), (uint64_t)INT64_MAX + 1);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf_append(tu_payload_val(&P, "timestamp"), "\xfb\x42\x78\xbc\xfe\x56\x80\x00\x00", 9);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    /* certificate: text, empty, too long (AWS's CDDL: 1..1024 bytes) */
    assert_int_equal(AT_MAX_CERT_BYTES, 1024);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_text(tu_payload_val(&P, "certificate"), "MIIC");
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "certificate"), AT_SPAN_NULL);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    uint8_t *big = calloc(1, AT_MAX_CERT_BYTES + 1);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "certificate"), AT_SPAN(big, AT_MAX_CERT_BYTES + 1));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "certificate"), AT_SPAN(big, AT_MAX_CERT_BYTES));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_OK);
    /* cabundle: not an array, an element that is not bytes, an empty one */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_bytes(tu_payload_val(&P, "cabundle"), AT_SPAN(big, 10));
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf *b = tu_payload_val(&P, "cabundle");
    at_cbor_put_head(b, AT_CBOR_ARRAY, 2);
    at_cbor_put_bytes(b, AT_SPAN(big, 10));
    at_cbor_put_text(b, "x");
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    b = tu_payload_val(&P, "cabundle");
    at_cbor_put_head(b, AT_CBOR_ARRAY, 2);
    at_cbor_put_bytes(b, AT_SPAN(big, 10));
    at_cbor_put_bytes(b, AT_SPAN_NULL);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    free(big);
}

static void cabundle_bounds(void **state)
{
    uint8_t c[8] = {0x30};
    size_t counts[] = {0, 1, 8, 9, 20};
    at_err want[] = {AT_E_BAD_FIELD, AT_OK, AT_OK, AT_E_BAD_FIELD, AT_E_BAD_FIELD};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_buf *b = tu_payload_val(&P, "cabundle");
        at_cbor_put_head(b, AT_CBOR_ARRAY, counts[i]);
        for (size_t k = 0; k < counts[i]; k++)
            at_cbor_put_bytes(b, AT_SPAN(c, sizeof c));
        assert_int_equal(decode_p(AT_FORMAT_AUTO), want[i]);
    }
}

static void format_mismatch(void **state)
{
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    assert_int_equal(decode_p(AT_FORMAT_NITRO_TPM), AT_E_FORMAT_MISMATCH);
    assert_int_equal(decode_p(AT_FORMAT_NITRO_ENCLAVE), AT_OK);
    fresh(AT_FORMAT_NITRO_TPM, false);
    assert_int_equal(decode_p(AT_FORMAT_NITRO_ENCLAVE), AT_E_FORMAT_MISMATCH);
    assert_int_equal(decode_p(AT_FORMAT_NITRO_TPM), AT_OK);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_OK);
    /* Genuine NitroTPM documents come out as nitro-tpm with PCR 17..22 all 0xff. */
    size_t len;
    uint8_t *doc = tu_read_genuine("vaportpm_tpm_20260201", ".cbor", &len);
    at_cose_sign1 m;
    at_nitro_payload p;
    at_diag d = {{0}};
    assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_NITRO_ENCLAVE, &p, &d),
                     AT_E_FORMAT_MISMATCH);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
    assert_int_equal(p.format, AT_FORMAT_NITRO_TPM);
    for (unsigned i = 17; i <= 22; i++) {
        const at_pcr *q = at_nitro_pcr(&p, i);
        assert_non_null(q);
        for (int k = 0; k < 48; k++)
            assert_int_equal(q->value[k], 0xff);
    }
    at_nitro_payload_cleanup(&p);
    at_cose_sign1_cleanup(&m);
    free(doc);
}

static void module_id_rules(void **state)
{
    char id[AT_MAX_MODULE_ID + 2];
    memset(id, 'a', sizeof id);
    id[AT_MAX_MODULE_ID] = '\0';
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_text(tu_payload_val(&P, "module_id"), id);
    at_nitro_payload p;
    decode_into(&p, AT_FORMAT_AUTO);
    assert_int_equal(strlen(p.module_id), AT_MAX_MODULE_ID);
    at_nitro_payload_cleanup(&p);
    id[AT_MAX_MODULE_ID] = 'a';
    id[AT_MAX_MODULE_ID + 1] = '\0';
    static const char *bad[] = {"", "i-0 1", "i-0\t1", "i-0\x7f", "i-\xc3\xa9", NULL};
    bad[5] = id;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh(AT_FORMAT_NITRO_ENCLAVE, false);
        at_cbor_put_text(tu_payload_val(&P, "module_id"), bad[i]);
        assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
    }
    /* An embedded NUL would truncate the C string: refused. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_buf *b = tu_payload_val(&P, "module_id");
    at_cbor_put_head(b, AT_CBOR_TEXT, 5);
    at_buf_append(b, "i-0\0x", 5);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_E_BAD_FIELD);
}

static void payload_shape(void **state)
{
    at_diag d = {{0}};
    at_nitro_payload p;
    /* Not a map. */
    assert_int_equal(at_nitro_payload_decode(AT_SPAN("\x80", 1), AT_FORMAT_AUTO, &p, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_nitro_payload_decode(AT_SPAN("\x40", 1), AT_FORMAT_AUTO, &p, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_nitro_payload_decode(AT_SPAN_NULL, AT_FORMAT_AUTO, &p, &d), AT_E_MALFORMED_CBOR);
    /* A non-text key at the top level. */
    fresh(AT_FORMAT_NITRO_ENCLAVE, true);
    at_buf b;
    at_buf_init(&b);
    tu_payload_encode(&P, &b);
    b.p[0]++; /* one more entry */
    at_cbor_put_uint(&b, 1);
    at_cbor_put_uint(&b, 2);
    assert_int_equal(at_nitro_payload_decode(at_buf_span(&b), AT_FORMAT_AUTO, &p, &d), AT_E_BAD_FIELD);
    /* Trailing bytes after the map. */
    at_buf_reset(&b);
    tu_payload_encode(&P, &b);
    at_buf_u8(&b, 0x00);
    assert_int_equal(at_nitro_payload_decode(at_buf_span(&b), AT_FORMAT_AUTO, &p, &d), AT_E_MALFORMED_CBOR);
    /* A key twice (e.g. a second nonce to confuse a verifier that reads
     * the last one). */
    at_buf_reset(&b);
    P.definite = false;
    tu_payload_encode(&P, &b);
    b.len--; /* drop the break */
    at_cbor_put_text(&b, "nonce");
    at_cbor_put_bytes(&b, AT_SPAN("x", 1));
    at_cbor_put_break(&b);
    assert_int_equal(at_nitro_payload_decode(at_buf_span(&b), AT_FORMAT_AUTO, &p, &d), AT_E_MALFORMED_CBOR);
    at_buf_cleanup(&b);
    /* Unknown keys are tolerated (AWS may add fields). */
    fresh(AT_FORMAT_NITRO_ENCLAVE, false);
    at_cbor_put_uint(tu_payload_val(&P, "future_field"), 1);
    assert_int_equal(decode_p(AT_FORMAT_AUTO), AT_OK);
}

/* pcr' = SHA-384(pcr || data), computed here independently. */
static void sha384_2(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, uint8_t out[48])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 0;
    assert_int_equal(EVP_DigestInit_ex(c, EVP_sha384(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(c, a, al), 1);
    assert_int_equal(EVP_DigestUpdate(c, b, bl), 1);
    assert_int_equal(EVP_DigestFinal_ex(c, out, &n), 1);
    EVP_MD_CTX_free(c);
}

static void pcr_extend_known_answer(void **state)
{
    uint8_t pcr[48] = {0}, want[48], zero[48] = {0};
    /* Known answer: SHA-384(48 zero bytes || "abc"), from OpenSSL here. */
    sha384_2(zero, 48, (const uint8_t *)"abc", 3, want);
    assert_int_equal(at_pcr_extend(pcr, AT_SPAN("abc", 3)), AT_OK);
    assert_memory_equal(pcr, want, 48);
    /* Extending is ordered and chained. */
    uint8_t want2[48];
    sha384_2(want, 48, (const uint8_t *)"def", 3, want2);
    assert_int_equal(at_pcr_extend(pcr, AT_SPAN("def", 3)), AT_OK);
    assert_memory_equal(pcr, want2, 48);
    /* Empty data still changes the register. */
    uint8_t e[48] = {0}, want3[48];
    sha384_2(zero, 48, NULL, 0, want3);
    assert_int_equal(at_pcr_extend(e, AT_SPAN_NULL), AT_OK);
    assert_memory_equal(e, want3, 48);
    /* A fixed vector, so a change of hash would be caught even if OpenSSL
     * were used the same wrong way here: SHA-384 of 48 zero bytes. */
    static const uint8_t sha384_zero48[48] = {
        0x8f, 0x0d, 0x14, 0x5c, 0x03, 0x68, 0xad, 0x6b, 0x70, 0xbe, 0x22, 0xe4, 0x1c, 0x40, 0x0e, 0xea,
        0x91, 0xb9, 0x71, 0xd9, 0x6b, 0xa2, 0x20, 0xfe, 0xc9, 0xfa, 0xe2, 0x5a, 0x58, 0xdf, 0xfd, 0xaa,
        0xf7, 0x2d, 0xbe, 0x8f, 0x67, 0x83, 0xd5, 0x51, 0x28, 0xc9, 0xdf, 0x4e, 0xfa, 0xf6, 0xf8, 0xa7};
    assert_memory_equal(e, sha384_zero48, 48);
}

static void pcr_measure_file(void **state)
{
    char dir[] = "/tmp/attest-nitro-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    /* > 64 KiB so the helper reads in several chunks. */
    size_t n = 200000;
    uint8_t *content = malloc(n);
    for (size_t i = 0; i < n; i++)
        content[i] = (uint8_t)(i * 31 + 7);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, n, f), n);
    fclose(f);
    uint8_t file_hash[48], want[48], start[48], pcr[48];
    unsigned hl = 0;
    assert_int_equal(EVP_Digest(content, n, file_hash, &hl, EVP_sha384(), NULL), 1);
    memset(start, 0x5a, sizeof start);
    sha384_2(start, 48, file_hash, 48, want);
    memcpy(pcr, start, 48);
    at_diag d = {{0}};
    assert_int_equal(at_pcr_measure_file(pcr, path, &d), AT_OK);
    assert_memory_equal(pcr, want, 48);
    /* Empty file. */
    f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(EVP_Digest("", 0, file_hash, &hl, EVP_sha384(), NULL), 1);
    memset(pcr, 0, 48);
    memset(start, 0, 48);
    sha384_2(start, 48, file_hash, 48, want);
    assert_int_equal(at_pcr_measure_file(pcr, path, &d), AT_OK);
    assert_memory_equal(pcr, want, 48);
    /* Missing file: AT_E_IO and the register is untouched. */
    unlink(path);
    uint8_t before[48];
    memcpy(before, pcr, 48);
    assert_int_equal(at_pcr_measure_file(pcr, path, &d), AT_E_IO);
    assert_memory_equal(pcr, before, 48);
    assert_non_null(strstr(d.msg, "model.bin"));
    /* A directory cannot be read. */
    assert_int_equal(at_pcr_measure_file(pcr, dir, &d), AT_E_IO);
    assert_memory_equal(pcr, before, 48);
    rmdir(dir);
    free(content);
}

static void format_names(void **state)
{
    at_format f;
    assert_true(at_format_parse("nitro-enclave", &f));
    assert_int_equal(f, AT_FORMAT_NITRO_ENCLAVE);
    assert_true(at_format_parse("nitro-tpm", &f));
    assert_int_equal(f, AT_FORMAT_NITRO_TPM);
    assert_true(at_format_parse("auto", &f));
    assert_int_equal(f, AT_FORMAT_AUTO);
    assert_false(at_format_parse("nitro", &f));
    assert_false(at_format_parse("NITRO-TPM", &f));
    assert_string_equal(at_format_name(AT_FORMAT_NITRO_ENCLAVE), "nitro-enclave");
    assert_string_equal(at_format_name(AT_FORMAT_NITRO_TPM), "nitro-tpm");
}

static int teardown(void **state)
{
    tu_payload_cleanup(&P);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(definite_and_indefinite_maps),
        cmocka_unit_test(optional_fields),
        cmocka_unit_test(empty_public_key_refused),
        cmocka_unit_test(cabundle_entries_at_most_1024_bytes),
        cmocka_unit_test(digest_rule),
        cmocka_unit_test(pcr_lengths),
        cmocka_unit_test(pcr_count_and_index),
        cmocka_unit_test(pcrs_sorted),
        cmocka_unit_test(pcrs_both_or_neither),
        cmocka_unit_test(required_fields),
        cmocka_unit_test(field_types),
        cmocka_unit_test(cabundle_bounds),
        cmocka_unit_test(format_mismatch),
        cmocka_unit_test(module_id_rules),
        cmocka_unit_test(payload_shape),
        cmocka_unit_test(pcr_extend_known_answer),
        cmocka_unit_test(pcr_measure_file),
        cmocka_unit_test(format_names),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
