/* token: generation, hashing and storage of API tokens. */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"
#include "db.h"
#include "enc.h"

at_err at_token_generate(char out[AT_TOKEN_MAX])
{
    uint8_t r[32];
    if (RAND_bytes(r, sizeof r) != 1)
        return AT_E_INTERNAL;
    char *b = at_b64url_encode_new(AT_SPAN(r, sizeof r));
    at_wipe(r, sizeof r);
    if (!b)
        return AT_E_INTERNAL;
    snprintf(out, AT_TOKEN_MAX, "at_%s", b);
    at_wipe_free(b, strlen(b));
    return AT_OK;
}

void at_token_hash(const char *token, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(token, strlen(token), out, &n, EVP_sha256(), NULL);
}

at_err at_token_insert(sqlite3 *c, void *ctx, at_diag *d)
{
    at_token_insert_job *j = ctx;
    sqlite3_stmt *st = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    at_err rc = at_db_prepare(c, "INSERT INTO api_tokens (token_sha256, role, label, created_ms)"
                                 " VALUES (?, ?, ?, ?) ON CONFLICT (token_sha256) DO NOTHING", &st, d);
    if (rc != AT_OK)
        return rc;
    sqlite3_bind_blob(st, 1, j->hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->role, -1, SQLITE_STATIC);
    if (j->label)
        sqlite3_bind_text(st, 3, j->label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE)
        return at_fail(d, AT_E_BAD_REQUEST, "token: %s", sqlite3_errmsg(c));
    j->id = 0;
    if (sqlite3_changes(c) == 0)
        return AT_OK; /* already present */
    j->id = sqlite3_last_insert_rowid(c);
    char msg[96];
    snprintf(msg, sizeof msg, "token %lld role %s", (long long)j->id, j->role);
    at_audit_row row = {.actor = j->actor, .action = "token.create", .outcome = "ok", .message = msg};
    return at_audit_append(c, &row, NULL, d);
}

at_err at_token_read_file(const char *path, char *out, size_t cap, at_diag *d)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return at_fail(d, AT_E_IO, "%s: cannot open", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = !feof(f);
    fclose(f);
    buf[n] = '\0';
    size_t a = strspn(buf, " \t\r\n"), b = n;
    while (b > a && strchr(" \t\r\n", buf[b - 1]))
        b--;
    at_err rc = AT_OK;
    if (more || b - a >= cap)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: token longer than %zu characters", path, cap - 1);
    else if (b == a)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: no token in the file", path);
    else if (strcspn(buf + a, " \t\r\n") < b - a)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: whitespace inside the token", path);
    if (rc == AT_OK) {
        memcpy(out, buf + a, b - a);
        out[b - a] = '\0';
    }
    at_wipe(buf, sizeof buf);
    return rc;
}
