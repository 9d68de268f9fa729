/* token: API bearer tokens for the verifier's roles. A token is "at_" +
 * base64url of 32 random bytes; only its SHA-256 is ever stored (table
 * api_tokens), inserted here with its audit row by both the verifier's
 * bootstrap and `attestctl token create`. */
#ifndef AT_TOKEN_H
#define AT_TOKEN_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define AT_TOKEN_MAX 80

/* A fresh token into out (secret: wipe it after use). */
at_err at_token_generate(char out[AT_TOKEN_MAX]) AT_MUST_USE;
void at_token_hash(const char *token, uint8_t out[32]);
/* A token file's token (API.md: surrounding whitespace is ignored) into out
 * (a secret: wipe it after use). AT_E_IO when unreadable, AT_E_BAD_FIELD
 * when empty, too long or holding inner whitespace. */
at_err at_token_read_file(const char *path, char *out, size_t cap, at_diag *d) AT_MUST_USE;

typedef struct {
    uint8_t hash[32];
    const char *role;      /* admin, owner, auditor, gateway, agent */
    const char *label;     /* may be NULL */
    const char *actor;     /* for the audit row */
    int64_t id;            /* out: row id, 0 when it already existed */
} at_token_insert_job;

/* An at_db write job (ctx = at_token_insert_job): inserts the hash unless
 * present, and audits the creation. */
at_err at_token_insert(sqlite3 *conn, void *ctx, at_diag *d) AT_MUST_USE;

#endif
