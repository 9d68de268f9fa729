/* metrics: counters, gauges and latency histograms rendered in the
 * Prometheus text format (for /metrics). Thread-safe; label values come
 * from the binary (route names, error codes), never raw request text. */
#ifndef AT_METRICS_H
#define AT_METRICS_H

typedef struct at_metrics at_metrics;

typedef enum { AT_METRIC_COUNTER, AT_METRIC_GAUGE, AT_METRIC_HISTOGRAM } at_metric_type;

/* Caller frees with at_metrics_free. */
at_metrics *at_metrics_new(void);
void at_metrics_free(at_metrics *m);
/* Declare a family (HELP/TYPE lines). Undeclared families render untyped. */
void at_metrics_describe(at_metrics *m, const char *name, at_metric_type t, const char *help);
/* labels: the inside of {...}, e.g. "route=\"attestations\",status=\"201\"", or "". */
void at_metrics_add(at_metrics *m, const char *name, const char *labels, double v);
void at_metrics_set(at_metrics *m, const char *name, const char *labels, double v);
void at_metrics_observe(at_metrics *m, const char *name, const char *labels, double seconds);
/* The HTTP families every server exposes (the same names in the verifier,
 * the agent and the gateway): attest_http_requests_total{route,method,status}
 * and attest_http_request_duration_seconds{route}. describe once; observe
 * is an at_httpd_opts.observe body (a method outside the HTTP set is
 * counted as "other": never request text in a label). */
void at_metrics_describe_http(at_metrics *m);
void at_metrics_observe_http(at_metrics *m, const char *route, const char *method, int status,
                             double seconds);
/* Text exposition. Caller frees. */
char *at_metrics_render(at_metrics *m);

#endif
