/* db_pg: the PostgreSQL engine behind lib/db.h (a postgresql:// or
 * postgres:// URL, through libpq). Statements run with PQexecParams:
 * integers as text, text as text, blobs as binary bytea; results come back
 * as text (bytea decoded on demand). Every replica's writer locks the audit
 * head row first, so write transactions, and with them the audit chain, are
 * serialised across replicas. Messages never carry the URL's password. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_engine.h"

/* pg_type OIDs (src/include/catalog/pg_type.dat): stable since 7.x. */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

typedef struct {
    at_db_conn base;
    PGconn *h;
    bool readonly;
    /* The server dropped the connection inside a transaction: it stays
     * down (every statement fails) until the transaction is ended (ROLLBACK)
     * or a new one begins, so the rest of a job can never run on a fresh
     * connection in autocommit mode (half a write, committed). */
    bool tx_broken;
    int64_t changes;
    char err[512];
} pg_conn;

typedef struct {
    at_db_stmt base;
    char *sql;
    int n; /* parameters: the largest $k in the SQL */
    const char **vals;
    int *lens, *fmts;
    unsigned int *types;
    char **owned;        /* copies (bind_*_copy, integers, cut text) */
    PGresult *res;       /* after the first step */
    int row, nrows;      /* current row */
    unsigned char **dec; /* decoded bytea of the current row, per column */
    size_t *dec_len;
    int ncols;
} pg_stmt;

static pg_conn *C(at_db_conn *c) { return (pg_conn *)c; }
static pg_stmt *S(at_db_stmt *st) { return (pg_stmt *)st; }

static void set_err(pg_conn *c, const char *what, const char *msg)
{
    snprintf(c->err, sizeof c->err, "%s%s", what, msg && *msg ? msg : "unknown error");
    size_t n = strlen(c->err);
    while (n && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
        c->err[--n] = '\0';
}

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static at_err session_settings(pg_conn *c, at_diag *d);
static void quiet(void *arg, const char *msg);

/* Whether a failed call failed at the connection level: the connection is
 * gone, or the server refused for its state (class 08 connection
 * exception; 57P01-57P03 shutdown, crash, cannot connect now). */
static bool conn_level(pg_conn *c, PGresult *r)
{
    if (!r || PQstatus(c->h) == CONNECTION_BAD)
        return true;
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st && (starts(st, "08") || starts(st, "57P0"));
}

/* After a failed call: mark the thread (503, not 500) and remember a
 * transaction the server dropped. */
static void failed(pg_conn *c, PGresult *r, bool was_in_tx)
{
    if (!conn_level(c, r))
        return;
    at_db_mark_unavailable();
    if (was_in_tx)
        c->tx_broken = true;
}

static bool in_tx(pg_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->h);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* A connection the server dropped (restart, failover) is re-opened before
 * its next use, with its session settings again; never in the middle of a
 * transaction it lost (tx_broken), only when that one ends (ROLLBACK) or a
 * new one begins. False: still down (c->err says why; the thread is
 * marked). */
static bool revive(pg_conn *c, const char *sql)
{
    if (PQstatus(c->h) != CONNECTION_BAD)
        return true;
    if (c->tx_broken && !(sql && (starts(sql, "BEGIN") || strcmp(sql, "ROLLBACK") == 0))) {
        set_err(c, "", "connection lost inside a transaction: it was rolled back");
        at_db_mark_unavailable();
        return false;
    }
    PQreset(c->h);
    if (PQstatus(c->h) != CONNECTION_OK) {
        set_err(c, "reconnect: ", PQerrorMessage(c->h));
        at_db_mark_unavailable();
        return false;
    }
    c->tx_broken = false;
    PQsetNoticeProcessor(c->h, quiet, NULL);
    if (session_settings(c, NULL) != AT_OK) {
        at_db_mark_unavailable();
        return false;
    }
    return true;
}

/* A call that failed at the connection level outside a transaction is
 * tried once more on a fresh connection when that cannot write twice: a
 * read-only connection, or a BEGIN (nothing ran yet). So the first request
 * after a server restart does not fail on every pooled connection. */
static bool retry_safe(pg_conn *c, const char *sql, PGresult *r, bool was_in_tx)
{
    return !was_in_tx && conn_level(c, r) && PQstatus(c->h) == CONNECTION_BAD &&
           (c->readonly || starts(sql, "BEGIN"));
}

static bool ok_status(PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

static at_err pg_exec(at_db_conn *base, const char *sql, at_diag *d)
{
    pg_conn *c = C(base);
    if (!revive(c, sql))
        return at_fail(d, AT_E_UNAVAILABLE, "database: %s", c->err);
    bool was_in_tx = in_tx(c);
    PGresult *r = PQexec(c->h, sql);
    if (!ok_status(r) && retry_safe(c, sql, r, was_in_tx) && revive(c, sql)) {
        PQclear(r);
        r = PQexec(c->h, sql);
    }
    if (!ok_status(r)) {
        set_err(c, "", r ? PQresultErrorMessage(r) : PQerrorMessage(c->h));
        if (!*PQresultErrorMessage(r) && PQstatus(c->h) == CONNECTION_BAD)
            set_err(c, "", PQerrorMessage(c->h));
        failed(c, r, was_in_tx);
        bool down = conn_level(c, r);
        PQclear(r);
        return at_fail(d, down ? AT_E_UNAVAILABLE : AT_E_INTERNAL, "database: %s", c->err);
    }
    PQclear(r);
    return AT_OK;
}

/* NOTICE/WARNING messages (CREATE TABLE IF NOT EXISTS, a ROLLBACK with
 * nothing open) are not errors: failures come back in results. */
static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static at_err session_settings(pg_conn *c, at_diag *d)
{
    PGresult *r =
        PQexec(c->h, c->readonly ? "SET default_transaction_read_only = on; SET client_encoding = 'UTF8'"
                                 : "SET client_encoding = 'UTF8'");
    if (!ok_status(r)) {
        set_err(c, "", r ? PQresultErrorMessage(r) : PQerrorMessage(c->h));
        PQclear(r);
        return at_fail(d, AT_E_UNAVAILABLE, "database: %s", c->err);
    }
    PQclear(r);
    return AT_OK;
}

static at_err pg_open(const char *target, const char *redacted, bool readonly, at_db_conn **out, at_diag *d)
{
    pg_conn *c = calloc(1, sizeof *c);
    if (!c)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    c->base.eng = &at_db_engine_pg;
    c->h = PQconnectdb(target);
    if (!c->h || PQstatus(c->h) != CONNECTION_OK) {
        /* libpq's message names host and user, never the password. */
        set_err(c, "", c->h ? PQerrorMessage(c->h) : "out of memory");
        at_err rc = at_fail(d, AT_E_IO, "database %s: %s", redacted, c->err);
        PQfinish(c->h);
        free(c);
        return rc;
    }
    PQsetNoticeProcessor(c->h, quiet, NULL);
    c->readonly = readonly;
    at_err rc = session_settings(c, d);
    if (rc != AT_OK) {
        PQfinish(c->h);
        free(c);
        return rc;
    }
    *out = &c->base;
    return AT_OK;
}

static void pg_close(at_db_conn *base)
{
    if (!base)
        return;
    PQfinish(C(base)->h);
    free(base);
}

static at_err show(pg_conn *c, const char *name, char *out, size_t n, const char *redacted, at_diag *d)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SHOW %s", name);
    PGresult *r = PQexec(c->h, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        set_err(c, "", PQresultErrorMessage(r));
        PQclear(r);
        return at_fail(d, AT_E_IO, "database %s: SHOW %s: %s", redacted, name, c->err);
    }
    snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return AT_OK;
}

/* Read back what the server does with a commit: synchronous_commit off
 * acknowledges before the WAL is flushed, fsync off never flushes. Either
 * would acknowledge what a crash loses. Fail closed. */
static at_err pg_durability(at_db_conn *base, const char *redacted, at_db_durability *dur, at_diag *d)
{
    pg_conn *c = C(base);
    char sc[32], fs[32];
    at_err rc = show(c, "synchronous_commit", sc, sizeof sc, redacted, d);
    if (rc == AT_OK)
        rc = show(c, "fsync", fs, sizeof fs, redacted, d);
    if (rc != AT_OK)
        return rc;
    if (strcmp(sc, "on") != 0 && strcmp(sc, "remote_apply") != 0 && strcmp(sc, "remote_write") != 0 &&
        strcmp(sc, "local") != 0)
        return at_fail(d, AT_E_IO, "database %s: synchronous_commit is %s, expected on", redacted, sc);
    if (strcmp(fs, "on") != 0)
        return at_fail(d, AT_E_IO, "database %s: fsync is %s, expected on", redacted, fs);
    snprintf(dur->journal_mode, sizeof dur->journal_mode, "wal");
    dur->synchronous = 2;
    return AT_OK;
}

/* The largest $k outside quoted strings and identifiers. */
static int count_params(const char *sql)
{
    int max = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
            continue;
        }
        if (*p == '\'' || *p == '"') {
            quote = *p;
            continue;
        }
        if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
            int k = (int)strtol(p + 1, NULL, 10);
            max = k > max ? k : max;
        }
    }
    return max;
}

static void clear_result(pg_stmt *s)
{
    for (int i = 0; s->dec && i < s->ncols; i++) {
        PQfreemem(s->dec[i]);
        s->dec[i] = NULL;
    }
    free(s->dec);
    free(s->dec_len);
    s->dec = NULL;
    s->dec_len = NULL;
    s->ncols = 0;
    PQclear(s->res);
    s->res = NULL;
    s->row = s->nrows = 0;
}

static void clear_bindings(pg_stmt *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->owned[i]);
        s->owned[i] = NULL;
        s->vals[i] = NULL;
        s->lens[i] = 0;
        s->fmts[i] = 0;
        s->types[i] = 0;
    }
}

static at_err pg_prepare(at_db_conn *c, const char *sql, bool persistent, at_db_stmt **out, at_diag *d)
{
    (void)persistent; /* PQexecParams: nothing to keep on the server */
    pg_stmt *s = calloc(1, sizeof *s);
    if (!s)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    s->base.conn = c;
    s->n = count_params(sql);
    size_t n = (size_t)s->n + 1;
    s->sql = strdup(sql);
    s->vals = calloc(n, sizeof *s->vals);
    s->lens = calloc(n, sizeof *s->lens);
    s->fmts = calloc(n, sizeof *s->fmts);
    s->types = calloc(n, sizeof *s->types);
    s->owned = calloc(n, sizeof *s->owned);
    if (!s->sql || !s->vals || !s->lens || !s->fmts || !s->types || !s->owned) {
        free(s->sql);
        free(s->vals);
        free(s->lens);
        free(s->fmts);
        free(s->types);
        free(s->owned);
        free(s);
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    }
    *out = &s->base;
    return AT_OK;
}

static void pg_finalize(at_db_stmt *st)
{
    pg_stmt *s = S(st);
    clear_result(s);
    clear_bindings(s);
    free(s->sql);
    free(s->vals);
    free(s->lens);
    free(s->fmts);
    free(s->types);
    free(s->owned);
    free(s);
}

static void pg_reset(at_db_stmt *st)
{
    clear_result(S(st));
    clear_bindings(S(st));
}

/* Parameter slot of $i, or -1 (ignored, as SQLite ignores a range error). */
static int slot(pg_stmt *s, int i)
{
    if (i < 1 || i > s->n)
        return -1;
    free(s->owned[i - 1]);
    s->owned[i - 1] = NULL;
    return i - 1;
}

static void pg_bind_int64(at_db_stmt *st, int i, int64_t v)
{
    pg_stmt *s = S(st);
    int k = slot(s, i);
    if (k < 0 || !(s->owned[k] = malloc(24)))
        return;
    snprintf(s->owned[k], 24, "%lld", (long long)v);
    s->vals[k] = s->owned[k];
    s->fmts[k] = 0;
    s->types[k] = OID_INT8;
}

static void pg_bind_text(at_db_stmt *st, int i, const char *v, int len, bool copy)
{
    pg_stmt *s = S(st);
    int k = slot(s, i);
    if (k < 0)
        return;
    /* Text parameters are NUL-terminated: a length shorter than the
     * string, or a copy, needs our own buffer. */
    if (v && (copy || len >= 0)) {
        size_t n = len >= 0 ? (size_t)len : strlen(v);
        if (!(s->owned[k] = malloc(n + 1)))
            return;
        memcpy(s->owned[k], v, n);
        s->owned[k][n] = '\0';
        v = s->owned[k];
    }
    s->vals[k] = v;
    s->fmts[k] = 0;
    s->types[k] = v ? OID_TEXT : 0;
}

static void pg_bind_blob(at_db_stmt *st, int i, const void *p, size_t len, bool copy)
{
    pg_stmt *s = S(st);
    int k = slot(s, i);
    if (k < 0)
        return;
    if (copy) {
        if (!(s->owned[k] = malloc(len ? len : 1)))
            return;
        if (len)
            memcpy(s->owned[k], p, len);
        p = s->owned[k];
    }
    s->vals[k] = p ? p : "";
    s->lens[k] = (int)len;
    s->fmts[k] = 1;
    s->types[k] = OID_BYTEA;
}

static void pg_bind_null(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    int k = slot(s, i);
    if (k < 0)
        return;
    s->vals[k] = NULL;
    s->types[k] = 0;
}

static int pg_step(at_db_stmt *st)
{
    pg_stmt *s = S(st);
    pg_conn *c = C(st->conn);
    if (s->res) {
        for (int i = 0; s->dec && i < s->ncols; i++) {
            PQfreemem(s->dec[i]);
            s->dec[i] = NULL;
        }
        if (s->row + 1 < s->nrows) {
            s->row++;
            return AT_DB_ROW;
        }
        s->row = s->nrows;
        return AT_DB_DONE;
    }
    if (!revive(c, s->sql))
        return AT_DB_ERROR;
    bool was_in_tx = in_tx(c);
    PGresult *r = PQexecParams(c->h, s->sql, s->n, (const Oid *)s->types, s->vals, s->lens, s->fmts, 0);
    if (!ok_status(r) && retry_safe(c, s->sql, r, was_in_tx) && revive(c, s->sql)) {
        PQclear(r);
        r = PQexecParams(c->h, s->sql, s->n, (const Oid *)s->types, s->vals, s->lens, s->fmts, 0);
    }
    ExecStatusType es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        failed(c, r, was_in_tx);
        /* Class 23: integrity constraint violation. Read before PQclear:
         * the field lives in the result. */
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        int ret = state && strncmp(state, "23", 2) == 0 ? AT_DB_CONSTRAINT : AT_DB_ERROR;
        set_err(c, "", r ? PQresultErrorMessage(r) : PQerrorMessage(c->h));
        PQclear(r);
        return ret;
    }
    const char *ct = PQcmdTuples(r);
    c->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
    s->res = r;
    s->nrows = es == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    s->ncols = PQnfields(r);
    s->dec = s->ncols ? calloc((size_t)s->ncols, sizeof *s->dec) : NULL;
    s->dec_len = s->ncols ? calloc((size_t)s->ncols, sizeof *s->dec_len) : NULL;
    s->row = 0;
    return s->nrows > 0 ? AT_DB_ROW : AT_DB_DONE;
}

static bool has_col(pg_stmt *s, int i) { return s->res && s->row < s->nrows && i >= 0 && i < s->ncols; }

static bool pg_is_null(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    return !has_col(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t pg_col_int64(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    if (pg_is_null(st, i))
        return 0;
    const char *v = PQgetvalue(s->res, s->row, i);
    if (v[0] == 't' || v[0] == 'f') /* a boolean expression */
        return v[0] == 't';
    return strtoll(v, NULL, 10);
}

static const char *pg_text(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    return pg_is_null(st, i) ? NULL : PQgetvalue(s->res, s->row, i);
}

/* bytea comes back as text ("\x…"): decode once per row and column. */
static bool decode(pg_stmt *s, int i)
{
    if (PQftype(s->res, i) != OID_BYTEA)
        return false;
    if (!s->dec[i])
        s->dec[i] = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, i), &s->dec_len[i]);
    return true;
}

static const void *pg_blob(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    if (pg_is_null(st, i))
        return NULL;
    if (decode(s, i))
        return s->dec[i];
    return PQgetvalue(s->res, s->row, i);
}

static int pg_bytes(at_db_stmt *st, int i)
{
    pg_stmt *s = S(st);
    if (pg_is_null(st, i))
        return 0;
    if (decode(s, i))
        return s->dec[i] ? (int)s->dec_len[i] : 0;
    return PQgetlength(s->res, s->row, i);
}

static int64_t pg_changes(at_db_conn *c) { return C(c)->changes; }
static const char *pg_errmsg(at_db_conn *c) { return C(c)->err[0] ? C(c)->err : PQerrorMessage(C(c)->h); }
static bool pg_tx_lost(at_db_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(C(c)->h);
    return t == PQTRANS_IDLE || t == PQTRANS_UNKNOWN;
}
static bool pg_tx_failed(at_db_conn *c) { return PQtransactionStatus(C(c)->h) == PQTRANS_INERROR; }

static at_err pg_snapshot_begin(at_db_conn *c, bool *began, at_diag *d)
{
    if (!revive(C(c), NULL))
        return at_fail(d, AT_E_UNAVAILABLE, "database: %s", C(c)->err);
    if (PQtransactionStatus(C(c)->h) != PQTRANS_IDLE)
        return AT_OK; /* inside the writer's transaction: its view */
    at_err rc = pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", d);
    *began = rc == AT_OK;
    return rc;
}

static at_err pg_snapshot_end(at_db_conn *c, bool began, at_diag *d)
{
    if (!began)
        return AT_OK;
    if (PQtransactionStatus(C(c)->h) == PQTRANS_INERROR)
        return pg_exec(c, "ROLLBACK", d);
    return pg_exec(c, "COMMIT", d);
}

const struct at_db_engine at_db_engine_pg = {
    .name = "postgresql",
    .migrations = at_db_migrations_pg,
    .begin_sql = "BEGIN",
    /* Every write transaction of every replica starts by locking the audit
     * head row (created by schema/pg/0001): one writer at a time across
     * replicas, as SQLite's BEGIN IMMEDIATE is within one. */
    .writer_begin_sql = "BEGIN; SELECT 1 FROM audit_head WHERE one = 1 FOR UPDATE",
    .open = pg_open,
    .close = pg_close,
    .durability = pg_durability,
    /* Replicas starting at once apply each migration once. */
    .migrate_lock_sql = "SELECT pg_advisory_xact_lock(7274733)",
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .column_is_null = pg_is_null,
    .column_int64 = pg_col_int64,
    .column_text = pg_text,
    .column_blob = pg_blob,
    .column_bytes = pg_bytes,
    .changes = pg_changes,
    .errmsg = pg_errmsg,
    .tx_lost = pg_tx_lost,
    .tx_failed = pg_tx_failed,
    .snapshot_begin = pg_snapshot_begin,
    .snapshot_end = pg_snapshot_end,
};
