/* Unit tests for lib/cbor_rd.c, the gate in front of libcbor: pins each
 * libcbor 0.8 hazard (trailing bytes, declared counts, duplicate keys,
 * nesting, inline tag 18) and each well-formedness rule of the bounded
 * scanner, with the exact code. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "at_limits.h"
#include "cbor_rd.h"

static const at_cbor_limits lim = {AT_MAX_CBOR_DEPTH, AT_MAX_CBOR_ITEMS};

#define B(...) ((const uint8_t[]){__VA_ARGS__})
#define S(...) AT_SPAN(B(__VA_ARGS__), sizeof B(__VA_ARGS__))

static at_err decode(at_span in, const at_cbor_limits *l)
{
    cbor_item_t *it = NULL;
    at_diag d = {{0}};
    at_err rc = at_cbor_decode(in, l, &it, &d);
    if (rc == AT_OK) {
        assert_non_null(it);
        cbor_decref(&it);
    } else {
        assert_null(it); /* out-parameter written only on success */
        assert_true(d.msg[0] != '\0');
    }
    return rc;
}

static at_err decode_buf(const at_buf *b, const at_cbor_limits *l)
{
    assert_int_equal(at_buf_status(b), AT_OK);
    return decode(at_buf_span(b), l);
}

static void accepts_well_formed(void **state)
{
    assert_int_equal(decode(S(0x00), &lim), AT_OK);
    assert_int_equal(decode(S(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), &lim), AT_OK);
    assert_int_equal(decode(S(0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), &lim), AT_OK);
    assert_int_equal(decode(S(0x40), &lim), AT_OK);
    assert_int_equal(decode(S(0x43, 1, 2, 3), &lim), AT_OK);
    assert_int_equal(decode(S(0x62, 'h', 'i'), &lim), AT_OK);
    assert_int_equal(decode(S(0x82, 0x01, 0x20), &lim), AT_OK);
    assert_int_equal(decode(S(0x9f, 0x01, 0x02, 0xff), &lim), AT_OK);
    assert_int_equal(decode(S(0xf4), &lim), AT_OK);
    assert_int_equal(decode(S(0xf6), &lim), AT_OK);
    assert_int_equal(decode(S(0xf9, 0x3c, 0x00), &lim), AT_OK); /* half float 1.0 */
    assert_int_equal(decode(S(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), &lim), AT_OK);
}

static void empty_input(void **state)
{
    size_t n = 99;
    at_diag d = {{0}};
    assert_int_equal(at_cbor_scan(AT_SPAN("", 0), &lim, &n, &d), AT_E_MALFORMED_CBOR);
    assert_int_equal(n, 99);
    assert_int_equal(decode(AT_SPAN_NULL, &lim), AT_E_MALFORMED_CBOR);
}

/* libcbor: cbor_load stops after the first item and reports success. */
static void trailing_bytes_refused(void **state)
{
    const uint8_t two[] = {0x01, 0x02};
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(two, sizeof two, &res);
    assert_non_null(it); /* the hazard: no error, one byte left unread */
    assert_int_equal(res.error.code, CBOR_ERR_NONE);
    assert_int_equal(res.read, 1);
    cbor_decref(&it);

    size_t n = 0;
    at_diag d = {{0}};
    assert_int_equal(at_cbor_scan(AT_SPAN(two, 2), &lim, &n, &d), AT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(decode(AT_SPAN(two, 2), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x82, 0x01, 0x02, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa0, 0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x40, 0x00), &lim), AT_E_MALFORMED_CBOR);
}

static size_t seen_array_size;
static void on_array_start(void *ctx, size_t n) { seen_array_size = n; }

/* libcbor takes a declared count at face value (and cbor_load allocates
 * from it); the scanner compares it with the bytes left first. */
static void declared_counts_checked_before_allocation(void **state)
{
    const uint8_t lie[] = {0x9a, 0x00, 0x10, 0x00, 0x00, 0x00}; /* 1 Mi entries, 1 byte */
    struct cbor_callbacks cb = cbor_empty_callbacks;
    cb.array_start = on_array_start;
    struct cbor_decoder_result r = cbor_stream_decode(lie, sizeof lie, &cb, NULL);
    assert_int_equal(r.status, CBOR_DECODER_FINISHED);
    assert_int_equal(seen_array_size, 0x100000); /* the hazard */

    assert_int_equal(decode(AT_SPAN(lie, sizeof lie), &lim), AT_E_MALFORMED_CBOR);
    /* 64-bit counts and lengths. */
    assert_int_equal(decode(S(0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00), &lim),
                     AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xbb, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00), &lim),
                     AT_E_MALFORMED_CBOR);
    /* A map needs two items per entry: 3 entries in 5 bytes is a lie. */
    assert_int_equal(decode(S(0xa3, 0x01, 0x02, 0x03, 0x04, 0x05), &lim), AT_E_MALFORMED_CBOR);
    /* Strings: exactly the bytes left is fine, one more is not. */
    assert_int_equal(decode(S(0x43, 1, 2, 3), &lim), AT_OK);
    assert_int_equal(decode(S(0x44, 1, 2, 3), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x64, 'a', 'b', 'c'), &lim), AT_E_MALFORMED_CBOR);
    /* An array of 3 with only 2 items present. */
    assert_int_equal(decode(S(0x83, 0x01, 0x02), &lim), AT_E_MALFORMED_CBOR);
}

/* libcbor keeps both entries of a duplicate key; the gate refuses them. */
static void duplicate_keys_refused(void **state)
{
    const uint8_t dup[] = {0xa2, 0x01, 0x01, 0x01, 0x02};
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(dup, sizeof dup, &res);
    assert_non_null(it);
    assert_int_equal(cbor_map_size(it), 2); /* the hazard */
    cbor_decref(&it);

    assert_int_equal(decode(AT_SPAN(dup, sizeof dup), &lim), AT_E_MALFORMED_CBOR);
    /* Negative integers, text, byte strings. */
    assert_int_equal(decode(S(0xa2, 0x38, 0x22, 0x00, 0x38, 0x22, 0x01), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa2, 0x41, 'a', 0x01, 0x41, 'a', 0x02), &lim), AT_E_MALFORMED_CBOR);
    /* The same value in a longer encoding is the same key. */
    assert_int_equal(decode(S(0xa2, 0x01, 0x00, 0x18, 0x01, 0x00), &lim), AT_E_MALFORMED_CBOR);
    /* Indefinite maps, and maps nested in arrays and maps. */
    assert_int_equal(decode(S(0xbf, 0x61, 'k', 0x01, 0x61, 'k', 0x02, 0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x81, 0xa2, 0x05, 0x00, 0x05, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0x00, 0xa2, 0x05, 0x00, 0x05, 0x00), &lim), AT_E_MALFORMED_CBOR);
    /* Distinct keys that look alike are not duplicates: 1 vs -2 (both
     * argument 1), text "a" vs bytes 'a', "a" vs "ab". */
    assert_int_equal(decode(S(0xa2, 0x01, 0x00, 0x21, 0x00), &lim), AT_OK);
    assert_int_equal(decode(S(0xa2, 0x61, 'a', 0x00, 0x41, 'a', 0x00), &lim), AT_OK);
    assert_int_equal(decode(S(0xa2, 0x61, 'a', 0x00, 0x62, 'a', 'b', 0x00), &lim), AT_OK);
}

static void map_key_types(void **state)
{
    /* Keys must be integers or strings. */
    assert_int_equal(decode(S(0xa1, 0x80, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0xa0, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0xf6, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0xf9, 0x3c, 0x00, 0x00), &lim), AT_E_MALFORMED_CBOR);
}

static void nest(at_buf *b, unsigned depth, bool indef)
{
    for (unsigned i = 0; i < depth - 1; i++)
        if (indef)
            at_cbor_put_indef_array(b);
        else
            at_cbor_put_head(b, AT_CBOR_ARRAY, 1);
    at_cbor_put_uint(b, 0);
    if (indef)
        for (unsigned i = 0; i < depth - 1; i++)
            at_cbor_put_break(b);
}

static void depth_capped(void **state)
{
    at_buf b;
    for (int indef = 0; indef < 2; indef++) {
        at_buf_init(&b);
        nest(&b, AT_MAX_CBOR_DEPTH, indef);
        assert_int_equal(decode_buf(&b, &lim), AT_OK);
        at_buf_cleanup(&b);
        at_buf_init(&b);
        nest(&b, AT_MAX_CBOR_DEPTH + 1, indef);
        assert_int_equal(decode_buf(&b, &lim), AT_E_TOO_LARGE);
        at_buf_cleanup(&b);
    }
    /* Maps count too: {0: {0: 0}} is depth 3. */
    at_cbor_limits two = {2, 100};
    assert_int_equal(decode(S(0xa1, 0x00, 0x00), &two), AT_OK);
    assert_int_equal(decode(S(0xa1, 0x00, 0xa1, 0x00, 0x00), &two), AT_E_TOO_LARGE);
    /* libcbor itself would go 2048 levels deep: 3000 nested arrays are
     * refused by the gate without recursing into them. */
    at_buf_init(&b);
    nest(&b, 3000, false);
    assert_int_equal(decode_buf(&b, &lim), AT_E_TOO_LARGE);
    at_buf_cleanup(&b);
}

static void item_count_capped(void **state)
{
    at_buf b;
    at_buf_init(&b);
    at_cbor_put_head(&b, AT_CBOR_ARRAY, AT_MAX_CBOR_ITEMS - 1); /* + the array = the cap */
    for (int i = 0; i < AT_MAX_CBOR_ITEMS - 1; i++)
        at_cbor_put_uint(&b, 0);
    assert_int_equal(decode_buf(&b, &lim), AT_OK);
    at_buf_reset(&b);
    at_cbor_put_head(&b, AT_CBOR_ARRAY, AT_MAX_CBOR_ITEMS);
    for (int i = 0; i < AT_MAX_CBOR_ITEMS; i++)
        at_cbor_put_uint(&b, 0);
    assert_int_equal(decode_buf(&b, &lim), AT_E_TOO_LARGE);
    /* Indefinite arrays are counted the same way. */
    at_buf_reset(&b);
    at_cbor_put_indef_array(&b);
    for (int i = 0; i < AT_MAX_CBOR_ITEMS; i++)
        at_cbor_put_uint(&b, 0);
    at_cbor_put_break(&b);
    assert_int_equal(decode_buf(&b, &lim), AT_E_TOO_LARGE);
    at_buf_cleanup(&b);
}

/* libcbor accepts chunked strings; signatures cover exact bytes and Nitro
 * never chunks, so the gate refuses them. */
static void indefinite_strings_refused(void **state)
{
    const uint8_t chunked[] = {0x5f, 0x41, 0x00, 0xff};
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(chunked, sizeof chunked, &res);
    assert_non_null(it);
    cbor_decref(&it);
    assert_int_equal(decode(AT_SPAN(chunked, sizeof chunked), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x7f, 0x61, 'a', 0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x5f, 0xff), &lim), AT_E_MALFORMED_CBOR);
    /* Indefinite integers do not exist. */
    assert_int_equal(decode(S(0x1f), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x3f), &lim), AT_E_MALFORMED_CBOR);
}

static void tags_refused(void **state)
{
    assert_int_equal(decode(S(0xc0, 0x60), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xd8, 0x12, 0x80), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x81, 0xc1, 0x00), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0x01, 0xd8, 0x18, 0x40), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xbf, 0x01, 0xc2, 0x41, 0x01, 0xff), &lim), AT_E_MALFORMED_CBOR);
}

/* libcbor 0.8 treats the one-byte tags 6..20 as unassigned and fails on
 * them, so inline tag 18 (0xd2), the COSE_Sign1 tag, cannot go through
 * cbor_load: lib/cose.c strips it itself. The two-byte form decodes. */
static void libcbor_inline_tag18_fails(void **state)
{
    struct cbor_load_result res;
    const uint8_t inline18[] = {0xd2, 0x80};
    cbor_item_t *it = cbor_load(inline18, sizeof inline18, &res);
    assert_null(it);
    assert_int_equal(res.error.code, CBOR_ERR_MALFORMATED);
    const uint8_t long18[] = {0xd8, 0x12, 0x80};
    it = cbor_load(long18, sizeof long18, &res);
    assert_non_null(it);
    assert_true(cbor_isa_tag(it));
    assert_int_equal(cbor_tag_value(it), 18);
    cbor_decref(&it);
    /* The gate refuses both: no tag gets past it. */
    assert_int_equal(decode(AT_SPAN(inline18, sizeof inline18), &lim), AT_E_MALFORMED_CBOR);
}

static void break_outside_indefinite(void **state)
{
    assert_int_equal(decode(S(0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x82, 0x01, 0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xa1, 0xff, 0x00), &lim), AT_E_MALFORMED_CBOR);
    /* Indefinite map: break between key and value; no break at all. */
    assert_int_equal(decode(S(0xbf, 0x01, 0xff), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xbf, 0x01, 0x02), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x9f, 0x01), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x9f), &lim), AT_E_MALFORMED_CBOR);
}

static void reserved_additional_info(void **state)
{
    for (int major = 0; major < 8; major++)
        for (int ai = 28; ai <= 30; ai++) {
            uint8_t b[2] = {(uint8_t)(major << 5 | ai), 0x00};
            assert_int_equal(decode(AT_SPAN(b, 1), &lim), AT_E_MALFORMED_CBOR);
            assert_int_equal(decode(AT_SPAN(b, 2), &lim), AT_E_MALFORMED_CBOR);
        }
}

static void truncated_arguments(void **state)
{
    assert_int_equal(decode(S(0x18), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x19, 0x01), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x1a, 0x01, 0x02, 0x03), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0x1b, 0, 0, 0, 0, 0, 0, 0), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xf9, 0x3c), &lim), AT_E_MALFORMED_CBOR);
    assert_int_equal(decode(S(0xfb, 0, 0, 0), &lim), AT_E_MALFORMED_CBOR);
}

/* RFC 8949 §3.3: simple values below 32 have a one-byte form only. */
static void two_byte_simple_below_32(void **state)
{
    for (int v = 0; v < 32; v++) {
        uint8_t b[2] = {0xf8, (uint8_t)v};
        assert_int_equal(decode(AT_SPAN(b, 2), &lim), AT_E_MALFORMED_CBOR);
    }
    /* simple(32) is well-formed CBOR but libcbor 0.8 cannot represent it:
     * still refused, never accepted half-decoded. */
    assert_int_equal(decode(S(0xf8, 0x20), &lim), AT_E_MALFORMED_CBOR);
    size_t n = 0;
    at_diag d = {{0}};
    assert_int_equal(at_cbor_scan(S(0xf8, 0x20), &lim, &n, &d), AT_OK);
    assert_int_equal(n, 2);
}

static void definite_and_indefinite_maps(void **state)
{
    at_buf a, b;
    at_buf_init(&a);
    at_buf_init(&b);
    at_cbor_put_head(&a, AT_CBOR_MAP, 2);
    at_cbor_put_indef_map(&b);
    for (int i = 0; i < 2; i++) {
        at_buf *x = i ? &b : &a;
        at_cbor_put_text(x, "digest");
        at_cbor_put_text(x, "SHA384");
        at_cbor_put_text(x, "nonce");
        at_cbor_put_null(x);
    }
    at_cbor_put_break(&b);
    cbor_item_t *ma = NULL, *mb = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_cbor_decode(at_buf_span(&a), &lim, &ma, &d), AT_OK);
    assert_int_equal(at_cbor_decode(at_buf_span(&b), &lim, &mb, &d), AT_OK);
    assert_false(cbor_map_is_indefinite(ma));
    assert_true(cbor_map_is_indefinite(mb));
    for (int i = 0; i < 2; i++) {
        cbor_item_t *m = i ? mb : ma;
        at_span s;
        assert_int_equal(cbor_map_size(m), 2);
        assert_true(at_cbor_get_text(at_cbor_map_get_text(m, "digest"), &s));
        assert_int_equal(s.len, 6);
        assert_memory_equal(s.p, "SHA384", 6);
        assert_true(at_cbor_is_null(at_cbor_map_get_text(m, "nonce")));
        assert_null(at_cbor_map_get_text(m, "nonc"));
        assert_null(at_cbor_map_get_text(m, "nonce2"));
    }
    cbor_decref(&ma);
    cbor_decref(&mb);
    at_buf_cleanup(&a);
    at_buf_cleanup(&b);
    /* Empty maps of both kinds. */
    assert_int_equal(decode(S(0xa0), &lim), AT_OK);
    assert_int_equal(decode(S(0xbf, 0xff), &lim), AT_OK);
}

static void accessors(void **state)
{
    cbor_item_t *it = NULL;
    at_diag d = {{0}};
    int64_t v;
    at_span s;
    /* {1: -35, -1: 2^63-1, "b": h'', "t": "", 2: 2^63, 3: -2^63, 4: -2^63-1} */
    const uint8_t m[] = {0xa7, 0x01, 0x38, 0x22, 0x20, 0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                         0xff, 0x61, 'b',  0x40, 0x61, 't',  0x60, 0x02, 0x1b, 0x80, 0,    0,    0,
                         0,    0,    0,    0,    0x03, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                         0xff, 0x04, 0x3b, 0x80, 0,    0,    0,    0,    0,    0,    0};
    assert_int_equal(at_cbor_decode(AT_SPAN(m, sizeof m), &lim, &it, &d), AT_OK);
    assert_true(at_cbor_get_int64(at_cbor_map_get_int(it, 1), &v));
    assert_int_equal(v, -35);
    assert_true(at_cbor_get_int64(at_cbor_map_get_int(it, -1), &v));
    assert_true(v == INT64_MAX);
    assert_false(at_cbor_get_int64(at_cbor_map_get_int(it, 2), &v));
    assert_true(at_cbor_get_int64(at_cbor_map_get_int(it, 3), &v));
    assert_true(v == INT64_MIN);
    assert_false(at_cbor_get_int64(at_cbor_map_get_int(it, 4), &v));
    assert_null(at_cbor_map_get_int(it, 5));
    assert_true(at_cbor_get_bytes(at_cbor_map_get_text(it, "b"), &s));
    assert_int_equal(s.len, 0);
    assert_non_null(s.p);
    assert_false(at_cbor_get_text(at_cbor_map_get_text(it, "b"), &s));
    assert_true(at_cbor_get_text(at_cbor_map_get_text(it, "t"), &s));
    assert_int_equal(s.len, 0);
    assert_false(at_cbor_get_bytes(at_cbor_map_get_text(it, "t"), &s));
    assert_false(at_cbor_get_int64(NULL, &v));
    assert_false(at_cbor_is_null(NULL));
    assert_null(at_cbor_map_get_text(NULL, "b"));
    assert_null(at_cbor_map_get_int(at_cbor_map_get_text(it, "b"), 1)); /* not a map */
    assert_string_equal(at_cbor_type_name(it), "map");
    assert_string_equal(at_cbor_type_name(at_cbor_map_get_int(it, 1)), "negative integer");
    assert_string_equal(at_cbor_type_name(at_cbor_map_get_text(it, "b")), "byte string");
    assert_string_equal(at_cbor_type_name(NULL), "nothing");
    cbor_decref(&it);
}

/* Regression: libcbor's cbor_is_null() asserts on floats, so asking
 * "is this null?" or "what type is this?" of a float aborted the process
 * (a 108-byte document with a float payload killed `attestctl verify`). */
static void floats_are_not_null(void **state)
{
    const uint8_t *floats[] = {B(0xf9, 0x3c, 0x00), B(0xfa, 0x3f, 0x80, 0, 0),
                               B(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)};
    const size_t lens[] = {3, 5, 9};
    for (int i = 0; i < 3; i++) {
        cbor_item_t *it = NULL;
        at_diag d = {{0}};
        assert_int_equal(at_cbor_decode(AT_SPAN(floats[i], lens[i]), &lim, &it, &d), AT_OK);
        assert_false(at_cbor_is_null(it));
        assert_string_equal(at_cbor_type_name(it), "float");
        at_span s;
        int64_t v;
        assert_false(at_cbor_get_bytes(it, &s));
        assert_false(at_cbor_get_text(it, &s));
        assert_false(at_cbor_get_int64(it, &v));
        cbor_decref(&it);
    }
    cbor_item_t *it = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_cbor_decode(S(0xf6), &lim, &it, &d), AT_OK);
    assert_true(at_cbor_is_null(it));
    assert_string_equal(at_cbor_type_name(it), "null");
    cbor_decref(&it);
    assert_int_equal(at_cbor_decode(S(0xf7), &lim, &it, &d), AT_OK); /* undefined */
    assert_false(at_cbor_is_null(it));
    assert_string_equal(at_cbor_type_name(it), "simple value");
    cbor_decref(&it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_well_formed),
        cmocka_unit_test(empty_input),
        cmocka_unit_test(trailing_bytes_refused),
        cmocka_unit_test(declared_counts_checked_before_allocation),
        cmocka_unit_test(duplicate_keys_refused),
        cmocka_unit_test(map_key_types),
        cmocka_unit_test(depth_capped),
        cmocka_unit_test(item_count_capped),
        cmocka_unit_test(indefinite_strings_refused),
        cmocka_unit_test(tags_refused),
        cmocka_unit_test(libcbor_inline_tag18_fails),
        cmocka_unit_test(break_outside_indefinite),
        cmocka_unit_test(reserved_additional_info),
        cmocka_unit_test(truncated_arguments),
        cmocka_unit_test(two_byte_simple_below_32),
        cmocka_unit_test(definite_and_indefinite_maps),
        cmocka_unit_test(accessors),
        cmocka_unit_test(floats_are_not_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
