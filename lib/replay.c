/* replay: see replay.h. A FIFO ring of entries (arrival order) and an
 * open-addressing index (linear probing, backward-shift deletion) into it. */
#include "replay.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hash.h"
#include "ratelimit.h" /* at_siphash */

#define REPLAY_MAX_CAPACITY ((size_t)1 << 24)

struct entry {
    uint8_t digest[AT_SHA256_LEN];
    uint64_t hash; /* at_siphash of digest: its home slot */
    int64_t date_s;
};

struct at_replay {
    pthread_mutex_t lock;
    uint8_t key[16];
    int64_t window_s;
    struct entry *ring;
    size_t cap, head, count;
    uint32_t *slots; /* ring position + 1; 0 = empty */
    size_t mask;
    int64_t floor_s;
    uint64_t evicted_full, replays, stale;
};

at_err at_replay_new(size_t capacity, int64_t window_s, at_replay **out, at_diag *d)
{
    *out = NULL;
    if (capacity == 0 || capacity > REPLAY_MAX_CAPACITY || window_s <= 0)
        return at_fail(d, AT_E_INTERNAL, "replay: capacity %zu (1..%zu) or window %lld s (> 0) out of range",
                       capacity, REPLAY_MAX_CAPACITY, (long long)window_s);
    size_t nslots = 1;
    while (nslots < 2 * capacity)
        nslots <<= 1;
    at_replay *r = calloc(1, sizeof *r);
    if (r) {
        r->ring = calloc(capacity, sizeof *r->ring);
        r->slots = calloc(nslots, sizeof *r->slots);
    }
    if (!r || !r->ring || !r->slots || RAND_bytes(r->key, sizeof r->key) != 1) {
        if (r) {
            free(r->ring);
            free(r->slots);
        }
        free(r);
        return at_fail(d, AT_E_INTERNAL, "replay: out of memory or randomness for %zu entries", capacity);
    }
    pthread_mutex_init(&r->lock, NULL);
    r->cap = capacity;
    r->mask = nslots - 1;
    r->window_s = window_s;
    r->floor_s = INT64_MIN;
    *out = r;
    return AT_OK;
}

void at_replay_free(at_replay *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->ring);
    free(r->slots);
    free(r);
}

/* Under r->lock: drop the oldest entry, raising the floor to its date. */
static void drop_head(at_replay *r)
{
    struct entry *e = &r->ring[r->head];
    uint32_t want = (uint32_t)r->head + 1;
    size_t i = (size_t)e->hash & r->mask;
    while (r->slots[i] != want) /* present by construction */
        i = (i + 1) & r->mask;
    /* Backward-shift deletion: pull later members of the probe run into
     * the hole unless their home lies cyclically within (hole, them]. */
    for (size_t j = (i + 1) & r->mask; r->slots[j]; j = (j + 1) & r->mask) {
        size_t home = (size_t)r->ring[r->slots[j] - 1].hash & r->mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            r->slots[i] = r->slots[j];
            i = j;
        }
    }
    r->slots[i] = 0;
    if (e->date_s > r->floor_s)
        r->floor_s = e->date_s;
    r->head = (r->head + 1) % r->cap;
    r->count--;
}

at_err at_replay_check(at_replay *r, at_span value, int64_t date_s, int64_t now_s, at_diag *d)
{
    uint8_t digest[AT_SHA256_LEN];
    at_err rc = at_sha256(value, digest, d);
    if (rc != AT_OK)
        return rc;
    uint64_t h = at_siphash(r->key, digest, sizeof digest);
    pthread_mutex_lock(&r->lock);
    while (r->count && r->ring[r->head].date_s < now_s - r->window_s)
        drop_head(r);
    if (date_s <= r->floor_s) {
        r->stale++;
        int64_t floor_s = r->floor_s;
        pthread_mutex_unlock(&r->lock);
        char t_date[32], t_floor[32];
        at_http_date(date_s, t_date, sizeof t_date);
        at_http_date(floor_s, t_floor, sizeof t_floor);
        return at_fail(
            d, AT_E_CLOCK_SKEW,
            "date: %s is not after %s, the oldest date the replay memory still covers; send a fresh"
            " request",
            t_date, t_floor);
    }
    for (size_t i = (size_t)h & r->mask; r->slots[i]; i = (i + 1) & r->mask) {
        const struct entry *e = &r->ring[r->slots[i] - 1];
        if (e->hash == h && memcmp(e->digest, digest, sizeof digest) == 0) {
            r->replays++;
            pthread_mutex_unlock(&r->lock);
            return at_fail(d, AT_E_REPLAYED,
                           "request: the same encapsulated request was already accepted"
                           " (replay, RFC 9458 section 6.5)");
        }
    }
    if (r->count == r->cap) {
        drop_head(r);
        r->evicted_full++;
        if (date_s <= r->floor_s) {
            r->stale++;
            pthread_mutex_unlock(&r->lock);
            return at_fail(d, AT_E_CLOCK_SKEW,
                           "date: the replay memory is full; only requests dated after the oldest it dropped"
                           " are accepted now; send a fresh request");
        }
    }
    size_t pos = (r->head + r->count) % r->cap;
    struct entry *e = &r->ring[pos];
    memcpy(e->digest, digest, sizeof digest);
    e->hash = h;
    e->date_s = date_s;
    r->count++;
    size_t i = (size_t)h & r->mask;
    while (r->slots[i])
        i = (i + 1) & r->mask;
    r->slots[i] = (uint32_t)pos + 1;
    pthread_mutex_unlock(&r->lock);
    return AT_OK;
}

void at_replay_stats_get(at_replay *r, at_replay_stats *s)
{
    pthread_mutex_lock(&r->lock);
    s->held = r->count;
    s->capacity = r->cap;
    s->floor_s = r->floor_s;
    s->evicted_full = r->evicted_full;
    s->replays = r->replays;
    s->stale = r->stale;
    pthread_mutex_unlock(&r->lock);
}
