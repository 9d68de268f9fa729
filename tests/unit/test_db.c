/* Unit tests for lib/db.c's group-committing writer: what a job's result
 * says must match what is on disk, for every job of a batch, including
 * when one job loses the whole transaction (SQLite rolls a transaction
 * back by itself on SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, usleep */
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

struct insert {
    int x;
    int sleep_ms;   /* hold the writer so that later jobs queue into one batch */
    bool lose_tx;   /* roll the whole transaction back, as SQLite does on SQLITE_FULL */
};

static at_err insert_job(sqlite3 *c, void *ctx, at_diag *d)
{
    struct insert *j = ctx;
    if (j->sleep_ms)
        usleep((useconds_t)j->sleep_ms * 1000);
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

static bool row_exists(int x)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(c, "SELECT count(*) FROM t WHERE x = ?", -1, &st, NULL),
                     SQLITE_OK);
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
    struct writer_arg a[4] = {
        {db, {1, 300, false}, AT_E_INTERNAL},
        {db, {2, 0, false}, AT_E_INTERNAL},
        {db, {3, 0, true}, AT_E_INTERNAL},
        {db, {4, 0, false}, AT_E_INTERNAL},
    };
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, writer, &a[i]), 0);
        usleep(50 * 1000); /* queue in order */
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    at_db_stats s;
    at_db_stats_get(db, &s);
    assert_true(s.max_batch >= 3); /* jobs 2..4 did share a transaction */
    for (int i = 0; i < 4; i++) {
        bool on_disk = row_exists(a[i].job.x);
        if ((a[i].rc == AT_OK) != on_disk)
            fail_msg("job %d: result %d but its row is %s", a[i].job.x, (int)a[i].rc,
                     on_disk ? "on disk" : "not on disk");
    }
    assert_int_equal(a[0].rc, AT_OK);
    assert_int_not_equal(a[2].rc, AT_OK);
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
    struct writer_arg a[3] = {
        {db, {10, 300, false}, AT_E_INTERNAL},
        {db, {11, 0, false}, AT_E_INTERNAL},
        {db, {11, 0, false}, AT_E_INTERNAL}, /* duplicate key: AT_E_INTERNAL */
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, writer, &a[i]), 0);
        usleep(50 * 1000);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
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
