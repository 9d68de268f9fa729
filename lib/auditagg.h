/* auditagg: counts of audit events that do not each deserve a durable row
 * (unauthenticated refusals, rate-limited requests, anonymous stateless
 * verifications), per (minute, client, actor, action, outcome, code). The
 * owner takes the entries of finished minutes and writes one aggregate row
 * for each. Bounded: when the table is full, further keys are counted in a
 * single overflow entry (client "*"), never dropped. Thread-safe. */
#ifndef AT_AUDITAGG_H
#define AT_AUDITAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct at_auditagg at_auditagg;

typedef struct {
    int64_t minute;  /* floor(time_ms / 60000) of the events */
    char client[64]; /* "*" for the overflow entry */
    char actor[64];
    char action[40]; /* "*" for the overflow entry */
    char outcome[12];
    char code[40]; /* "" when the outcome is ok */
    int64_t first_ms, last_ms;
    uint64_t count;
} at_auditagg_entry;

/* capacity: distinct keys held at once (besides the overflow entry), > 0.
 * NULL when out of memory. Caller frees with at_auditagg_free. */
at_auditagg *at_auditagg_new(size_t capacity);
void at_auditagg_free(at_auditagg *a);

/* Count one event at time now_ms. Strings longer than their field are cut;
 * NULL reads as "". Returns false when the table was full and the event
 * went to the overflow entry of its minute. */
bool at_auditagg_add(at_auditagg *a, const char *client, const char *actor, const char *action,
                     const char *outcome, const char *code, int64_t now_ms);

/* Remove and return the entries of every minute other than the one holding
 * now_ms (all entries when `all`): *out is a malloc'd array (caller frees;
 * NULL when none) sorted by minute, then first_ms. Returns the count; on
 * allocation failure 0, and the entries stay in the table. A clock that
 * went back cannot strand entries: any minute but the current one is due. */
size_t at_auditagg_take(at_auditagg *a, int64_t now_ms, bool all, at_auditagg_entry **out);

/* Keys held right now, including a non-empty overflow entry (tests). */
size_t at_auditagg_pending(at_auditagg *a);

#endif
