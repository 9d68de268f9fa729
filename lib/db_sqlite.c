/* db_sqlite: the SQLite engine behind lib/db.h (a file path). WAL with
 * synchronous=FULL, read back at open. $1..$N placeholders are SQLite named
 * parameters: each statement maps $k to its parameter index once. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_engine.h"

typedef struct {
    at_db_conn base;
    sqlite3 *h;
    bool readonly;
} lite_conn;

typedef struct {
    at_db_stmt base;
    sqlite3_stmt *st;
    int n_map;
    int map[]; /* $k -> parameter index, 0 when absent */
} lite_stmt;

static sqlite3 *H(at_db_conn *c) { return ((lite_conn *)c)->h; }

static at_err lite_exec(at_db_conn *c, const char *sql, at_diag *d)
{
    char *err = NULL;
    if (sqlite3_exec(H(c), sql, NULL, NULL, &err) != SQLITE_OK) {
        at_err rc = at_fail(d, AT_E_INTERNAL, "database: %s", err ? err : sqlite3_errmsg(H(c)));
        sqlite3_free(err);
        return rc;
    }
    return AT_OK;
}

static at_err lite_open(const char *path, const char *redacted, bool readonly, at_db_conn **out, at_diag *d)
{
    sqlite3 *h = NULL;
    int flags =
        (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &h, flags, NULL) != SQLITE_OK) {
        at_err rc = at_fail(d, AT_E_IO, "database %s: %s", redacted, h ? sqlite3_errmsg(h) : "cannot open");
        sqlite3_close(h);
        return rc;
    }
    sqlite3_busy_timeout(h, 10000);
    sqlite3_extended_result_codes(h, 1);
    lite_conn *c = calloc(1, sizeof *c);
    if (!c) {
        sqlite3_close(h);
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    }
    c->base.eng = &at_db_engine_sqlite;
    c->h = h;
    c->readonly = readonly;
    at_err rc = lite_exec(&c->base,
                          readonly ? "PRAGMA foreign_keys=ON;"
                                   : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     " PRAGMA foreign_keys=ON;",
                          d);
    if (rc != AT_OK) {
        sqlite3_close(h);
        free(c);
        return rc;
    }
    *out = &c->base;
    return AT_OK;
}

static void lite_close(at_db_conn *base)
{
    lite_conn *c = (lite_conn *)base;
    if (!c)
        return;
    /* Fold the WAL back into the main file on a clean shutdown. */
    if (!c->readonly)
        (void)sqlite3_exec(c->h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(c->h);
    free(c);
}

/* Read back what the write connection really does: a journal mode SQLite
 * could not switch (some file systems refuse WAL) or a lower synchronous
 * level would acknowledge writes that a power cut loses. Fail closed. */
static at_err lite_durability(at_db_conn *c, const char *redacted, at_db_durability *dur, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    sqlite3_stmt *st = NULL;
    AT_ENSURE(sqlite3_prepare_v2(H(c), "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0),
              d, AT_E_IO, "database %s: PRAGMA journal_mode: %s", redacted, sqlite3_errmsg(H(c)));
    snprintf(dur->journal_mode, sizeof dur->journal_mode, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    AT_ENSURE(sqlite3_prepare_v2(H(c), "PRAGMA synchronous", -1, &st, NULL) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW,
              d, AT_E_IO, "database %s: PRAGMA synchronous: %s", redacted, sqlite3_errmsg(H(c)));
    dur->synchronous = sqlite3_column_int(st, 0);
    AT_ENSURE(strcmp(dur->journal_mode, "wal") == 0, d, AT_E_IO,
              "database %s: journal_mode is %s, expected wal", redacted, dur->journal_mode);
    AT_ENSURE(dur->synchronous == 2, d, AT_E_IO, "database %s: synchronous is %d, expected 2 (FULL)",
              redacted, dur->synchronous);
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

static at_err lite_prepare(at_db_conn *c, const char *sql, bool persistent, at_db_stmt **out, at_diag *d)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(H(c), sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) != SQLITE_OK)
        return at_fail(d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(H(c)));
    int n = sqlite3_bind_parameter_count(st), max = 0;
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        int k = name && name[0] == '$' ? atoi(name + 1) : 0;
        max = k > max ? k : max;
    }
    lite_stmt *s = calloc(1, sizeof *s + (size_t)(max + 1) * sizeof(int));
    if (!s) {
        sqlite3_finalize(st);
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    }
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        int k = name && name[0] == '$' ? atoi(name + 1) : 0;
        if (k > 0)
            s->map[k] = i;
    }
    s->n_map = max;
    s->base.conn = c;
    s->st = st;
    *out = &s->base;
    return AT_OK;
}

static sqlite3_stmt *S(at_db_stmt *st) { return ((lite_stmt *)st)->st; }
static int P(at_db_stmt *st, int k)
{
    lite_stmt *s = (lite_stmt *)st;
    return k > 0 && k <= s->n_map ? s->map[k] : 0;
}

static void lite_finalize(at_db_stmt *st)
{
    sqlite3_finalize(S(st));
    free(st);
}
static void lite_reset(at_db_stmt *st)
{
    sqlite3_reset(S(st));
    sqlite3_clear_bindings(S(st));
}
static void lite_bind_int64(at_db_stmt *st, int i, int64_t v) { sqlite3_bind_int64(S(st), P(st, i), v); }
static void lite_bind_text(at_db_stmt *st, int i, const char *v, int len, bool copy)
{
    sqlite3_bind_text(S(st), P(st, i), v, len, copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
}
static void lite_bind_blob(at_db_stmt *st, int i, const void *p, size_t len, bool copy)
{
    sqlite3_bind_blob64(S(st), P(st, i), p, len, copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
}
static void lite_bind_null(at_db_stmt *st, int i) { sqlite3_bind_null(S(st), P(st, i)); }
static int lite_step(at_db_stmt *st)
{
    int s = sqlite3_step(S(st));
    if (s == SQLITE_ROW)
        return AT_DB_ROW;
    if (s == SQLITE_DONE)
        return AT_DB_DONE;
    if ((s & 0xff) == SQLITE_CONSTRAINT)
        return AT_DB_CONSTRAINT;
    return AT_DB_ERROR;
}
static bool lite_is_null(at_db_stmt *st, int i) { return sqlite3_column_type(S(st), i) == SQLITE_NULL; }
static int64_t lite_int64(at_db_stmt *st, int i) { return sqlite3_column_int64(S(st), i); }
static const char *lite_text(at_db_stmt *st, int i) { return (const char *)sqlite3_column_text(S(st), i); }
static const void *lite_blob(at_db_stmt *st, int i) { return sqlite3_column_blob(S(st), i); }
static int lite_bytes(at_db_stmt *st, int i) { return sqlite3_column_bytes(S(st), i); }
static int64_t lite_changes(at_db_conn *c) { return sqlite3_changes(H(c)); }
static const char *lite_errmsg(at_db_conn *c) { return sqlite3_errmsg(H(c)); }
/* SQLite rolls the whole transaction back by itself on some errors
 * (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). */
static bool lite_tx_lost(at_db_conn *c) { return sqlite3_get_autocommit(H(c)) != 0; }
static bool lite_tx_failed(at_db_conn *c)
{
    (void)c;
    return false;
}
/* A savepoint starts a read transaction outside one and nests inside one. */
static at_err lite_snapshot_begin(at_db_conn *c, bool *began, at_diag *d)
{
    at_err rc = lite_exec(c, "SAVEPOINT db_snapshot", d);
    *began = rc == AT_OK;
    return rc;
}
static at_err lite_snapshot_end(at_db_conn *c, bool began, at_diag *d)
{
    return began ? lite_exec(c, "RELEASE db_snapshot", d) : AT_OK;
}

const struct at_db_engine at_db_engine_sqlite = {
    .name = "sqlite",
    .migrations = at_db_migrations,
    .begin_sql = "BEGIN IMMEDIATE",
    .writer_begin_sql = "BEGIN IMMEDIATE",
    .open = lite_open,
    .close = lite_close,
    .durability = lite_durability,
    .migrate_lock_sql = NULL,
    .exec = lite_exec,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .reset = lite_reset,
    .bind_int64 = lite_bind_int64,
    .bind_text = lite_bind_text,
    .bind_blob = lite_bind_blob,
    .bind_null = lite_bind_null,
    .step = lite_step,
    .column_is_null = lite_is_null,
    .column_int64 = lite_int64,
    .column_text = lite_text,
    .column_blob = lite_blob,
    .column_bytes = lite_bytes,
    .changes = lite_changes,
    .errmsg = lite_errmsg,
    .tx_lost = lite_tx_lost,
    .tx_failed = lite_tx_failed,
    .snapshot_begin = lite_snapshot_begin,
    .snapshot_end = lite_snapshot_end,
};
