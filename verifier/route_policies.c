/* /v1/policies/{name}: versioned PCR policies. PUT makes a new version
 * (never edits one), GET shows the current version and history, DELETE
 * .../versions/{v} revokes a version and ends the sessions admitted under
 * it. Policy bodies are owner input: parsed strictly and linted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcrimport.h"
#include "verifier.h"

at_err policy_load(at_db_conn *c, const char *name, int64_t version, at_policy **out, int64_t *version_out,
                   char sha256_hex[65], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    AT_TRY(at_db_prepare(c,
                         version ? "SELECT body, version, sha256 FROM policy_versions WHERE name = $1"
                                   " AND version = $2"
                                 : "SELECT body, version, sha256 FROM policy_versions WHERE name = $1"
                                   " AND revoked_ms IS NULL ORDER BY version DESC LIMIT 1",
                         &st, d));
    at_db_bind_text(st, 1, name, -1);
    if (version)
        at_db_bind_int64(st, 2, version);
    int s = at_db_step(st);
    if (s == AT_DB_DONE) {
        rc = version ? at_fail(d, AT_E_POLICY_NOT_FOUND, "policy: %s has no version %lld", name,
                               (long long)version)
                     : at_fail(d, AT_E_POLICY_NOT_FOUND,
                               "policy: no policy named %s (or every version is revoked)", name);
        goto out;
    }
    AT_ENSURE(s == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    const char *body = at_db_column_text(st, 0);
    AT_TRY(at_policy_parse(body, strlen(body), out, d));
    *version_out = at_db_column_int64(st, 1);
    snprintf(sha256_hex, 65, "%s", at_db_column_text(st, 2));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

struct put_job {
    const char *name;
    const char *body;
    const char *sha;
    const char *actor;
    const char *client;
    bool lint_overridden;
    int64_t version, audit_id;
};

static at_err put_policy(at_db_conn *c, void *ctx, at_diag *d)
{
    struct put_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    AT_TRY(at_db_prepare(c,
                         "INSERT INTO policies (name, created_ms) VALUES ($1, $2)"
                         " ON CONFLICT (name) DO NOTHING",
                         &st, d));
    at_db_bind_text(st, 1, j->name, -1);
    at_db_bind_int64(st, 2, at_now_ms());
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    at_db_finalize(st);
    AT_TRY(at_db_prepare(c, "SELECT coalesce(max(version), 0) + 1 FROM policy_versions WHERE name = $1", &st,
                         d));
    at_db_bind_text(st, 1, j->name, -1);
    AT_ENSURE(at_db_step(st) == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    j->version = at_db_column_int64(st, 0);
    at_db_finalize(st);
    AT_TRY(at_db_prepare(c,
                         "INSERT INTO policy_versions (name, version, body, sha256, created_ms,"
                         " created_by, lint_overridden) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                         &st, d));
    at_db_bind_text(st, 1, j->name, -1);
    at_db_bind_int64(st, 2, j->version);
    at_db_bind_text(st, 3, j->body, -1);
    at_db_bind_text(st, 4, j->sha, -1);
    at_db_bind_int64(st, 5, at_now_ms());
    at_db_bind_text(st, 6, j->actor, -1);
    at_db_bind_int64(st, 7, j->lint_overridden);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    char ref[200];
    snprintf(ref, sizeof ref, "%s@%lld", j->name, (long long)j->version);
    at_audit_row row = {.actor = j->actor,
                        .action = "policy.put",
                        .outcome = "ok",
                        .policy = ref,
                        .client = j->client,
                        .message = j->lint_overridden ? "lint overridden" : NULL};
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

struct revoke_job {
    const char *name;
    int64_t version;
    const char *actor, *client;
    int64_t ended, audit_id;
    bool already;
};

static at_err revoke_version(at_db_conn *c, void *ctx, at_diag *d)
{
    struct revoke_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    int64_t now = at_now_ms();
    char ref[200];
    snprintf(ref, sizeof ref, "%s@%lld", j->name, (long long)j->version);
    AT_TRY(
        at_db_prepare(c, "SELECT revoked_ms FROM policy_versions WHERE name = $1 AND version = $2", &st, d));
    at_db_bind_text(st, 1, j->name, -1);
    at_db_bind_int64(st, 2, j->version);
    int s = at_db_step(st);
    if (s == AT_DB_DONE) {
        at_db_finalize(st);
        st = NULL;
        at_audit_row row = {.actor = j->actor,
                            .action = "policy.revoke",
                            .outcome = "refused",
                            .code = "policy_not_found",
                            .policy = ref,
                            .client = j->client};
        AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
        rc = at_fail(d, AT_E_POLICY_NOT_FOUND, "policy: %s has no version %lld", j->name,
                     (long long)j->version);
        goto out;
    }
    AT_ENSURE(s == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    j->already = !at_db_column_is_null(st, 0);
    at_db_finalize(st);
    st = NULL;
    if (!j->already) {
        AT_TRY(at_db_prepare(c, "UPDATE policy_versions SET revoked_ms = $1 WHERE name = $2 AND version = $3",
                             &st, d));
        at_db_bind_int64(st, 1, now);
        at_db_bind_text(st, 2, j->name, -1);
        at_db_bind_int64(st, 3, j->version);
        AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
        at_db_finalize(st);
    }
    AT_TRY(at_db_prepare(c,
                         "UPDATE sessions SET ended_ms = $1, end_reason = 'policy revoked'"
                         " WHERE policy = $2 AND policy_version = $3 AND ended_ms IS NULL",
                         &st, d));
    at_db_bind_int64(st, 1, now);
    at_db_bind_text(st, 2, j->name, -1);
    at_db_bind_int64(st, 3, j->version);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    j->ended = at_db_changes(c);
    char msg[96];
    snprintf(msg, sizeof msg, "%lld live session(s) ended%s", (long long)j->ended,
             j->already ? " (version was already revoked)" : "");
    at_audit_row row = {.actor = j->actor,
                        .action = "policy.revoke",
                        .outcome = "ok",
                        .policy = ref,
                        .client = j->client,
                        .message = msg};
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

static void get_policy(verifier *v, at_http_req *req, at_http_resp *resp, const char *name)
{
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER) | ROLE_BIT(ROLE_AUDITOR), "policy.get", &who) ||
        !require_policy(v, req, resp, &who, "policy.get", name))
        return;
    at_db_conn *c = at_db_read_acquire(v->db);
    at_db_stmt *st = NULL;
    json_t *hist = json_array(), *current = NULL;
    int64_t current_version = 0;
    if (!c || at_db_prepare(c,
                            "SELECT version, body, sha256, created_ms, created_by, revoked_ms,"
                            " lint_overridden FROM policy_versions WHERE name = $1 ORDER BY version",
                            &st, NULL) != AT_OK) {
        at_db_read_release(v->db, c);
        json_decref(hist);
        at_http_error(resp, AT_E_INTERNAL, "database unavailable", -1);
        return;
    }
    at_db_bind_text(st, 1, name, -1);
    int rs;
    while ((rs = at_db_step(st)) == AT_DB_ROW) {
        json_t *e = json_object();
        int64_t ver = at_db_column_int64(st, 0);
        char t[40];
        json_object_set_new(e, "version", json_integer(ver));
        json_object_set_new(e, "sha256", json_string(at_db_column_text(st, 2)));
        at_time_rfc3339(at_db_column_int64(st, 3) / 1000, t, sizeof t);
        json_object_set_new(e, "created_at", json_string(t));
        json_object_set_new(e, "created_by", json_string(at_db_column_text(st, 4)));
        if (!at_db_column_is_null(st, 5)) {
            at_time_rfc3339(at_db_column_int64(st, 5) / 1000, t, sizeof t);
            json_object_set_new(e, "revoked_at", json_string(t));
        } else {
            json_object_set_new(e, "revoked_at", json_null());
            json_decref(current);
            current = json_loads(at_db_column_text(st, 1), 0, NULL);
            current_version = ver;
        }
        json_object_set_new(e, "lint_overridden", json_boolean(at_db_column_int64(st, 6)));
        /* Each version's document and what lint says of it today (the
         * console compares versions side by side). */
        const char *body = at_db_column_text(st, 1);
        json_object_set_new(e, "policy", json_loads(body, 0, NULL));
        at_policy *p = NULL;
        at_diag ld = {{0}};
        json_object_set_new(e, "lint",
                            at_policy_parse(body, strlen(body), &p, &ld) == AT_OK &&
                                    at_policy_lint(p, &ld) == AT_OK
                                ? json_null()
                                : json_string(ld.msg));
        at_policy_free(p);
        json_array_append_new(hist, e);
    }
    if (rs != AT_DB_DONE) {
        /* Never a partial history (or a wrong current version) under 200. */
        at_log("error", "database", "policy.get %s: %s", name, at_db_errmsg(c));
        at_db_finalize(st);
        at_db_read_release(v->db, c);
        json_decref(hist);
        json_decref(current);
        at_http_error(resp, AT_E_INTERNAL, "database: the policy versions could not be read", -1);
        return;
    }
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    if (json_array_size(hist) == 0) {
        json_decref(hist);
        char msg[200];
        snprintf(msg, sizeof msg, "policy: no policy named %s", name);
        refuse(v, req, resp, &who, "policy.get", AT_E_POLICY_NOT_FOUND, msg, NULL);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "version", current ? json_integer(current_version) : json_null());
    json_object_set_new(o, "policy", current ? current : json_null());
    json_object_set_new(o, "history", hist);
    at_http_json(resp, 200, o);
}

/* GET /v1/policies: the names the caller may read, with their current
 * version (null when every version is revoked) and version count. */
static void list_policies(verifier *v, at_http_req *req, at_http_resp *resp)
{
    caller who;
    if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER) | ROLE_BIT(ROLE_AUDITOR), "policy.list", &who))
        return;
    at_db_conn *c = at_db_read_acquire(v->db);
    at_db_stmt *st = NULL;
    if (!c || at_db_prepare(c,
                            "SELECT name, count(*), max(CASE WHEN revoked_ms IS NULL THEN version END),"
                            " max(created_ms) FROM policy_versions GROUP BY name ORDER BY name LIMIT 10000",
                            &st, NULL) != AT_OK) {
        at_db_read_release(v->db, c);
        at_http_error(resp, AT_E_INTERNAL, "database unavailable", -1);
        return;
    }
    json_t *arr = json_array();
    int rs;
    while ((rs = at_db_step(st)) == AT_DB_ROW) {
        const char *name = at_db_column_text(st, 0);
        if (!at_token_scope_allows(who.scope, name))
            continue;
        json_t *e = json_object();
        char t[40];
        json_object_set_new(e, "name", json_string(name));
        json_object_set_new(e, "versions", json_integer(at_db_column_int64(st, 1)));
        json_object_set_new(e, "version",
                            at_db_column_is_null(st, 2) ? json_null()
                                                        : json_integer(at_db_column_int64(st, 2)));
        at_time_rfc3339(at_db_column_int64(st, 3) / 1000, t, sizeof t);
        json_object_set_new(e, "updated_at", json_string(t));
        json_array_append_new(arr, e);
    }
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    if (rs != AT_DB_DONE) {
        json_decref(arr);
        at_http_error(resp, AT_E_INTERNAL, "database: the policy list could not be read", -1);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "policies", arr);
    at_http_json(resp, 200, o);
}

/* POST /v1/policies/{name}/import: the policy `attestctl policy import`
 * would make of the files in the body (lib/pcrimport), with its lint
 * verdict; a preview, nothing stored (PUT stores it). Body:
 * {"files":[{"name","content"}],"format"?,"session_ttl_s"?,"max_document_age_s"?}. */
static void import_preview(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who)
{
    static const char *const keys[] = {"files", "format", "session_ttl_s", "max_document_age_s", NULL};
    json_t *body = NULL, *pol = NULL;
    at_diag d = {{0}};
    at_err rc;
    at_span spans[AT_PCRIMPORT_MAX_FILES];
    const char *names[AT_PCRIMPORT_MAX_FILES];
    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK)
        goto refused;
    json_t *files = json_object_get(body, "files"), *f;
    size_t n = json_array_size(files), i;
    if (!json_is_array(files) || n == 0 || n > AT_PCRIMPORT_MAX_FILES) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "files: expected an array of 1..%d {\"name\",\"content\"}",
                     AT_PCRIMPORT_MAX_FILES);
        goto refused;
    }
    json_array_foreach(files, i, f)
    {
        const char *nm = json_string_value(json_object_get(f, "name"));
        json_t *ct = json_object_get(f, "content");
        if (!nm || strlen(nm) > 200 || !json_is_string(ct)) {
            rc = at_fail(&d, AT_E_BAD_REQUEST,
                         "files[%zu]: expected {\"name\": at most 200 characters, \"content\": text}", i);
            goto refused;
        }
        names[i] = nm;
        spans[i] = AT_SPAN(json_string_value(ct), json_string_length(ct));
    }
    json_t *fmt = json_object_get(body, "format"), *ttl = json_object_get(body, "session_ttl_s"),
           *age = json_object_get(body, "max_document_age_s");
    if ((fmt && !json_is_string(fmt)) || (ttl && !json_is_integer(ttl)) || (age && !json_is_integer(age))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST,
                     "format/session_ttl_s/max_document_age_s: expected a string, integers");
        goto refused;
    }
    at_pcrimport_opts o = {.format = json_string_value(fmt),
                           .session_ttl_s = ttl ? (long)json_integer_value(ttl) : 0,
                           .max_document_age_s = age ? (long)json_integer_value(age) : 0};
    if ((rc = at_pcrimport(spans, names, n, &o, &pol, &d)) != AT_OK)
        goto refused;
    at_policy *p = NULL;
    at_diag lint = {{0}};
    json_t *out = json_object();
    json_object_set_new(out, "policy", pol);
    json_object_set_new(out, "lint",
                        at_policy_from_json(pol, &p, &lint) == AT_OK && at_policy_lint(p, &lint) == AT_OK
                            ? json_null()
                            : json_string(lint.msg));
    at_policy_free(p);
    json_decref(body);
    at_http_json(resp, 200, out);
    return;
refused:
    json_decref(body);
    refuse(v, req, resp, who, "policy.import", rc, d.msg, NULL);
}

void route_policies(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest)
{
    if (rest[0] == '\0' && strcmp(req->method, "GET") == 0) {
        list_policies(v, req, resp);
        return;
    }
    char name[160];
    const char *slash = strchr(rest, '/');
    size_t nlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (nlen == 0 || nlen >= sizeof name) {
        at_http_error(resp, AT_E_NOT_FOUND, "policy: name missing or too long", -1);
        return;
    }
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    if (!valid_name(name)) {
        at_http_error(resp, AT_E_BAD_REQUEST, "policy: names are 1..128 of [A-Za-z0-9._-]", -1);
        return;
    }
    caller who;
    at_diag d = {{0}};
    if (!slash && strcmp(req->method, "PUT") == 0) {
        if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER), "policy.put", &who) ||
            !require_policy(v, req, resp, &who, "policy.put", name))
            return;
        at_policy *p = NULL;
        at_err rc = at_policy_parse((const char *)req->body.p, req->body.len, &p, &d);
        at_audit_row extra = {.policy = name};
        if (rc != AT_OK) {
            refuse(v, req, resp, &who, "policy.put", rc, d.msg, &extra);
            return;
        }
        const char *ov = at_http_query(req, "allow_lint");
        bool override = ov && (strcmp(ov, "1") == 0 || strcmp(ov, "true") == 0);
        at_diag lint = {{0}};
        at_err lrc = at_policy_lint(p, &lint);
        if (lrc != AT_OK && !override) {
            at_policy_free(p);
            char msg[AT_DIAG_MAX + 96];
            snprintf(msg, sizeof msg, "%s (override with ?allow_lint=1; attestctl policy put --allow-lint)",
                     lint.msg);
            refuse(v, req, resp, &who, "policy.put", lrc, msg, &extra);
            return;
        }
        char *canon = at_policy_canonical_json(p);
        char sha[65];
        if (!canon || (rc = at_sha256_hex(AT_SPAN(canon, strlen(canon)), sha, &d)) != AT_OK) {
            free(canon);
            at_policy_free(p);
            refuse(v, req, resp, &who, "policy.put", AT_E_INTERNAL, canon ? d.msg : "out of memory", &extra);
            return;
        }
        struct put_job j = {.name = name,
                            .body = canon,
                            .sha = sha,
                            .actor = who.actor,
                            .client = req->client,
                            .lint_overridden = lrc != AT_OK};
        rc = at_db_write(v->db, put_policy, &j, &d);
        free(canon);
        at_policy_free(p);
        if (rc != AT_OK) {
            at_http_error(resp, rc, d.msg, -1);
            return;
        }
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "version", json_integer(j.version));
        json_object_set_new(o, "sha256", json_string(sha));
        json_object_set_new(o, "audit_id", json_integer(j.audit_id));
        if (lrc != AT_OK)
            json_object_set_new(o, "lint_overridden", json_string(lint.msg));
        snprintf(resp->location, sizeof resp->location, "/v1/policies/%s", name);
        at_http_json(resp, 201, o);
        return;
    }
    if (!slash && strcmp(req->method, "GET") == 0) {
        get_policy(v, req, resp, name);
        return;
    }
    if (slash && strcmp(slash, "/import") == 0 && strcmp(req->method, "POST") == 0) {
        if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER), "policy.import", &who) ||
            !require_policy(v, req, resp, &who, "policy.import", name))
            return;
        import_preview(v, req, resp, &who);
        return;
    }
    if (slash && strncmp(slash, "/versions/", 10) == 0 && strcmp(req->method, "DELETE") == 0) {
        if (!require_role(v, req, resp, ROLE_BIT(ROLE_OWNER), "policy.revoke", &who) ||
            !require_policy(v, req, resp, &who, "policy.revoke", name))
            return;
        char *end;
        long long ver = strtoll(slash + 10, &end, 10);
        if (slash[10] == '\0' || *end || ver < 1) {
            refuse(v, req, resp, &who, "policy.revoke", AT_E_BAD_REQUEST,
                   "version: expected a positive integer", NULL);
            return;
        }
        struct revoke_job j = {.name = name, .version = ver, .actor = who.actor, .client = req->client};
        at_err rc = at_db_write(v->db, revoke_version, &j, &d);
        if (rc != AT_OK) {
            at_http_error(resp, rc, d.msg, j.audit_id);
            return;
        }
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "version", json_integer(ver));
        json_object_set_new(o, "revoked", json_true());
        json_object_set_new(o, "sessions_ended", json_integer(j.ended));
        json_object_set_new(o, "audit_id", json_integer(j.audit_id));
        at_http_json(resp, 200, o);
        return;
    }
    at_http_error(resp, AT_E_NOT_FOUND, "policy: no such resource or method", -1);
}
