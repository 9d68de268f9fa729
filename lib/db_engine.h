/* db_engine: what lib/db.c needs from a storage engine (lib/db_sqlite.c,
 * lib/db_pg.c). Internal to the db module: callers use lib/db.h only. */
#ifndef AT_DB_ENGINE_H
#define AT_DB_ENGINE_H

#include "db.h"

/* An engine calls this when a connection failed at the connection level
 * (server unreachable, connection lost, an in-doubt commit): the calling
 * thread's mark, read by at_db_thread_unavailable. */
void at_db_mark_unavailable(void);

struct at_db_engine {
    const char *name;
    const at_db_migration *migrations;
    /* Starts a migration's transaction. */
    const char *begin_sql;
    /* Starts the writer's transaction (a batch of jobs). */
    const char *writer_begin_sql;
    /* redacted: the target as messages may show it. */
    at_err (*open)(const char *target, const char *redacted, bool readonly, at_db_conn **out, at_diag *d);
    void (*close)(at_db_conn *c);
    at_err (*durability)(at_db_conn *c, const char *redacted, at_db_durability *out, at_diag *d);
    /* Serialise migrations across processes starting at once (inside the
     * migration's transaction); NULL when the writer lock already does. */
    const char *migrate_lock_sql;
    at_err (*exec)(at_db_conn *c, const char *sql, at_diag *d);
    at_err (*prepare)(at_db_conn *c, const char *sql, bool persistent, at_db_stmt **out, at_diag *d);
    void (*finalize)(at_db_stmt *st);
    void (*reset)(at_db_stmt *st);
    void (*bind_int64)(at_db_stmt *st, int i, int64_t v);
    void (*bind_text)(at_db_stmt *st, int i, const char *v, int len, bool copy);
    void (*bind_blob)(at_db_stmt *st, int i, const void *p, size_t len, bool copy);
    void (*bind_null)(at_db_stmt *st, int i);
    int (*step)(at_db_stmt *st);
    bool (*column_is_null)(at_db_stmt *st, int i);
    int64_t (*column_int64)(at_db_stmt *st, int i);
    const char *(*column_text)(at_db_stmt *st, int i);
    const void *(*column_blob)(at_db_stmt *st, int i);
    int (*column_bytes)(at_db_stmt *st, int i);
    int64_t (*changes)(at_db_conn *c);
    const char *(*errmsg)(at_db_conn *c);
    /* The open transaction can no longer commit (SQLite rolled it back by
     * itself, PostgreSQL aborted it after an error). */
    bool (*tx_lost)(at_db_conn *c);
    /* The open transaction is in error but a ROLLBACK TO the job's
     * savepoint recovers it (PostgreSQL). */
    bool (*tx_failed)(at_db_conn *c);
    at_err (*snapshot_begin)(at_db_conn *c, bool *began, at_diag *d);
    at_err (*snapshot_end)(at_db_conn *c, bool began, at_diag *d);
};

/* Every engine's connection and statement start with these. */
struct at_db_conn {
    const struct at_db_engine *eng;
};
struct at_db_stmt {
    at_db_conn *conn;
};

extern const struct at_db_engine at_db_engine_sqlite;
extern const struct at_db_engine at_db_engine_pg;

#endif
