/* Unit tests for lib/target.c: only /v1/... targets cross to a model
 * server; dot segments (literal or %2e, any case), an escaped '?',
 * fragments, backslashes and control bytes are refused with
 * bad_request; a query is allowed only where the caller says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target.h"

static void accepted(void **state)
{
    (void)state;
    static const char *const ok[] = {"/v1",
                                     "/v1/",
                                     "/v1/chat/completions",
                                     "/v1/models/gpt-4o",
                                     "/v1/models/a.b",
                                     "/v1/x/...",
                                     "/v1/.well",
                                     "/v1/%2e%2e%2e",
                                     "/v1//x"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        at_diag d = {{0}};
        assert_int_equal(at_target_check(ok[i], false, &d), AT_OK);
    }
    at_diag d = {{0}};
    assert_int_equal(at_target_check("/v1/files?purpose=x&a=../b", true, &d), AT_OK);
}

static void refused(void **state)
{
    (void)state;
    static const struct {
        const char *target;
        bool with_query;
        const char *msg;
    } bad[] = {
        {"/v1/../_standin/stats", false, "dot segment"},
        {"/v1/%2e%2e/metrics", false, "dot segment"},
        {"/v1/%2E%2e/metrics", true, "dot segment"},
        {"/v1/.%2e/metrics", true, "dot segment"},
        {"/v1/./models", false, "dot segment"},
        {"/v1/models/..", false, "dot segment"},
        {"/v1/models/.", true, "dot segment"},
        {"/v1/..?x=1", true, "dot segment"},
        {"/v1/x?y=1", false, "contains '?'"},
        {"/metrics", true, "expected /v1/"},
        {"/v10/x", false, "expected /v1/"},
        {"v1/x", false, "expected /v1/"},
        {"", false, "expected /v1/"},
        {"/v1/x#frag", false, "byte 0x23"},
        {"/v1/a\\..\\b", false, "byte 0x5c"},
        {"/v1/a b", false, "byte 0x20"},
        {"/v1/a\r\nX: y", true, "byte 0x0d"},
        {"/v1/\x7f", false, "byte 0x7f"},
        {"/v1/\xc3\xa9", false, "byte 0xc3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        at_diag d = {{0}};
        assert_int_equal(at_target_check(bad[i].target, bad[i].with_query, &d), AT_E_BAD_REQUEST);
        if (!strstr(d.msg, bad[i].msg))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].target, d.msg, bad[i].msg);
    }
}

/* Any local path (peer_http forwarding): the same checks without /v1/. */
static void any_path(void **state)
{
    (void)state;
    at_diag d = {{0}};
    assert_int_equal(at_target_check_any("/", &d), AT_OK);
    assert_int_equal(at_target_check_any("/api/items?x=../y", &d), AT_OK);
    assert_int_equal(at_target_check_any("/metrics", &d), AT_OK);
    static const char *const bad[] = {
        "", "api", "/api/../admin", "/api/%2E%2e/admin", "/./x", "/a#f", "/a b", "http://h/x", "*"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (at_target_check_any(bad[i], &d) != AT_E_BAD_REQUEST)
            fail_msg("%s: accepted", bad[i]);
}

/* Headers the agent and attestctl peer serve never pass on, any case. */
static void hop_by_hop(void **state)
{
    (void)state;
    const char *dropped[] = {"Host",    "content-length", "Connection",       "TRANSFER-ENCODING",   "te",
                             "upgrade", "keep-alive",     "proxy-connection", "Proxy-Authorization", "expect",
                             "trailer"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_true(at_target_hop_by_hop(dropped[i]));
    const char *kept[] = {"content-type", "accept", "authorization", "date", "x-request-id", "tes", ""};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        assert_false(at_target_hop_by_hop(kept[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepted),
        cmocka_unit_test(refused),
        cmocka_unit_test(any_path),
        cmocka_unit_test(hop_by_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
