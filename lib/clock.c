/* clock: wall and monotonic time, the verifier's test clock offset, and
 * RFC 3339 text (lib/clock.h). Reads only the machine's clock and, when an
 * operator set one, the test clock file. */
#include "clock.h"

#include <stdio.h>
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
