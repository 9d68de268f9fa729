/* Unit tests for lib/buf.c and lib/enc.c: the bounded reader never reads
 * past its end and leaves its offset unchanged on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "enc.h"

static void reader_bounds(void **state)
{
    const uint8_t data[] = {1, 2, 3, 4, 5};
    at_reader r;
    at_reader_init(&r, data, sizeof data);
    uint16_t v16;
    assert_true(at_reader_u16(&r, &v16));
    assert_int_equal(v16, 0x0102);
    uint32_t v32;
    assert_false(at_reader_u32(&r, &v32));
    assert_int_equal(r.off, 2); /* unchanged on failure */
    at_span s;
    assert_false(at_reader_take(&r, SIZE_MAX, &s));
    assert_false(at_reader_take(&r, SIZE_MAX - 1, &s));
    assert_int_equal(r.off, 2);
    assert_true(at_reader_take(&r, 3, &s));
    assert_true(at_reader_at_end(&r));
    uint8_t v8;
    assert_false(at_reader_u8(&r, &v8));
}

static void reader_varint(void **state)
{
    /* RFC 9000 §A.1 examples. */
    const uint8_t a[] = {0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c};
    const uint8_t b[] = {0x9d, 0x7f, 0x3e, 0x7d};
    const uint8_t c[] = {0x7b, 0xbd};
    const uint8_t d[] = {0x25};
    const uint8_t trunc[] = {0x9d, 0x7f};
    uint64_t v;
    at_reader r;
    at_reader_init(&r, a, sizeof a);
    assert_true(at_reader_varint(&r, &v));
    assert_true(v == 151288809941952652ULL);
    at_reader_init(&r, b, sizeof b);
    assert_true(at_reader_varint(&r, &v));
    assert_int_equal(v, 494878333);
    at_reader_init(&r, c, sizeof c);
    assert_true(at_reader_varint(&r, &v));
    assert_int_equal(v, 15293);
    at_reader_init(&r, d, sizeof d);
    assert_true(at_reader_varint(&r, &v));
    assert_int_equal(v, 37);
    at_reader_init(&r, trunc, sizeof trunc);
    assert_false(at_reader_varint(&r, &v));
    assert_int_equal(r.off, 0);

    at_buf b2;
    at_buf_init(&b2);
    assert_int_equal(at_buf_varint(&b2, 494878333), AT_OK);
    assert_memory_equal(b2.p, b, 4);
    assert_int_equal(at_buf_varint(&b2, 1ULL << 62), AT_E_TOO_LARGE);
    assert_int_equal(at_buf_status(&b2), AT_E_TOO_LARGE);
    at_buf_cleanup(&b2);
}

static void buf_max(void **state)
{
    at_buf b;
    at_buf_init(&b);
    at_buf_set_max(&b, 4);
    assert_int_equal(at_buf_append(&b, "abcd", 4), AT_OK);
    assert_int_equal(at_buf_append(&b, "e", 1), AT_E_TOO_LARGE);
    assert_int_equal(at_buf_u8(&b, 1), AT_E_TOO_LARGE); /* sticky */
    size_t n;
    assert_null(at_buf_take(&b, &n));
    at_buf_cleanup(&b);
}

static void hex_and_b64(void **state)
{
    uint8_t out[4];
    size_t n;
    assert_int_equal(at_hex_decode("00ffA0", 6, out, sizeof out, &n), AT_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[2], 0xa0);
    assert_int_equal(at_hex_decode("0g", 2, out, sizeof out, &n), AT_E_BAD_FIELD);
    assert_int_equal(at_hex_decode("abc", 3, out, sizeof out, &n), AT_E_BAD_FIELD);
    assert_int_equal(at_hex_decode("0011223344", 10, out, sizeof out, &n), AT_E_TOO_LARGE);
    /* Nothing is written on failure, not even the valid prefix. */
    memset(out, 0x5a, sizeof out);
    n = 99;
    assert_int_equal(at_hex_decode("0102zz", 6, out, sizeof out, &n), AT_E_BAD_FIELD);
    assert_int_equal(out[0], 0x5a);
    assert_int_equal(out[1], 0x5a);
    assert_int_equal(n, 99);

    char *e = at_b64_encode_new(AT_SPAN("foob", 4));
    assert_string_equal(e, "Zm9vYg==");
    uint8_t *d;
    assert_int_equal(at_b64_decode_new(e, strlen(e), &d, &n), AT_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(d, "foob", 4);
    free(d);
    free(e);
    e = at_b64url_encode_new(AT_SPAN("\xfb\xff", 2));
    assert_string_equal(e, "-_8");
    free(e);
    assert_int_equal(at_b64_decode_new("Zm9v YmFy", 9, &d, &n), AT_E_BAD_FIELD);
    assert_int_equal(at_b64_decode_new("Zm9=vYg", 7, &d, &n), AT_E_BAD_FIELD);
    assert_int_equal(at_b64_decode_new("Zh==", 4, &d, &n), AT_E_BAD_FIELD); /* trailing bits */
    assert_int_equal(at_b64_decode_new("Z", 1, &d, &n), AT_E_BAD_FIELD);
    assert_int_equal(at_b64_decode_new("", 0, &d, &n), AT_OK);
    assert_int_equal(n, 0);
    free(d);

    /* One alphabet per text (RFC 4648 §4 padded, or §5 unpadded). */
    assert_int_equal(at_b64_decode_new("-_8", 3, &d, &n), AT_OK); /* §5 */
    assert_int_equal(n, 2);
    assert_memory_equal(d, "\xfb\xff", 2);
    free(d);
    assert_int_equal(at_b64_decode_new("+/8=", 4, &d, &n), AT_OK); /* §4 */
    assert_int_equal(n, 2);
    assert_memory_equal(d, "\xfb\xff", 2);
    free(d);
    assert_int_equal(at_b64_decode_new("+_8=", 4, &d, &n), AT_E_BAD_FIELD); /* mixed */
    assert_int_equal(at_b64_decode_new("-/+_", 4, &d, &n), AT_E_BAD_FIELD); /* mixed */
    assert_int_equal(at_b64_decode_new("-_8=", 4, &d, &n), AT_E_BAD_FIELD); /* §5 padded */
    assert_int_equal(at_b64_decode_new("+/8", 3, &d, &n), AT_E_BAD_FIELD);  /* §4 unpadded */
    assert_int_equal(at_b64_decode_new("Zm9v", 4, &d, &n), AT_OK);          /* whole groups: either */
    free(d);
}

static void err_table(void **state)
{
    assert_string_equal(at_err_str(AT_E_MALFORMED_CBOR), "malformed_cbor");
    assert_int_equal(at_err_http_status(AT_E_TOO_LARGE), 413);
    assert_int_equal(at_err_from_str("nonce_reused"), AT_E_NONCE_REUSED);
    at_diag d = {{0}};
    assert_int_equal(at_fail(&d, AT_E_BAD_FIELD, "nonce: expected %d, got %d", 1, 2), AT_E_BAD_FIELD);
    at_diag_prefix(&d, "payload.");
    assert_string_equal(d.msg, "payload.nonce: expected 1, got 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_bounds), cmocka_unit_test(reader_varint), cmocka_unit_test(buf_max),
        cmocka_unit_test(hex_and_b64),   cmocka_unit_test(err_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
