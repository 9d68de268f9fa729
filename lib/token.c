/* token: generation, hashing and storage of API tokens. */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"
#include "clock.h"
#include "db.h"
#include "enc.h"
#include "hash.h"

at_err at_token_generate(char out[AT_TOKEN_MAX])
{
    uint8_t r[32];
    if (RAND_bytes(r, sizeof r) != 1)
        return AT_E_INTERNAL;
    char *b = at_b64url_encode_new(AT_SPAN(r, sizeof r));
    at_wipe(r, sizeof r);
    if (!b)
        return AT_E_INTERNAL;
    snprintf(out, AT_TOKEN_MAX, "at_%s", b);
    at_wipe_free(b, strlen(b));
    return AT_OK;
}

at_err at_token_hash(const char *token, uint8_t out[32], at_diag *d)
{
    return at_sha256(AT_SPAN(token, strlen(token)), out, d);
}

at_err at_token_parse_duration(const char *s, int64_t *ms, at_diag *d)
{
    int64_t n = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > AT_TOKEN_MAX_LIFETIME_S)
            break;
        n = n * 10 + (*p - '0');
    }
    int64_t unit = 0;
    if (p > s && p[0] && !p[1])
        unit = p[0] == 'd' ? 86400 : p[0] == 'h' ? 3600 : p[0] == 'm' ? 60 : p[0] == 's' ? 1 : 0;
    if (!unit || n == 0)
        return at_fail(d, AT_E_BAD_FIELD,
                       "expires: \"%.32s\": expected a positive number and a unit"
                       " d, h, m or s (e.g. 30d, 12h)",
                       s);
    if (n > AT_TOKEN_MAX_LIFETIME_S / unit)
        return at_fail(d, AT_E_BAD_FIELD, "expires: \"%.32s\": at most %lld days", s,
                       AT_TOKEN_MAX_LIFETIME_S / 86400);
    *ms = n * unit * 1000;
    return AT_OK;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

at_err at_token_check_scope(const char *scope, at_diag *d)
{
    size_t len = strlen(scope), n = 0;
    if (len == 0 || len > AT_TOKEN_SCOPE_MAX)
        return at_fail(d, AT_E_BAD_FIELD, "policies: %zu characters, expected 1..%d", len,
                       AT_TOKEN_SCOPE_MAX);
    for (const char *p = scope;; n++) {
        size_t k = strcspn(p, ",");
        bool ok = k >= 1 && k <= 128 && !(k == 1 && p[0] == '.') && !(k == 2 && !strncmp(p, "..", 2));
        for (size_t i = 0; ok && i < k; i++)
            ok = is_name_char(p[i]);
        if (!ok)
            return at_fail(d, AT_E_BAD_FIELD,
                           "policies: \"%.*s\" is not a policy name"
                           " (1..128 of [A-Za-z0-9._-])",
                           (int)(k > 64 ? 64 : k), p);
        for (const char *q = scope; q < p; q += strcspn(q, ",") + 1)
            if (strcspn(q, ",") == k && strncmp(q, p, k) == 0)
                return at_fail(d, AT_E_BAD_FIELD, "policies: %.*s named twice", (int)k, p);
        if (n + 1 > AT_TOKEN_MAX_POLICIES)
            return at_fail(d, AT_E_BAD_FIELD, "policies: more than %d", AT_TOKEN_MAX_POLICIES);
        if (!p[k])
            break;
        p += k + 1;
    }
    return AT_OK;
}

bool at_token_scope_allows(const char *scope, const char *policy)
{
    if (!scope || !*scope)
        return true;
    size_t n = strlen(policy);
    for (const char *p = scope;;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, policy, n) == 0)
            return true;
        if (!p[k])
            return false;
        p += k + 1;
    }
}

at_err at_token_insert(at_db_conn *c, void *ctx, at_diag *d)
{
    at_token_insert_job *j = ctx;
    at_db_stmt *st = NULL;
    if (j->policies) {
        /* Only what the verifier can enforce per policy: an owner manages
         * the named policies and their secrets, a gateway sees their
         * sessions. An auditor reads the whole audit log, an admin is all. */
        if (strcmp(j->role, "owner") != 0 && strcmp(j->role, "gateway") != 0)
            return at_fail(d, AT_E_BAD_FIELD,
                           "policies: only owner and gateway tokens can be"
                           " limited to policies, not %s",
                           j->role);
        at_err prc = at_token_check_scope(j->policies, d);
        if (prc != AT_OK)
            return prc;
    }
    at_err rc = at_db_prepare(c,
                              "INSERT INTO api_tokens (token_sha256, role, label, created_ms,"
                              " expires_ms, policies) VALUES ($1, $2, $3, $4, $5, $6)"
                              " ON CONFLICT (token_sha256) DO NOTHING RETURNING id",
                              &st, d);
    if (rc != AT_OK)
        return rc;
    int64_t now = at_wall_ms();
    at_db_bind_blob(st, 1, j->hash, 32);
    at_db_bind_text(st, 2, j->role, -1);
    if (j->label)
        at_db_bind_text(st, 3, j->label, -1);
    at_db_bind_int64(st, 4, now);
    if (j->expires_ms)
        at_db_bind_int64(st, 5, j->expires_ms);
    if (j->policies)
        at_db_bind_text(st, 6, j->policies, -1);
    /* RETURNING, not the engine's "last insert id": the same SQL on
     * SQLite and PostgreSQL; no row when the token was already there. */
    int s = at_db_step(st);
    int64_t id = s == AT_DB_ROW ? at_db_column_int64(st, 0) : 0;
    at_db_finalize(st);
    if (s != AT_DB_ROW && s != AT_DB_DONE)
        return at_fail(d, AT_E_BAD_REQUEST, "token: %s", at_db_errmsg(c));
    j->id = id;
    if (s == AT_DB_DONE)
        return AT_OK; /* already present */
    char msg[AT_TOKEN_SCOPE_MAX + 160], exp[40] = "never";
    if (j->expires_ms)
        at_time_rfc3339(j->expires_ms / 1000, exp, sizeof exp);
    snprintf(msg, sizeof msg, "token %lld role %s expires %s policies %s", (long long)j->id, j->role, exp,
             j->policies ? j->policies : "(all)");
    at_audit_row row = {.actor = j->actor, .action = "token.create", .outcome = "ok", .message = msg};
    return at_audit_append(c, &row, NULL, d);
}

at_err at_token_revoke(at_db_conn *c, void *ctx, at_diag *d)
{
    at_token_revoke_job *j = ctx;
    at_db_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "SELECT revoked_ms, role FROM api_tokens WHERE id = $1", &st, d);
    if (rc != AT_OK)
        return rc;
    at_db_bind_int64(st, 1, j->id);
    int s = at_db_step(st);
    j->was_revoked = s == AT_DB_ROW && !at_db_column_is_null(st, 0);
    char role[16] = "";
    if (s == AT_DB_ROW)
        snprintf(role, sizeof role, "%s", at_db_column_text(st, 1));
    at_db_finalize(st);
    if (s == AT_DB_DONE)
        return at_fail(d, AT_E_NOT_FOUND, "token: no token with id %lld", (long long)j->id);
    if (s != AT_DB_ROW)
        return at_fail(d, AT_E_INTERNAL, "token: %s", at_db_errmsg(c));
    if (j->was_revoked)
        return AT_OK;
    if (strcmp(role, "admin") == 0) {
        /* Never lock every administrator out: the last live admin token
         * stays until another exists (decided in this transaction). */
        rc = at_db_prepare(c,
                           "SELECT count(*) FROM api_tokens WHERE role = 'admin' AND id != $1"
                           " AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $2)",
                           &st, d);
        if (rc != AT_OK)
            return rc;
        at_db_bind_int64(st, 1, j->id);
        at_db_bind_int64(st, 2, at_wall_ms());
        s = at_db_step(st);
        int64_t others = s == AT_DB_ROW ? at_db_column_int64(st, 0) : -1;
        at_db_finalize(st);
        if (others < 0)
            return at_fail(d, AT_E_INTERNAL, "token: %s", at_db_errmsg(c));
        if (others == 0)
            return at_fail(d, AT_E_CONFLICT,
                           "token: %lld is the last live admin token; create another first"
                           " (attestctl token create --db DB --role admin)",
                           (long long)j->id);
    }
    rc = at_db_prepare(c, "UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL", &st,
                       d);
    if (rc != AT_OK)
        return rc;
    at_db_bind_int64(st, 1, at_wall_ms());
    at_db_bind_int64(st, 2, j->id);
    s = at_db_step(st);
    at_db_finalize(st);
    if (s != AT_DB_DONE)
        return at_fail(d, AT_E_INTERNAL, "token: %s", at_db_errmsg(c));
    char msg[96];
    snprintf(msg, sizeof msg, "token %lld role %s revoked", (long long)j->id, role);
    at_audit_row row = {
        .actor = j->actor, .action = "token.revoke", .outcome = "ok", .message = msg, .client = j->client};
    return at_audit_append(c, &row, NULL, d);
}

static json_t *time_or_null(at_db_stmt *st, int col)
{
    if (at_db_column_is_null(st, col))
        return json_null();
    char t[40];
    at_time_rfc3339(at_db_column_int64(st, col) / 1000, t, sizeof t);
    return json_string(t);
}

at_err at_token_list(at_db_conn *c, int64_t now_ms, json_t **out, at_diag *d)
{
    at_db_stmt *st = NULL;
    at_err rc = at_db_prepare(c,
                              "SELECT id, role, label, policies, created_ms, expires_ms,"
                              " revoked_ms FROM api_tokens ORDER BY id",
                              &st, d);
    if (rc != AT_OK)
        return rc;
    json_t *arr = json_array();
    int s;
    while ((s = at_db_step(st)) == AT_DB_ROW) {
        json_t *t = json_object();
        json_object_set_new(t, "id", json_integer(at_db_column_int64(st, 0)));
        json_object_set_new(t, "role", json_string(at_db_column_text(st, 1)));
        json_object_set_new(
            t, "label", at_db_column_is_null(st, 2) ? json_null() : json_string(at_db_column_text(st, 2)));
        json_t *pol = json_null();
        if (!at_db_column_is_null(st, 3)) {
            pol = json_array();
            const char *p = at_db_column_text(st, 3);
            for (;;) {
                size_t k = strcspn(p, ",");
                json_array_append_new(pol, json_stringn(p, k));
                if (!p[k])
                    break;
                p += k + 1;
            }
        }
        json_object_set_new(t, "policies", pol);
        json_object_set_new(t, "created_at", time_or_null(st, 4));
        json_object_set_new(t, "expires_at", time_or_null(st, 5));
        json_object_set_new(t, "revoked_at", time_or_null(st, 6));
        const char *state = !at_db_column_is_null(st, 6)                                          ? "revoked"
                            : !at_db_column_is_null(st, 5) && at_db_column_int64(st, 5) <= now_ms ? "expired"
                                                                                                  : "active";
        json_object_set_new(t, "state", json_string(state));
        json_array_append_new(arr, t);
    }
    at_db_finalize(st);
    if (s != AT_DB_DONE) {
        json_decref(arr);
        return at_fail(d, AT_E_INTERNAL, "token: %s", at_db_errmsg(c));
    }
    *out = json_pack("{s:o}", "tokens", arr);
    return AT_OK;
}

at_err at_token_read_file(const char *path, char *out, size_t cap, at_diag *d)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return at_fail(d, AT_E_IO, "%s: cannot open", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = !feof(f);
    fclose(f);
    buf[n] = '\0';
    size_t a = strspn(buf, " \t\r\n"), b = n;
    while (b > a && strchr(" \t\r\n", buf[b - 1]))
        b--;
    at_err rc = AT_OK;
    if (more || b - a >= cap)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: token longer than %zu characters", path, cap - 1);
    else if (b == a)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: no token in the file", path);
    else if (strcspn(buf + a, " \t\r\n") < b - a)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: whitespace inside the token", path);
    if (rc == AT_OK) {
        memcpy(out, buf + a, b - a);
        out[b - a] = '\0';
    }
    at_wipe(buf, sizeof buf);
    return rc;
}
