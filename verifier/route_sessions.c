/* GET /v1/sessions?policy=NAME&state=active|all: sessions for gateways and
 * auditors (agents: one session by id, to notice it ended), each with the
 * attested key config, PCRs, endpoint and the attestation result token; a
 * token limited to policies sees only theirs. */
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "verifier.h"

void route_sessions(verifier *v, at_http_req *req, at_http_resp *resp)
{
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_GATEWAY) | ROLE_BIT(ROLE_AUDITOR) | ROLE_BIT(ROLE_AGENT),
                      "session.list", &who))
        return;
    const char *policy = at_http_query(req, "policy");
    const char *state = at_http_query(req, "state");
    const char *instance = at_http_query(req, "instance");
    const char *id = at_http_query(req, "id");
    /* An agent checks its own session by id (it knows the id), nothing more. */
    if (who.role == ROLE_AGENT && (!id || policy || instance)) {
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
    int k = 0, k_now = 0, k_policy = 0, k_scope = 0, k_instance = 0, k_id = 0;
    size_t len = strlen(sql);
#define ADD(...) len += (size_t)snprintf(sql + len, sizeof sql - len, __VA_ARGS__)
    if (!all)
        ADD(" AND ended_ms IS NULL AND expires_ms > $%d", k_now = ++k);
    if (policy)
        ADD(" AND policy = $%d", k_policy = ++k);
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
