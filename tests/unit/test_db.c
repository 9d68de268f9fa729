/* Unit tests for lib/db.c's group-committing writer: what a job's result
 * says must match what is on disk, for every job of a batch, including
 * when one job loses the whole transaction (SQLite rolls a transaction
 * back by itself on SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). */
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

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/attest-test-db-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/t.db", dir);
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

static at_err create_table(sqlite3 *c, void *ctx, at_diag *d)
{
    (void)ctx;
    return at_db_exec(c, "CREATE TABLE t (x INTEGER PRIMARY KEY)", d);
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

static at_err insert_job(sqlite3 *c, void *ctx, at_diag *d)
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
        (void)sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
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

static bool row_exists(int x)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(c, "SELECT count(*) FROM t WHERE x = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, x);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    bool yes = sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    sqlite3_close(c);
    return yes;
}

/* Durability is read back from the write connection, never assumed. */
static void durability_read_back(void **state)
{
    (void)state;
    at_db *db = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_db_open(path, &db, &d), AT_OK);
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
    assert_int_equal(at_db_open(path, &db, &d), AT_OK);
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
    assert_int_equal(at_db_open(path, &db, &d), AT_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durability_read_back),
        cmocka_unit_test(lost_transaction_in_a_batch),
        cmocka_unit_test(internal_error_rolls_back_one_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
