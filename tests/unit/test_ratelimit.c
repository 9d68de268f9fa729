/* Unit tests for lib/ratelimit.c: SipHash-2-4 test vector; a client's
 * bucket drains and refills; addresses sharing a set never get a fresh
 * bucket (review F1: two colliding addresses doubled the allowance, and
 * alternating them made it unlimited); stale entries are reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define SEC 1000000000LL

/* The reference vector of the SipHash paper (appendix A): key 00..0f,
 * message 00..0e, SipHash-2-4 = a129ca6149be45e5. */
static void siphash_vector(void **state)
{
    (void)state;
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    assert_true(at_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    /* and the empty message: 726fdb47dd0e0e31 */
    assert_true(at_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
}

static void one_client(void **state)
{
    (void)state;
    at_ratelimit *r = at_ratelimit_new(1.0, 3, 0);
    assert_non_null(r);
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += at_ratelimit_allow(r, "10.0.0.1", 100 * SEC);
    assert_int_equal(ok, 3);
    assert_true(at_ratelimit_allow(r, "10.0.0.1", 101 * SEC)); /* one token per second */
    assert_false(at_ratelimit_allow(r, "10.0.0.1", 101 * SEC));
    at_ratelimit_free(r);
}

/* A table of one set (8 entries): every address collides with every
 * other. 40 addresses, alternating, 100 rounds, no time passing: the
 * allowance is at most one burst per entry plus the shared overflow
 * bucket, whatever the order. The old table gave a full bucket to each
 * newcomer in a slot: 4000 of 4000. */
static void collisions_do_not_refill(void **state)
{
    (void)state;
    const int burst = 2;
    at_ratelimit *r = at_ratelimit_new(0.001, burst, 8);
    assert_non_null(r);
    int ok = 0;
    char a[32];
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < 40; i++) {
            snprintf(a, sizeof a, "127.0.%d.%d", i / 200, i % 200 + 1);
            ok += at_ratelimit_allow(r, a, 100 * SEC);
        }
    assert_true(ok <= 8 * burst + burst);
    assert_int_equal(ok, 8 * burst + burst);
    /* two addresses alone in a one-entry-per-slot view: still one burst each */
    at_ratelimit_free(r);
    r = at_ratelimit_new(0.001, burst, 1);
    assert_non_null(r);
    ok = 0;
    for (int i = 0; i < 400; i++)
        ok += at_ratelimit_allow(r, i % 2 ? "127.0.0.1" : "127.0.11.225", 100 * SEC);
    assert_true(ok <= 2 * burst);
    at_ratelimit_free(r);
}

/* An entry whose bucket has refilled to the burst is free again, so a
 * full table does not lock newcomers out for good. */
static void stale_entries_are_reused(void **state)
{
    (void)state;
    at_ratelimit *r = at_ratelimit_new(1.0, 1, 8);
    assert_non_null(r);
    char a[32];
    for (int i = 0; i < 9; i++) {
        snprintf(a, sizeof a, "10.1.0.%d", i + 1);
        assert_true(at_ratelimit_allow(r, a, 100 * SEC)); /* 8 entries + the overflow */
    }
    assert_false(at_ratelimit_allow(r, "10.1.1.1", 100 * SEC)); /* all drained: shared, refused */
    assert_true(at_ratelimit_allow(r, "10.1.1.1", 102 * SEC));  /* refilled: an entry is free */
    at_ratelimit_free(r);
}

static void no_limit(void **state)
{
    (void)state;
    at_ratelimit *r = at_ratelimit_new(0, 0, 0);
    assert_non_null(r);
    for (int i = 0; i < 100; i++)
        assert_true(at_ratelimit_allow(r, "x", 0));
    at_ratelimit_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(siphash_vector),
        cmocka_unit_test(one_client),
        cmocka_unit_test(collisions_do_not_refill),
        cmocka_unit_test(stale_entries_are_reused),
        cmocka_unit_test(no_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
