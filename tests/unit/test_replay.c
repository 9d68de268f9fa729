/* Unit tests for lib/replay.c: a value is accepted once while remembered;
 * entries leave by age or when the table is full, and every departure
 * raises the floor so that nothing forgotten is accepted again, whatever
 * the clock does; the index stays exact through many evictions (a model
 * set checked after every step). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay.h"

#define T0 1800000000LL

static at_err check(at_replay *r, unsigned v, int64_t date, int64_t now)
{
    at_diag d = {{0}};
    uint32_t b = v;
    at_err rc = at_replay_check(r, AT_SPAN(&b, sizeof b), date, now, &d);
    if (rc != AT_OK)
        assert_true(d.msg[0] != '\0');
    return rc;
}

static void once_then_replayed(void **state)
{
    (void)state;
    at_replay *r = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_replay_new(8, 60, &r, &d), AT_OK);
    assert_int_equal(check(r, 1, T0, T0), AT_OK);
    assert_int_equal(check(r, 2, T0, T0), AT_OK);
    assert_int_equal(check(r, 1, T0, T0), AT_E_REPLAYED);
    assert_int_equal(check(r, 1, T0, T0 + 60), AT_E_REPLAYED); /* still inside the window */
    /* An empty value is a value too. */
    assert_int_equal(at_replay_check(r, AT_SPAN_NULL, T0, T0, &d), AT_OK);
    assert_int_equal(at_replay_check(r, AT_SPAN_NULL, T0, T0, &d), AT_E_REPLAYED);
    at_replay_stats s;
    at_replay_stats_get(r, &s);
    assert_int_equal(s.held, 3);
    assert_int_equal(s.replays, 3);
    assert_true(s.floor_s == INT64_MIN);
    at_replay_free(r);
}

static void aged_out_raises_the_floor(void **state)
{
    (void)state;
    at_replay *r = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_replay_new(8, 60, &r, &d), AT_OK);
    assert_int_equal(check(r, 1, T0, T0), AT_OK);
    /* 61 s later the entry leaves; its replay is refused by the floor. */
    assert_int_equal(check(r, 2, T0 + 61, T0 + 61), AT_OK);
    at_replay_stats s;
    at_replay_stats_get(r, &s);
    assert_int_equal(s.held, 1);
    assert_true(s.floor_s == T0);
    assert_int_equal(check(r, 1, T0, T0 + 61), AT_E_CLOCK_SKEW);
    /* The clock set back: still refused (the floor never goes down). */
    assert_int_equal(check(r, 1, T0, T0), AT_E_CLOCK_SKEW);
    assert_int_equal(check(r, 3, T0 + 1, T0), AT_OK);
    at_replay_free(r);
}

static void full_table_narrows_never_opens(void **state)
{
    (void)state;
    at_replay *r = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_replay_new(4, 60, &r, &d), AT_OK);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(check(r, i, T0 + i, T0 + 10), AT_OK);
    /* Full: value 4 pushes out value 0 (dated T0), the floor becomes T0. */
    assert_int_equal(check(r, 4, T0 + 5, T0 + 10), AT_OK);
    assert_int_equal(check(r, 0, T0, T0 + 10), AT_E_CLOCK_SKEW);
    /* The rest are still remembered exactly. */
    for (unsigned i = 1; i < 5; i++)
        assert_int_equal(check(r, i, T0 + 9, T0 + 10), AT_E_REPLAYED);
    /* A new value dated at the floor is refused even when it evicts. */
    assert_int_equal(check(r, 5, T0 + 1, T0 + 10), AT_E_CLOCK_SKEW);
    at_replay_stats s;
    at_replay_stats_get(r, &s);
    assert_true(s.evicted_full >= 1);
    assert_true(s.floor_s == T0 + 1);
    assert_int_equal(s.held, 3); /* value 1 left for value 5, which was then refused */
    at_replay_free(r);
}

/* Many values through a small table with colliding home slots: after every
 * step, exactly the last `cap` accepted values read as replays and the
 * ones before them as stale, so the index never loses or invents one
 * (backward-shift deletion across the table's wrap). */
static void index_exact_through_evictions(void **state)
{
    (void)state;
    enum { CAP = 37, N = 5000 };
    at_replay *r = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_replay_new(CAP, 1000000, &r, &d), AT_OK);
    for (unsigned i = 0; i < N; i++) {
        int64_t date = T0 + i; /* one per second: each eviction raises the floor by one */
        assert_int_equal(check(r, i, date, T0 + N), AT_OK);
        if (i % 97 == 0) {
            unsigned lo = i + 1 > CAP ? i + 1 - CAP : 0;
            for (unsigned k = lo; k <= i; k++)
                assert_int_equal(check(r, k, T0 + i + 1, T0 + N), AT_E_REPLAYED);
            if (lo > 0)
                assert_int_equal(check(r, lo - 1, T0 + lo - 1, T0 + N), AT_E_CLOCK_SKEW);
        }
    }
    at_replay_stats s;
    at_replay_stats_get(r, &s);
    assert_int_equal(s.held, CAP);
    at_replay_free(r);
}

static void bad_arguments(void **state)
{
    (void)state;
    at_replay *r = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_replay_new(0, 60, &r, &d), AT_E_INTERNAL);
    assert_null(r);
    assert_int_equal(at_replay_new(4, 0, &r, &d), AT_E_INTERNAL);
    assert_int_equal(at_replay_new((size_t)1 << 30, 60, &r, &d), AT_E_INTERNAL);
    at_replay_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(once_then_replayed),
        cmocka_unit_test(aged_out_raises_the_floor),
        cmocka_unit_test(full_table_narrows_never_opens),
        cmocka_unit_test(index_exact_through_evictions),
        cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
