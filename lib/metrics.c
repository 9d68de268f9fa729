/* metrics: a small fixed-size registry. When it is full, new series are
 * not recorded but counted (attest_metrics_series_dropped_total) and logged
 * once: a full table never goes unnoticed. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

#define MAX_FAMILIES 48
#define MAX_SERIES 512
#define NBUCKETS 12
static const double buckets[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    5};

struct family {
    char name[64];
    at_metric_type type;
    char help[160];
};

struct series {
    char name[64];
    char labels[160];
    double value; /* counter/gauge; histogram sum */
    unsigned long long count;
    unsigned long long bucket[NBUCKETS];
    int is_hist;
};

struct at_metrics {
    pthread_mutex_t lock;
    struct family fam[MAX_FAMILIES];
    size_t n_fam;
    struct series s[MAX_SERIES];
    size_t n;
    unsigned long long dropped; /* updates to series that did not fit */
};

at_metrics *at_metrics_new(void)
{
    at_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void at_metrics_free(at_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void at_metrics_describe(at_metrics *m, const char *name, at_metric_type t, const char *help)
{
    pthread_mutex_lock(&m->lock);
    if (m->n_fam < MAX_FAMILIES) {
        struct family *f = &m->fam[m->n_fam++];
        snprintf(f->name, sizeof f->name, "%s", name);
        snprintf(f->help, sizeof f->help, "%s", help);
        f->type = t;
    } else {
        at_log("error", "metrics", "more than %d metric families: %s renders without HELP/TYPE", MAX_FAMILIES,
               name);
    }
    pthread_mutex_unlock(&m->lock);
}

/* Called with the lock held; NULL when the registry is full. */
static struct series *find(at_metrics *m, const char *name, const char *labels)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, name) == 0 && strcmp(m->s[i].labels, labels) == 0)
            return &m->s[i];
    if (m->n == MAX_SERIES) {
        if (m->dropped++ == 0)
            at_log("error", "metrics",
                   "registry full (%d series): %s{%s} and later new series are "
                   "not recorded; see attest_metrics_series_dropped_total",
                   MAX_SERIES, name, labels ? labels : "");
        return NULL;
    }
    struct series *s = &m->s[m->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->labels, sizeof s->labels, "%s", labels ? labels : "");
    return s;
}

void at_metrics_add(at_metrics *m, const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels ? labels : "");
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void at_metrics_set(at_metrics *m, const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels ? labels : "");
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void at_metrics_observe(at_metrics *m, const char *name, const char *labels, double sec)
{
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels ? labels : "");
    if (s) {
        s->is_hist = 1;
        s->value += sec;
        s->count++;
        for (int i = 0; i < NBUCKETS; i++)
            if (sec <= buckets[i])
                s->bucket[i]++;
    }
    pthread_mutex_unlock(&m->lock);
}

void at_metrics_describe_http(at_metrics *m)
{
    at_metrics_describe(m, "attest_http_requests_total", AT_METRIC_COUNTER,
                        "HTTP requests by route, method and status");
    at_metrics_describe(m, "attest_http_request_duration_seconds", AT_METRIC_HISTOGRAM,
                        "HTTP request latency by route");
}

void at_metrics_observe_http(at_metrics *m, const char *route, const char *method, int status, double seconds)
{
    static const char *known[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"};
    const char *meth = "other";
    for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            meth = known[i];
    char labels[128];
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%d\"", route ? route : "other", meth,
             status);
    at_metrics_add(m, "attest_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route ? route : "other");
    at_metrics_observe(m, "attest_http_request_duration_seconds", labels, seconds);
}

static const char *type_name(at_metric_type t)
{
    return t == AT_METRIC_COUNTER ? "counter" : t == AT_METRIC_GAUGE ? "gauge" : "histogram";
}

char *at_metrics_render(at_metrics *m)
{
    at_buf b;
    at_buf_init(&b);
    pthread_mutex_lock(&m->lock);
    for (size_t f = 0; f <= m->n_fam; f++) {
        /* Families in declaration order, then undeclared series. */
        const char *fname = f < m->n_fam ? m->fam[f].name : NULL;
        if (fname)
            at_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fname, m->fam[f].help, fname,
                          type_name(m->fam[f].type));
        for (size_t i = 0; i < m->n; i++) {
            struct series *s = &m->s[i];
            bool declared = false;
            for (size_t k = 0; k < m->n_fam; k++)
                declared = declared || strcmp(m->fam[k].name, s->name) == 0;
            if (fname ? strcmp(s->name, fname) != 0 : declared)
                continue;
            const char *sep = s->labels[0] ? "," : "";
            if (s->is_hist) {
                for (int k = 0; k < NBUCKETS; k++)
                    at_buf_printf(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, buckets[k],
                                  s->bucket[k]);
                at_buf_printf(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, s->count);
                at_buf_printf(&b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", s->name, s->labels, s->value,
                              s->name, s->labels, s->count);
            } else if (s->labels[0]) {
                at_buf_printf(&b, "%s{%s} %.17g\n", s->name, s->labels, s->value);
            } else {
                at_buf_printf(&b, "%s %.17g\n", s->name, s->value);
            }
        }
    }
    at_buf_printf(&b,
                  "# HELP attest_metrics_series_dropped_total Metric updates not recorded"
                  " because the registry was full\n# TYPE attest_metrics_series_dropped_total"
                  " counter\nattest_metrics_series_dropped_total %llu\n",
                  m->dropped);
    pthread_mutex_unlock(&m->lock);
    at_buf_u8(&b, 0);
    return (char *)at_buf_take(&b, NULL);
}
