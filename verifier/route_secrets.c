/* /v1/secrets/{name}: an owner stores a value bound to a policy (PUT); an
 * agent with a live session admitted under that policy gets it released,
 * sealed with HPKE to the session's attested key (POST .../release). The
 * release request proves possession of the session key with a MAC over a
 * fresh timestamp; each proof is accepted once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "enc.h"
#include "seal.h"
#include "verifier.h"

#define MAX_SECRET_BYTES (32 * 1024)

struct put_job {
    const char *name, *policy, *actor, *client;
    const char *scope; /* the caller's token scope ("" = all) */
    int64_t token_id;
    verifier_keys *keys;
    at_span value;
    int64_t audit_id;
    bool replace;  /* the caller asked to replace an existing value */
    bool replaced; /* out: there was one */
};

static at_err put_secret(at_db_conn *c, void *ctx, at_diag *d)
{
    struct put_job *j = ctx;
    at_db_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    int64_t now = at_now_ms();
    at_buf stored;
    at_buf_init(&stored);
    char was[129] = ""; /* a policy name (valid_name: at most 128) */
    /* A token limited to some policies may not take over a secret bound
     * to another one, and an existing value is replaced only when asked
     * (both checked in the writing transaction). */
    {
        AT_TRY(at_db_prepare(c, "SELECT policy FROM secrets WHERE name = $1", &st, d));
        at_db_bind_text(st, 1, j->name, -1);
        int s = at_db_step(st);
        AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
        if (s == AT_DB_ROW && j->scope[0] && !at_token_scope_allows(j->scope, at_db_column_text(st, 0))) {
            rc = at_fail(d, AT_E_FORBIDDEN,
                         "authorization: secret %s is bound to policy %.128s, "
                         "token %lld is limited to policies %s",
                         j->name, at_db_column_text(st, 0), (long long)j->token_id, j->scope);
            goto out;
        }
        if (s == AT_DB_ROW && !j->replace) {
            rc = at_fail(d, AT_E_SECRET_EXISTS,
                         "secret %s: exists (bound to policy %.128s); not replacing it "
                         "(?replace=1, attestctl secret put --replace)",
                         j->name, at_db_column_text(st, 0));
            goto out;
        }
        if (s == AT_DB_ROW)
            snprintf(was, sizeof was, "%s", at_db_column_text(st, 0));
        j->replaced = s == AT_DB_ROW;
        at_db_finalize(st);
        st = NULL;
    }
    AT_TRY(keys_storage_seal(j->keys, j->name, j->policy, j->value, &stored, d));
    AT_TRY(at_db_prepare(c,
                         "INSERT INTO secrets (name, policy, value, created_ms, updated_ms)"
                         " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET"
                         " policy = excluded.policy, value = excluded.value,"
                         " updated_ms = excluded.updated_ms",
                         &st, d));
    at_db_bind_text(st, 1, j->name, -1);
    at_db_bind_text(st, 2, j->policy, -1);
    at_db_bind_blob(st, 3, stored.p, stored.len);
    at_db_bind_int64(st, 4, now);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    char msg[400];
    if (j->replaced)
        snprintf(msg, sizeof msg, "secret %s bound to policy %s (replaced the value bound to policy %s)",
                 j->name, j->policy, was);
    else
        snprintf(msg, sizeof msg, "secret %s bound to policy %s", j->name, j->policy);
    at_audit_row row = {.actor = j->actor,
                        .action = "secret.put",
                        .outcome = "ok",
                        .policy = j->policy,
                        .client = j->client,
                        .message = msg};
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    at_buf_cleanup(&stored);
    return rc;
}

struct release_job {
    const char *name, *session_id, *client, *actor;
    uint8_t mac[32];
    int64_t proof_expires_ms;
    const char *policy_ref, *instance_id;
    verifier *v;
    int64_t audit_id;
};

static at_err consume_proof(at_db_conn *c, void *ctx, at_diag *d)
{
    struct release_job *j = ctx;
    at_db_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    char msg[200];
    snprintf(msg, sizeof msg, "secret %s", j->name);
    at_audit_row row = {.actor = j->actor,
                        .action = "secret.release",
                        .outcome = "ok",
                        .policy = j->policy_ref,
                        .instance_id = j->instance_id,
                        .session_id = j->session_id,
                        .client = j->client,
                        .message = msg};
    /* The session was checked on a read connection: an end committed since
     * (revocation, replacement) must stop the release it acknowledged. */
    AT_TRY(at_db_prepare(c, "SELECT ended_ms, end_reason, expires_ms FROM sessions WHERE id = $1", &st, d));
    at_db_bind_text(st, 1, j->session_id, -1);
    int s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    if (s == AT_DB_DONE || !at_db_column_is_null(st, 0) || at_db_column_int64(st, 2) <= at_now_ms()) {
        rc = at_fail(d, AT_E_SESSION_EXPIRED, "session: %s before the release was recorded",
                     s == AT_DB_DONE                ? "gone"
                     : !at_db_column_is_null(st, 0) ? at_db_column_text(st, 1) ?: "ended"
                                                    : "expired");
        at_db_finalize(st);
        st = NULL;
        row.outcome = "refused";
        row.code = at_err_str(rc);
        row.message = d->msg;
        at_diag scratch = {{0}};
        if (audit_refusal_in_job(j->v, c, false, rc, &row, &j->audit_id, &scratch) != AT_OK)
            return at_fail(d, AT_E_INTERNAL, "audit: the row of the refusal (%s) could not be written: %s",
                           at_err_str(rc), scratch.msg);
        return rc;
    }
    at_db_finalize(st);
    st = NULL;
    /* A proof whose use record may have been pruned (it expires at or
     * before the time high-water mark, schema/0003) is never accepted, so
     * a clock set back cannot make it fresh again. */
    AT_TRY(at_db_prepare(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d));
    s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: clock_watermark: %s",
              at_db_errmsg(c));
    int64_t mark = s == AT_DB_ROW ? at_db_column_int64(st, 0) : INT64_MAX;
    at_db_finalize(st);
    st = NULL;
    if (j->proof_expires_ms <= mark) {
        char t_exp[40], t_mark[40];
        at_time_rfc3339_ms(j->proof_expires_ms, t_exp, sizeof t_exp);
        at_time_rfc3339_ms(mark, t_mark, sizeof t_mark);
        rc = at_fail(d, AT_E_UNAUTHORIZED,
                     "proof: expires at %s, not after the verifier's time high-water mark "
                     "%s (stale, or the clock was set back)",
                     t_exp, t_mark);
        row.outcome = "refused";
        row.code = at_err_str(rc);
        row.message = d->msg;
        at_diag scratch = {{0}};
        if (at_audit_append(c, &row, &j->audit_id, &scratch) != AT_OK)
            return at_fail(d, AT_E_INTERNAL, "audit: the row of the refusal (%s) could not be written: %s",
                           at_err_str(rc), scratch.msg);
        return rc;
    }
    AT_TRY(at_db_prepare(
        c, "INSERT INTO proofs_used (mac, expires_ms) VALUES ($1, $2) ON CONFLICT (mac) DO NOTHING", &st, d));
    at_db_bind_blob(st, 1, j->mac, sizeof j->mac);
    at_db_bind_int64(st, 2, j->proof_expires_ms);
    s = at_db_step(st);
    int64_t inserted = at_db_changes(c);
    at_db_finalize(st);
    st = NULL;
    /* Single use, enforced by the database on every replica: the insert
     * that finds the key already there changes nothing (no error, so the
     * refusal's audit row commits in the same transaction). */
    if (s == AT_DB_DONE && inserted == 0) {
        rc = at_fail(d, AT_E_UNAUTHORIZED, "proof: already used (replayed release request)");
        row.outcome = "refused";
        row.code = at_err_str(rc);
        row.message = d->msg;
        at_diag scratch = {{0}};
        if (audit_refusal_in_job(j->v, c, false, rc, &row, &j->audit_id, &scratch) != AT_OK)
            return at_fail(d, AT_E_INTERNAL, "audit: the row of the refusal (%s) could not be written: %s",
                           at_err_str(rc), scratch.msg);
        return rc;
    }
    AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

static void put(verifier *v, at_http_req *req, at_http_resp *resp, const char *name)
{
    static const char *const keys[] = {"policy", "value", NULL};
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER), "secret.put", &who))
        return;
    json_t *body = NULL;
    uint8_t *value = NULL;
    size_t vlen = 0;
    at_diag d = {{0}};
    at_err rc;
    const char *rq = at_http_query(req, "replace");
    if (rq && strcmp(rq, "0") != 0 && strcmp(rq, "1") != 0) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "replace: expected 0 or 1, got '%.16s'", rq);
        goto refused;
    }
    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK)
        goto refused;
    json_t *jp = json_object_get(body, "policy"), *jv = json_object_get(body, "value");
    if (!json_is_string(jp) || !valid_name(json_string_value(jp))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "policy: expected the name of a policy");
        goto refused;
    }
    if (!json_is_string(jv) ||
        at_b64_decode_new(json_string_value(jv), json_string_length(jv), &value, &vlen) != AT_OK) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "value: expected base64");
        goto refused;
    }
    if (vlen == 0 || vlen > MAX_SECRET_BYTES) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "value: %zu bytes, expected 1..%d", vlen, MAX_SECRET_BYTES);
        goto refused;
    }
    {
        at_db_conn *c = at_db_read_acquire(v->db);
        at_policy *p = NULL;
        int64_t ver;
        char sha[65];
        rc = c ? policy_load(c, json_string_value(jp), 0, &p, &ver, sha, &d)
               : at_fail(&d, AT_E_INTERNAL, "database unavailable");
        at_db_read_release(v->db, c);
        at_policy_free(p);
        if (rc != AT_OK)
            goto refused;
    }
    if (!require_policy(v, req, resp, &who, "secret.put", json_string_value(jp)))
        goto done;
    struct put_job j = {.name = name,
                        .policy = json_string_value(jp),
                        .scope = who.scope,
                        .token_id = who.token_id,
                        .actor = who.actor,
                        .client = req->client,
                        .value = AT_SPAN(value, vlen),
                        .keys = v->keys,
                        .replace = rq && strcmp(rq, "1") == 0};
    if ((rc = at_db_write(v->db, put_secret, &j, &d)) != AT_OK) {
        if (rc == AT_E_FORBIDDEN || rc == AT_E_SECRET_EXISTS)
            goto refused;
        at_http_error(resp, rc, d.msg, -1);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "policy", json_string(j.policy));
    json_object_set_new(o, "replaced", json_boolean(j.replaced));
    json_object_set_new(o, "audit_id", json_integer(j.audit_id));
    at_http_json(resp, 201, o);
    goto done;
refused:
    refuse(v, req, resp, &who, "secret.put", rc, d.msg, NULL);
done:
    if (value)
        at_wipe_free(value, vlen);
    /* jansson's copy of the base64 value: wiped in place before it is freed
     * (the request body buffer itself is wiped by lib/httpd). */
    json_t *jv_wipe = json_object_get(body, "value");
    if (json_is_string(jv_wipe))
        at_wipe((char *)json_string_value(jv_wipe), json_string_length(jv_wipe));
    json_decref(body);
}

static void release(verifier *v, at_http_req *req, at_http_resp *resp, const char *name)
{
    static const char *const keys[] = {"session", "proof", NULL};
    caller who;
    identify(v, req, &who);
    json_t *body = NULL;
    at_diag d = {{0}};
    at_err rc;
    at_db_conn *c = NULL;
    at_db_stmt *st = NULL;
    uint8_t *value = NULL;
    size_t vlen = 0;
    char actor[96];
    session_proof sp = {0};
    at_buf sealed;
    at_buf_init(&sealed);
    at_audit_row extra = {0};
    int64_t ts_ms = 0;
    uint8_t mac[32];

    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK)
        goto refused;
    json_t *js = json_object_get(body, "session"), *jpr = json_object_get(body, "proof");
    if (!json_is_string(js) || json_string_length(js) > 64) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "session: expected a session id");
        goto refused;
    }
    if ((rc = session_proof_parse(jpr, &ts_ms, mac, &d)) != AT_OK)
        goto refused;
    const char *sid = json_string_value(js);
    extra.session_id = sid;
    /* Refusals before the MAC verifies stay the caller's own (anonymous,
     * counted per client): the session id is only a claim until then. */
    snprintf(actor, sizeof actor, "session:%.64s", sid);
    rc = session_proof_check(v, sid, ts_ms, mac, name, true, &sp, &d);
    if (sp.instance[0]) {
        extra.policy = sp.ref;
        extra.instance_id = sp.instance;
    }
    if (rc != AT_OK)
        goto refused;
    snprintf(who.actor, sizeof who.actor, "session:%.50s", sid);
    c = at_db_read_acquire(v->db);
    if (!c) {
        rc = at_fail(&d, AT_E_INTERNAL, "database unavailable");
        goto refused;
    }
    if (at_db_prepare(c, "SELECT policy, value FROM secrets WHERE name = $1", &st, NULL) != AT_OK) {
        rc = at_fail(&d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
        goto refused;
    }
    at_db_bind_text(st, 1, name, -1);
    int s = at_db_step(st);
    if (s != AT_DB_ROW) {
        rc = s == AT_DB_DONE ? at_fail(&d, AT_E_NOT_FOUND, "secret: no secret named %s", name)
                             : at_fail(&d, AT_E_INTERNAL, "database: secret %s: %s", name, at_db_errmsg(c));
        goto refused;
    }
    if (strcmp(at_db_column_text(st, 0), sp.policy) != 0) {
        rc =
            at_fail(&d, AT_E_FORBIDDEN, "secret: %s is bound to policy %s, the session was admitted under %s",
                    name, at_db_column_text(st, 0), sp.policy);
        goto refused;
    }
    {
        at_buf plain;
        at_buf_init_secret(&plain);
        rc = keys_storage_open(v->keys, name, sp.policy,
                               AT_SPAN(at_db_column_blob(st, 1), (size_t)at_db_column_bytes(st, 1)), &plain,
                               &d);
        if (rc != AT_OK) {
            at_buf_cleanup(&plain);
            at_diag_prefix(&d, "secret: stored value: ");
            rc = AT_E_INTERNAL;
            goto refused;
        }
        vlen = plain.len;
        value = at_buf_take(&plain, NULL);
    }
    at_db_finalize(st);
    st = NULL;
    at_db_read_release(v->db, c);
    c = NULL;
    char info[300];
    snprintf(info, sizeof info, "%s%s", AT_SEAL_INFO_SECRET_PREFIX, name);
    if ((rc = at_seal_to_key_config(AT_SPAN(sp.key_config, sp.key_config_len), info, AT_SPAN(value, vlen),
                                    &sealed, &d)) != AT_OK)
        goto refused;
    struct release_job j = {.name = name,
                            .session_id = sid,
                            .client = req->client,
                            .actor = actor,
                            .v = v,
                            .proof_expires_ms = ts_ms + 2 * v->cfg.clock_skew_ms,
                            .policy_ref = sp.ref,
                            .instance_id = sp.instance};
    memcpy(j.mac, mac, 32);
    rc = at_db_write(v->db, consume_proof, &j, &d);
    if (rc != AT_OK) {
        /* A refusal kept its audit row; an internal error rolled it back. */
        at_http_error(resp, rc, d.msg, rc == AT_E_INTERNAL ? -1 : j.audit_id);
        goto done;
    }
    char *b = at_b64_encode_new(at_buf_span(&sealed));
    json_t *o = json_object();
    json_object_set_new(o, "sealed", json_string(b));
    json_object_set_new(o, "audit_id", json_integer(j.audit_id));
    free(b);
    at_http_json(resp, 200, o);
    goto done;
refused:
    at_db_finalize(st);
    st = NULL;
    at_db_read_release(v->db, c);
    c = NULL;
    refuse(v, req, resp, &who, "secret.release", rc, d.msg, &extra);
done:
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    session_proof_cleanup(&sp);
    if (value)
        at_wipe_free(value, vlen);
    at_buf_cleanup(&sealed);
    json_decref(body);
}

void route_secrets(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest)
{
    char name[160];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof name) {
        at_http_error(resp, AT_E_NOT_FOUND, "secret: name missing or too long", -1);
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    if (!valid_name(name)) {
        at_http_error(resp, AT_E_BAD_REQUEST, "secret: names are 1..128 of [A-Za-z0-9._-]", -1);
        return;
    }
    if (!slash && strcmp(req->method, "PUT") == 0)
        put(v, req, resp, name);
    else if (slash && strcmp(slash, "/release") == 0 && strcmp(req->method, "POST") == 0)
        release(v, req, resp, name);
    else
        at_http_error(resp, AT_E_NOT_FOUND, "secret: no such resource or method", -1);
}
