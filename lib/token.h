/* token: API bearer tokens for the verifier's roles. A token is "at_" +
 * base64url of 32 random bytes; only its SHA-256 is ever stored (table
 * api_tokens), inserted here with its audit row by both the verifier's
 * bootstrap and `attestctl token create`. A token may expire and may be
 * limited to named policies (its scope); listing never shows a token or
 * its hash. Revocation and expiry are read from the database on every
 * request, so they hold at once on every verifier sharing it. */
#ifndef AT_TOKEN_H
#define AT_TOKEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"

#define AT_TOKEN_MAX 80
/* A scope: at most this many policy names, comma-separated, this long in
 * all (checked at creation, with an error: never cut). */
#define AT_TOKEN_MAX_POLICIES 32
#define AT_TOKEN_SCOPE_MAX 1024
/* Longest expiry accepted by at_token_parse_duration: ten years. */
#define AT_TOKEN_MAX_LIFETIME_S (10LL * 366 * 24 * 3600)

/* A fresh token into out (secret: wipe it after use). */
at_err at_token_generate(char out[AT_TOKEN_MAX]) AT_MUST_USE;
/* SHA-256 of the token, the only form stored (api_tokens.token_sha256). */
at_err at_token_hash(const char *token, uint8_t out[32], at_diag *d) AT_MUST_USE;
/* A token file's token (API.md: surrounding whitespace is ignored) into out
 * (a secret: wipe it after use). AT_E_IO when unreadable, AT_E_BAD_FIELD
 * when empty, too long or holding inner whitespace. */
at_err at_token_read_file(const char *path, char *out, size_t cap, at_diag *d) AT_MUST_USE;

/* "30d", "12h", "45m", "90s" (a positive integer and one unit) into
 * milliseconds; AT_E_BAD_FIELD naming the expected form otherwise. */
at_err at_token_parse_duration(const char *s, int64_t *ms, at_diag *d) AT_MUST_USE;
/* A scope "a,b": 1..AT_TOKEN_MAX_POLICIES policy names ([A-Za-z0-9._-],
 * 1..128 each), no duplicates, at most AT_TOKEN_SCOPE_MAX characters.
 * AT_E_BAD_FIELD naming the offending name otherwise. */
at_err at_token_check_scope(const char *scope, at_diag *d) AT_MUST_USE;
/* Does a scope admit a policy name? NULL or "" = every policy. */
bool at_token_scope_allows(const char *scope, const char *policy);

typedef struct {
    uint8_t hash[32];
    const char *role;     /* admin, owner, auditor, gateway, agent */
    const char *label;    /* may be NULL */
    const char *actor;    /* for the audit row */
    int64_t expires_ms;   /* 0 = never */
    const char *policies; /* scope (at_token_check_scope), NULL = all */
    int64_t id;           /* out: row id, 0 when it already existed */
} at_token_insert_job;

/* An at_db write job (ctx = at_token_insert_job): inserts the hash unless
 * present, and audits the creation. */
at_err at_token_insert(at_db_conn *conn, void *ctx, at_diag *d) AT_MUST_USE;

typedef struct {
    int64_t id;
    const char *actor, *client; /* for the audit row */
    bool was_revoked;           /* out: it already was */
} at_token_revoke_job;
/* An at_db write job (ctx = at_token_revoke_job): marks the token revoked
 * (AT_E_NOT_FOUND when there is no such id) and audits it. */
at_err at_token_revoke(at_db_conn *conn, void *ctx, at_diag *d) AT_MUST_USE;

/* Every token, oldest first, as {"tokens":[{"id","role","label","policies":
 * [..]|null,"created_at","expires_at"|null,"revoked_at"|null,"state":
 * "active"|"expired"|"revoked"}]} (new reference); never a secret or hash. */
at_err at_token_list(at_db_conn *conn, int64_t now_ms, json_t **out, at_diag *d) AT_MUST_USE;

#endif
