/* Unit tests for lib/hash.c and its callers: known answers, and with
 * EVP_Digest made to fail (-Wl,--wrap=EVP_Digest) every caller reports
 * AT_E_INTERNAL instead of using uninitialised digest bytes: token hashes,
 * pinning a root, and the certificate cache keys of a chain verification,
 * cold and warm. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "enc.h"
#include "evidence.h"
#include "hash.h"
#include "token.h"

static bool fail_digest;

int __real_EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
                      const EVP_MD *type, ENGINE *impl);
int __wrap_EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
                      const EVP_MD *type, ENGINE *impl);
int __wrap_EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
                      const EVP_MD *type, ENGINE *impl)
{
    if (fail_digest)
        return 0;
    return __real_EVP_Digest(data, count, md, size, type, impl);
}

static void known_answers(void **state)
{
    (void)state;
    uint8_t h[48];
    char hex[97];
    assert_int_equal(at_sha256(AT_SPAN("abc", 3), h, NULL), AT_OK);
    at_hex_encode(h, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(at_sha256(AT_SPAN_NULL, h, NULL), AT_OK);
    at_hex_encode(h, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(at_sha384(AT_SPAN("abc", 3), h, NULL), AT_OK);
    at_hex_encode(h, 48, hex);
    assert_string_equal(hex, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
                             "8086072ba1e7cc2358baeca134c825a7");
    char hx[65];
    assert_int_equal(at_sha256_hex(AT_SPAN("abc", 3), hx, NULL), AT_OK);
    assert_string_equal(hx, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void failure_is_reported(void **state)
{
    (void)state;
    at_diag d = {{0}};
    uint8_t h[48];
    memset(h, 0xa5, sizeof h);
    fail_digest = true;
    assert_int_equal(at_sha256(AT_SPAN("abc", 3), h, &d), AT_E_INTERNAL);
    assert_non_null(strstr(d.msg, "digest failed"));
    assert_int_equal(at_sha384(AT_SPAN("abc", 3), h, &d), AT_E_INTERNAL);
    char hx[65] = "unchanged";
    assert_int_equal(at_sha256_hex(AT_SPAN("abc", 3), hx, &d), AT_E_INTERNAL);
    assert_int_equal(at_token_hash("at_x", h, &d), AT_E_INTERNAL);
    fail_digest = false;
    for (size_t i = 0; i < sizeof h; i++)
        assert_int_equal(h[i], 0xa5); /* out written only on success */
    assert_string_equal(hx, "unchanged");
}

static at_err verify(at_trust *t, const at_buf *doc)
{
    at_verify_opts o = {.time_mode = AT_TIME_DOCUMENT};
    at_evidence ev;
    at_err rc = at_evidence_verify(t, at_buf_span(doc), &o, &ev);
    at_evidence_cleanup(&ev);
    return rc;
}

/* The digests key the certificate cache: a failed one must fail the
 * verification, before and after the chain is cached. */
static void chain_cache_fails_closed(void **state)
{
    (void)state;
    int64_t now = tu_now_s();
    tu_sim s;
    assert_int_equal(tu_sim_init(&s, now), 0);
    at_diag d = {{0}};
    at_buf doc;
    at_buf_init(&doc);
    at_sim_doc_opts so = {.timestamp_ms = now * 1000};
    assert_int_equal(at_sim_doc(s.pki, &so, &doc, &d), AT_OK);

    /* Pinning a root needs its digest. */
    at_trust *t0 = at_trust_new(16);
    assert_non_null(t0);
    fail_digest = true;
    assert_int_equal(at_trust_add_root_der(t0, at_sim_cert_der(s.pki, AT_SIM_ROOT), &d), AT_E_INTERNAL);
    fail_digest = false;
    at_trust_unref(t0);

    at_trust *t = tu_trust(&s, false, 16);
    assert_non_null(t);
    fail_digest = true; /* cold cache */
    assert_int_equal(verify(t, &doc), AT_E_INTERNAL);
    fail_digest = false;
    assert_int_equal(verify(t, &doc), AT_OK);
    fail_digest = true; /* warm cache */
    assert_int_equal(verify(t, &doc), AT_E_INTERNAL);
    fail_digest = false;
    assert_int_equal(verify(t, &doc), AT_OK);

    at_trust_unref(t);
    at_buf_cleanup(&doc);
    tu_sim_cleanup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answers),
        cmocka_unit_test(failure_is_reported),
        cmocka_unit_test(chain_cache_fails_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
