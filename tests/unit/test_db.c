/* Unit tests for lib/db.c: the group-committing writer (what a job's result
 * says must match what is on disk, for every job of a batch, including
 * when one job loses the whole transaction: SQLite rolls a transaction back
 * by itself on a full disk or an I/O error), the statement interface ($N
 * placeholders, bindings, columns) and URL redaction. On SQLite by default;
 * on PostgreSQL too when AT_TEST_DB_URL names a database (tests/e2e/pg.py
 * run, see tests/local.mk). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"

static char dir[64];
static char path[128];
static const char *target; /* path, or AT_TEST_DB_URL */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/attest-test-db-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    target = getenv("AT_TEST_DB_URL") && *getenv("AT_TEST_DB_URL") ? getenv("AT_TEST_DB_URL") : path;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[200];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* ---- jobs ---------------------------------------------------------------- */

static at_err create_table(at_db_conn *c, void *ctx, at_diag *d)
{
    (void)ctx;
    return at_db_exec(c, "DROP TABLE IF EXISTS t; CREATE TABLE t (x BIGINT PRIMARY KEY)", d);
}

/* Holds the writer inside a job until the test has queued what it wants
 * behind it: batches are built deterministically, never by sleeping. */
struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool entered, open;
};

struct insert {
    int x;
    struct gate *gate; /* hold the writer so that later jobs queue into one batch */
    bool lose_tx;      /* roll the whole transaction back, as SQLite does on SQLITE_FULL */
};

static at_err insert_job(at_db_conn *c, void *ctx, at_diag *d)
{
    struct insert *j = ctx;
    if (j->gate) {
        pthread_mutex_lock(&j->gate->m);
        j->gate->entered = true;
        pthread_cond_broadcast(&j->gate->c);
        while (!j->gate->open)
            pthread_cond_wait(&j->gate->c, &j->gate->m);
        pthread_mutex_unlock(&j->gate->m);
    }
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO t (x) VALUES (%d)", j->x);
    at_err rc = at_db_exec(c, sql, d);
    if (rc != AT_OK)
        return rc;
    if (j->lose_tx) {
        if (at_db_exec(c, "ROLLBACK", d) != AT_OK) {
            /* the point is to lose the transaction either way */
        }
        return at_fail(d, AT_E_IO, "disk full (simulated)");
    }
    return AT_OK;
}

struct writer_arg {
    at_db *db;
    struct insert job;
    at_err rc;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    at_diag d = {{0}};
    a->rc = at_db_write(a->db, insert_job, &a->job, &d);
    return NULL;
}

/* Run a[0] (which carries the gate) until it holds the writer, queue a[1..n-1]
 * behind it in order, then let it go: a[1..n-1] form exactly one batch. */
static void run_gated(struct writer_arg *a, int n, struct gate *g, pthread_t *th)
{
    at_db_stats s;
    assert_int_equal(pthread_create(&th[0], NULL, writer, &a[0]), 0);
    pthread_mutex_lock(&g->m);
    while (!g->entered)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    for (int i = 1; i < n; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, writer, &a[i]), 0);
        /* Wait (bounded: 10 s) until job i is in the queue before the next. */
        struct timespec tick = {0, 1000 * 1000};
        for (int k = 0;; k++) {
            at_db_stats_get(a[0].db, &s);
            if (s.queued == (uint64_t)i)
                break;
            if (k > 10000)
                fail_msg("job %d never reached the writer's queue", i);
            nanosleep(&tick, NULL);
        }
    }
    pthread_mutex_lock(&g->m);
    g->open = true;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static at_db *cur_db; /* the database row_exists reads */

static bool row_exists(int x)
{
    at_db_conn *c = at_db_read_acquire(cur_db);
    assert_non_null(c);
    at_db_stmt *st = NULL;
    assert_int_equal(at_db_prepare(c, "SELECT count(*) FROM t WHERE x = $1", &st, NULL), AT_OK);
    at_db_bind_int64(st, 1, x);
    assert_int_equal(at_db_step(st), AT_DB_ROW);
    bool yes = at_db_column_int64(st, 0) > 0;
    at_db_finalize(st);
    at_db_read_release(cur_db, c);
    return yes;
}

/* Durability is read back from the write connection, never assumed. */
static void durability_read_back(void **state)
{
    (void)state;
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(target, &db, &d), AT_OK);
    cur_db = db;
    at_db_durability dur;
    at_db_durability_get(db, &dur);
    assert_string_equal(dur.journal_mode, "wal");
    assert_int_equal(dur.synchronous, 2);
    at_db_close(db);
}

/* Job 1 holds the writer; jobs 2..4 queue up and run as one batch, where
 * job 3 loses the transaction. Every job's result must say what happened
 * to its row. */
static void lost_transaction_in_a_batch(void **state)
{
    (void)state;
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(target, &db, &d), AT_OK);
    cur_db = db;
    assert_int_equal(at_db_write(db, create_table, NULL, &d), AT_OK);
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
    struct writer_arg a[4] = {
        {db, {1, &g, false}, AT_E_INTERNAL},
        {db, {2, NULL, false}, AT_E_INTERNAL},
        {db, {3, NULL, true}, AT_E_INTERNAL},
        {db, {4, NULL, false}, AT_E_INTERNAL},
    };
    pthread_t th[4];
    at_db_stats before, after;
    at_db_stats_get(db, &before);
    run_gated(a, 4, &g, th);
    at_db_stats_get(db, &after);
    /* Job 1 alone, jobs 2..4 in one transaction. */
    assert_int_equal(after.transactions - before.transactions, 2);
    assert_int_equal(after.jobs - before.jobs, 4);
    for (int i = 0; i < 4; i++) {
        bool on_disk = row_exists(a[i].job.x);
        if ((a[i].rc == AT_OK) != on_disk)
            fail_msg("job %d: result %d but its row is %s", a[i].job.x, (int)a[i].rc,
                     on_disk ? "on disk" : "not on disk");
    }
    assert_int_equal(a[0].rc, AT_OK);
    assert_int_equal(a[1].rc, AT_E_INTERNAL); /* rolled back with the batch */
    assert_int_equal(a[2].rc, AT_E_IO);       /* the job that lost it */
    assert_int_equal(a[3].rc, AT_E_INTERNAL); /* never ran */
    /* The writer is usable afterwards. */
    struct insert again = {5, 0, false};
    assert_int_equal(at_db_write(db, insert_job, &again, &d), AT_OK);
    assert_true(row_exists(5));
    at_db_close(db);
}

/* A job that returns AT_E_INTERNAL after writing has its writes rolled
 * back to its savepoint; its neighbours in the batch keep theirs. */
static void internal_error_rolls_back_one_job(void **state)
{
    (void)state;
    teardown(NULL);
    setup(NULL);
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(target, &db, &d), AT_OK);
    cur_db = db;
    assert_int_equal(at_db_write(db, create_table, NULL, &d), AT_OK);
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
    struct writer_arg a[3] = {
        {db, {10, &g, false}, AT_E_INTERNAL},
        {db, {11, NULL, false}, AT_E_INTERNAL},
        {db, {11, NULL, false}, AT_E_INTERNAL}, /* duplicate key: AT_E_INTERNAL */
    };
    pthread_t th[3];
    at_db_stats before, after;
    at_db_stats_get(db, &before);
    run_gated(a, 3, &g, th);
    at_db_stats_get(db, &after);
    /* The neighbours did share the failing job's transaction. */
    assert_int_equal(after.transactions - before.transactions, 2);
    assert_int_equal(a[0].rc, AT_OK);
    assert_int_equal(a[1].rc, AT_OK);
    assert_int_equal(a[2].rc, AT_E_INTERNAL);
    assert_true(row_exists(10) && row_exists(11));
    at_db_close(db);
}

/* $N placeholders bind by number whatever their order in the SQL, every
 * column type reads back, ON CONFLICT DO NOTHING changes nothing, and a
 * unique violation is AT_DB_CONSTRAINT. */
struct stmt_ctx {
    int64_t changes_first, changes_again;
    int step_dup;
};

static const uint8_t blob[4] = {0x00, 0xff, 0x5c, 0x78}; /* NUL, a high byte, '\\', 'x' */

static at_err stmt_job(at_db_conn *c, void *ctx, at_diag *d)
{
    struct stmt_ctx *x = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    /* The one dialect difference here: the blob type's name. */
    AT_TRY(at_db_exec(c,
                      at_db_conn_is_pg(c) ? "DROP TABLE IF EXISTS s; CREATE TABLE s (k TEXT PRIMARY KEY,"
                                            " n BIGINT, b BYTEA, t TEXT)"
                                          : "DROP TABLE IF EXISTS s; CREATE TABLE s (k TEXT PRIMARY KEY,"
                                            " n BIGINT, b BLOB, t TEXT)",
                      d));
    /* SQL written out of parameter order: $3 first, $1 twice. */
    AT_TRY(at_db_prepare(c,
                         "INSERT INTO s (b, k, n, t) VALUES ($3, $1, $2, $1 || '-' || $4)"
                         " ON CONFLICT (k) DO NOTHING",
                         &st, d));
    at_db_bind_text(st, 1, "key", -1);
    at_db_bind_int64(st, 2, INT64_C(1) << 40);
    at_db_bind_blob(st, 3, blob, sizeof blob);
    at_db_bind_text(st, 4, "tail", 2);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "insert: %s", at_db_errmsg(c));
    x->changes_first = at_db_changes(c);
    at_db_reset(st);
    at_db_bind_text_copy(st, 1, "key", -1);
    at_db_bind_int64(st, 2, 7);
    at_db_bind_blob_copy(st, 3, blob, 1);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "insert again: %s", at_db_errmsg(c));
    x->changes_again = at_db_changes(c);
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

static at_err dup_job(at_db_conn *c, void *ctx, at_diag *d)
{
    struct stmt_ctx *x = ctx;
    at_db_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "INSERT INTO s (k, n) VALUES ($1, $2)", &st, d);
    if (rc != AT_OK)
        return rc;
    at_db_bind_text(st, 1, "key", -1);
    at_db_bind_int64(st, 2, 1);
    x->step_dup = at_db_step(st);
    at_db_finalize(st);
    return x->step_dup == AT_DB_DONE ? AT_OK : at_fail(d, AT_E_INTERNAL, "duplicate");
}

static void statements(void **state)
{
    (void)state;
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(target, &db, &d), AT_OK);
    cur_db = db;
    struct stmt_ctx x = {0};
    assert_int_equal(at_db_write(db, stmt_job, &x, &d), AT_OK);
    assert_int_equal(x.changes_first, 1);
    assert_int_equal(x.changes_again, 0); /* ON CONFLICT DO NOTHING */
    assert_int_equal(at_db_write(db, dup_job, &x, &d), AT_E_INTERNAL);
    assert_int_equal(x.step_dup, AT_DB_CONSTRAINT);

    at_db_conn *c = at_db_read_acquire(db);
    assert_non_null(c);
    at_db_stmt *st = NULL;
    assert_int_equal(at_db_prepare(c, "SELECT k, n, b, t, NULL FROM s WHERE k = $1", &st, &d), AT_OK);
    at_db_bind_text(st, 1, "key", -1);
    assert_int_equal(at_db_step(st), AT_DB_ROW);
    assert_string_equal(at_db_column_text(st, 0), "key");
    assert_true(at_db_column_int64(st, 1) == INT64_C(1) << 40);
    assert_int_equal(at_db_column_bytes(st, 2), 4);
    assert_memory_equal(at_db_column_blob(st, 2), blob, 4);
    assert_string_equal(at_db_column_text(st, 3), "key-ta");
    assert_false(at_db_column_is_null(st, 3));
    assert_true(at_db_column_is_null(st, 4));
    assert_null(at_db_column_text(st, 4));
    assert_int_equal(at_db_step(st), AT_DB_DONE);
    at_db_finalize(st);
    at_db_read_release(db, c);
    at_db_close(db);
}

/* A database URL's password never reaches a message. */
static void redaction(void **state)
{
    (void)state;
    char out[256];
    at_db_redact("postgresql://attest:s3cr%40t@db.example:5432/attest?sslmode=require", out, sizeof out);
    assert_string_equal(out, "postgresql://attest:***@db.example:5432/attest?sslmode=require");
    at_db_redact("postgres://u:pw@h/db?password=also&x=1", out, sizeof out);
    assert_string_equal(out, "postgres://u:***@h/db?password=***&x=1");
    at_db_redact("postgresql://h/db?user=u&password=pw", out, sizeof out);
    assert_string_equal(out, "postgresql://h/db?user=u&password=***");
    at_db_redact("postgresql://u@h/db", out, sizeof out);
    assert_string_equal(out, "postgresql://u@h/db");
    at_db_redact("/var/lib/attest/attest.db", out, sizeof out);
    assert_string_equal(out, "/var/lib/attest/attest.db");
    assert_true(at_db_is_url("postgresql://h/db") && at_db_is_url("postgres://h/db"));
    assert_false(at_db_is_url("./postgresql.db"));
    /* A failed open names the database redacted (nothing listens on port 1). */
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_not_equal(
        at_db_open("postgresql://attest:topsecret@127.0.0.1:1/attest?connect_timeout=5", &db, &d), AT_OK);
    assert_null(strstr(d.msg, "topsecret"));
    assert_non_null(strstr(d.msg, "attest:***@127.0.0.1:1"));
}

/* PostgreSQL: a server (or session) that would acknowledge a commit before
 * its WAL is flushed is refused at open, never written to. */
static void pg_refuses_async_commit(void **state)
{
    (void)state;
    if (!at_db_is_url(target))
        skip();
    char url[1200];
    snprintf(url, sizeof url, "%s%soptions=-c%%20synchronous_commit%%3Doff", target,
             strchr(target, '?') ? "&" : "?");
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(url, &db, &d), AT_E_IO);
    assert_non_null(strstr(d.msg, "synchronous_commit is off, expected on"));
    assert_null(db);
}

/* PostgreSQL: the server drops the writer's connection in the middle of a
 * job (here the job terminates its own backend) and the job carries on
 * regardless. Its later statement must not run on a fresh connection in
 * autocommit mode: nothing of the job is written, the caller hears
 * AT_E_UNAVAILABLE (503, not 500) and is marked, and the next write
 * reconnects by itself. */
static at_err dropped_mid_job(at_db_conn *c, void *ctx, at_diag *d)
{
    (void)ctx;
    if (at_db_exec(c, "INSERT INTO t (x) VALUES (20)", d) != AT_OK ||
        at_db_exec(c, "SELECT pg_terminate_backend(pg_backend_pid())", d) == AT_OK) {
        return AT_OK; /* the test below fails on what is (not) on disk */
    }
    if (at_db_exec(c, "INSERT INTO t (x) VALUES (21)", d) != AT_OK) {
        /* careless on purpose: the writer must not commit anything of it */
    }
    return AT_OK;
}

static void pg_connection_lost_mid_job(void **state)
{
    (void)state;
    if (!at_db_is_url(target))
        skip();
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(target, &db, &d), AT_OK);
    cur_db = db;
    assert_int_equal(at_db_write(db, create_table, NULL, &d), AT_OK);
    assert_false(at_db_thread_unavailable());
    assert_int_equal(at_db_write(db, dropped_mid_job, NULL, &d), AT_E_UNAVAILABLE);
    assert_non_null(strstr(d.msg, "not acknowledged"));
    assert_true(at_db_thread_unavailable());
    assert_false(at_db_thread_unavailable()); /* reading clears the mark */
    assert_false(row_exists(20));
    assert_false(row_exists(21));
    struct insert again = {22, NULL, false};
    assert_int_equal(at_db_write(db, insert_job, &again, &d), AT_OK);
    assert_true(row_exists(22));
    assert_true(at_db_ping(db));
    at_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durability_read_back),
        cmocka_unit_test(lost_transaction_in_a_batch),
        cmocka_unit_test(internal_error_rolls_back_one_job),
        cmocka_unit_test(statements),
        cmocka_unit_test(redaction),
        cmocka_unit_test(pg_refuses_async_commit),
        cmocka_unit_test(pg_connection_lost_mid_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
