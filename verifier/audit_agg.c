/* verifier audit aggregation: which refusals get a durable row of their
 * own and which are only counted (per client, actor, action, code and
 * minute), and the thread that writes the counts of each finished minute
 * as one row per key. Keeps a flood of unauthenticated requests from
 * writing one fsynced row per request; every refusal is still counted in
 * /metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verifier.h"

/* Refusals of anonymous callers that a security team wants one by one
 * (evidence refused with its PCR digest, release proofs refused): a row
 * each up to the per-client budget (--audit-rate), then counted. */
static bool is_forensic(const char *action)
{
    return strcmp(action, "attestation.create") == 0 || strcmp(action, "secret.release") == 0;
}

bool refusal_gets_row(verifier *v, bool authenticated, const char *action, at_err code, const char *client)
{
    if (code == AT_E_RATE_LIMITED)
        return false; /* the rate limit is what a flood hits: never a row each */
    if (authenticated)
        return true; /* a token holder is accountable: its refusals keep their row */
    if (!is_forensic(action) && at_err_http_status(code) < 500)
        return false;
    return ratelimit_allow(v->audit_rl, client ? client : "", at_monotonic_ns());
}

void audit_count(verifier *v, const char *client, const char *actor, const char *action, const char *outcome,
                 const char *code)
{
    if (!at_auditagg_add(v->agg, client, actor, action, outcome, code, at_now_ms()))
        at_metrics_add(v->metrics, "attest_audit_aggregate_overflow_total", "", 1);
}

at_err audit_refusal_in_job(verifier *v, at_db_conn *conn, bool authenticated, at_err code,
                            const at_audit_row *row, int64_t *id, at_diag *d)
{
    char labels[128];
    snprintf(labels, sizeof labels, "action=\"%s\",code=\"%s\"", row->action, at_err_str(code));
    at_metrics_add(v->metrics, "attest_refusals_total", labels, 1);
    if (refusal_gets_row(v, authenticated, row->action, code, row->client))
        return at_audit_append(conn, row, id, d);
    audit_count(v, row->client, row->actor, row->action, row->outcome, row->code);
    *id = 0;
    return AT_OK;
}

/* ---- the flusher ------------------------------------------------------------ */

struct flush_job {
    const at_auditagg_entry *e;
    size_t n;
};

static at_err write_aggregates(at_db_conn *conn, void *ctx, at_diag *d)
{
    struct flush_job *j = ctx;
    for (size_t i = 0; i < j->n; i++) {
        const at_auditagg_entry *e = &j->e[i];
        bool result = strcmp(e->action, AUDIT_VERIFY_RESULT) == 0;
        json_t *m = json_pack("{s:s,s:I,s:I,s:I}", "action", result ? "verify" : e->action, "count",
                              (json_int_t)e->count, "first_ms", (json_int_t)e->first_ms, "last_ms",
                              (json_int_t)e->last_ms);
        char *msg = m ? json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(m);
        if (!msg)
            return at_fail(d, AT_E_INTERNAL, "out of memory");
        at_audit_row row = {.time_ms = e->last_ms,
                            .actor = e->actor,
                            .action = result ? "verify.aggregate" : "refusal.aggregate",
                            .outcome = e->outcome,
                            .code = e->code[0] && strcmp(e->code, "*") != 0 ? e->code : NULL,
                            .message = msg,
                            .client = e->client};
        at_err rc = at_audit_append(conn, &row, NULL, d);
        free(msg);
        if (rc != AT_OK)
            return rc;
    }
    return AT_OK;
}

/* Write the due entries (all of them when `all`) in one transaction. */
static void flush(verifier *v, bool all)
{
    at_auditagg_entry *e = NULL;
    size_t n = at_auditagg_take(v->agg, at_now_ms(), all, &e);
    if (!n)
        return;
    struct flush_job j = {.e = e, .n = n};
    at_diag d = {{0}};
    uint64_t events = 0;
    for (size_t i = 0; i < n; i++)
        events += e[i].count;
    if (at_db_write(v->db, write_aggregates, &j, &d) != AT_OK)
        at_log("error", "audit_failed", "cannot record %zu aggregate row(s) (%llu events): %s", n,
               (unsigned long long)events, d.msg);
    else
        at_log("info", "audit_aggregate", "%zu aggregate row(s) for %llu events", n,
               (unsigned long long)events);
    free(e);
}

static void *flusher(void *arg)
{
    verifier *v = arg;
    pthread_mutex_lock(&v->agg_lock);
    while (!v->agg_stop) {
        /* Wake just after each minute ends: a crash loses at most the
         * counts of the minute in progress (and of the one that just
         * ended, for the few milliseconds until its rows commit). */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        int64_t wake = (ms / 60000 + 1) * 60000 + 50;
        /* Never sleep more than 5 s: a clock step must not delay a flush. */
        if (wake - ms > 5000)
            wake = ms + 5000;
        struct timespec until = {.tv_sec = (time_t)(wake / 1000), .tv_nsec = (long)(wake % 1000) * 1000000};
        int rc = pthread_cond_timedwait(&v->agg_cond, &v->agg_lock, &until);
        if (v->agg_stop)
            break;
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&v->agg_lock);
            flush(v, false);
            pthread_mutex_lock(&v->agg_lock);
        }
    }
    pthread_mutex_unlock(&v->agg_lock);
    return NULL;
}

int audit_flusher_start(verifier *v)
{
    pthread_mutex_init(&v->agg_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_REALTIME);
    pthread_cond_init(&v->agg_cond, &ca);
    pthread_condattr_destroy(&ca);
    v->agg_stop = false;
    if (pthread_create(&v->agg_thread, NULL, flusher, v) != 0)
        return -1;
    v->agg_running = true;
    return 0;
}

void audit_flusher_stop(verifier *v)
{
    if (v->agg_running) {
        pthread_mutex_lock(&v->agg_lock);
        v->agg_stop = true;
        pthread_cond_signal(&v->agg_cond);
        pthread_mutex_unlock(&v->agg_lock);
        pthread_join(v->agg_thread, NULL);
        v->agg_running = false;
        pthread_cond_destroy(&v->agg_cond);
        pthread_mutex_destroy(&v->agg_lock);
    }
    /* Everything counted so far, the current minute included. */
    if (v->agg)
        flush(v, true);
}
