/* Unit tests for lib/auditagg.c: one entry per (minute, client, actor,
 * action, outcome, code) with exact counts and first/last times; only
 * finished minutes are taken; a full table counts the rest in one
 * overflow entry; long keys are cut, not overrun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auditagg.h"

#define MIN 60000LL
#define T0 (1700000000000LL / MIN * MIN) /* the start of a minute */

static void counts_per_key(void **state)
{
    (void)state;
    at_auditagg *a = at_auditagg_new(16);
    assert_non_null(a);
    for (int i = 0; i < 1000; i++)
        assert_true(
            at_auditagg_add(a, "10.0.0.1", "anonymous", "challenge", "refused", "rate_limited", T0 + 10 + i));
    for (int i = 0; i < 3; i++)
        assert_true(at_auditagg_add(a, "10.0.0.1", "invalid-token", "policy.put", "refused", "unauthorized",
                                    T0 + 5 + i));
    assert_true(at_auditagg_add(a, "10.0.0.2", "anonymous", "challenge", "refused", "rate_limited", T0 + 7));
    /* NULL code reads as "" (an ok outcome) */
    assert_true(at_auditagg_add(a, "10.0.0.1", "anonymous", "verify", "ok", NULL, T0 + 8));
    assert_int_equal(at_auditagg_pending(a), 4);
    at_auditagg_entry *e = NULL;
    /* The current minute is not due. */
    assert_int_equal(at_auditagg_take(a, T0 + 59999, false, &e), 0);
    assert_null(e);
    assert_int_equal(at_auditagg_take(a, T0 + MIN, false, &e), 4);
    assert_non_null(e);
    /* sorted by first_ms within the minute */
    assert_string_equal(e[0].actor, "invalid-token");
    assert_int_equal(e[0].count, 3);
    assert_int_equal(e[0].first_ms, T0 + 5);
    assert_int_equal(e[0].last_ms, T0 + 7);
    assert_string_equal(e[1].client, "10.0.0.2");
    assert_int_equal(e[1].count, 1);
    assert_string_equal(e[2].action, "verify");
    assert_string_equal(e[2].outcome, "ok");
    assert_string_equal(e[2].code, "");
    assert_string_equal(e[3].action, "challenge");
    assert_string_equal(e[3].code, "rate_limited");
    assert_int_equal(e[3].count, 1000);
    assert_int_equal(e[3].first_ms, T0 + 10);
    assert_int_equal(e[3].last_ms, T0 + 1009);
    assert_int_equal(e[3].minute, T0 / MIN);
    free(e);
    assert_int_equal(at_auditagg_pending(a), 0);
    at_auditagg_free(a);
}

static void minutes_are_separate(void **state)
{
    (void)state;
    at_auditagg *a = at_auditagg_new(16);
    assert_non_null(a);
    at_auditagg_add(a, "c", "anonymous", "challenge", "refused", "rate_limited", T0 + 1);
    at_auditagg_add(a, "c", "anonymous", "challenge", "refused", "rate_limited", T0 + MIN + 1);
    at_auditagg_add(a, "c", "anonymous", "challenge", "refused", "rate_limited", T0 + MIN + 2);
    at_auditagg_entry *e = NULL;
    /* At minute 1, only minute 0 is taken; minute 1 stays and keeps counting. */
    assert_int_equal(at_auditagg_take(a, T0 + MIN + 3, false, &e), 1);
    assert_int_equal(e[0].count, 1);
    free(e);
    at_auditagg_add(a, "c", "anonymous", "challenge", "refused", "rate_limited", T0 + MIN + 4);
    assert_int_equal(at_auditagg_pending(a), 1);
    /* A clock that went back: the "future" minute is due as well. */
    assert_int_equal(at_auditagg_take(a, T0, false, &e), 1);
    assert_int_equal(e[0].count, 3);
    assert_int_equal(e[0].last_ms, T0 + MIN + 4);
    free(e);
    /* all: the current minute too (shutdown) */
    at_auditagg_add(a, "c", "anonymous", "challenge", "refused", "rate_limited", T0 + 5);
    assert_int_equal(at_auditagg_take(a, T0 + 6, true, &e), 1);
    free(e);
    at_auditagg_free(a);
}

static void full_table_overflows(void **state)
{
    (void)state;
    at_auditagg *a = at_auditagg_new(4);
    assert_non_null(a);
    char client[32];
    for (int i = 0; i < 4; i++) {
        snprintf(client, sizeof client, "10.0.0.%d", i);
        assert_true(at_auditagg_add(a, client, "anonymous", "challenge", "refused", "rate_limited", T0 + i));
    }
    /* known keys still count when full */
    assert_true(at_auditagg_add(a, "10.0.0.0", "anonymous", "challenge", "refused", "rate_limited", T0 + 10));
    for (int i = 4; i < 1004; i++) {
        snprintf(client, sizeof client, "10.0.%d.%d", i / 256, i % 256);
        assert_false(
            at_auditagg_add(a, client, "anonymous", "challenge", "refused", "rate_limited", T0 + 20 + i));
    }
    assert_int_equal(at_auditagg_pending(a), 5);
    at_auditagg_entry *e = NULL;
    size_t n = at_auditagg_take(a, T0 + MIN, false, &e);
    assert_int_equal(n, 5);
    uint64_t total = 0;
    const at_auditagg_entry *ov = NULL;
    for (size_t i = 0; i < n; i++) {
        total += e[i].count;
        if (strcmp(e[i].client, "*") == 0)
            ov = &e[i];
    }
    assert_int_equal(total, 1005);
    assert_non_null(ov);
    assert_int_equal(ov->count, 1000);
    assert_string_equal(ov->action, "*");
    free(e);
    /* the table is usable again after the take */
    assert_true(
        at_auditagg_add(a, "10.9.9.9", "anonymous", "challenge", "refused", "rate_limited", T0 + MIN + 1));
    at_auditagg_free(a);
}

static void long_keys_are_cut(void **state)
{
    (void)state;
    at_auditagg *a = at_auditagg_new(2);
    assert_non_null(a);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_true(at_auditagg_add(a, big, big, big, big, big, T0));
    /* the same prefix after cutting is the same key */
    big[200] = '\0';
    assert_true(at_auditagg_add(a, big, big, big, big, big, T0 + 1));
    at_auditagg_entry *e = NULL;
    assert_int_equal(at_auditagg_take(a, 0, true, &e), 1);
    assert_int_equal(strlen(e[0].client), sizeof e[0].client - 1);
    assert_int_equal(strlen(e[0].code), sizeof e[0].code - 1);
    assert_int_equal(e[0].count, 2);
    free(e);
    assert_null(at_auditagg_new(0));
    at_auditagg_free(NULL);
    at_auditagg_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_per_key),
        cmocka_unit_test(minutes_are_separate),
        cmocka_unit_test(full_table_overflows),
        cmocka_unit_test(long_keys_are_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
