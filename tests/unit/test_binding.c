/* Unit tests for lib/binding.c: the document binding in user_data encodes
 * to the documented bytes, decodes strictly (every malformed variant
 * refused with its code), and the check refuses another purpose, another
 * endpoint, a missing endpoint and a missing binding with the exact code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "binding.h"

static at_buf enc(at_purpose p, const char *ep)
{
    at_buf b;
    at_buf_init(&b);
    at_diag d = {{0}};
    assert_int_equal(at_binding_encode(p, ep, &b, &d), AT_OK);
    return b;
}

static void test_encode_layout(void **state)
{
    (void)state;
    at_buf b = enc(AT_PURPOSE_SESSION, NULL);
    assert_int_equal(b.len, AT_BINDING_LEN_NO_ENDPOINT);
    assert_memory_equal(b.p, "ATB\x01\x01\x00", 6);
    at_buf_cleanup(&b);
    b = enc(AT_PURPOSE_EVIDENCE, "http://127.0.0.1:8443");
    assert_int_equal(b.len, AT_BINDING_LEN_ENDPOINT);
    assert_memory_equal(b.p, "ATB\x01\x02\x01", 6);
    uint8_t h[32];
    unsigned n = 0;
    EVP_Digest("http://127.0.0.1:8443", 21, h, &n, EVP_sha256(), NULL);
    assert_memory_equal(b.p + 6, h, 32);
    at_binding out;
    at_diag d = {{0}};
    assert_int_equal(at_binding_decode(at_buf_span(&b), &out, &d), AT_OK);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.purpose, AT_PURPOSE_EVIDENCE);
    assert_true(out.has_endpoint);
    assert_memory_equal(out.endpoint_sha256, h, 32);
    at_buf_cleanup(&b);
    /* An empty endpoint is no endpoint. */
    b = enc(AT_PURPOSE_SESSION, "");
    assert_int_equal(b.len, AT_BINDING_LEN_NO_ENDPOINT);
    at_buf_cleanup(&b);
    at_buf x;
    at_buf_init(&x);
    assert_int_equal(at_binding_encode((at_purpose)7, NULL, &x, &d), AT_E_BAD_REQUEST);
    at_buf_cleanup(&x);
}

static void expect_decode(const void *p, size_t n, at_err want)
{
    at_binding out;
    memset(&out, 0xAA, sizeof out);
    at_diag d = {{0}};
    assert_int_equal(at_binding_decode(AT_SPAN(p, n), &out, &d), want);
    assert_true(d.msg[0] != '\0');
    assert_non_null(strstr(d.msg, "user_data"));
    /* Out-parameter untouched on failure. */
    assert_int_equal(out.version, 0xAA);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    expect_decode("", 0, AT_E_MISSING_FIELD);
    expect_decode("hello", 5, AT_E_BAD_FIELD);           /* other user data */
    expect_decode("AT", 2, AT_E_BAD_FIELD);              /* short magic */
    expect_decode("ATB", 3, AT_E_BAD_FIELD);             /* no version */
    expect_decode("ATB\x02\x01\x00", 6, AT_E_BAD_FIELD); /* version 2 */
    expect_decode("ATB\x00\x01\x00", 6, AT_E_BAD_FIELD); /* version 0 */
    expect_decode("ATB\x01", 4, AT_E_BAD_FIELD);         /* no purpose */
    expect_decode("ATB\x01\x00\x00", 6, AT_E_BAD_FIELD); /* purpose 0 */
    expect_decode("ATB\x01\x03\x00", 6, AT_E_BAD_FIELD); /* purpose 3 (peer) without its transcript */
    expect_decode("ATB\x01\x04\x00", 6, AT_E_BAD_FIELD); /* purpose 4 */
    expect_decode("ATB\x01\x01", 5, AT_E_BAD_FIELD);     /* no endpoint kind */
    expect_decode("ATB\x01\x01\x02", 6, AT_E_BAD_FIELD); /* endpoint kind 2 */
    expect_decode("ATB\x01\x01\x01"
                  "0123456789",
                  16, AT_E_BAD_FIELD);                    /* short hash */
    expect_decode("ATB\x01\x01\x00X", 7, AT_E_BAD_FIELD); /* trailing byte */
    at_buf b = enc(AT_PURPOSE_SESSION, "http://a");
    at_buf_u8(&b, 0);
    expect_decode(b.p, b.len, AT_E_BAD_FIELD); /* trailing after hash */
    at_buf_cleanup(&b);
}

static void want_check(at_span ud, at_purpose want, const char *ep, at_err code, const char *needle)
{
    at_diag d = {{0}};
    assert_int_equal(at_binding_check(ud, want, ep, &d), code);
    if (needle)
        assert_non_null(strstr(d.msg, needle));
}

static void test_check(void **state)
{
    (void)state;
    at_buf s = enc(AT_PURPOSE_SESSION, "http://agent:8443");
    at_buf s0 = enc(AT_PURPOSE_SESSION, NULL);
    at_buf e = enc(AT_PURPOSE_EVIDENCE, "http://agent:8443");
    want_check(at_buf_span(&s), AT_PURPOSE_SESSION, "http://agent:8443", AT_OK, NULL);
    want_check(at_buf_span(&s0), AT_PURPOSE_SESSION, NULL, AT_OK, NULL);
    want_check(at_buf_span(&e), AT_PURPOSE_EVIDENCE, "http://agent:8443", AT_OK, NULL);
    /* The attack of issue 7: evidence for a relying party presented as a session. */
    want_check(at_buf_span(&e), AT_PURPOSE_SESSION, "http://attacker", AT_E_PURPOSE_MISMATCH,
               "purpose evidence, expected session");
    want_check(at_buf_span(&s), AT_PURPOSE_EVIDENCE, "http://agent:8443", AT_E_PURPOSE_MISMATCH,
               "purpose session, expected evidence");
    /* Another endpoint, none bound, none requested. */
    want_check(at_buf_span(&s), AT_PURPOSE_SESSION, "http://attacker", AT_E_ENDPOINT_MISMATCH,
               "the request names http://attacker");
    want_check(at_buf_span(&s0), AT_PURPOSE_SESSION, "http://attacker", AT_E_ENDPOINT_MISMATCH,
               "binds no endpoint");
    want_check(at_buf_span(&s), AT_PURPOSE_SESSION, NULL, AT_E_ENDPOINT_MISMATCH,
               "the request names no endpoint");
    /* Endpoints are compared exactly as written. */
    want_check(at_buf_span(&s), AT_PURPOSE_SESSION, "http://agent:8443/", AT_E_ENDPOINT_MISMATCH, NULL);
    /* No binding at all, or other user data. */
    want_check(AT_SPAN_NULL, AT_PURPOSE_SESSION, NULL, AT_E_PURPOSE_MISMATCH, "binds no purpose");
    want_check(AT_SPAN("hello", 5), AT_PURPOSE_SESSION, NULL, AT_E_BAD_FIELD, "not a document binding");
    at_buf_cleanup(&s);
    at_buf_cleanup(&s0);
    at_buf_cleanup(&e);
}

static void test_names(void **state)
{
    (void)state;
    at_purpose p;
    assert_true(at_purpose_parse("session", &p) && p == AT_PURPOSE_SESSION);
    assert_true(at_purpose_parse("evidence", &p) && p == AT_PURPOSE_EVIDENCE);
    assert_false(at_purpose_parse("Session", &p));
    assert_string_equal(at_purpose_name(AT_PURPOSE_EVIDENCE), "evidence");
    assert_string_equal(at_err_str(AT_E_PURPOSE_MISMATCH), "purpose_mismatch");
    assert_string_equal(at_err_str(AT_E_ENDPOINT_MISMATCH), "endpoint_mismatch");
    assert_string_equal(at_err_str(AT_E_ENDPOINT_CONFLICT), "endpoint_conflict");
    assert_int_equal(at_err_http_status(AT_E_ENDPOINT_CONFLICT), 409);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_layout),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
