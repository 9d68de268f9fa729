/* Unit tests for lib/metrics.c: a full registry never drops silently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void full_registry_counts_drops(void **state)
{
    (void)state;
    at_metrics *m = at_metrics_new();
    assert_non_null(m);
    char *text = at_metrics_render(m);
    assert_non_null(strstr(text, "\nattest_metrics_series_dropped_total 0\n"));
    free(text);
    char labels[64];
    for (int i = 0; i < 600; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i);
        at_metrics_add(m, "t_total", labels, 1);
    }
    at_metrics_add(m, "t_total", "n=\"599\"", 1);
    text = at_metrics_render(m);
    assert_non_null(strstr(text, "t_total{n=\"0\"} 1\n"));
    assert_null(strstr(text, "t_total{n=\"599\"}"));
    /* 88 new series did not fit, and the later update of one of them too. */
    assert_non_null(strstr(text, "\nattest_metrics_series_dropped_total 89\n"));
    free(text);
    at_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(full_registry_counts_drops)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
