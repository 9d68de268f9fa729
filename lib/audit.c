/* audit: hash-chained rows. Row contents come from requests (client
 * addresses, messages): they are only ever bound as SQL parameters and
 * hashed, never interpreted. */
#include "audit.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "enc.h"

const char *const at_audit_actions[] = {"attestation.create", "audit.query",
                                        "audit.verify",       "challenge",
                                        "http.body",          "key.create",
                                        "key.rotate",         "policy.get",
                                        "policy.put",         "policy.revoke",
                                        "refusal.aggregate",  "secret.put",
                                        "secret.release",     "session.expire",
                                        "session.list",       "session.revoke",
                                        "token.create",       "token.list",
                                        "token.revoke",       "verify",
                                        "verify.aggregate",   NULL};

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

/* The fields a hash covers, canonical (sorted keys, compact). */
static char *canonical(int64_t id, const at_audit_row *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "time_ms", json_integer(r->time_ms));
    set_str(o, "actor", r->actor);
    set_str(o, "action", r->action);
    set_str(o, "outcome", r->outcome);
    set_str(o, "code", r->code);
    set_str(o, "message", r->message);
    set_str(o, "policy", r->policy);
    set_str(o, "instance_id", r->instance_id);
    set_str(o, "session_id", r->session_id);
    set_str(o, "pcr_sha256", r->pcr_sha256);
    set_str(o, "evidence_sha256", r->evidence_sha256);
    set_str(o, "client", r->client);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static bool chain_hash(const char *prev_hex, const char *row_json, char out[65])
{
    uint8_t h[32];
    unsigned int n = 32;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(c, prev_hex, strlen(prev_hex)) == 1 && EVP_DigestUpdate(c, "\n", 1) == 1 &&
              EVP_DigestUpdate(c, row_json, strlen(row_json)) == 1 && EVP_DigestFinal_ex(c, h, &n) == 1;
    EVP_MD_CTX_free(c);
    if (ok)
        at_hex_encode(h, 32, out);
    return ok;
}

static void bind_opt(at_db_stmt *st, int i, const char *v)
{
    if (v)
        at_db_bind_text_copy(st, i, v, -1);
    else
        at_db_bind_null(st, i);
}

/* Fields that are not valid UTF-8 (a request's bytes, or a "%.50s" that
 * cut a character) would be left out of the canonical JSON, i.e. stored
 * but not covered by the hash: store and hash a sanitized copy instead. */
#define N_TEXT_FIELDS 11
static bool sanitize_row(at_audit_row *r, char *copies[N_TEXT_FIELDS])
{
    const char **f[N_TEXT_FIELDS] = {&r->actor,      &r->action,          &r->outcome,     &r->code,
                                     &r->message,    &r->policy,          &r->instance_id, &r->session_id,
                                     &r->pcr_sha256, &r->evidence_sha256, &r->client};
    for (int i = 0; i < N_TEXT_FIELDS; i++) {
        copies[i] = NULL;
        const char *v = *f[i];
        if (!v)
            continue;
        size_t k = 0, n;
        while (v[k] && (n = at_utf8_seq_len(v + k)) > 0)
            k += n;
        if (!v[k])
            continue;
        if (!(copies[i] = at_utf8_sanitize_new(v)))
            return false;
        *f[i] = copies[i];
    }
    return true;
}

at_err at_audit_append(at_db_conn *conn, const at_audit_row *in, int64_t *id_out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    char *json = NULL, *copies[N_TEXT_FIELDS] = {0};
    char prev[65] = AT_AUDIT_GENESIS, hash[65];
    int64_t last_id = 0;
    at_audit_row r = *in;
    if (!r.time_ms)
        r.time_ms = at_wall_ms();
    AT_ENSURE(sanitize_row(&r, copies), d, AT_E_INTERNAL, "out of memory");
    /* The head row locked until commit: appends from every replica form one
     * chain. SQLite has no FOR UPDATE and needs none (one writer). */
    AT_TRY(at_db_stmt_get(conn,
                          at_db_conn_is_pg(conn)
                              ? "SELECT last_id, hash FROM audit_head WHERE one = 1 FOR UPDATE"
                              : "SELECT last_id, hash FROM audit_head WHERE one = 1",
                          &st, d));
    int s = at_db_step(st);
    if (s == AT_DB_ROW) {
        last_id = at_db_column_int64(st, 0);
        const char *h = at_db_column_text(st, 1);
        AT_ENSURE(h && strlen((const char *)h) == 64, d, AT_E_INTERNAL, "audit: corrupt head");
        memcpy(prev, h, 65);
    } else {
        AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    }
    at_db_reset(st);
    st = NULL;
    int64_t id = last_id + 1;
    AT_ENSURE((json = canonical(id, &r)) && chain_hash(prev, json, hash), d, AT_E_INTERNAL,
              "audit: hashing failed");
    AT_TRY(at_db_stmt_get(conn,
                          "INSERT INTO audit (id, time_ms, actor, action, outcome, code, message,"
                          " policy, instance_id, session_id, pcr_sha256, evidence_sha256, client,"
                          " prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
                          &st, d));
    at_db_bind_int64(st, 1, id);
    at_db_bind_int64(st, 2, r.time_ms);
    bind_opt(st, 3, r.actor ? r.actor : "anonymous");
    bind_opt(st, 4, r.action);
    bind_opt(st, 5, r.outcome);
    bind_opt(st, 6, r.code);
    bind_opt(st, 7, r.message);
    bind_opt(st, 8, r.policy);
    bind_opt(st, 9, r.instance_id);
    bind_opt(st, 10, r.session_id);
    bind_opt(st, 11, r.pcr_sha256);
    bind_opt(st, 12, r.evidence_sha256);
    bind_opt(st, 13, r.client);
    bind_opt(st, 14, prev);
    bind_opt(st, 15, hash);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    at_db_reset(st);
    st = NULL;
    AT_TRY(at_db_stmt_get(conn,
                          "INSERT INTO audit_head (one, last_id, hash) VALUES (1, $1, $2)"
                          " ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id,"
                          " hash = excluded.hash",
                          &st, d));
    at_db_bind_int64(st, 1, id);
    bind_opt(st, 2, hash);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    if (id_out)
        *id_out = id;
    rc = AT_OK;
out:
    if (st)
        at_db_reset(st);
    free(json);
    for (int i = 0; i < N_TEXT_FIELDS; i++)
        free(copies[i]);
    return rc;
}

static const char *col(at_db_stmt *st, int i) { return at_db_column_text(st, i); }

#define AUDIT_COLUMNS                                                                      \
    "id, time_ms, actor, action, outcome, code, message, policy, instance_id, session_id," \
    " pcr_sha256, evidence_sha256, client, prev_hash, hash"

static void row_from(at_db_stmt *st, at_audit_row *r)
{
    r->time_ms = at_db_column_int64(st, 1);
    r->actor = col(st, 2);
    r->action = col(st, 3);
    r->outcome = col(st, 4);
    r->code = col(st, 5);
    r->message = col(st, 6);
    r->policy = col(st, 7);
    r->instance_id = col(st, 8);
    r->session_id = col(st, 9);
    r->pcr_sha256 = col(st, 10);
    r->evidence_sha256 = col(st, 11);
    r->client = col(st, 12);
}

at_err at_audit_verify(at_db_conn *conn, at_audit_check *out, at_diag *d)
{
    return at_audit_verify_from(conn, 0, NULL, out, d);
}

at_err at_audit_verify_from(at_db_conn *conn, int64_t from_id, const char *from_hash, at_audit_check *out,
                            at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    at_audit_check c = {.ok = true, .from_id = from_id > 0 ? from_id : 0};
    char prev[65] = AT_AUDIT_GENESIS;
    int64_t expect_id = c.from_id + 1;
    bool in_snapshot = false;
    AT_ENSURE(c.from_id == 0 || (from_hash && strlen(from_hash) == 64), d, AT_E_INTERNAL,
              "audit: checkpoint without a hash");
    /* One snapshot for the rows and the head: read in two statements
     * outside a transaction, a row appended between them would look like
     * a removed tail. A savepoint works inside a caller's transaction too. */
    AT_TRY(at_db_snapshot_begin(conn, &in_snapshot, d));
    if (c.from_id) {
        /* The checkpoint is trusted only while its row still carries the
         * hash that was verified, and its contents (over its stored
         * prev_hash) still hash to it. */
        AT_TRY(at_db_prepare(conn, "SELECT " AUDIT_COLUMNS " FROM audit WHERE id = $1", &st, d));
        at_db_bind_int64(st, 1, c.from_id);
        int s0 = at_db_step(st);
        AT_ENSURE(s0 == AT_DB_ROW || s0 == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
        const char *why = NULL;
        if (s0 == AT_DB_DONE) {
            why = "it was removed";
        } else {
            at_audit_row r;
            row_from(st, &r);
            const char *prev_col = col(st, 13), *hash_col = col(st, 14);
            char *json = canonical(c.from_id, &r);
            char h[65];
            bool hashed = json && prev_col && chain_hash(prev_col, json, h);
            free(json);
            if (!hash_col || strcmp(hash_col, from_hash) != 0)
                why = "its hash changed";
            else if (!hashed || strcmp(h, from_hash) != 0)
                why = "its contents changed";
        }
        if (why) {
            c.ok = false;
            c.first_bad = c.from_id;
            snprintf(c.reason, sizeof c.reason, "row %lld (the checkpoint): %s since it was verified",
                     (long long)c.from_id, why);
        }
        at_db_finalize(st);
        st = NULL;
        snprintf(prev, sizeof prev, "%s", from_hash);
    }
    AT_TRY(at_db_prepare(conn, "SELECT " AUDIT_COLUMNS " FROM audit WHERE id > $1 ORDER BY id", &st, d));
    at_db_bind_int64(st, 1, c.from_id);
    int s;
    while ((s = at_db_step(st)) == AT_DB_ROW) {
        int64_t id = at_db_column_int64(st, 0);
        at_audit_row r;
        row_from(st, &r);
        const char *prev_col = col(st, 13), *hash_col = col(st, 14);
        char *json = canonical(id, &r);
        char h[65];
        bool hashed = json && chain_hash(prev, json, h);
        free(json);
        AT_ENSURE(hashed, d, AT_E_INTERNAL, "audit: hashing failed");
        c.checked++;
        if (c.ok) {
            const char *why = NULL;
            if (id != expect_id)
                why = "a row is missing before this one";
            else if (!prev_col || strcmp(prev_col, prev) != 0)
                why = "prev_hash does not match the previous row";
            else if (!hash_col || strcmp(hash_col, h) != 0)
                why = "hash does not match the row's contents";
            if (why) {
                c.ok = false;
                c.first_bad = id;
                snprintf(c.reason, sizeof c.reason, "row %lld: %s", (long long)id, why);
            }
        }
        /* Continue from the stored hash so one edit names one row. */
        snprintf(prev, sizeof prev, "%s", hash_col ? hash_col : "");
        expect_id = id + 1;
    }
    AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    at_db_finalize(st);
    st = NULL;
    /* The head must name the last row: catches a deleted tail. */
    AT_TRY(at_db_prepare(conn, "SELECT last_id, hash FROM audit_head WHERE one = 1", &st, d));
    s = at_db_step(st);
    int64_t head_id = s == AT_DB_ROW ? at_db_column_int64(st, 0) : 0;
    const char *head_hash = s == AT_DB_ROW ? col(st, 1) : AT_AUDIT_GENESIS;
    if (c.ok && (head_id != expect_id - 1 || !head_hash || strcmp(head_hash, prev) != 0)) {
        c.ok = false;
        c.first_bad = head_id > expect_id - 1 ? expect_id : head_id;
        snprintf(c.reason, sizeof c.reason,
                 "the log ends at row %lld but its head records row %lld: rows were removed",
                 (long long)(expect_id - 1), (long long)head_id);
    }
    c.head_id = expect_id - 1;
    c.entries = c.from_id + c.checked;
    snprintf(c.head_hash, sizeof c.head_hash, "%s", prev);
    *out = c;
    rc = AT_OK;
out:
    at_db_finalize(st);
    if (at_db_snapshot_end(conn, in_snapshot, NULL) != AT_OK)
        rc = at_fail(d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    return rc;
}

at_err at_audit_checkpoint_get(at_db_conn *conn, int64_t *id, char hash[65], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    AT_TRY(at_db_prepare(conn, "SELECT id, hash FROM audit_checkpoint WHERE one = 1", &st, d));
    int s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    *id = 0;
    hash[0] = '\0';
    if (s == AT_DB_ROW) {
        const char *h = col(st, 1);
        AT_ENSURE(h && strlen(h) == 64 && at_db_column_int64(st, 0) > 0, d, AT_E_INTERNAL,
                  "audit: corrupt checkpoint");
        *id = at_db_column_int64(st, 0);
        memcpy(hash, h, 65);
    }
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

at_err at_audit_checkpoint_set(at_db_conn *conn, int64_t id, const char *hash, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    AT_TRY(at_db_prepare(conn,
                         "INSERT INTO audit_checkpoint (one, id, hash, verified_ms) VALUES (1, $1, $2, $3)"
                         " ON CONFLICT (one) DO UPDATE SET id = excluded.id, hash = excluded.hash,"
                         " verified_ms = excluded.verified_ms",
                         &st, d));
    at_db_bind_int64(st, 1, id);
    bind_opt(st, 2, hash);
    at_db_bind_int64(st, 3, at_wall_ms());
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

at_err at_audit_query(at_db_conn *conn, const at_audit_filter *f, json_t *entries, int64_t *next_cursor,
                      at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    int limit = f->limit > 0 && f->limit <= 1000 ? f->limit : 100;
    /* CAST: PostgreSQL types a parameter where it first appears, and
     * "$4 IS NULL" alone says nothing (a NULL is sent untyped). */
    AT_TRY(at_db_prepare(
        conn,
        "SELECT " AUDIT_COLUMNS " FROM audit WHERE id > $1"
        " AND ($2 = 0 OR time_ms >= $2) AND ($3 = 0 OR time_ms <= $3)"
        " AND (CAST($4 AS TEXT) IS NULL OR outcome = $4) AND (CAST($5 AS TEXT) IS NULL OR action = $5)"
        " AND (CAST($6 AS TEXT) IS NULL OR policy = $6"
        "      OR substr(policy, 1, length(CAST($6 AS TEXT)) + 1) = CAST($6 AS TEXT) || '@')"
        " AND (CAST($7 AS TEXT) IS NULL OR instance_id = $7)"
        " AND (CAST($9 AS TEXT) IS NULL OR actor = $9) AND (CAST($10 AS TEXT) IS NULL OR code = $10)"
        " ORDER BY id LIMIT $8",
        &st, d));
    at_db_bind_int64(st, 1, f->after_id);
    at_db_bind_int64(st, 2, f->since_ms);
    at_db_bind_int64(st, 3, f->until_ms);
    bind_opt(st, 4, f->outcome);
    bind_opt(st, 5, f->action);
    bind_opt(st, 6, f->policy);
    bind_opt(st, 7, f->instance_id);
    at_db_bind_int64(st, 8, limit + 1);
    bind_opt(st, 9, f->actor);
    bind_opt(st, 10, f->code);
    int s, n = 0;
    int64_t last = 0;
    *next_cursor = 0;
    while ((s = at_db_step(st)) == AT_DB_ROW) {
        if (n == limit) {
            *next_cursor = last;
            break;
        }
        json_t *o = json_object();
        int64_t id = at_db_column_int64(st, 0);
        int64_t t = at_db_column_int64(st, 1);
        char ts[40];
        at_time_rfc3339_ms(t, ts, sizeof ts);
        json_object_set_new(o, "id", json_integer(id));
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "time_ms", json_integer(t));
        static const char *names[] = {NULL,          NULL,         "actor",      "action",
                                      "outcome",     "code",       "message",    "policy",
                                      "instance_id", "session_id", "pcr_sha256", "evidence_sha256",
                                      "client",      "prev_hash",  "hash"};
        for (int i = 2; i <= 14; i++)
            set_str(o, names[i], col(st, i));
        json_array_append_new(entries, o);
        last = id;
        n++;
    }
    AT_ENSURE(s == AT_DB_DONE || s == AT_DB_ROW, d, AT_E_INTERNAL, "audit: %s", at_db_errmsg(conn));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}
