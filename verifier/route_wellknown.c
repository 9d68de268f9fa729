/* GET /.well-known/jwks.json (the verifier's public signing keys) and
 * GET /metrics (Prometheus text). */
#include <stdio.h>
#include <stdlib.h>

#include "verifier.h"

void route_jwks(verifier *v, at_http_req *req, at_http_resp *resp)
{
    at_signer *signer = keys_signer(v->keys);
    at_http_json(resp, 200, at_signer_jwks(signer));
    at_signer_free(signer);
    resp->content_type = "application/jwk-set+json";
}

void route_metrics(verifier *v, at_http_req *req, at_http_resp *resp)
{
    at_trust *t = verifier_trust(v);
    at_trust_stats ts;
    at_trust_stats_get(t, &ts);
    at_trust_unref(t);
    at_metrics_set(v->metrics, "attest_cert_cache", "kind=\"verified_full\"", (double)ts.full);
    at_metrics_set(v->metrics, "attest_cert_cache", "kind=\"verified_cached_issuer\"",
                   (double)ts.cached_issuer);
    at_metrics_set(v->metrics, "attest_cert_cache", "kind=\"verified_cached_leaf\"", (double)ts.cached_leaf);
    at_metrics_set(v->metrics, "attest_cert_cache", "kind=\"failed\"", (double)ts.failed);
    at_metrics_set(v->metrics, "attest_cert_cache", "kind=\"entries\"", (double)ts.entries);
    at_db_stats ds;
    at_db_stats_get(v->db, &ds);
    at_metrics_set(v->metrics, "attest_db_transactions_total", "kind=\"transactions\"",
                   (double)ds.transactions);
    at_metrics_set(v->metrics, "attest_db_transactions_total", "kind=\"jobs\"", (double)ds.jobs);
    at_db_conn *c = at_db_read_acquire(v->db);
    at_db_stmt *st = NULL;
    if (c && at_db_prepare(c, "SELECT count(*) FROM sessions WHERE ended_ms IS NULL AND expires_ms > $1", &st,
                           NULL) == AT_OK) {
        at_db_bind_int64(st, 1, at_now_ms());
        if (at_db_step(st) == AT_DB_ROW)
            at_metrics_set(v->metrics, "attest_sessions_live", "", (double)at_db_column_int64(st, 0));
    }
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    char *text = at_metrics_render(v->metrics);
    resp->status = 200;
    resp->body = text;
    resp->len = text ? strlen(text) : 0;
    resp->content_type = "text/plain; version=0.0.4";
}
