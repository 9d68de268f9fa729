/* GET /v1/sessions?policy=NAME&version=N&state=active|all: sessions for
 * gateways, auditors and owners (agents: one session by id, to notice it
 * ended), each with the attested key config, PCRs, endpoint and the
 * attestation result token; a token limited to policies sees only theirs.
 * DELETE /v1/sessions/{id}: an owner (within its scope) or admin ends one
 * session at once (state "revoked"), audited as session.revoke. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "verifier.h"

void route_sessions(verifier *v, at_http_req *req, at_http_resp *resp)
{
    caller who;
    if (!require_role(v, req, resp,
                      ROLE_BIT(ROLE_GATEWAY) | ROLE_BIT(ROLE_AUDITOR) | ROLE_BIT(ROLE_OWNER) |
                          ROLE_BIT(ROLE_AGENT),
                      "session.list", &who))
        return;
    const char *policy = at_http_query(req, "policy");
    const char *state = at_http_query(req, "state");
    const char *instance = at_http_query(req, "instance");
    const char *id = at_http_query(req, "id");
    const char *version_s = at_http_query(req, "version");
    /* An agent checks its own session by id (it knows the id), nothing more. */
    if (who.role == ROLE_AGENT && (!id || policy || instance || version_s)) {
        refuse(v, req, resp, &who, "session.list", AT_E_FORBIDDEN,
               "authorization: an agent token reads one session by id (?id=), not lists", NULL);
        return;
    }
    if (state && strcmp(state, "active") != 0 && strcmp(state, "all") != 0) {
        refuse(v, req, resp, &who, "session.list", AT_E_BAD_REQUEST, "state: expected active or all", NULL);
        return;
    }
    if ((policy && !valid_name(policy)) || (instance && strlen(instance) > 128) || (id && strlen(id) > 64)) {
        refuse(v, req, resp, &who, "session.list", AT_E_BAD_REQUEST, "policy/instance/id: invalid value",
               NULL);
        return;
    }
    /* version=N: the sessions one version of the named policy admitted. */
    long long version = 0;
    if (version_s) {
        char *end;
        errno = 0;
        version = strtoll(version_s, &end, 10);
        if (!policy || !version_s[0] || *end || errno || version < 1) {
            refuse(v, req, resp, &who, "session.list", AT_E_BAD_REQUEST,
                   policy ? "version: expected a positive integer (at most 19 digits)"
                          : "version: only with policy= (a version of which policy?)",
                   NULL);
            return;
        }
    }
    /* A token limited to policies sees only their sessions. */
    if (policy && !require_policy(v, req, resp, &who, "session.list", policy))
        return;
    bool all = state && strcmp(state, "all") == 0;
    int64_t now = at_now_ms();
    /* Only the conditions asked for, so SQLite can use the partial indexes
     * on live sessions (schema/0002); fixed fragments, bound values. */
    at_db_conn *c = at_db_read_acquire(v->db);
    char sql[760] = "SELECT id, instance_id, endpoint, key_config, pcrs, expires_ms, token, policy,"
                    " policy_version, ended_ms, end_reason, module_id, format FROM sessions WHERE 1 = 1";
    /* $k numbered in the order the conditions are added (PostgreSQL needs
     * every $1..$N it is given to appear). */
    int k = 0, k_now = 0, k_policy = 0, k_version = 0, k_scope = 0, k_instance = 0, k_id = 0;
    size_t len = strlen(sql);
#define ADD(...) len += (size_t)snprintf(sql + len, sizeof sql - len, __VA_ARGS__)
    if (!all)
        ADD(" AND ended_ms IS NULL AND expires_ms > $%d", k_now = ++k);
    if (policy)
        ADD(" AND policy = $%d", k_policy = ++k);
    if (version)
        ADD(" AND policy_version = $%d", k_version = ++k);
    /* substring search: instr() in SQLite, strpos() in PostgreSQL, the one
     * function the two dialects spell differently (docs/storage.md). */
    if (!policy && who.scope[0])
        ADD(" AND %s(',' || $%d || ',', ',' || policy || ',') > 0",
            c && at_db_conn_is_pg(c) ? "strpos" : "instr", k_scope = ++k);
    if (instance)
        ADD(" AND instance_id = $%d", k_instance = ++k);
    if (id)
        ADD(" AND id = $%d", k_id = ++k);
    ADD(" ORDER BY created_ms DESC LIMIT 1000");
#undef ADD
    at_db_stmt *st = NULL;
    if (!c || at_db_prepare(c, sql, &st, NULL) != AT_OK) {
        at_db_read_release(v->db, c);
        at_http_error(resp, AT_E_INTERNAL, "database unavailable", -1);
        return;
    }
    if (k_now)
        at_db_bind_int64(st, k_now, now);
    if (k_policy)
        at_db_bind_text(st, k_policy, policy, -1);
    if (k_version)
        at_db_bind_int64(st, k_version, version);
    if (k_scope)
        at_db_bind_text(st, k_scope, who.scope, -1);
    if (k_instance)
        at_db_bind_text(st, k_instance, instance, -1);
    if (k_id)
        at_db_bind_text(st, k_id, id, -1);
    json_t *arr = json_array();
    int rs;
    while ((rs = at_db_step(st)) == AT_DB_ROW) {
        json_t *s = json_object();
        char t[40];
        json_object_set_new(s, "id", json_string(at_db_column_text(st, 0)));
        json_object_set_new(s, "instance_id", json_string(at_db_column_text(st, 1)));
        json_object_set_new(
            s, "endpoint", at_db_column_is_null(st, 2) ? json_null() : json_string(at_db_column_text(st, 2)));
        if (at_db_column_is_null(st, 3)) {
            json_object_set_new(s, "key_config", json_null());
        } else {
            char *b = at_b64_encode_new(AT_SPAN(at_db_column_blob(st, 3), (size_t)at_db_column_bytes(st, 3)));
            json_object_set_new(s, "key_config", json_string(b));
            free(b);
        }
        json_object_set_new(s, "pcrs", json_loads(at_db_column_text(st, 4), 0, NULL));
        int64_t exp = at_db_column_int64(st, 5);
        at_time_rfc3339(exp / 1000, t, sizeof t);
        json_object_set_new(s, "expires_at", json_string(t));
        json_object_set_new(s, "expires_at_ms", json_integer(exp));
        json_object_set_new(s, "token", json_string(at_db_column_text(st, 6)));
        char ref[200];
        snprintf(ref, sizeof ref, "%s@%lld", at_db_column_text(st, 7), (long long)at_db_column_int64(st, 8));
        json_object_set_new(s, "policy", json_string(ref));
        json_object_set_new(s, "module_id", json_string(at_db_column_text(st, 11)));
        json_object_set_new(s, "format", json_string(at_db_column_text(st, 12)));
        const char *state_s = "active";
        if (!at_db_column_is_null(st, 9))
            state_s = at_db_column_text(st, 10);
        else if (exp <= now)
            state_s = "expired";
        json_object_set_new(s, "state", json_string(state_s ? state_s : "ended"));
        json_array_append_new(arr, s);
    }
    if (rs != AT_DB_DONE) {
        /* Never a partial list under 200. */
        at_log("error", "database", "session.list: %s", at_db_errmsg(c));
        at_db_finalize(st);
        at_db_read_release(v->db, c);
        json_decref(arr);
        at_http_error(resp, AT_E_INTERNAL, "database: the session list could not be read", -1);
        return;
    }
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    json_t *o = json_object();
    json_object_set_new(o, "sessions", arr);
    at_http_json(resp, 200, o);
}

struct end_job {
    const char *id;
    const caller *who;
    const char *client, *reason;
    char policy[128], ref[200], instance[160], state[64];
    bool already;
    int64_t audit_id;
};

/* Read the session, check the caller's scope against its policy, end it
 * when live; one audit row either way (a refusal keeps only its row). */
static at_err end_session(at_db_conn *c, void *ctx, at_diag *d)
{
    struct end_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    int64_t now = at_now_ms();
    AT_TRY(at_db_prepare(c,
                         "SELECT policy, policy_version, instance_id, ended_ms, end_reason, expires_ms"
                         " FROM sessions WHERE id = $1",
                         &st, d));
    at_db_bind_text(st, 1, j->id, -1);
    int s = at_db_step(st);
    at_audit_row row = {
        .actor = j->who->actor, .action = "session.revoke", .session_id = j->id, .client = j->client};
    if (s == AT_DB_DONE) {
        at_db_finalize(st);
        st = NULL;
        char why[AT_DIAG_MAX];
        snprintf(why, sizeof why, "session: no session with id %.64s", j->id);
        row.outcome = "refused";
        row.code = at_err_str(AT_E_SESSION_NOT_FOUND);
        row.message = why;
        AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
        rc = at_fail(d, AT_E_SESSION_NOT_FOUND, "%s", why);
        goto out;
    }
    AT_ENSURE(s == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    snprintf(j->policy, sizeof j->policy, "%s", at_db_column_text(st, 0));
    snprintf(j->ref, sizeof j->ref, "%s@%lld", j->policy, (long long)at_db_column_int64(st, 1));
    snprintf(j->instance, sizeof j->instance, "%s", at_db_column_text(st, 2));
    j->already = !at_db_column_is_null(st, 3) || at_db_column_int64(st, 5) <= now;
    const char *er = at_db_column_is_null(st, 3) ? "expired" : at_db_column_text(st, 4);
    snprintf(j->state, sizeof j->state, "%s", j->already ? (er ? er : "ended") : "revoked");
    at_db_finalize(st);
    st = NULL;
    row.policy = j->ref;
    row.instance_id = j->instance;
    if (!at_token_scope_allows(j->who->scope, j->policy)) {
        /* Answered exactly as an unknown id: a token limited to some
         * policies learns nothing of sessions outside them (not that the id
         * exists, not its policy). The audit row keeps the real reason. */
        char why[AT_TOKEN_SCOPE_MAX + 300];
        snprintf(
            why, sizeof why,
            "session: %.64s is under policy %.128s, outside token %lld's policies %s (answered as not found)",
            j->id, j->policy, (long long)j->who->token_id, j->who->scope);
        row.outcome = "refused";
        row.code = at_err_str(AT_E_SESSION_NOT_FOUND);
        row.message = why;
        AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
        rc = at_fail(d, AT_E_SESSION_NOT_FOUND, "session: no session with id %.64s", j->id);
        goto out;
    }
    char msg[300];
    if (!j->already) {
        AT_TRY(at_db_prepare(c,
                             "UPDATE sessions SET ended_ms = $1, end_reason = 'revoked'"
                             " WHERE id = $2 AND ended_ms IS NULL",
                             &st, d));
        at_db_bind_int64(st, 1, now);
        at_db_bind_text(st, 2, j->id, -1);
        AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
        snprintf(msg, sizeof msg, "session revoked%s%.200s", j->reason ? ": " : "",
                 j->reason ? j->reason : "");
    } else {
        snprintf(msg, sizeof msg, "session had already ended (%s)", j->state);
    }
    row.outcome = "ok";
    row.message = msg;
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

void route_session_revoke(verifier *v, at_http_req *req, at_http_resp *resp, const char *id)
{
    caller who;
    at_diag d = {{0}};
    if (strcmp(req->method, "DELETE") != 0) {
        at_http_error(resp, AT_E_NOT_FOUND, "sessions: no such resource or method", -1);
        return;
    }
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER), "session.revoke", &who))
        return;
    /* Session ids are the verifier's own (hex); anything else is refused
     * before the database sees it. */
    if (!valid_name(id) || strlen(id) > 64) {
        refuse(v, req, resp, &who, "session.revoke", AT_E_BAD_REQUEST,
               "session: id expected [A-Za-z0-9._-]{1,64}", NULL);
        return;
    }
    /* Optional reason, recorded in the audit row: ?reason= (printable, at
     * most 200 bytes). */
    const char *reason = at_http_query(req, "reason");
    if (reason) {
        size_t n = strlen(reason);
        bool ok = n > 0 && n <= 200;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)reason[i] >= 0x20 && reason[i] != 0x7f;
        if (!ok) {
            refuse(v, req, resp, &who, "session.revoke", AT_E_BAD_REQUEST,
                   "reason: expected 1..200 printable bytes", NULL);
            return;
        }
    }
    struct end_job j = {.id = id, .who = &who, .client = req->client, .reason = reason};
    at_err rc = at_db_write(v->db, end_session, &j, &d);
    if (rc != AT_OK) {
        if (rc == AT_E_FORBIDDEN || rc == AT_E_SESSION_NOT_FOUND) {
            char labels[128];
            snprintf(labels, sizeof labels, "action=\"session.revoke\",code=\"%s\"", at_err_str(rc));
            at_metrics_add(v->metrics, "attest_refusals_total", labels, 1);
        }
        at_http_error(resp, rc, d.msg, j.audit_id);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "policy", json_string(j.ref));
    json_object_set_new(o, "instance_id", json_string(j.instance));
    json_object_set_new(o, "state", json_string(j.state));
    json_object_set_new(o, "revoked", json_boolean(!j.already));
    json_object_set_new(o, "audit_id", json_integer(j.audit_id));
    at_http_json(resp, 200, o);
}
