/* auditagg: a fixed-capacity table of event counts. Keys come from
 * requests (client addresses, actors): they are only copied, hashed and
 * compared, never interpreted; memory is bounded by the capacity whatever
 * the number of distinct clients. */
#include "auditagg.h"

#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct at_auditagg {
    pthread_mutex_t lock;
    size_t capacity, n; /* dense entries in ent[0..n) */
    at_auditagg_entry *ent;
    size_t nslots;   /* power of two, >= 2 * capacity */
    int32_t *slot;   /* index into ent, -1 = empty */
    uint8_t key[16]; /* of key_hash */
    bool has_overflow;
    at_auditagg_entry overflow;
};

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static void make_key(at_auditagg_entry *k, int64_t minute, const char *client, const char *actor,
                     const char *action, const char *outcome, const char *code)
{
    memset(k, 0, sizeof *k);
    k->minute = minute;
    copy_field(k->client, sizeof k->client, client);
    copy_field(k->actor, sizeof k->actor, actor);
    copy_field(k->action, sizeof k->action, action);
    copy_field(k->outcome, sizeof k->outcome, outcome);
    copy_field(k->code, sizeof k->code, code);
}

/* Keyed (SipHash, random key per table): clients cannot pick addresses
 * that pile up on one probe chain. Entries compare whole keys, so a
 * collision never merges two clients' counts. */
static uint64_t key_hash(const at_auditagg *a, const at_auditagg_entry *k)
{
    uint8_t
        buf[8 + sizeof k->client + sizeof k->actor + sizeof k->action + sizeof k->outcome + sizeof k->code];
    size_t n = 0;
    memcpy(buf, &k->minute, 8);
    n = 8;
    const char *f[] = {k->client, k->actor, k->action, k->outcome, k->code};
    for (size_t i = 0; i < 5; i++) {
        size_t l = strlen(f[i]) + 1; /* the NUL separates: "ab","c" != "a","bc" */
        memcpy(buf + n, f[i], l);
        n += l;
    }
    return at_siphash(a->key, buf, n);
}

static bool same_key(const at_auditagg_entry *a, const at_auditagg_entry *b)
{
    return a->minute == b->minute && strcmp(a->client, b->client) == 0 && strcmp(a->actor, b->actor) == 0 &&
           strcmp(a->action, b->action) == 0 && strcmp(a->outcome, b->outcome) == 0 &&
           strcmp(a->code, b->code) == 0;
}

/* The slot holding k, or the empty slot where it would go. */
static size_t probe(const at_auditagg *a, const at_auditagg_entry *k)
{
    size_t i = (size_t)key_hash(a, k) & (a->nslots - 1);
    while (a->slot[i] >= 0 && !same_key(&a->ent[a->slot[i]], k))
        i = (i + 1) & (a->nslots - 1);
    return i;
}

at_auditagg *at_auditagg_new(size_t capacity)
{
    if (capacity == 0 || capacity > (1u << 24))
        return NULL;
    at_auditagg *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->capacity = capacity;
    a->nslots = 1;
    while (a->nslots < 2 * capacity)
        a->nslots <<= 1;
    a->ent = calloc(capacity, sizeof *a->ent);
    a->slot = malloc(a->nslots * sizeof *a->slot);
    if (!a->ent || !a->slot || !at_hashkey_random(a->key)) {
        free(a->ent);
        free(a->slot);
        free(a);
        return NULL;
    }
    memset(a->slot, 0xff, a->nslots * sizeof *a->slot);
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void at_auditagg_free(at_auditagg *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a->ent);
    free(a->slot);
    free(a);
}

static void count(at_auditagg_entry *e, int64_t now_ms)
{
    if (e->count == 0 || now_ms < e->first_ms)
        e->first_ms = now_ms;
    if (e->count == 0 || now_ms > e->last_ms)
        e->last_ms = now_ms;
    e->count++;
}

bool at_auditagg_add(at_auditagg *a, const char *client, const char *actor, const char *action,
                     const char *outcome, const char *code, int64_t now_ms)
{
    at_auditagg_entry k;
    int64_t minute = now_ms >= 0 ? now_ms / 60000 : 0;
    make_key(&k, minute, client, actor, action, outcome, code);
    bool fits = true;
    pthread_mutex_lock(&a->lock);
    size_t i = probe(a, &k);
    if (a->slot[i] >= 0) {
        count(&a->ent[a->slot[i]], now_ms);
    } else if (a->n < a->capacity) {
        a->ent[a->n] = k;
        count(&a->ent[a->n], now_ms);
        a->slot[i] = (int32_t)a->n++;
    } else {
        /* Full: one overflow entry for everything else, so a flood of
         * distinct addresses costs memory and rows only up to the capacity
         * and is still counted. */
        if (!a->has_overflow) {
            make_key(&a->overflow, minute, "*", "*", "*", "refused", "*");
            a->has_overflow = true;
        }
        count(&a->overflow, now_ms);
        fits = false;
    }
    pthread_mutex_unlock(&a->lock);
    return fits;
}

static int by_time(const void *x, const void *y)
{
    const at_auditagg_entry *a = x, *b = y;
    if (a->minute != b->minute)
        return a->minute < b->minute ? -1 : 1;
    return a->first_ms < b->first_ms ? -1 : a->first_ms > b->first_ms;
}

size_t at_auditagg_take(at_auditagg *a, int64_t now_ms, bool all, at_auditagg_entry **out)
{
    int64_t minute = now_ms >= 0 ? now_ms / 60000 : 0;
    *out = NULL;
    pthread_mutex_lock(&a->lock);
    size_t due = 0;
    for (size_t i = 0; i < a->n; i++)
        due += all || a->ent[i].minute != minute;
    bool overflow_due = a->has_overflow && (all || a->overflow.minute != minute);
    size_t total = due + overflow_due;
    at_auditagg_entry *res = total ? malloc(total * sizeof *res) : NULL;
    if (!res) {
        pthread_mutex_unlock(&a->lock);
        return 0;
    }
    /* Move the due entries out, compact the rest, rebuild the index. */
    size_t k = 0, keep = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (all || a->ent[i].minute != minute)
            res[k++] = a->ent[i];
        else
            a->ent[keep++] = a->ent[i];
    }
    a->n = keep;
    memset(a->slot, 0xff, a->nslots * sizeof *a->slot);
    for (size_t i = 0; i < a->n; i++)
        a->slot[probe(a, &a->ent[i])] = (int32_t)i;
    if (overflow_due) {
        res[k++] = a->overflow;
        a->has_overflow = false;
    }
    pthread_mutex_unlock(&a->lock);
    qsort(res, total, sizeof *res, by_time);
    *out = res;
    return total;
}

size_t at_auditagg_pending(at_auditagg *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->n + a->has_overflow;
    pthread_mutex_unlock(&a->lock);
    return n;
}
