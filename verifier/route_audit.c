/* GET /v1/audit (filters, cursor pagination) and GET /v1/audit/verify
 * (recompute the hash chain from the last checkpoint, or whole): for
 * auditors. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verifier.h"

/* RFC 3339 ("2026-11-28T10:00:00Z", optional fraction) or integer ms. */
static bool parse_time(const char *s, int64_t *ms)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end && v >= 0) {
        *ms = v;
        return true;
    }
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    int frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
            digits++;
            p++;
        }
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(p, "Z") != 0)
        return false;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return true;
}

static at_err save_checkpoint(at_db_conn *conn, void *ctx, at_diag *d)
{
    const at_audit_check *chk = ctx;
    return at_audit_checkpoint_set(conn, chk->head_id, chk->head_hash, d);
}

/* GET /v1/audit/verify[?full=1]: from the checkpoint (the last row a check
 * found intact, if its row still carries that hash) to the head, or the
 * whole chain. Checks run one at a time; a whole-chain check (asked for,
 * or no checkpoint yet) at most once per --audit-verify-interval. */
static void verify(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who)
{
    const char *fq = at_http_query(req, "full");
    if (fq && strcmp(fq, "0") != 0 && strcmp(fq, "1") != 0) {
        refuse(v, req, resp, who, "audit.verify", AT_E_BAD_REQUEST, "full: expected 0 or 1", NULL);
        return;
    }
    bool full = fq && strcmp(fq, "1") == 0;
    at_diag d = {{0}};
    at_audit_check chk;
    int64_t cp_id = 0;
    char cp_hash[65] = "";
    pthread_mutex_lock(&v->verify_lock);
    at_db_conn *c = at_db_read_acquire(v->db);
    at_err rc = c ? at_audit_checkpoint_get(c, &cp_id, cp_hash, &d)
                  : at_fail(&d, AT_E_INTERNAL, "database unavailable");
    full = full || cp_id == 0;
    int64_t now = at_monotonic_ns(), every = (int64_t)v->cfg.audit_verify_interval_s * 1000000000LL;
    if (rc == AT_OK && full && every > 0 && v->last_full_verify_ns && now - v->last_full_verify_ns < every) {
        at_db_read_release(v->db, c);
        pthread_mutex_unlock(&v->verify_lock);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "audit: the whole chain was checked %lld s ago, at most once per %d s"
                 " (the incremental check is not limited)",
                 (long long)((now - v->last_full_verify_ns) / 1000000000LL), v->cfg.audit_verify_interval_s);
        refuse(v, req, resp, who, "audit.verify", AT_E_RATE_LIMITED, msg, NULL);
        return;
    }
    if (rc == AT_OK) {
        if (full)
            v->last_full_verify_ns = now;
        rc = at_audit_verify_from(c, full ? 0 : cp_id, full ? NULL : cp_hash, &chk, &d);
    }
    at_db_read_release(v->db, c);
    /* Only an intact chain moves the checkpoint. */
    if (rc == AT_OK && chk.ok && chk.head_id > 0 &&
        (chk.head_id != cp_id || strcmp(chk.head_hash, cp_hash) != 0))
        rc = at_db_write(v->db, save_checkpoint, &chk, &d);
    pthread_mutex_unlock(&v->verify_lock);
    if (rc != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(chk.ok));
    json_object_set_new(o, "mode", json_string(full ? "full" : "incremental"));
    json_object_set_new(o, "entries", json_integer(chk.entries));
    json_object_set_new(o, "checked", json_integer(chk.checked));
    json_object_set_new(o, "checkpoint",
                        full ? json_null()
                             : json_pack("{s:I,s:s}", "id", (json_int_t)cp_id, "hash", cp_hash));
    json_object_set_new(o, "first_bad", chk.ok ? json_null() : json_integer(chk.first_bad));
    /* The head to anchor outside the database (a row's hash commits to
     * every row before it). */
    json_object_set_new(o, "head",
                        json_pack("{s:I,s:s}", "id", (json_int_t)chk.head_id, "hash", chk.head_hash));
    if (!chk.ok)
        json_object_set_new(o, "reason", json_string(chk.reason));
    at_http_json(resp, 200, o);
}

void route_audit(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest)
{
    caller who;
    const char *action = strcmp(rest, "/verify") == 0 ? "audit.verify" : "audit.query";
    if (strcmp(rest, "") != 0 && strcmp(rest, "/verify") != 0) {
        at_http_error(resp, AT_E_NOT_FOUND, "audit: no such resource", -1);
        return;
    }
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_AUDITOR), action, &who))
        return;
    if (strcmp(rest, "/verify") == 0) {
        verify(v, req, resp, &who);
        return;
    }
    at_diag d = {{0}};
    at_db_conn *c = at_db_read_acquire(v->db);
    if (!c) {
        at_http_error(resp, AT_E_INTERNAL, "database unavailable", -1);
        return;
    }
    at_audit_filter f = {0};
    const char *s;
    const char *bad = NULL;
    if ((s = at_http_query(req, "since")) && !parse_time(s, &f.since_ms))
        bad = "since: expected RFC 3339 UTC or milliseconds";
    if ((s = at_http_query(req, "until")) && !parse_time(s, &f.until_ms))
        bad = "until: expected RFC 3339 UTC or milliseconds";
    if ((s = at_http_query(req, "limit"))) {
        char *end;
        long n = strtol(s, &end, 10);
        if (!*s || *end || n < 1 || n > 1000)
            bad = "limit: expected 1..1000";
        f.limit = (int)n;
    }
    if ((s = at_http_query(req, "cursor"))) {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (!*s || *end || n < 0)
            bad = "cursor: expected the value of an earlier \"next\"";
        f.after_id = n;
    }
    f.outcome = at_http_query(req, "outcome");
    f.action = at_http_query(req, "action");
    f.policy = at_http_query(req, "policy");
    f.instance_id = at_http_query(req, "instance");
    f.actor = at_http_query(req, "actor");
    f.code = at_http_query(req, "code");
    if (f.outcome && strcmp(f.outcome, "ok") != 0 && strcmp(f.outcome, "refused") != 0 &&
        strcmp(f.outcome, "error") != 0)
        bad = "outcome: expected ok, refused or error";
    if (bad) {
        at_db_read_release(v->db, c);
        refuse(v, req, resp, &who, action, AT_E_BAD_REQUEST, bad, NULL);
        return;
    }
    json_t *entries = json_array();
    int64_t next = 0;
    at_err rc = at_audit_query(c, &f, entries, &next, &d);
    at_db_read_release(v->db, c);
    if (rc != AT_OK) {
        json_decref(entries);
        at_http_error(resp, rc, d.msg, -1);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "entries", entries);
    if (next) {
        char cur[32];
        snprintf(cur, sizeof cur, "%lld", (long long)next);
        json_object_set_new(o, "next", json_string(cur));
    } else {
        json_object_set_new(o, "next", json_null());
    }
    at_http_json(resp, 200, o);
}
