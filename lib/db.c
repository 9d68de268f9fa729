/* db: the storage interface of lib/db.h over an engine (lib/db_sqlite.c,
 * lib/db_pg.c): migrations, the group-committing writer, the read pool and
 * the statement cache. The database is trusted storage; SQL never contains
 * request data except through bound parameters. */
#include "db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db_engine.h"

#define READ_POOL_MAX 32
#define BATCH_MAX 512
#define TARGET_MAX 1024

static __thread bool thread_unavailable;

void at_db_mark_unavailable(void) { thread_unavailable = true; }

bool at_db_thread_unavailable(void)
{
    bool was = thread_unavailable;
    thread_unavailable = false;
    return was;
}

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
    const struct at_db_engine *eng;
    char *target;
    char redacted[TARGET_MAX];
    at_db_conn *wconn;
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
    at_db_conn *pool[READ_POOL_MAX];
    size_t n_pool;
};

bool at_db_is_url(const char *t)
{
    return t && (strncmp(t, "postgresql://", 13) == 0 || strncmp(t, "postgres://", 11) == 0);
}

void at_db_redact(const char *t, char *out, size_t n)
{
    if (!n)
        return;
    out[0] = '\0';
    if (!t)
        return;
    size_t o = 0;
    const char *scheme = strstr(t, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at && slash && slash < at)
        at = NULL; /* an '@' in the path or query is not userinfo */
    for (const char *p = t; *p && o + 1 < n;) {
        /* URL userinfo: keep the user, hide what follows ':' up to '@'. */
        if (at && p > scheme + 2 && p < at && *p == ':') {
            const char *mask = ":***";
            for (const char *m = mask; *m && o + 1 < n; m++)
                out[o++] = *m;
            p = at;
            continue;
        }
        /* password=... as a URL query parameter or a key/value word. */
        if (strncmp(p, "password=", 9) == 0 && (p == t || p[-1] == '?' || p[-1] == '&' || p[-1] == ' ')) {
            const char *mask = "password=***";
            for (const char *m = mask; *m && o + 1 < n; m++)
                out[o++] = *m;
            p += 9;
            while (*p && *p != '&' && *p != ' ')
                p++;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

/* Dispatch to the connection's engine. */
at_err at_db_exec(at_db_conn *c, const char *sql, at_diag *d) { return c->eng->exec(c, sql, d); }
at_err at_db_prepare(at_db_conn *c, const char *sql, at_db_stmt **st, at_diag *d)
{
    return c->eng->prepare(c, sql, false, st, d);
}
void at_db_finalize(at_db_stmt *st)
{
    if (st)
        st->conn->eng->finalize(st);
}
void at_db_reset(at_db_stmt *st) { st->conn->eng->reset(st); }
void at_db_bind_int64(at_db_stmt *st, int i, int64_t v) { st->conn->eng->bind_int64(st, i, v); }
void at_db_bind_text(at_db_stmt *st, int i, const char *v, int len)
{
    st->conn->eng->bind_text(st, i, v, len, false);
}
void at_db_bind_text_copy(at_db_stmt *st, int i, const char *v, int len)
{
    st->conn->eng->bind_text(st, i, v, len, true);
}
void at_db_bind_blob(at_db_stmt *st, int i, const void *p, size_t len)
{
    st->conn->eng->bind_blob(st, i, p, len, false);
}
void at_db_bind_blob_copy(at_db_stmt *st, int i, const void *p, size_t len)
{
    st->conn->eng->bind_blob(st, i, p, len, true);
}
void at_db_bind_null(at_db_stmt *st, int i) { st->conn->eng->bind_null(st, i); }
int at_db_step(at_db_stmt *st) { return st->conn->eng->step(st); }
bool at_db_column_is_null(at_db_stmt *st, int i) { return st->conn->eng->column_is_null(st, i); }
int64_t at_db_column_int64(at_db_stmt *st, int i) { return st->conn->eng->column_int64(st, i); }
const char *at_db_column_text(at_db_stmt *st, int i) { return st->conn->eng->column_text(st, i); }
const void *at_db_column_blob(at_db_stmt *st, int i) { return st->conn->eng->column_blob(st, i); }
int at_db_column_bytes(at_db_stmt *st, int i) { return st->conn->eng->column_bytes(st, i); }
int64_t at_db_changes(at_db_conn *c) { return c->eng->changes(c); }
const char *at_db_errmsg(at_db_conn *c) { return c->eng->errmsg(c); }
bool at_db_conn_is_pg(const at_db_conn *c) { return c->eng == &at_db_engine_pg; }
at_err at_db_snapshot_begin(at_db_conn *c, bool *began, at_diag *d)
{
    *began = false;
    return c->eng->snapshot_begin(c, began, d);
}
at_err at_db_snapshot_end(at_db_conn *c, bool began, at_diag *d) { return c->eng->snapshot_end(c, began, d); }

#define STMT_CACHE 32
static __thread struct {
    at_db_conn *conn;
    const char *sql;
    at_db_stmt *st;
} stmt_cache[STMT_CACHE];

at_err at_db_stmt_get(at_db_conn *conn, const char *sql, at_db_stmt **st, at_diag *d)
{
    int free_slot = -1;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (stmt_cache[i].conn == conn && stmt_cache[i].sql == sql) {
            conn->eng->reset(stmt_cache[i].st);
            *st = stmt_cache[i].st;
            return AT_OK;
        }
        if (!stmt_cache[i].conn && free_slot < 0)
            free_slot = i;
    }
    at_err rc = conn->eng->prepare(conn, sql, true, st, d);
    if (rc != AT_OK)
        return rc;
    if (free_slot >= 0) {
        stmt_cache[free_slot].conn = conn;
        stmt_cache[free_slot].sql = sql;
        stmt_cache[free_slot].st = *st;
        return AT_OK;
    }
    /* Cache full: evict slot 0 (more distinct hot statements than slots
     * only costs re-preparing). */
    at_db_finalize(stmt_cache[0].st);
    stmt_cache[0].conn = conn;
    stmt_cache[0].sql = sql;
    stmt_cache[0].st = *st;
    return AT_OK;
}

void at_db_stmt_cache_clear(at_db_conn *conn)
{
    for (int i = 0; i < STMT_CACHE; i++)
        if (stmt_cache[i].conn == conn) {
            at_db_finalize(stmt_cache[i].st);
            stmt_cache[i].conn = NULL;
            stmt_cache[i].sql = NULL;
            stmt_cache[i].st = NULL;
        }
}

void at_db_durability_get(const at_db *db, at_db_durability *out) { *out = db->durability; }

static at_err migrate(at_db *db, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    bool in_tx = false;
    for (;;) {
        /* One migration per transaction; the version is read inside it,
         * after the lock, so replicas starting at once apply each once. */
        AT_TRY(at_db_exec(db->wconn, db->eng->begin_sql, d));
        in_tx = true;
        if (db->eng->migrate_lock_sql)
            AT_TRY(at_db_exec(db->wconn, db->eng->migrate_lock_sql, d));
        AT_TRY(at_db_exec(db->wconn,
                          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                          " name TEXT NOT NULL, applied_ms BIGINT NOT NULL);",
                          d));
        AT_TRY(at_db_prepare(db->wconn, "SELECT coalesce(max(version), 0) FROM schema_migrations", &st, d));
        AT_ENSURE(at_db_step(st) == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(db->wconn));
        int current = (int)at_db_column_int64(st, 0);
        at_db_finalize(st);
        st = NULL;
        int known = 0;
        const at_db_migration *next = NULL;
        for (const at_db_migration *m = db->eng->migrations; m->name; m++) {
            known = m->version > known ? m->version : known;
            if (m->version > current && (!next || m->version < next->version))
                next = m;
        }
        AT_ENSURE(current <= known, d, AT_E_INTERNAL,
                  "database: schema version %d is newer than this binary knows (%d); refusing to "
                  "run on it",
                  current, known);
        if (!next) {
            db->version = current;
            AT_TRY(at_db_exec(db->wconn, "COMMIT", d));
            in_tx = false;
            break;
        }
        rc = at_db_exec(db->wconn, next->sql, d);
        if (rc == AT_OK)
            rc = at_db_prepare(
                db->wconn, "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
                &st, d);
        if (rc == AT_OK) {
            at_db_bind_int64(st, 1, next->version);
            at_db_bind_text(st, 2, next->name, -1);
            at_db_bind_int64(st, 3, at_wall_ms());
            if (at_db_step(st) != AT_DB_DONE)
                rc = at_fail(d, AT_E_INTERNAL, "database: %s", at_db_errmsg(db->wconn));
            at_db_finalize(st);
            st = NULL;
        }
        if (rc == AT_OK)
            rc = at_db_exec(db->wconn, "COMMIT", d);
        if (rc != AT_OK) {
            at_diag_prefix(d, "migration %s: ", next->name);
            goto out;
        }
        in_tx = false;
    }
    rc = AT_OK;
out:
    at_db_finalize(st);
    if (in_tx && at_db_exec(db->wconn, "ROLLBACK", NULL) != AT_OK) {
        /* the connection is closed next anyway */
    }
    return rc;
}

static void run_batch(at_db *db, struct job *batch)
{
    at_diag scratch;
    at_db_conn *w = db->wconn;
    thread_unavailable = false;
    bool in_tx = at_db_exec(w, db->eng->writer_begin_sql, NULL) == AT_OK;
    bool lost = false;
    uint64_t n = 0;
    for (struct job *j = batch; j; j = j->next) {
        n++;
        if (!in_tx) {
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: cannot begin a transaction: %s", at_db_errmsg(w));
            continue;
        }
        if (lost) {
            j->rc = at_fail(j->d, AT_E_INTERNAL,
                            "database: the transaction was rolled back "
                            "(an error in a job committed with this one)");
            continue;
        }
        if (at_db_exec(w, "SAVEPOINT job", NULL) != AT_OK) {
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: %s", at_db_errmsg(w));
            if (db->eng->tx_lost(w))
                lost = true;
            continue;
        }
        j->rc = j->fn(w, j->ctx, j->d ? j->d : &scratch);
        /* Going on after the engine dropped the transaction would run the
         * next jobs in autocommit mode: committed, then reported failed
         * when the final COMMIT finds no transaction. */
        if (db->eng->tx_lost(w)) {
            lost = true;
            continue;
        }
        /* A statement failed inside the engine (PostgreSQL refuses every
         * later statement of the transaction): this job's writes go. */
        if (db->eng->tx_failed(w) && j->rc != AT_E_INTERNAL && j->rc != AT_E_IO)
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: %s", at_db_errmsg(w));
        if (j->rc == AT_E_INTERNAL || j->rc == AT_E_IO)
            if (at_db_exec(w, "ROLLBACK TO SAVEPOINT job", NULL) != AT_OK && db->eng->tx_lost(w)) {
                lost = true;
                continue;
            }
        if (at_db_exec(w, "RELEASE SAVEPOINT job", NULL) != AT_OK && db->eng->tx_lost(w))
            lost = true;
    }
    if (lost) {
        for (struct job *j = batch; j; j = j->next)
            if (j->rc != AT_E_INTERNAL && j->rc != AT_E_IO)
                j->rc = at_fail(j->d, AT_E_INTERNAL,
                                "database: the transaction was rolled back "
                                "(an error in a job committed with this one)");
        if (at_db_exec(w, "ROLLBACK", NULL) != AT_OK) {
            /* nothing open: SQLite already rolled back */
        }
    } else if (in_tx && at_db_exec(w, "COMMIT", NULL) != AT_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", at_db_errmsg(w));
        if (at_db_exec(w, "ROLLBACK", NULL) != AT_OK) {
            /* the commit's own failure is what the jobs report */
        }
        for (struct job *j = batch; j; j = j->next)
            j->rc = at_fail(j->d, AT_E_INTERNAL, "database: commit failed: %s", why);
    }
    /* The connection failed under this batch: nothing of it committed, or
     * the COMMIT's outcome is unknown. Either way nothing is acknowledged,
     * and the callers hear 503, not a 500. */
    if (thread_unavailable) {
        thread_unavailable = false;
        for (struct job *j = batch; j; j = j->next)
            j->rc = at_fail(j->d, AT_E_UNAVAILABLE,
                            "database: unavailable (%s); the write was not acknowledged, retry later",
                            at_db_errmsg(w));
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
    if (j.rc == AT_E_UNAVAILABLE)
        thread_unavailable = true;
    return j.rc;
}

at_err at_db_open(const char *target, at_db **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_db *db = calloc(1, sizeof *db);
    AT_ENSURE(db && (db->target = strdup(target)), d, AT_E_INTERNAL, "out of memory");
    at_db_redact(target, db->redacted, sizeof db->redacted);
    db->eng = at_db_is_url(target) ? &at_db_engine_pg : &at_db_engine_sqlite;
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->pool_lock, NULL);
    pthread_cond_init(&db->queued, NULL);
    AT_TRY(db->eng->open(target, db->redacted, false, &db->wconn, d));
    AT_TRY(db->eng->durability(db->wconn, db->redacted, &db->durability, d));
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
        db->eng->close(db->pool[i]);
    if (db->wconn)
        db->eng->close(db->wconn);
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->pool_lock);
    pthread_cond_destroy(&db->queued);
    free(db->target);
    free(db);
}

int at_db_schema_version(const at_db *db) { return db->version; }
const char *at_db_backend(const at_db *db) { return db->eng->name; }

at_db_conn *at_db_read_acquire(at_db *db)
{
    at_db_conn *c = NULL;
    pthread_mutex_lock(&db->pool_lock);
    if (db->n_pool)
        c = db->pool[--db->n_pool];
    pthread_mutex_unlock(&db->pool_lock);
    if (!c && db->eng->open(db->target, db->redacted, true, &c, NULL) != AT_OK) {
        thread_unavailable = true;
        return NULL;
    }
    return c;
}

void at_db_read_release(at_db *db, at_db_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&db->pool_lock);
    if (db->n_pool < READ_POOL_MAX) {
        db->pool[db->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&db->pool_lock);
    if (c)
        db->eng->close(c);
}

bool at_db_ping(at_db *db)
{
    at_db_conn *c = at_db_read_acquire(db);
    if (!c)
        return false;
    bool ok = at_db_exec(c, "SELECT 1", NULL) == AT_OK;
    at_db_read_release(db, c);
    return ok;
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
