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

/* The HTTP families the three servers share: a method outside the HTTP set
 * is labelled "other", never the request's text. */
static void http_observe_labels_methods(void **state)
{
    (void)state;
    at_metrics *m = at_metrics_new();
    assert_non_null(m);
    at_metrics_describe_http(m);
    at_metrics_observe_http(m, "ohttp", "POST", 200, 0.002);
    at_metrics_observe_http(m, "other", "X\"}evil", 404, 0.001);
    at_metrics_observe_http(m, NULL, NULL, 400, 0.001);
    char *text = at_metrics_render(m);
    assert_non_null(strstr(text, "# TYPE attest_http_requests_total counter\n"));
    assert_non_null(strstr(text, "# TYPE attest_http_request_duration_seconds histogram\n"));
    assert_non_null(
        strstr(text, "attest_http_requests_total{route=\"ohttp\",method=\"POST\",status=\"200\"} 1\n"));
    assert_non_null(
        strstr(text, "attest_http_requests_total{route=\"other\",method=\"other\",status=\"404\"} 1\n"));
    assert_non_null(
        strstr(text, "attest_http_requests_total{route=\"other\",method=\"other\",status=\"400\"} 1\n"));
    assert_null(strstr(text, "evil"));
    assert_non_null(
        strstr(text, "attest_http_request_duration_seconds_bucket{route=\"ohttp\",le=\"0.0025\"} 1\n"));
    free(text);
    at_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(full_registry_counts_drops),
                                       cmocka_unit_test(http_observe_labels_methods)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
