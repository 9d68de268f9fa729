/* ratelimit: token buckets per client address (attacker input), in a
 * fixed table. Slots are chosen by SipHash-2-4 under a random per-process
 * key, so colliding addresses cannot be found offline; and a collision
 * never hands anyone a fresh bucket: an entry is replaced only when it is
 * stale (refilled to the full burst, so forgetting it changes nothing),
 * otherwise the newcomer shares its set's overflow bucket (fail closed).
 * Thread-safe. Also home of the keyed hash other tables use. */
#ifndef AT_RATELIMIT_H
#define AT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of data under a 16-byte key. */
uint64_t at_siphash(const uint8_t key[16], const void *data, size_t len);
/* Fill key with random bytes (OpenSSL RAND_bytes; aborts never: on
 * failure the key stays as it was and false is returned). */
bool at_hashkey_random(uint8_t key[16]);

typedef struct at_ratelimit at_ratelimit;

/* per_s tokens per second, up to burst; slots: table size (rounded up to a
 * multiple of the set width; 0 = AT_RATELIMIT_SLOTS). per_s <= 0 means no
 * limit. NULL when out of memory or no random key could be drawn. */
#define AT_RATELIMIT_SLOTS 4096
at_ratelimit *at_ratelimit_new(double per_s, double burst, size_t slots);
void at_ratelimit_free(at_ratelimit *r);
/* Take one token for client at now_ns (monotonic). false: refused. */
bool at_ratelimit_allow(at_ratelimit *r, const char *client, int64_t now_ns);

#endif
