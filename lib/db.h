/* db: the verifier's SQLite database. Migrations (schema/NNNN_*.sql, embedded
 * at build time) applied in order, each in its own transaction; WAL with
 * synchronous=FULL. One writer thread owns the write connection and commits
 * queued jobs together (group commit): at_db_write() returns only after the
 * transaction holding the job is durable, so nothing is acknowledged before
 * it is on disk. Reads use a pool of read-only connections. */
#ifndef AT_DB_H
#define AT_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "err.h"

typedef struct {
    int version;
    const char *name;
    const char *sql;
} at_db_migration;
/* Terminated by {0, NULL, NULL}; generated from schema/ (schema_sql.c). */
extern const at_db_migration at_db_migrations[];

typedef struct at_db at_db;

/* Open (creating) the database at path, apply pending migrations, start the
 * writer. Refuses a database whose schema is newer than this binary knows.
 * Caller closes with at_db_close. */
at_err at_db_open(const char *path, at_db **out, at_diag *d) AT_MUST_USE;
/* Drain queued writes, stop the writer, close every connection. NULL ok. */
void at_db_close(at_db *db);
int at_db_schema_version(const at_db *db);

/* What the write connection reported when it was opened (read back, not
 * assumed): SQLite's journal mode and synchronous level (2 = FULL).
 * at_db_open refuses anything but "wal" and 2. */
typedef struct {
    char journal_mode[16];
    int synchronous;
} at_db_durability;
void at_db_durability_get(const at_db *db, at_db_durability *out);

/* A read-only connection from the pool; give it back with at_db_read_release. */
sqlite3 *at_db_read_acquire(at_db *db);
void at_db_read_release(at_db *db, sqlite3 *conn);

/* A write job runs on the writer thread inside a transaction, in its own
 * SAVEPOINT. Return AT_OK or a refusal code to keep what it wrote (a refusal
 * typically writes only its audit row); return AT_E_INTERNAL or AT_E_IO to
 * have its writes rolled back. */
typedef at_err (*at_db_write_fn)(sqlite3 *conn, void *ctx, at_diag *d);
/* Queue fn and wait until the transaction holding it committed (durable).
 * Returns fn's result, or AT_E_INTERNAL when the commit failed. */
at_err at_db_write(at_db *db, at_db_write_fn fn, void *ctx, at_diag *d) AT_MUST_USE;

/* transactions and jobs committed so far, the largest batch, and the jobs
 * queued for the writer right now (not yet taken into a transaction). */
typedef struct {
    uint64_t transactions, jobs, max_batch, queued;
} at_db_stats;
void at_db_stats_get(at_db *db, at_db_stats *s);

/* Small helpers for jobs and readers. */
/* Execute SQL without results; AT_E_INTERNAL with the SQLite message. */
at_err at_db_exec(sqlite3 *conn, const char *sql, at_diag *d) AT_MUST_USE;
/* A prepared statement from the calling thread's cache (the writer's hot
 * path: no re-parsing of the same SQL per job). The statement is borrowed:
 * never finalize it; it is reset and its bindings cleared on every fetch.
 * `sql` must be a string literal (the cache keys on its address). */
at_err at_db_stmt(sqlite3 *conn, const char *sql, sqlite3_stmt **st, at_diag *d) AT_MUST_USE;
/* Finalize the calling thread's cached statements for conn. */
void at_db_stmt_cache_clear(sqlite3 *conn);
/* sqlite3_prepare_v2 with diagnostics. */
at_err at_db_prepare(sqlite3 *conn, const char *sql, sqlite3_stmt **st, at_diag *d) AT_MUST_USE;

#endif
