/* db: SQLite connections, migrations and the group-committing writer. The
 * database is trusted storage; SQL never contains request data except
 * through bound parameters. */
#include "db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

#define READ_POOL_MAX 32
#define BATCH_MAX 512

struct job {
    at_db_write_fn fn;
    void *ctx;
    at_diag *d;
    at_err rc;
    bool done;
    pthread_cond_t cond; /* its own: a commit wakes exactly its waiters */
    struct job *next;
};

struct at_db {
    char *path;
    sqlite3 *wconn;
    int version;
    at_db_durability durability; /* read back from wconn at open */

    pthread_mutex_t lock;
    pthread_cond_t queued;
    struct job *head, *tail;
    bool stopping;
    pthread_t writer;
    bool writer_started;
    at_db_stats stats;

    pthread_mutex_t pool_lock;
    sqlite3 *pool[READ_POOL_MAX];
    size_t n_pool;
};

at_err at_db_exec(sqlite3 *conn, const char *sql, at_diag *d)
{
    char *err = NULL;
    if (sqlite3_exec(conn, sql, NULL, NULL, &err) != SQLITE_OK) {
        at_err rc = at_fail(d, AT_E_INTERNAL, "database: %s", err ? err : sqlite3_errmsg(conn));
        sqlite3_free(err);
        return rc;
    }
    return AT_OK;
}

at_err at_db_prepare(sqlite3 *conn, const char *sql, sqlite3_stmt **st, at_diag *d)
{
    if (sqlite3_prepare_v2(conn, sql, -1, st, NULL) != SQLITE_OK)
        return at_fail(d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(conn));
    return AT_OK;
}

#define STMT_CACHE 32
static __thread struct {
    sqlite3 *conn;
    const char *sql;
    sqlite3_stmt *st;
} stmt_cache[STMT_CACHE];

at_err at_db_stmt(sqlite3 *conn, const char *sql, sqlite3_stmt **st, at_diag *d)
{
    int free_slot = -1;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (stmt_cache[i].conn == conn && stmt_cache[i].sql == sql) {
            sqlite3_reset(stmt_cache[i].st);
            sqlite3_clear_bindings(stmt_cache[i].st);
            *st = stmt_cache[i].st;
            return AT_OK;
        }
        if (!stmt_cache[i].conn && free_slot < 0)
            free_slot = i;
    }
    if (sqlite3_prepare_v3(conn, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return at_fail(d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(conn));
    if (free_slot >= 0) {
        stmt_cache[free_slot].conn = conn;
        stmt_cache[free_slot].sql = sql;
        stmt_cache[free_slot].st = *st;
        return AT_OK;
    }
    /* Cache full: evict slot 0 (more distinct hot statements than slots
     * only costs re-preparing). */
    sqlite3_finalize(stmt_cache[0].st);
    stmt_cache[0].conn = conn;
    stmt_cache[0].sql = sql;
    stmt_cache[0].st = *st;
    return AT_OK;
}

void at_db_stmt_cache_clear(sqlite3 *conn)
{
    for (int i = 0; i < STMT_CACHE; i++)
        if (stmt_cache[i].conn == conn) {
            sqlite3_finalize(stmt_cache[i].st);
            stmt_cache[i].conn = NULL;
            stmt_cache[i].sql = NULL;
            stmt_cache[i].st = NULL;
        }
}

static at_err open_conn(const char *path, bool readonly, sqlite3 **out, at_diag *d)
{
    sqlite3 *c = NULL;
    int flags =
        (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c, flags, NULL) != SQLITE_OK) {
        at_err rc = at_fail(d, AT_E_IO, "database %s: %s", path, c ? sqlite3_errmsg(c) : "cannot open");
        sqlite3_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c, 10000);
    sqlite3_extended_result_codes(c, 1);
    at_err rc = at_db_exec(c,
                           readonly ? "PRAGMA foreign_keys=ON;"
                                    : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                      " PRAGMA foreign_keys=ON;",
                           d);
    if (rc != AT_OK) {
        sqlite3_close(c);
        return rc;
    }
    *out = c;
    return AT_OK;
}

/* Read back what the write connection really does: a journal mode SQLite
 * could not switch (some file systems refuse WAL) or a lower synchronous
 * level would acknowledge writes that a power cut loses. Fail closed. */
static at_err check_durability(at_db *db, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    sqlite3_stmt *st = NULL;
    AT_TRY(at_db_prepare(db->wconn, "PRAGMA journal_mode", &st, d));
    AT_ENSURE(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0), d, AT_E_IO,
              "database %s: PRAGMA journal_mode: %s", db->path, sqlite3_errmsg(db->wconn));
    snprintf(db->durability.journal_mode, sizeof db->durability.journal_mode, "%s",
             (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    AT_TRY(at_db_prepare(db->wconn, "PRAGMA synchronous", &st, d));
    AT_ENSURE(sqlite3_step(st) == SQLITE_ROW, d, AT_E_IO, "database %s: PRAGMA synchronous: %s", db->path,
              sqlite3_errmsg(db->wconn));
    db->durability.synchronous = sqlite3_column_int(st, 0);
    AT_ENSURE(strcmp(db->durability.journal_mode, "wal") == 0, d, AT_E_IO,
              "database %s: journal_mode is %s, expected wal", db->path, db->durability.journal_mode);
    AT_ENSURE(db->durability.synchronous == 2, d, AT_E_IO,
              "database %s: synchronous is %d, expected 2 (FULL)", db->path, db->durability.synchronous);
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

void at_db_durability_get(const at_db *db, at_db_durability *out) { *out = db->durability; }

static at_err migrate(at_db *db, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    sqlite3_stmt *st = NULL;
    AT_TRY(at_db_exec(db->wconn,
                      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                      " name TEXT NOT NULL, applied_ms INTEGER NOT NULL);",
                      d));
    AT_TRY(at_db_prepare(db->wconn, "SELECT coalesce(max(version), 0) FROM schema_migrations", &st, d));
    AT_ENSURE(sqlite3_step(st) == SQLITE_ROW, d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(db->wconn));
    int current = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    int known = 0;
    for (const at_db_migration *m = at_db_migrations; m->name; m++)
        known = m->version > known ? m->version : known;
    AT_ENSURE(current <= known, d, AT_E_INTERNAL,
              "database: schema version %d is newer than this binary knows (%d); refusing to "
              "run on it",
              current, known);
    for (const at_db_migration *m = at_db_migrations; m->name; m++) {
        if (m->version <= current)
            continue;
        AT_TRY(at_db_exec(db->wconn, "BEGIN IMMEDIATE", d));
        rc = at_db_exec(db->wconn, m->sql, d);
        if (rc == AT_OK) {
            rc = at_db_prepare(db->wconn,
                               "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?,?,?)",
                               &st, d);
        }
        if (rc == AT_OK) {
            sqlite3_bind_int(st, 1, m->version);
            sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, at_wall_ms());
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = at_fail(d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(db->wconn));
            sqlite3_finalize(st);
            st = NULL;
        }
        if (rc == AT_OK)
            rc = at_db_exec(db->wconn, "COMMIT", d);
        if (rc != AT_OK) {
            at_diag_prefix(d, "migration %s: ", m->name);
            (void)sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
        current = m->version;
    }
    db->version = current;
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

static void run_batch(at_db *db, struct job *batch)
{
    at_diag scratch;
    bool in_tx = sqlite3_exec(db->wconn, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    bool lost = false;
    uint64_t n = 0;
    for (struct job *j = batch; j; j = j->next) {
        n++;
        if (!in_tx) {
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: cannot begin a transaction: %s",
                            sqlite3_errmsg(db->wconn));
            continue;
        }
        if (lost) {
            j->rc = at_fail(j->d, AT_E_INTERNAL,
                            "database: the transaction was rolled back "
                            "(an error in a job committed with this one)");
            continue;
        }
        if (sqlite3_exec(db->wconn, "SAVEPOINT job", NULL, NULL, NULL) != SQLITE_OK) {
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(db->wconn));
            continue;
        }
        j->rc = j->fn(db->wconn, j->ctx, j->d ? j->d : &scratch);
        /* SQLite rolls the whole transaction back by itself on some errors
         * (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). Going on would run the
         * next jobs in autocommit mode: committed, then reported failed
         * when the final COMMIT finds no transaction. */
        if (sqlite3_get_autocommit(db->wconn)) {
            lost = true;
            continue;
        }
        if (j->rc == AT_E_INTERNAL || j->rc == AT_E_IO)
            (void)sqlite3_exec(db->wconn, "ROLLBACK TO job", NULL, NULL, NULL);
        (void)sqlite3_exec(db->wconn, "RELEASE job", NULL, NULL, NULL);
    }
    if (lost) {
        for (struct job *j = batch; j; j = j->next)
            if (j->rc != AT_E_INTERNAL && j->rc != AT_E_IO)
                j->rc = at_fail(j->d, AT_E_INTERNAL,
                                "database: the transaction was rolled back "
                                "(an error in a job committed with this one)");
    } else if (in_tx && sqlite3_exec(db->wconn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        const char *why = sqlite3_errmsg(db->wconn);
        (void)sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
        for (struct job *j = batch; j; j = j->next)
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: commit failed: %s", why);
    }
    pthread_mutex_lock(&db->lock);
    db->stats.transactions++;
    db->stats.jobs += n;
    if (n > db->stats.max_batch)
        db->stats.max_batch = n;
    for (struct job *j = batch; j;) {
        struct job *next = j->next; /* j lives on its waiter's stack */
        j->done = true;
        pthread_cond_signal(&j->cond);
        j = next;
    }
    pthread_mutex_unlock(&db->lock);
}

static void *writer_main(void *arg)
{
    at_db *db = arg;
    pthread_mutex_lock(&db->lock);
    for (;;) {
        while (!db->head && !db->stopping)
            pthread_cond_wait(&db->queued, &db->lock);
        if (!db->head && db->stopping)
            break;
        /* Take everything queued (up to BATCH_MAX) as one transaction. */
        struct job *batch = db->head, *last = batch;
        for (int n = 1; n < BATCH_MAX && last->next; n++)
            last = last->next;
        db->head = last->next;
        if (!db->head)
            db->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&db->lock);
        run_batch(db, batch);
        pthread_mutex_lock(&db->lock);
    }
    pthread_mutex_unlock(&db->lock);
    at_db_stmt_cache_clear(db->wconn);
    return NULL;
}

at_err at_db_write(at_db *db, at_db_write_fn fn, void *ctx, at_diag *d)
{
    struct job j = {.fn = fn, .ctx = ctx, .d = d, .rc = AT_E_INTERNAL};
    pthread_cond_init(&j.cond, NULL);
    pthread_mutex_lock(&db->lock);
    if (db->stopping) {
        pthread_mutex_unlock(&db->lock);
        pthread_cond_destroy(&j.cond);
        return at_fail(d, AT_E_UNAVAILABLE, "database: shutting down");
    }
    if (db->tail)
        db->tail->next = &j;
    else
        db->head = &j;
    db->tail = &j;
    pthread_cond_signal(&db->queued);
    while (!j.done)
        pthread_cond_wait(&j.cond, &db->lock);
    pthread_mutex_unlock(&db->lock);
    pthread_cond_destroy(&j.cond);
    return j.rc;
}

at_err at_db_open(const char *path, at_db **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db *db = calloc(1, sizeof *db);
    AT_ENSURE(db && (db->path = strdup(path)), d, AT_E_INTERNAL, "out of memory");
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->pool_lock, NULL);
    pthread_cond_init(&db->queued, NULL);
    AT_TRY(open_conn(path, false, &db->wconn, d));
    AT_TRY(check_durability(db, d));
    AT_TRY(migrate(db, d));
    AT_ENSURE(pthread_create(&db->writer, NULL, writer_main, db) == 0, d, AT_E_INTERNAL,
              "database: cannot start the writer thread");
    db->writer_started = true;
    *out = db;
    db = NULL;
    rc = AT_OK;
out:
    at_db_close(db);
    return rc;
}

void at_db_close(at_db *db)
{
    if (!db)
        return;
    if (db->writer_started) {
        pthread_mutex_lock(&db->lock);
        db->stopping = true;
        pthread_cond_broadcast(&db->queued);
        pthread_mutex_unlock(&db->lock);
        pthread_join(db->writer, NULL);
    }
    for (size_t i = 0; i < db->n_pool; i++)
        sqlite3_close(db->pool[i]);
    if (db->wconn) {
        /* Fold the WAL back into the main file on a clean shutdown. */
        (void)sqlite3_exec(db->wconn, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db->wconn);
    }
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->pool_lock);
    pthread_cond_destroy(&db->queued);
    free(db->path);
    free(db);
}

int at_db_schema_version(const at_db *db) { return db->version; }

sqlite3 *at_db_read_acquire(at_db *db)
{
    sqlite3 *c = NULL;
    pthread_mutex_lock(&db->pool_lock);
    if (db->n_pool)
        c = db->pool[--db->n_pool];
    pthread_mutex_unlock(&db->pool_lock);
    if (!c && open_conn(db->path, true, &c, NULL) != AT_OK)
        return NULL;
    return c;
}

void at_db_read_release(at_db *db, sqlite3 *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&db->pool_lock);
    if (db->n_pool < READ_POOL_MAX) {
        db->pool[db->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&db->pool_lock);
    sqlite3_close(c);
}

void at_db_stats_get(at_db *db, at_db_stats *s)
{
    pthread_mutex_lock(&db->lock);
    *s = db->stats;
    s->queued = 0;
    for (const struct job *j = db->head; j; j = j->next)
        s->queued++;
    pthread_mutex_unlock(&db->lock);
}
