/* /v1/tokens: API tokens for admins. GET lists them (never a token or its
 * hash), DELETE /v1/tokens/{id} revokes one at once: every request checks
 * its token against the database, so every replica sharing it agrees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verifier.h"

static void list_all(verifier *v, at_http_req *req, at_http_resp *resp)
{
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_ADMIN), "token.list", &who))
        return;
    at_diag d = {{0}};
    json_t *o = NULL;
    at_db_conn *c = at_db_read_acquire(v->db);
    at_err rc =
        c ? at_token_list(c, at_now_ms(), &o, &d) : at_fail(&d, AT_E_INTERNAL, "database unavailable");
    at_db_read_release(v->db, c);
    if (rc != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
        return;
    }
    at_http_json(resp, 200, o);
}

static void revoke_one(verifier *v, at_http_req *req, at_http_resp *resp, const char *id_s)
{
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_ADMIN), "token.revoke", &who))
        return;
    char *end = NULL;
    long long id = strtoll(id_s, &end, 10);
    if (!*id_s || *end || id <= 0 || strlen(id_s) > 18) {
        refuse(v, req, resp, &who, "token.revoke", AT_E_BAD_REQUEST,
               "token: expected a positive integer id in the path", NULL);
        return;
    }
    at_diag d = {{0}};
    at_token_revoke_job j = {.id = id, .actor = who.actor, .client = req->client};
    at_err rc = at_db_write(v->db, at_token_revoke, &j, &d);
    if (rc != AT_OK) {
        if (rc == AT_E_NOT_FOUND || rc == AT_E_CONFLICT)
            refuse(v, req, resp, &who, "token.revoke", rc, d.msg, NULL);
        else
            at_http_error(resp, rc, d.msg, -1);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "revoked", json_true());
    json_object_set_new(o, "already_revoked", json_boolean(j.was_revoked));
    at_http_json(resp, 200, o);
}

/* GET /v1/tokens/self: what the presented token is (its role and scope,
 * never the token), so a client such as the console can show only what it
 * may do; the routes themselves still decide. Any valid token. */
static void self(verifier *v, at_http_req *req, at_http_resp *resp)
{
    caller who;
    if (!require_role(v, req, resp,
                      ROLE_BIT(ROLE_AGENT) | ROLE_BIT(ROLE_GATEWAY) | ROLE_BIT(ROLE_AUDITOR) |
                          ROLE_BIT(ROLE_OWNER),
                      "token.self", &who))
        return;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(who.token_id));
    json_object_set_new(o, "role", json_string(caller_role_name(&who)));
    json_object_set_new(o, "actor", json_string(who.actor));
    json_object_set_new(o, "policies", who.scope[0] ? json_string(who.scope) : json_null());
    at_http_json(resp, 200, o);
}

void route_tokens(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest)
{
    if (strcmp(rest, "/self") == 0 && strcmp(req->method, "GET") == 0)
        self(v, req, resp);
    else if (rest[0] == '\0' && strcmp(req->method, "GET") == 0)
        list_all(v, req, resp);
    else if (rest[0] == '/' && strcmp(req->method, "DELETE") == 0)
        revoke_one(v, req, resp, rest + 1);
    else
        at_http_error(resp, AT_E_NOT_FOUND, "token: no such resource or method", -1);
}
