/* clock: wall and monotonic time, the verifier's test clock offset, and
 * RFC 3339 text (lib/clock.h). Reads only the machine's clock and, when an
 * operator set one, the test clock file. */
#include "clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *test_clock_file;

void at_now_set_test_clock_file(const char *path) { test_clock_file = path; }

/* Tests only: the offset in seconds (a signed integer) read from the file
 * on every call, so a test moves the clock without touching the machine's.
 * A missing or unreadable file means no offset. */
static int64_t test_offset_ms(void)
{
    FILE *f = fopen(test_clock_file, "r");
    long long s = 0;
    if (f) {
        if (fscanf(f, "%lld", &s) != 1)
            s = 0;
        fclose(f);
    }
    return (int64_t)s * 1000;
}

int64_t at_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t at_now_ms(void)
{
    int64_t ms = at_wall_ms();
    return test_clock_file ? ms + test_offset_ms() : ms;
}

int64_t at_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void at_time_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "@%lld", (long long)t);
}

void at_time_rfc3339_ms(int64_t ms, char *buf, size_t len)
{
    /* Floor division so times before 1970 round the right way. */
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    time_t tt = (time_t)s;
    struct tm tm;
    size_t w = gmtime_r(&tt, &tm) ? strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (w == 0)
        snprintf(buf, len, "@%lld", (long long)ms);
    else
        snprintf(buf + w, len - w, ".%03dZ", (int)(ms - s * 1000));
}

void at_http_date(int64_t unix_s, char *buf, size_t len)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        snprintf(buf, len, "@%lld", (long long)unix_s);
}

at_err at_http_date_parse(const char *value, int64_t *unix_s, at_diag *d)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char day[4], mon[4], gmt[4], tail;
    int dd, yyyy, hh, mi, ss;
    struct tm tm = {0};
    /* Fixed width: "Www, DD Mmm YYYY HH:MM:SS GMT", 29 characters. */
    bool ok = value && strlen(value) == 29 &&
              sscanf(value, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%c", day, &dd, mon, &yyyy, &hh,
                     &mi, &ss, gmt, &tail) == 8 &&
              strcmp(gmt, "GMT") == 0 && dd >= 1 && dd <= 31 && hh <= 23 && mi <= 59 && ss <= 60 &&
              yyyy >= 1970;
    int m = -1, w = -1;
    for (int i = 0; ok && i < 12; i++)
        if (strcmp(mon, months[i]) == 0)
            m = i;
    for (int i = 0; ok && i < 7; i++)
        if (strcmp(day, days[i]) == 0)
            w = i;
    if (!ok || m < 0 || w < 0)
        return at_fail(d, AT_E_BAD_FIELD,
                       "date: expected an IMF-fixdate (\"Sun, 06 Nov 1994 08:49:37 GMT\"), got %.40s",
                       value ? value : "(none)");
    tm.tm_year = yyyy - 1900;
    tm.tm_mon = m;
    tm.tm_mday = dd;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    *unix_s = (int64_t)timegm(&tm);
    return AT_OK;
}

at_err at_http_date_check(const char *value, int64_t now_s, int64_t window_s, at_diag *d)
{
    int64_t t;
    at_err rc = at_http_date_parse(value, &t, d);
    if (rc != AT_OK)
        return rc;
    int64_t diff = t - now_s;
    if (diff > window_s || diff < -window_s)
        return at_fail(d, AT_E_CLOCK_SKEW, "date: %s is %lld s from now, expected within %lld s", value,
                       (long long)diff, (long long)window_s);
    return AT_OK;
}
