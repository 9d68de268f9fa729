/* Unit tests for lib/ear.c's attestation-result profile: the
 * trustworthiness vector derived from each check's outcome (every AR4SI
 * tier from the checks that produce it), ear.status as the worst tier, and
 * the attested key as Veraison's akpub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ear.h"
#include "enc.h"

static const at_ear_checks all_passed = {.chain = AT_CHECK_PASSED,
                                         .identity = AT_CHECK_PASSED,
                                         .pcrs = AT_CHECK_PASSED,
                                         .binding = AT_CHECK_PASSED,
                                         .policy_lint_ok = true};

static json_int_t claim(const at_ear_checks *c, const char *name)
{
    json_t *tv = at_ear_tvector(c);
    assert_int_equal(json_object_size(tv), 4);
    json_t *v = json_object_get(tv, name);
    assert_true(json_is_integer(v));
    json_int_t r = json_integer_value(v);
    json_decref(tv);
    return r;
}

static const char *status_of(const at_ear_checks *c)
{
    json_t *tv = at_ear_tvector(c);
    const char *s = at_ear_status(tv);
    json_decref(tv);
    return s;
}

/* Affirming (2): everything checked and passed. */
static void affirming(void **state)
{
    (void)state;
    assert_int_equal(claim(&all_passed, "instance-identity"), 2);
    assert_int_equal(claim(&all_passed, "executables"), 2);
    assert_int_equal(claim(&all_passed, "hardware"), 2);
    assert_int_equal(claim(&all_passed, "configuration"), 2);
    assert_string_equal(status_of(&all_passed), "affirming");
}

/* Warning (32): the policy was admitted by a lint override. */
static void warning(void **state)
{
    (void)state;
    at_ear_checks c = all_passed;
    c.policy_lint_ok = false;
    assert_int_equal(claim(&c, "configuration"), 32);
    assert_int_equal(claim(&c, "executables"), 2);
    assert_string_equal(status_of(&c), "warning");
}

/* Contraindicated (96): the claim's own check failed. */
static void contraindicated(void **state)
{
    (void)state;
    at_ear_checks c = all_passed;
    c.pcrs = AT_CHECK_FAILED;
    assert_int_equal(claim(&c, "executables"), 96);
    assert_int_equal(claim(&c, "hardware"), 2);
    assert_string_equal(status_of(&c), "contraindicated");
    c = all_passed;
    c.identity = AT_CHECK_FAILED;
    assert_int_equal(claim(&c, "instance-identity"), 96);
    c = all_passed;
    c.binding = AT_CHECK_FAILED;
    c.policy_lint_ok = false;
    assert_int_equal(claim(&c, "configuration"), 96);
    c = all_passed;
    c.chain = AT_CHECK_FAILED;
    assert_int_equal(claim(&c, "hardware"), 96);
    assert_string_equal(status_of(&c), "contraindicated");
}

/* None (0): a check that did not run, or whose fields no verified chain
 * vouches for, affirms nothing. */
static void none(void **state)
{
    (void)state;
    at_ear_checks c = {0};
    assert_int_equal(claim(&c, "instance-identity"), 0);
    assert_int_equal(claim(&c, "executables"), 0);
    assert_int_equal(claim(&c, "hardware"), 0);
    assert_int_equal(claim(&c, "configuration"), 0);
    assert_string_equal(status_of(&c), "none");
    c = all_passed;
    c.chain = AT_CHECK_NOT_RUN;
    assert_int_equal(claim(&c, "instance-identity"), 0);
    assert_int_equal(claim(&c, "executables"), 0);
    assert_int_equal(claim(&c, "configuration"), 0);
    assert_int_equal(claim(&c, "hardware"), 0);
}

/* A vector with a value that is not a tier is contraindicated. */
static void status_fails_closed(void **state)
{
    (void)state;
    json_t *tv = json_pack("{s:i,s:s}", "hardware", 2, "executables", "2");
    assert_string_equal(at_ear_status(tv), "contraindicated");
    json_decref(tv);
    tv = json_pack("{s:i}", "hardware", 1000);
    assert_string_equal(at_ear_status(tv), "contraindicated");
    json_decref(tv);
}

/* akpub: DER SubjectPublicKeyInfo of the X25519 key (RFC 8410), base64url. */
static void akpub(void **state)
{
    (void)state;
    uint8_t kc[1 + 2 + 32 + 2 + 4] = {7, 0x00, 0x20};
    for (int i = 0; i < 32; i++)
        kc[3 + i] = (uint8_t)i;
    memcpy(kc + 35, "\x00\x04\x00\x01\x00\x01", 6);
    char *got = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_ear_akpub(AT_SPAN(kc, sizeof kc), &got, &d), AT_OK);
    uint8_t spki[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00};
    memcpy(spki + 12, kc + 3, 32);
    char *want = at_b64url_encode_new(AT_SPAN(spki, sizeof spki));
    assert_string_equal(got, want);
    free(got);
    free(want);
    /* Not a key configuration: refused, nothing returned. */
    got = NULL;
    assert_int_equal(at_ear_akpub(AT_SPAN(kc, 10), &got, &d), AT_E_TRUNCATED);
    assert_null(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(affirming),           cmocka_unit_test(warning),
        cmocka_unit_test(contraindicated),     cmocka_unit_test(none),
        cmocka_unit_test(status_fails_closed), cmocka_unit_test(akpub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
