/* verifier common: authentication by bearer token (hash lookup), refusals
 * with their audit rows (or counts, audit_agg.c), rate limiting, logging.
 * Tokens and client addresses are attacker input. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enc.h"
#include "token.h"
#include "seal.h"
#include "verifier.h"

static const char *role_names[] = {"none", "agent", "gateway", "auditor", "owner", "admin"};

static const char *role_name(role r) { return r <= ROLE_ADMIN ? role_names[r] : "none"; }
const char *caller_role_name(const caller *who) { return role_name(who->role); }

static bool role_parse(const char *s, role *out)
{
    for (int i = ROLE_AGENT; i <= ROLE_ADMIN; i++)
        if (strcmp(s, role_names[i]) == 0) {
            *out = (role)i;
            return true;
        }
    return false;
}

bool valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
        if (n >= 128)
            return false;
    }
    return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

at_err only_keys(json_t *o, const char *const *keys, at_diag *d)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (const char *const *p = keys; *p; p++)
            ok = ok || strcmp(*p, k) == 0;
        if (!ok)
            return at_fail(d, AT_E_BAD_REQUEST, "body: unknown field \"%.64s\"", k);
    }
    return AT_OK;
}

void identify(verifier *v, at_http_req *req, caller *who)
{
    memset(who, 0, sizeof *who);
    snprintf(who->actor, sizeof who->actor, "anonymous");
    const char *tok = at_http_bearer(req);
    if (!tok || strlen(tok) > 256)
        return;
    uint8_t h[32];
    if (at_token_hash(tok, h, NULL) != AT_OK)
        return; /* anonymous: no lookup on undefined bytes */
    /* Checked against the database on every request (one indexed lookup),
     * never cached: a revocation or expiry holds at once on every replica. */
    at_db_conn *c = at_db_read_acquire(v->db);
    at_db_stmt *st = NULL;
    if (c && at_db_prepare(c,
                           "SELECT id, role, expires_ms, policies FROM api_tokens"
                           " WHERE token_sha256 = $1 AND revoked_ms IS NULL",
                           &st, NULL) == AT_OK) {
        at_db_bind_blob(st, 1, h, 32);
        if (at_db_step(st) == AT_DB_ROW) {
            role r;
            int64_t id = at_db_column_int64(st, 0);
            if (!at_db_column_is_null(st, 2) && at_db_column_int64(st, 2) <= at_now_ms()) {
                who->expired = true;
                snprintf(who->actor, sizeof who->actor, "expired-token:%lld", (long long)id);
            } else if (role_parse(at_db_column_text(st, 1), &r)) {
                who->role = r;
                who->token_id = id;
                snprintf(who->actor, sizeof who->actor, "token:%lld/%s", (long long)who->token_id,
                         role_name(r));
                if (!at_db_column_is_null(st, 3))
                    snprintf(who->scope, sizeof who->scope, "%s", at_db_column_text(st, 3));
            }
        } else {
            snprintf(who->actor, sizeof who->actor, "invalid-token");
        }
    }
    at_db_finalize(st);
    at_db_read_release(v->db, c);
}

bool require_policy(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who, const char *action,
                    const char *policy)
{
    if (at_token_scope_allows(who->scope, policy))
        return true;
    char msg[AT_TOKEN_SCOPE_MAX + 300];
    snprintf(msg, sizeof msg, "authorization: token %lld is limited to policies %s, not %.128s",
             (long long)who->token_id, who->scope, policy);
    refuse(v, req, resp, who, action, AT_E_FORBIDDEN, msg, NULL);
    return false;
}

bool require_role(verifier *v, at_http_req *req, at_http_resp *resp, unsigned need, const char *action,
                  caller *who)
{
    identify(v, req, who);
    if (who->role == ROLE_NONE) {
        refuse(v, req, resp, who, action, AT_E_UNAUTHORIZED,
               who->expired          ? "authorization: bearer token expired"
               : at_http_bearer(req) ? "authorization: bearer token unknown or revoked"
                                     : "authorization: a bearer token is required",
               NULL);
        return false;
    }
    if (who->role != ROLE_ADMIN && !(need & ROLE_BIT(who->role))) {
        char msg[160], want[80] = "";
        for (int r = ROLE_AGENT; r <= ROLE_ADMIN; r++)
            if (need & ROLE_BIT(r))
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", want[0] ? " or " : "",
                         role_name((role)r));
        snprintf(msg, sizeof msg, "authorization: role %s required, token has role %s", want,
                 role_name(who->role));
        refuse(v, req, resp, who, action, AT_E_FORBIDDEN, msg, NULL);
        return false;
    }
    return true;
}

struct audit_job {
    const at_audit_row *row;
    int64_t id;
};

static at_err write_audit_row(at_db_conn *conn, void *ctx, at_diag *d)
{
    struct audit_job *j = ctx;
    return at_audit_append(conn, j->row, &j->id, d);
}

at_err audit_write(verifier *v, const at_audit_row *row, int64_t *id, at_diag *d)
{
    struct audit_job j = {.row = row};
    at_err rc = at_db_write(v->db, write_audit_row, &j, d);
    if (rc == AT_OK && id)
        *id = j.id;
    return rc;
}

void refuse(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who, const char *action,
            at_err code, const char *message, const at_audit_row *extra)
{
    at_audit_row row = {0};
    if (extra)
        row = *extra;
    row.actor = who ? who->actor : "anonymous";
    row.action = action;
    row.outcome = at_err_http_status(code) >= 500 ? "error" : "refused";
    row.code = at_err_str(code);
    row.message = message;
    row.client = req->client;
    at_diag d = {{0}};
    int64_t id = 0;
    if (!refusal_gets_row(v, who && who->role != ROLE_NONE, action, code, req->client))
        audit_count(v, row.client, row.actor, action, row.outcome, row.code);
    else if (audit_write(v, &row, &id, &d) != AT_OK)
        at_log("error", "audit_failed", "cannot record refusal of %s: %s", action, d.msg);
    char labels[128];
    snprintf(labels, sizeof labels, "action=\"%s\",code=\"%s\"", action, at_err_str(code));
    at_metrics_add(v->metrics, "attest_refusals_total", labels, 1);
    at_http_error(resp, code, message, id);
}

/* ---- rate limiting: lib/ratelimit.c (keyed, collisions never refill) ---- */

ratelimit *ratelimit_new(double per_s, double burst) { return at_ratelimit_new(per_s, burst, 0); }

void ratelimit_free(ratelimit *r) { at_ratelimit_free(r); }

bool ratelimit_allow(ratelimit *r, const char *client, int64_t now_ns)
{
    return at_ratelimit_allow(r, client, now_ns);
}
