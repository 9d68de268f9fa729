/* Unit tests for lib/log.c: a line is never dropped, whatever bytes its
 * fields hold (bytes that are not UTF-8 are escaped as \xHH), and a long
 * message is cut at a character boundary and marked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

/* Run at_log with stderr captured; the one line it wrote, parsed. */
static json_t *logged(const char *event, const char *fmt, const char *arg)
{
    char path[] = "/tmp/attest-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(dup2(fd, 2) >= 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* every caller passes a literal */
    at_log("info", event, fmt, arg);
#pragma GCC diagnostic pop
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strchr(buf, '\n'));
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* one line */
    json_error_t je;
    json_t *j = json_loadb(buf, (size_t)n, 0, &je); /* jansson refuses invalid UTF-8 */
    assert_non_null(j);
    return j;
}

static void invalid_utf8_is_escaped(void **state)
{
    (void)state;
    json_t *j = logged("request", "%s /healthz -> 404", "G\xffT");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "G\\xffT /healthz -> 404");
    json_decref(j);
    /* a cut sequence, an overlong form, a surrogate; and the event too */
    j = logged("ev\xc3", "[%s]", "a\xe2\x82 \xc0\xaf \xed\xa0\x80 \xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "[a\\xe2\\x82 \\xc0\\xaf \\xed\\xa0\\x80 \xc3\xa9]");
    assert_string_equal(json_string_value(json_object_get(j, "event")), "ev\\xc3");
    json_decref(j);
}

/* --log-level: only the five names; any other is refused and changes
 * nothing (a typo must not silence or flood the log). */
static void unknown_levels_refused(void **state)
{
    (void)state;
    assert_false(at_log_set_level("verbose"));
    assert_false(at_log_set_level("INFO"));
    assert_false(at_log_set_level(""));
    assert_false(at_log_set_level(NULL));
    assert_true(at_log_set_level("error"));
    assert_true(at_log_set_level("info"));
}

static void long_messages_cut_at_a_character(void **state)
{
    (void)state;
    /* 2-byte characters from an odd offset: a byte cut would split one */
    char big[3001];
    big[0] = 'x';
    for (size_t i = 1; i + 1 < sizeof big; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[sizeof big - 1] = '\0';
    json_t *j = logged("big", "%s", big);
    const char *m = json_string_value(json_object_get(j, "msg"));
    size_t len = strlen(m);
    assert_true(len < AT_LOG_MAX_MSG);
    assert_true(len > AT_LOG_MAX_MSG - 16);
    assert_string_equal(m + len - strlen(" [truncated]"), " [truncated]");
    assert_memory_equal(m + len - strlen(" [truncated]") - 2, "\xc3\xa9", 2);
    json_decref(j);
    /* past the formatting buffer too */
    char *huge = malloc(10000);
    assert_non_null(huge);
    memset(huge, 'a', 9999);
    huge[9999] = '\0';
    j = logged("huge", "%s", huge);
    m = json_string_value(json_object_get(j, "msg"));
    assert_string_equal(m + strlen(m) - strlen(" [truncated]"), " [truncated]");
    json_decref(j);
    free(huge);
    /* a short one is not marked */
    j = logged("short", "%s", "fine");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "fine");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_utf8_is_escaped),
        cmocka_unit_test(long_messages_cut_at_a_character),
        cmocka_unit_test(unknown_levels_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
