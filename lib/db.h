/* db: the verifier's storage interface. One API over two engines: SQLite
 * (a file path, the default; lib/db_sqlite.c) and PostgreSQL (a
 * postgresql:// or postgres:// URL; lib/db_pg.c). Migrations (schema/NNNN_*.sql
 * for SQLite, schema/pg/NNNN_*.sql for PostgreSQL, same numbers, embedded at
 * build time) applied in order, each in its own transaction. One writer
 * thread owns the write connection and commits queued jobs together (group
 * commit): at_db_write() returns only after the transaction holding the job
 * is durable (SQLite: WAL + synchronous=FULL; PostgreSQL: synchronous_commit
 * on, fsync on), so nothing is acknowledged before it is on disk. Reads use a
 * pool of connections. SQL is written once, in the subset both dialects
 * accept (docs/storage.md), with $1..$N placeholders. No caller sees an
 * engine's own types. */
#ifndef AT_DB_H
#define AT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct {
    int version;
    const char *name;
    const char *sql;
} at_db_migration;
/* Terminated by {0, NULL, NULL}; generated from schema/ and schema/pg/
 * (schema_sql.c). */
extern const at_db_migration at_db_migrations[];
extern const at_db_migration at_db_migrations_pg[];

typedef struct at_db at_db;
/* A connection (the writer's inside a job, or one from the read pool). */
typedef struct at_db_conn at_db_conn;
/* A prepared statement on one connection. */
typedef struct at_db_stmt at_db_stmt;

/* Whether target names a PostgreSQL database (postgresql:// or postgres://)
 * rather than a SQLite file path. */
bool at_db_is_url(const char *target);
/* target with any password replaced by "***" (URL user:password@, a
 * password= parameter), for every message that names the database.
 * Always NUL-terminates; truncates to n-1 bytes. */
void at_db_redact(const char *target, char *out, size_t n);

/* Open (creating, for a SQLite path) the database at target, apply pending
 * migrations, start the writer. Refuses a database whose schema is newer
 * than this binary knows, and one that would acknowledge writes before they
 * are durable. Caller closes with at_db_close. Messages name the target
 * redacted. */
at_err at_db_open(const char *target, at_db **out, at_diag *d) AT_MUST_USE;
/* Drain queued writes, stop the writer, close every connection. NULL ok. */
void at_db_close(at_db *db);
int at_db_schema_version(const at_db *db);
/* "sqlite" or "postgresql". */
const char *at_db_backend(const at_db *db);

/* What the write connection reported when it was opened (read back, not
 * assumed). SQLite: its journal mode and synchronous level (2 = FULL);
 * at_db_open refuses anything but "wal" and 2. PostgreSQL: journal_mode is
 * "wal" and synchronous 2 once synchronous_commit is on (or remote_apply)
 * and fsync is on; at_db_open refuses anything else. */
typedef struct {
    char journal_mode[16];
    int synchronous;
} at_db_durability;
void at_db_durability_get(const at_db *db, at_db_durability *out);

/* A connection from the read pool (NULL when none can be opened); give it
 * back with at_db_read_release. */
at_db_conn *at_db_read_acquire(at_db *db);
void at_db_read_release(at_db *db, at_db_conn *conn);

/* A write job runs on the writer thread inside a transaction, in its own
 * SAVEPOINT. Return AT_OK or a refusal code to keep what it wrote (a refusal
 * typically writes only its audit row); return AT_E_INTERNAL or AT_E_IO to
 * have its writes rolled back. A job whose statement failed inside the
 * engine (PostgreSQL aborts the transaction) is rolled back and reported as
 * AT_E_INTERNAL whatever it returned. */
typedef at_err (*at_db_write_fn)(at_db_conn *conn, void *ctx, at_diag *d);
/* Queue fn and wait until the transaction holding it committed (durable).
 * Returns fn's result, or AT_E_INTERNAL when the commit failed. */
at_err at_db_write(at_db *db, at_db_write_fn fn, void *ctx, at_diag *d) AT_MUST_USE;

/* Whether a database connection failed at the connection level in the
 * calling thread since the last call (the server unreachable or restarting,
 * a connection lost, a commit whose outcome is unknown); clears the mark.
 * The verifier answers such a request 503 `unavailable` with Retry-After,
 * whatever error the caller made of it. A write job whose transaction met
 * such a failure is reported AT_E_UNAVAILABLE (nothing of it committed, or
 * the commit in doubt: not acknowledged either way) and marks the waiting
 * thread. Connections reconnect by themselves on their next use (never in
 * the middle of a transaction the server dropped). */
bool at_db_thread_unavailable(void);
/* Whether the database answers a trivial query now (a read connection). */
bool at_db_ping(at_db *db);

/* transactions and jobs committed so far, the largest batch, and the jobs
 * queued for the writer right now (not yet taken into a transaction). */
typedef struct {
    uint64_t transactions, jobs, max_batch, queued;
} at_db_stats;
void at_db_stats_get(at_db *db, at_db_stats *s);

/* Statements. */
/* Execute SQL without results (may hold several statements without
 * parameters); AT_E_INTERNAL with the engine's message. */
at_err at_db_exec(at_db_conn *conn, const char *sql, at_diag *d) AT_MUST_USE;
/* A prepared statement from the calling thread's cache (the writer's hot
 * path: no re-parsing of the same SQL per job). The statement is borrowed:
 * never finalize it; it is reset and its bindings cleared on every fetch.
 * `sql` must be a string literal (the cache keys on its address). */
at_err at_db_stmt_get(at_db_conn *conn, const char *sql, at_db_stmt **st, at_diag *d) AT_MUST_USE;
/* Finalize the calling thread's cached statements for conn. */
void at_db_stmt_cache_clear(at_db_conn *conn);
/* A statement the caller owns (at_db_finalize). */
at_err at_db_prepare(at_db_conn *conn, const char *sql, at_db_stmt **st, at_diag *d) AT_MUST_USE;
/* NULL ok. Never on a statement from at_db_stmt_get. */
void at_db_finalize(at_db_stmt *st);
/* Ready to run again; bindings cleared (unbound parameters are NULL). */
void at_db_reset(at_db_stmt *st);

/* Bind parameter $i (1-based). Text and blobs are borrowed: they must stay
 * valid until the statement is reset or finalized; the _copy variant takes
 * a copy. len -1 for text means strlen. Binding past the statement's
 * parameters is ignored (as SQLite does with a range error). */
void at_db_bind_int64(at_db_stmt *st, int i, int64_t v);
void at_db_bind_text(at_db_stmt *st, int i, const char *v, int len);
void at_db_bind_text_copy(at_db_stmt *st, int i, const char *v, int len);
void at_db_bind_blob(at_db_stmt *st, int i, const void *p, size_t len);
void at_db_bind_blob_copy(at_db_stmt *st, int i, const void *p, size_t len);
void at_db_bind_null(at_db_stmt *st, int i);

/* Run or advance: AT_DB_ROW (a row is ready), AT_DB_DONE, AT_DB_CONSTRAINT
 * (a unique/primary key/check constraint refused the statement), or
 * AT_DB_ERROR (at_db_errmsg says why). */
enum { AT_DB_ERROR = 1, AT_DB_CONSTRAINT = 19, AT_DB_ROW = 100, AT_DB_DONE = 101 };
int at_db_step(at_db_stmt *st);

/* Columns of the current row (0-based). Pointers stay valid until the next
 * step, reset or finalize. */
bool at_db_column_is_null(at_db_stmt *st, int i);
int64_t at_db_column_int64(at_db_stmt *st, int i);
/* NULL for SQL NULL. */
const char *at_db_column_text(at_db_stmt *st, int i);
const void *at_db_column_blob(at_db_stmt *st, int i);
/* Bytes of the blob (or text) in column i. */
int at_db_column_bytes(at_db_stmt *st, int i);

/* Rows changed by the last INSERT/UPDATE/DELETE on conn. */
int64_t at_db_changes(at_db_conn *conn);
/* The engine's message for the last failure on conn. */
const char *at_db_errmsg(at_db_conn *conn);
bool at_db_conn_is_pg(const at_db_conn *conn);

/* One consistent snapshot for several reads on conn, inside a caller's
 * transaction too (SQLite: a savepoint; PostgreSQL: a REPEATABLE READ
 * transaction unless one is already open). End it with at_db_snapshot_end
 * whatever happened in between. */
at_err at_db_snapshot_begin(at_db_conn *conn, bool *began, at_diag *d) AT_MUST_USE;
at_err at_db_snapshot_end(at_db_conn *conn, bool began, at_diag *d) AT_MUST_USE;

#endif
