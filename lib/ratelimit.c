/* ratelimit: per-client token buckets in a set-associative table keyed by
 * SipHash (random key per process). Client strings are attacker input:
 * only copied (bounded) and hashed. See ratelimit.h for the contract. */
#include "ratelimit.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SipHash-2-4 (Aumasson, Bernstein: "SipHash: a fast short-input PRF") */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND           \
    do {                   \
        v0 += v1;          \
        v1 = ROTL(v1, 13); \
        v1 ^= v0;          \
        v0 = ROTL(v0, 32); \
        v2 += v3;          \
        v3 = ROTL(v3, 16); \
        v3 ^= v2;          \
        v0 += v3;          \
        v3 = ROTL(v3, 21); \
        v3 ^= v0;          \
        v2 += v1;          \
        v1 = ROTL(v1, 17); \
        v1 ^= v2;          \
        v2 = ROTL(v2, 32); \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint64_t at_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len - len % 8;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

bool at_hashkey_random(uint8_t key[16]) { return RAND_bytes(key, 16) == 1; }

/* ---- the table ------------------------------------------------------------ */

#define WAYS 8 /* entries per set: addresses sharing a set each keep their own bucket */

struct bucket {
    char client[64]; /* "" = free */
    double tokens;
    int64_t last_ns;
};

struct at_ratelimit {
    pthread_mutex_t lock;
    double per_s, burst;
    uint8_t key[16];
    size_t nsets;
    struct bucket *ent;      /* nsets * WAYS */
    struct bucket *overflow; /* one per set, shared by whoever finds no entry */
};

at_ratelimit *at_ratelimit_new(double per_s, double burst, size_t slots)
{
    at_ratelimit *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nsets = ((slots ? slots : AT_RATELIMIT_SLOTS) + WAYS - 1) / WAYS;
    r->ent = calloc(r->nsets * WAYS, sizeof *r->ent);
    r->overflow = calloc(r->nsets, sizeof *r->overflow);
    if (!r->ent || !r->overflow || !at_hashkey_random(r->key)) {
        at_ratelimit_free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->per_s = per_s;
    r->burst = burst;
    for (size_t i = 0; i < r->nsets; i++) {
        r->overflow[i].tokens = burst;
        r->overflow[i].last_ns = -1;
    }
    return r;
}

void at_ratelimit_free(at_ratelimit *r)
{
    if (!r)
        return;
    if (r->ent)
        pthread_mutex_destroy(&r->lock);
    OPENSSL_cleanse(r->key, sizeof r->key);
    free(r->ent);
    free(r->overflow);
    free(r);
}

/* Bring b's tokens up to now_ns (last_ns -1: never used, full). */
static void refill(const at_ratelimit *r, struct bucket *b, int64_t now_ns)
{
    if (b->last_ns >= 0 && now_ns > b->last_ns) {
        double t = b->tokens + (double)(now_ns - b->last_ns) / 1e9 * r->per_s;
        b->tokens = t > r->burst ? r->burst : t;
    }
    if (b->last_ns < 0 || now_ns > b->last_ns)
        b->last_ns = now_ns;
}

/* A bucket that has refilled to the burst holds no state a fresh bucket
 * would not: it can be given to another client. */
static bool is_stale(const at_ratelimit *r, struct bucket *b, int64_t now_ns)
{
    if (!b->client[0])
        return true;
    refill(r, b, now_ns);
    return b->tokens >= r->burst;
}

bool at_ratelimit_allow(at_ratelimit *r, const char *client, int64_t now_ns)
{
    if (!r || r->per_s <= 0)
        return true;
    char name[64];
    snprintf(name, sizeof name, "%s", client && client[0] ? client : "-");
    size_t set = (size_t)(at_siphash(r->key, name, strlen(name)) % r->nsets);
    struct bucket *ways = r->ent + set * WAYS, *b = NULL, *free_b = NULL;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < WAYS && !b; i++)
        if (strcmp(ways[i].client, name) == 0)
            b = &ways[i];
    for (int i = 0; i < WAYS && !b && !free_b; i++)
        if (is_stale(r, &ways[i], now_ns))
            free_b = &ways[i];
    if (!b && free_b) {
        b = free_b;
        memcpy(b->client, name, sizeof name);
        b->tokens = r->burst;
        b->last_ns = now_ns;
    }
    if (!b) /* every entry of the set is in use: share, never a fresh bucket */
        b = &r->overflow[set];
    refill(r, b, now_ns);
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(&r->lock);
    return ok;
}
