/* clock: the time of day as every module reads it, and its RFC 3339 /
 * ISO-8601 text form. No trust boundary: the machine's clock is trusted,
 * and attest-verifier --test-clock-file (an operator option for tests) can
 * move at_now_ms only. */
#ifndef AT_CLOCK_H
#define AT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Milliseconds since the epoch, wall clock, with the test offset below. */
int64_t at_now_ms(void);
/* Milliseconds since the epoch, wall clock, never offset (storage
 * timestamps: db rows, audit rows, token lists). */
int64_t at_wall_ms(void);
/* Nanoseconds of CLOCK_MONOTONIC (deadlines, rate limits). */
int64_t at_monotonic_ns(void);
/* Tests only (attest-verifier --test-clock-file): add the offset in seconds
 * written in `path` (read on every call) to at_now_ms. path must outlive
 * the process's use of the clock; NULL turns it off. */
void at_now_set_test_clock_file(const char *path);

/* RFC 3339 UTC ("2026-02-01T05:19:43Z") into buf (≥ 21 bytes); "@<n>"
 * when the time cannot be represented. */
void at_time_rfc3339(int64_t unix_s, char *buf, size_t len);
/* The same with milliseconds ("2026-02-01T05:19:43.375Z", ≥ 25 bytes). */
void at_time_rfc3339_ms(int64_t unix_ms, char *buf, size_t len);

/* RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", the HTTP Date
 * header) into buf (>= 30 bytes). */
void at_http_date(int64_t unix_s, char *buf, size_t len);
/* An HTTP Date header value (IMF-fixdate only, RFC 9110 section 5.6.7) as
 * seconds since the epoch. AT_E_BAD_FIELD when it is not one. */
at_err at_http_date_parse(const char *value, int64_t *unix_s, at_diag *d) AT_MUST_USE;
/* An HTTP Date header value (IMF-fixdate only) within window_s seconds of
 * now_s either way (RFC 9458 section 6.5: a request outside the window is
 * refused, so a replay later does not run again). AT_E_BAD_FIELD when it
 * is not an IMF-fixdate, AT_E_CLOCK_SKEW (naming the difference) outside. */
at_err at_http_date_check(const char *value, int64_t now_s, int64_t window_s, at_diag *d) AT_MUST_USE;

#endif
