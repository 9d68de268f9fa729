/* Unit tests for lib/clock.c: RFC 3339 text (seconds and milliseconds,
 * before 1970 and after 2038), and the test clock file moving at_now_ms
 * (never at_wall_ms) by exactly its offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"

static void rfc3339(void **state)
{
    (void)state;
    char buf[40];
    at_time_rfc3339(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    at_time_rfc3339(1769923183, buf, sizeof buf);
    assert_string_equal(buf, "2026-02-01T05:19:43Z");
    at_time_rfc3339(2524608000LL, buf, sizeof buf); /* after 2038 */
    assert_string_equal(buf, "2050-01-01T00:00:00Z");
    at_time_rfc3339_ms(1769923183375LL, buf, sizeof buf);
    assert_string_equal(buf, "2026-02-01T05:19:43.375Z");
    at_time_rfc3339_ms(-1, buf, sizeof buf); /* floor, not toward zero */
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    at_time_rfc3339_ms(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    at_time_rfc3339(0, buf, 5); /* too small: a marker, never a cut date */
    assert_string_equal(buf, "@0");
}

static void test_clock_file(void **state)
{
    (void)state;
    char path[] = "/tmp/attest-clock-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "-86400\n", 7), 7);
    close(fd);
    at_now_set_test_clock_file(path);
    int64_t w1 = at_wall_ms(), n = at_now_ms(), w2 = at_wall_ms();
    assert_true(w1 - 86400000 <= n && n <= w2 - 86400000);
    unlink(path); /* a missing file: no offset */
    w1 = at_wall_ms(), n = at_now_ms(), w2 = at_wall_ms();
    assert_true(w1 <= n && n <= w2);
    at_now_set_test_clock_file(NULL);
    w1 = at_wall_ms(), n = at_now_ms(), w2 = at_wall_ms();
    assert_true(w1 <= n && n <= w2);
    int64_t m1 = at_monotonic_ns(), m2 = at_monotonic_ns();
    assert_true(m1 > 0 && m1 <= m2);
}

static void http_date(void **state)
{
    (void)state;
    char buf[40];
    at_diag d = {{0}};
    at_http_date(784111777, buf, sizeof buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(at_http_date_check(buf, 784111777, 60, &d), AT_OK);
    assert_int_equal(at_http_date_check(buf, 784111777 + 60, 60, &d), AT_OK);
    assert_int_equal(at_http_date_check(buf, 784111777 - 60, 60, &d), AT_OK);
    /* A replay later, or a request from the future: refused, naming how far. */
    assert_int_equal(at_http_date_check(buf, 784111777 + 61, 60, &d), AT_E_CLOCK_SKEW);
    assert_non_null(strstr(d.msg, "-61 s from now"));
    assert_int_equal(at_http_date_check(buf, 784111777 - 3600, 60, &d), AT_E_CLOCK_SKEW);
    /* Only IMF-fixdate, whole. */
    assert_int_equal(at_http_date_check("Sunday, 06-Nov-94 08:49:37 GMT", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check("Sun Nov  6 08:49:37 1994", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check("Sun, 06 Nov 1994 08:49:37 UTC", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check("Sun, 06 Foo 1994 08:49:37 GMT", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check("Sun, 06 Nov 1994 25:49:37 GMT", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check("", 784111777, 60, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_http_date_check(NULL, 784111777, 60, &d), AT_E_BAD_FIELD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339),
        cmocka_unit_test(test_clock_file),
        cmocka_unit_test(http_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
