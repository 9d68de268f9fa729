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
    char sql[700] = "SELECT id, instance_id, endpoint, key_config, pcrs, expires_ms, token, policy,"
                    " policy_version, ended_ms, end_reason, module_id, format FROM sessions WHERE 1";
    if (!all)
        strcat(sql, " AND ended_ms IS NULL AND expires_ms > :now");
    if (policy)
        strcat(sql, " AND policy = :policy");
    if (!policy && who.scope[0])
        strcat(sql, " AND instr(',' || :scope || ',', ',' || policy || ',') > 0");
    if (instance)
        strcat(sql, " AND instance_id = :instance");
    if (id)
        strcat(sql, " AND id = :id");
    strcat(sql, " ORDER BY created_ms DESC LIMIT 1000");
    sqlite3 *c = at_db_read_acquire(v->db);
    sqlite3_stmt *st = NULL;
    if (!c || sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
        at_db_read_release(v->db, c);
        at_http_error(resp, AT_E_INTERNAL, "database unavailable", -1);
        return;
    }
    int i;
    if ((i = sqlite3_bind_parameter_index(st, ":now")))
        sqlite3_bind_int64(st, i, now);
    if ((i = sqlite3_bind_parameter_index(st, ":policy")))
        sqlite3_bind_text(st, i, policy, -1, SQLITE_STATIC);
    if ((i = sqlite3_bind_parameter_index(st, ":scope")))
        sqlite3_bind_text(st, i, who.scope, -1, SQLITE_STATIC);
    if ((i = sqlite3_bind_parameter_index(st, ":instance")))
        sqlite3_bind_text(st, i, instance, -1, SQLITE_STATIC);
    if ((i = sqlite3_bind_parameter_index(st, ":id")))
        sqlite3_bind_text(st, i, id, -1, SQLITE_STATIC);
    json_t *arr = json_array();
    int rs;
    while ((rs = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *s = json_object();
        char t[40];
        json_object_set_new(s, "id", json_string((const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(s, "instance_id", json_string((const char *)sqlite3_column_text(st, 1)));
        json_object_set_new(s, "endpoint",
                            sqlite3_column_type(st, 2) == SQLITE_NULL
                                ? json_null()
                                : json_string((const char *)sqlite3_column_text(st, 2)));
        if (sqlite3_column_type(st, 3) == SQLITE_NULL) {
            json_object_set_new(s, "key_config", json_null());
        } else {
            char *b =
                at_b64_encode_new(AT_SPAN(sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3)));
            json_object_set_new(s, "key_config", json_string(b));
            free(b);
        }
        json_object_set_new(s, "pcrs", json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL));
        int64_t exp = sqlite3_column_int64(st, 5);
        at_time_rfc3339(exp / 1000, t, sizeof t);
        json_object_set_new(s, "expires_at", json_string(t));
        json_object_set_new(s, "expires_at_ms", json_integer(exp));
        json_object_set_new(s, "token", json_string((const char *)sqlite3_column_text(st, 6)));
        char ref[200];
        snprintf(ref, sizeof ref, "%s@%lld", (const char *)sqlite3_column_text(st, 7),
                 (long long)sqlite3_column_int64(st, 8));
        json_object_set_new(s, "policy", json_string(ref));
        json_object_set_new(s, "module_id", json_string((const char *)sqlite3_column_text(st, 11)));
        json_object_set_new(s, "format", json_string((const char *)sqlite3_column_text(st, 12)));
        const char *state_s = "active";
        if (sqlite3_column_type(st, 9) != SQLITE_NULL)
            state_s = (const char *)sqlite3_column_text(st, 10);
        else if (exp <= now)
            state_s = "expired";
        json_object_set_new(s, "state", json_string(state_s ? state_s : "ended"));
        json_array_append_new(arr, s);
    }
    if (rs != SQLITE_DONE) {
        /* Never a partial list under 200. */
        at_log("error", "database", "session.list: %s", sqlite3_errmsg(c));
        sqlite3_finalize(st);
        at_db_read_release(v->db, c);
        json_decref(arr);
        at_http_error(resp, AT_E_INTERNAL, "database: the session list could not be read", -1);
        return;
    }
    sqlite3_finalize(st);
    at_db_read_release(v->db, c);
    json_t *o = json_object();
    json_object_set_new(o, "sessions", arr);
    at_http_json(resp, 200, o);
}
