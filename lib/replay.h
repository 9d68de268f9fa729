/* replay: single use of one-time values within a time window, in bounded
 * memory. RFC 9458 section 6.5: a server that checks a request's Date keeps
 * what it accepted within its window and refuses the same request again;
 * the agent keys it on the encapsulated request's header and HPKE `enc`
 * (a replayed request carries the same bytes; a changed one does not open).
 *
 * Values are kept as their SHA-256; slots are found by SipHash under a
 * random per-table key, so senders cannot aim at one slot. Memory is fixed
 * at creation. Entries leave in arrival order, when their date has left the
 * window or when the table is full; each departure raises a floor, and a
 * value dated at or below the floor is refused as stale. So nothing that
 * was forgotten can be accepted twice, whatever the clock does (the floor
 * never goes down), and a flood only narrows the window, never opens it.
 * Thread-safe. */
#ifndef AT_REPLAY_H
#define AT_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

typedef struct at_replay at_replay;

/* capacity: values held at once (> 0; memory about 48 bytes each, with a
 * hash index of twice as many slots). window_s: how long after its date a
 * value is kept (> 0; the Date check's window either side). Caller frees
 * with at_replay_free. AT_E_INTERNAL when out of memory or randomness. */
at_err at_replay_new(size_t capacity, int64_t window_s, at_replay **out, at_diag *d) AT_MUST_USE;
void at_replay_free(at_replay *r); /* NULL ok */

/* First use of value (any length), dated date_s (seconds since the epoch:
 * the request's own Date, already checked to be within the window of
 * now_s), seen at now_s (seconds since the epoch). AT_OK: first use, now
 * recorded. AT_E_REPLAYED: the same value was accepted before and is still
 * remembered. AT_E_CLOCK_SKEW: dated at or below the floor, i.e. older than
 * what the memory still covers (the sender retries with a fresh request).
 * AT_E_INTERNAL: hashing failed. */
at_err at_replay_check(at_replay *r, at_span value, int64_t date_s, int64_t now_s, at_diag *d) AT_MUST_USE;

typedef struct {
    size_t held, capacity;
    int64_t floor_s;         /* dates at or below are refused; INT64_MIN at first */
    uint64_t evicted_full;   /* entries that left because the table was full */
    uint64_t replays, stale; /* refusals so far */
} at_replay_stats;
void at_replay_stats_get(at_replay *r, at_replay_stats *s);

#endif
