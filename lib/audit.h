/* audit: the append-only, hash-chained audit log (table `audit`). Each row
 * carries hash = hex(SHA-256(prev_hash || "\n" || canonical JSON of the row's
 * other fields)); audit_head keeps the last id and hash, written in the same
 * transaction, so a row edited, deleted or cut from the tail without also
 * rewriting the chain is detected. The chain is unkeyed: whoever can write
 * the database can recompute every hash after a change and move
 * audit_head, so tampering is detected only against a head anchored
 * outside the database (the id and hash `attestctl audit verify` reports,
 * recorded elsewhere). Rows are appended inside the caller's write job,
 * i.e. in the same transaction as the effect they record. A checkpoint
 * (the last verified row) lets a check recompute only the rows appended
 * since. */
#ifndef AT_AUDIT_H
#define AT_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "err.h"

typedef struct {
    int64_t time_ms;     /* 0 = now */
    const char *actor;   /* "token:3/owner", "instance:i-...", "anonymous" */
    const char *action;  /* "attestation.create", "policy.put", ... */
    const char *outcome; /* "ok" | "refused" | "error" */
    const char *code;    /* stable error code, NULL when ok */
    const char *message; /* human detail, NULL when ok */
    const char *policy;  /* "name@version" or NULL */
    const char *instance_id;
    const char *session_id;
    const char *pcr_sha256;      /* hex */
    const char *evidence_sha256; /* hex */
    const char *client;          /* remote address */
} at_audit_row;

#define AT_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Every action a row can carry (NULL-terminated), for filters to check
 * against: a filter on a name not listed here matches nothing. */
extern const char *const at_audit_actions[];

/* Append one row on a write connection (inside a transaction). *id_out gets
 * the row id when not NULL. */
at_err at_audit_append(at_db_conn *conn, const at_audit_row *row, int64_t *id_out, at_diag *d) AT_MUST_USE;

typedef struct {
    bool ok;
    int64_t entries;   /* rows in the log: from_id + rows checked */
    int64_t checked;   /* rows recomputed by this check */
    int64_t from_id;   /* the checkpoint it started after (0 = genesis) */
    int64_t first_bad; /* 0 when ok */
    char reason[160];
    int64_t head_id; /* the last row's id and hash (as recomputed) */
    char head_hash[65];
} at_audit_check;

/* Recompute the whole chain. */
at_err at_audit_verify(at_db_conn *conn, at_audit_check *out, at_diag *d) AT_MUST_USE;
/* Recompute the chain after row from_id, starting from from_hash, and
 * check that row from_id still carries from_hash and that its contents
 * (over its stored prev_hash) still hash to it (else not ok, first_bad =
 * from_id). Rows before from_id are not recomputed: an edit there is only
 * found by a full check. from_id = 0: the whole chain. */
at_err at_audit_verify_from(at_db_conn *conn, int64_t from_id, const char *from_hash, at_audit_check *out,
                            at_diag *d) AT_MUST_USE;

/* The checkpoint (table audit_checkpoint): *id = 0 when there is none. */
at_err at_audit_checkpoint_get(at_db_conn *conn, int64_t *id, char hash[65], at_diag *d) AT_MUST_USE;
/* Record a verified row (on a write connection). */
at_err at_audit_checkpoint_set(at_db_conn *conn, int64_t id, const char *hash, at_diag *d) AT_MUST_USE;

typedef struct {
    int64_t since_ms, until_ms; /* 0 = unbounded */
    const char *outcome, *action, *policy, *instance_id;
    const char *actor, *code; /* exact matches; NULL = any */
    int64_t after_id;         /* cursor: rows with id > after_id */
    int limit;                /* 1..1000 */
} at_audit_filter;

/* Rows matching f, oldest first, as JSON objects appended to `entries`;
 * *next_cursor is the last id returned when more may follow, else 0. */
at_err at_audit_query(at_db_conn *conn, const at_audit_filter *f, json_t *entries, int64_t *next_cursor,
                      at_diag *d) AT_MUST_USE;

#endif
