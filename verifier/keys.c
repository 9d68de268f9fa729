/* keys: the verifier's signing keys, nonce MAC keys, storage key and
 * bootstrap admin token (see keys.h). Trust boundary: key material comes
 * from the verifier's own database and files; a file that is not exactly
 * what was written (short, long, a wrong key) stops the start. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "clock.h"
#include "enc.h"
#include "evidence.h"
#include "file.h"
#include "keys.h"
#include "log.h"
#include "seal.h"
#include "token.h"

struct verifier_keys {
    at_db *db;
    pthread_rwlock_t signer_lock;
    at_signer *signer;                       /* swapped under signer_lock (SIGHUP) */
    uint8_t nonce_keys[2][AT_NONCE_KEY_LEN]; /* current, previous; read-only after open */
    size_t n_nonce_keys;
    uint8_t storage_key[AT_STORAGE_KEY_LEN];
};

struct key_job {
    const char *kind;
    bool rotate;
    char *material;
};

static at_err ensure_key(at_db_conn *c, void *ctx, at_diag *d)
{
    struct key_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    char *material = NULL;
    char kid[65];
    AT_TRY(
        at_db_prepare(c, "SELECT count(*) FROM verifier_keys WHERE kind = $1 AND state = 'current'", &st, d));
    at_db_bind_text(st, 1, j->kind, -1);
    AT_ENSURE(at_db_step(st) == AT_DB_ROW, d, AT_E_INTERNAL, "keys: %s", at_db_errmsg(c));
    int have = at_db_column_int64(st, 0);
    at_db_finalize(st);
    st = NULL;
    if (have && !j->rotate) {
        rc = AT_OK;
        goto out;
    }
    if (strcmp(j->kind, "signing") == 0) {
        AT_TRY(at_signer_generate(&material, d));
        json_t *jw = json_loads(material, 0, NULL);
        snprintf(kid, sizeof kid, "%s", json_string_value(json_object_get(jw, "kid")) ?: "?");
        json_decref(jw);
    } else {
        uint8_t k[AT_NONCE_KEY_LEN];
        AT_ENSURE(RAND_bytes(k, sizeof k) == 1, d, AT_E_INTERNAL, "keys: no randomness");
        material = at_b64_encode_new(AT_SPAN(k, sizeof k));
        at_wipe(k, sizeof k);
        uint8_t r[8];
        AT_ENSURE(RAND_bytes(r, sizeof r) == 1, d, AT_E_INTERNAL, "keys: no randomness");
        at_hex_encode(r, sizeof r, kid);
    }
    AT_ENSURE(material, d, AT_E_INTERNAL, "out of memory");
    AT_TRY(at_db_prepare(
        c, "UPDATE verifier_keys SET state = 'retired' WHERE kind = $1 AND state = 'previous'", &st, d));
    at_db_bind_text(st, 1, j->kind, -1);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "keys: %s", at_db_errmsg(c));
    at_db_finalize(st);
    AT_TRY(at_db_prepare(
        c, "UPDATE verifier_keys SET state = 'previous' WHERE kind = $1 AND state = 'current'", &st, d));
    at_db_bind_text(st, 1, j->kind, -1);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "keys: %s", at_db_errmsg(c));
    at_db_finalize(st);
    AT_TRY(at_db_prepare(c,
                         "INSERT INTO verifier_keys (kid, kind, material, state, created_ms)"
                         " VALUES ($1, $2, $3, 'current', $4)",
                         &st, d));
    at_db_bind_text_copy(st, 1, kid, -1);
    at_db_bind_text(st, 2, j->kind, -1);
    at_db_bind_text(st, 3, material, -1);
    at_db_bind_int64(st, 4, at_now_ms());
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "keys: %s", at_db_errmsg(c));
    at_audit_row row = {.actor = "verifier",
                        .action = j->rotate ? "key.rotate" : "key.create",
                        .outcome = "ok",
                        .message = j->kind};
    AT_TRY(at_audit_append(c, &row, NULL, d));
    rc = AT_OK;
out:
    at_db_finalize(st);
    if (material)
        at_wipe_free(material, strlen(material));
    return rc;
}

/* Load current (first) and previous keys of a kind. Caller frees each.
 * All or none: a read error is no key (never the current one without the
 * previous one, which would refuse what the previous key signed). */
static size_t load_keys(at_db *db, const char *kind, char **out, size_t max)
{
    at_db_conn *c = at_db_read_acquire(db);
    at_db_stmt *st = NULL;
    size_t n = 0;
    int s = AT_DB_ERROR;
    if (c && at_db_prepare(c,
                           "SELECT material FROM verifier_keys WHERE kind = $1 AND state IN"
                           " ('current', 'previous') ORDER BY state = 'current' DESC,"
                           " created_ms DESC",
                           &st, NULL) == AT_OK) {
        at_db_bind_text(st, 1, kind, -1);
        while (n < max && (s = at_db_step(st)) == AT_DB_ROW && (out[n] = strdup(at_db_column_text(st, 0))))
            n++;
        if (n == max)
            s = AT_DB_DONE;
    }
    if (s != AT_DB_DONE) {
        at_log("error", "keys", "%s keys: %s", kind, c ? at_db_errmsg(c) : "database unavailable");
        for (size_t i = 0; i < n; i++)
            at_wipe_free(out[i], strlen(out[i]));
        n = 0;
    }
    at_db_finalize(st);
    at_db_read_release(db, c);
    return n;
}

/* A signer over the current and previous signing keys. Caller frees. */
static at_err load_signer(verifier_keys *k, at_signer **out, at_diag *d)
{
    char *keys[4] = {0};
    size_t n = load_keys(k->db, "signing", keys, 4);
    at_err rc = n ? at_signer_new((const char *const *)keys, n, out, d)
                  : at_fail(d, AT_E_INTERNAL, "keys: no signing key");
    for (size_t i = 0; i < n; i++)
        at_wipe_free(keys[i], strlen(keys[i]));
    return rc;
}

static at_err load_nonce_keys(verifier_keys *k, at_diag *d)
{
    char *keys[4] = {0};
    size_t n = load_keys(k->db, "nonce_mac", keys, 2);
    k->n_nonce_keys = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *m = NULL;
        size_t mlen = 0;
        if (at_b64_decode_new(keys[i], strlen(keys[i]), &m, &mlen) == AT_OK && mlen == AT_NONCE_KEY_LEN)
            memcpy(k->nonce_keys[k->n_nonce_keys++], m, AT_NONCE_KEY_LEN);
        if (m)
            at_wipe_free(m, mlen);
        at_wipe_free(keys[i], strlen(keys[i]));
    }
    return k->n_nonce_keys ? AT_OK : at_fail(d, AT_E_INTERNAL, "keys: no nonce MAC key");
}

/* ---- bootstrap admin token ------------------------------------------------ */

static at_err bootstrap_admin(verifier_keys *k, const char *path, at_diag *d)
{
    char tok[300] = "";
    if (access(path, F_OK) == 0) {
        at_err rc = at_token_read_file(path, tok, sizeof tok, d);
        if (rc != AT_OK)
            return rc;
        if (strlen(tok) < 16) {
            at_wipe(tok, sizeof tok);
            return at_fail(d, AT_E_BAD_REQUEST, "%s: admin token shorter than 16 characters", path);
        }
    } else {
        if (errno != ENOENT)
            return at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
        if (at_token_generate(tok) != AT_OK)
            return at_fail(d, AT_E_INTERNAL, "no randomness");
        char line[sizeof tok + 1];
        int n = snprintf(line, sizeof line, "%s\n", tok);
        at_err rc = at_file_write_atomic(path, AT_SPAN(line, (size_t)n), 0600, true, d);
        at_wipe(line, sizeof line);
        if (rc != AT_OK) {
            at_wipe(tok, sizeof tok);
            return rc;
        }
        at_log("info", "admin_token", "generated a bootstrap admin token in %s (mode 0600)", path);
    }
    at_token_insert_job j = {.role = "admin", .label = "bootstrap", .actor = "verifier"};
    at_err rc = at_token_hash(tok, j.hash, d);
    at_wipe(tok, sizeof tok);
    if (rc != AT_OK)
        return rc;
    return at_db_write(k->db, at_token_insert, &j, d);
}

/* ---- storage key for secrets at rest -------------------------------------- */

/* What the database holds sealed under the storage key: secrets, and the
 * proof keys of live sessions, with one of each to try (freed by
 * the caller), so a wrong key is found at start, not at the first release. */
struct sealed_probe {
    int64_t n_secrets, n_sessions;
    char *secret, *secret_policy, *session;
    uint8_t *blob, *sblob;
    size_t blob_len, sblob_len;
};

static void probe_free(struct sealed_probe *p)
{
    free(p->secret);
    free(p->secret_policy);
    free(p->session);
    free(p->blob);
    free(p->sblob);
}

static at_err probe_sealed(verifier_keys *k, struct sealed_probe *p, at_diag *d)
{
    memset(p, 0, sizeof *p);
    at_db_conn *c = at_db_read_acquire(k->db);
    at_db_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE(c, d, AT_E_INTERNAL, "database unavailable");
    AT_TRY(at_db_prepare(c,
                         "SELECT (SELECT count(*) FROM secrets), (SELECT count(*) FROM sessions"
                         " WHERE ended_ms IS NULL AND length(proof_key) != 32)",
                         &st, d));
    AT_ENSURE(at_db_step(st) == AT_DB_ROW, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    p->n_secrets = at_db_column_int64(st, 0);
    p->n_sessions = at_db_column_int64(st, 1);
    at_db_finalize(st);
    AT_TRY(
        at_db_prepare(c, "SELECT name, policy, value FROM secrets ORDER BY updated_ms DESC LIMIT 1", &st, d));
    int s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    if (s == AT_DB_ROW) {
        p->secret = strdup(at_db_column_text(st, 0));
        p->secret_policy = strdup(at_db_column_text(st, 1));
        p->blob_len = (size_t)at_db_column_bytes(st, 2);
        p->blob = malloc(p->blob_len + 1);
        if (p->blob)
            memcpy(p->blob, at_db_column_blob(st, 2), p->blob_len);
    }
    at_db_finalize(st);
    AT_TRY(at_db_prepare(c,
                         "SELECT id, proof_key FROM sessions WHERE ended_ms IS NULL AND"
                         " length(proof_key) != 32 ORDER BY created_ms DESC LIMIT 1",
                         &st, d));
    s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    if (s == AT_DB_ROW) {
        p->session = strdup(at_db_column_text(st, 0));
        p->sblob_len = (size_t)at_db_column_bytes(st, 1);
        p->sblob = malloc(p->sblob_len + 1);
        if (p->sblob)
            memcpy(p->sblob, at_db_column_blob(st, 1), p->sblob_len);
    }
    AT_ENSURE((!p->n_secrets || (p->secret && p->secret_policy && p->blob)) &&
                  (!p->n_sessions || (p->session && p->sblob)),
              d, AT_E_INTERNAL, "out of memory");
    rc = AT_OK;
out:
    at_db_finalize(st);
    at_db_read_release(k->db, c);
    return rc;
}

/* Read the key file, or create it (0600, 32 random bytes) when absent and
 * nothing in the database is sealed under a key. It lives outside the
 * database on purpose: a copy of the database alone reveals no secret.
 * Replicas sharing a database share this file too. A missing or wrong key
 * while sealed data exists stops the start: a new key would never open it. */
static at_err load_storage_key(verifier_keys *k, const char *path, at_diag *d)
{
    struct sealed_probe p;
    at_err rc = probe_sealed(k, &p, d);
    if (rc != AT_OK)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && (p.n_secrets || p.n_sessions)) {
        rc = at_fail(d, AT_E_IO,
                     "%s: storage key file missing, but the database holds %lld "
                     "secret(s) and %lld live session key(s) sealed under it: restore the file "
                     "(a new key would never open them)",
                     path, (long long)p.n_secrets, (long long)p.n_sessions);
        goto out;
    }
    if (fd < 0 && errno == ENOENT) {
        uint8_t fresh[AT_STORAGE_KEY_LEN];
        if (RAND_bytes(fresh, sizeof fresh) != 1) {
            rc = at_fail(d, AT_E_INTERNAL, "no randomness");
            goto out;
        }
        rc = at_file_write_atomic(path, AT_SPAN(fresh, sizeof fresh), 0600, true, d);
        at_wipe(fresh, sizeof fresh);
        if (rc != AT_OK)
            goto out;
        at_log("info", "storage_key", "created %s (mode 0600): keep it with the database", path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    ssize_t n = read(fd, k->storage_key, sizeof k->storage_key);
    uint8_t extra;
    ssize_t more = read(fd, &extra, 1);
    close(fd);
    if (n != (ssize_t)sizeof k->storage_key || more != 0) {
        rc = at_fail(d, AT_E_IO, "%s: expected exactly 32 bytes", path);
        goto out;
    }
    at_buf plain;
    at_buf_init_secret(&plain);
    at_diag scratch;
    if (p.n_secrets && at_storage_open(k->storage_key, p.secret, p.secret_policy, AT_SPAN(p.blob, p.blob_len),
                                       &plain, &scratch) != AT_OK)
        rc = at_fail(d, AT_E_DECRYPT_FAILED,
                     "%s: this storage key does not open the secrets in "
                     "the database (secret %s): wrong key file",
                     path, p.secret);
    uint8_t pk[32];
    if (rc == AT_OK && p.n_sessions &&
        keys_proof_key_open(k, p.session, AT_SPAN(p.sblob, p.sblob_len), pk, &scratch) != AT_OK)
        rc = at_fail(d, AT_E_DECRYPT_FAILED,
                     "%s: this storage key does not open the proof keys "
                     "of live sessions (session %s): wrong key file",
                     path, p.session);
    at_wipe(pk, sizeof pk);
    at_buf_cleanup(&plain);
out:
    probe_free(&p);
    if (rc != AT_OK)
        at_wipe(k->storage_key, sizeof k->storage_key);
    return rc;
}

/* Sessions written by versions before schema 3 hold their proof key in
 * clear (32 bytes): seal each under the storage key, in place. */
static at_err reseal_proof_keys(at_db_conn *c, void *ctx, at_diag *d)
{
    verifier_keys *k = ctx;
    at_db_stmt *st = NULL, *up = NULL;
    at_err rc = AT_E_INTERNAL;
    int n = 0;
    AT_TRY(at_db_prepare(c, "SELECT id, proof_key FROM sessions WHERE length(proof_key) = 32", &st, d));
    AT_TRY(at_db_prepare(c, "UPDATE sessions SET proof_key = $1 WHERE id = $2", &up, d));
    int s;
    while ((s = at_db_step(st)) == AT_DB_ROW) {
        const char *id = at_db_column_text(st, 0);
        at_buf sealed;
        at_buf_init(&sealed);
        rc = keys_proof_key_seal(k, id, at_db_column_blob(st, 1), &sealed, d);
        if (rc == AT_OK) {
            at_db_reset(up);
            at_db_bind_blob_copy(up, 1, sealed.p, sealed.len);
            at_db_bind_text_copy(up, 2, id, -1);
            if (at_db_step(up) != AT_DB_DONE)
                rc = at_fail(d, AT_E_INTERNAL, "reseal: %s", at_db_errmsg(c));
        }
        at_buf_cleanup(&sealed);
        if (rc != AT_OK)
            goto out;
        n++;
    }
    AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "reseal: %s", at_db_errmsg(c));
    if (n)
        at_log("info", "storage_key", "sealed the proof keys of %d session(s) stored in clear", n);
    rc = AT_OK;
out:
    at_db_finalize(st);
    at_db_finalize(up);
    return rc;
}

/* ---- the interface --------------------------------------------------------- */

at_err keys_ensure(at_db *db, bool rotate_signing, at_diag *d)
{
    struct key_job sk = {.kind = "signing", .rotate = rotate_signing}, nk = {.kind = "nonce_mac"};
    at_err rc = at_db_write(db, ensure_key, &sk, d);
    return rc != AT_OK ? rc : at_db_write(db, ensure_key, &nk, d);
}

at_err keys_open(at_db *db, const char *admin_token_file, const char *storage_key_file, verifier_keys **out,
                 at_diag *d)
{
    verifier_keys *k = calloc(1, sizeof *k);
    if (!k)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    k->db = db;
    pthread_rwlock_init(&k->signer_lock, NULL);
    at_err rc = load_signer(k, &k->signer, d);
    if (rc == AT_OK)
        rc = load_nonce_keys(k, d);
    if (rc == AT_OK)
        rc = bootstrap_admin(k, admin_token_file, d);
    if (rc == AT_OK)
        rc = load_storage_key(k, storage_key_file, d);
    if (rc == AT_OK)
        rc = at_db_write(db, reseal_proof_keys, k, d);
    if (rc != AT_OK) {
        keys_close(k);
        return rc;
    }
    *out = k;
    return AT_OK;
}

void keys_close(verifier_keys *k)
{
    if (!k)
        return;
    at_signer_free(k->signer);
    pthread_rwlock_destroy(&k->signer_lock);
    at_wipe(k, sizeof *k);
    free(k);
}

at_signer *keys_signer(verifier_keys *k)
{
    pthread_rwlock_rdlock(&k->signer_lock);
    at_signer *s = at_signer_ref(k->signer);
    pthread_rwlock_unlock(&k->signer_lock);
    return s;
}

/* Install a new signer; the old one goes when its last user drops it, so
 * any number of reloads holds at most the signers requests still use. */
at_err keys_reload_signer(verifier_keys *k, at_diag *d)
{
    at_signer *fresh = NULL;
    at_err rc = load_signer(k, &fresh, d);
    if (rc != AT_OK)
        return rc;
    pthread_rwlock_wrlock(&k->signer_lock);
    at_signer *old = k->signer;
    k->signer = fresh;
    pthread_rwlock_unlock(&k->signer_lock);
    at_signer_free(old);
    return AT_OK;
}

/* Replicas share verifier_keys: a rotation done anywhere (another replica's
 * --rotate-signing-key) shows as a new current kid. One indexed lookup. */
at_err keys_refresh_signer(verifier_keys *k, bool *changed, at_diag *d)
{
    *changed = false;
    char kid[128] = "";
    at_db_conn *c = at_db_read_acquire(k->db);
    if (!c)
        return at_fail(d, AT_E_UNAVAILABLE, "keys: database unavailable");
    at_db_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "SELECT kid FROM verifier_keys WHERE kind = 'signing' AND state = 'current'",
                              &st, d);
    if (rc == AT_OK) {
        int s = at_db_step(st);
        if (s == AT_DB_ROW && at_db_column_text(st, 0))
            snprintf(kid, sizeof kid, "%s", at_db_column_text(st, 0));
        else if (s != AT_DB_DONE)
            rc = at_fail(d, AT_E_UNAVAILABLE, "keys: %s", at_db_errmsg(c));
    }
    at_db_finalize(st);
    at_db_read_release(k->db, c);
    if (rc != AT_OK || !kid[0])
        return rc;
    at_signer *cur = keys_signer(k);
    bool same = strcmp(at_signer_kid(cur), kid) == 0;
    at_signer_free(cur);
    if (same)
        return AT_OK;
    rc = keys_reload_signer(k, d);
    *changed = rc == AT_OK;
    return rc;
}

at_err keys_nonce_issue(verifier_keys *k, int64_t now_ms, int ttl_s, uint8_t out[AT_NONCE_LEN],
                        int64_t *expires_ms)
{
    return at_nonce_issue(k->nonce_keys[0], now_ms, ttl_s, out, expires_ms);
}

at_err keys_nonce_check(verifier_keys *k, at_span nonce, int64_t now_ms, int64_t *expires_ms, at_diag *d)
{
    return at_nonce_check((const uint8_t(*)[AT_NONCE_KEY_LEN])k->nonce_keys, k->n_nonce_keys, nonce, now_ms,
                          expires_ms, d);
}

at_err keys_storage_seal(verifier_keys *k, const char *name, const char *policy, at_span plain, at_buf *out,
                         at_diag *d)
{
    return at_storage_seal(k->storage_key, name, policy, plain, out, d);
}

at_err keys_storage_open(verifier_keys *k, const char *name, const char *policy, at_span stored, at_buf *out,
                         at_diag *d)
{
    return at_storage_open(k->storage_key, name, policy, stored, out, d);
}

at_err keys_proof_key_seal(verifier_keys *k, const char *session_id, const uint8_t key[32], at_buf *out,
                           at_diag *d)
{
    return keys_storage_seal(k, session_id, PROOF_KEY_SEAL_LABEL, AT_SPAN(key, 32), out, d);
}

at_err keys_proof_key_open(verifier_keys *k, const char *session_id, at_span sealed, uint8_t key[32],
                           at_diag *d)
{
    at_buf plain;
    at_buf_init_secret(&plain);
    at_err rc = keys_storage_open(k, session_id, PROOF_KEY_SEAL_LABEL, sealed, &plain, d);
    if (rc == AT_OK && plain.len != 32)
        rc = at_fail(d, AT_E_DECRYPT_FAILED, "session %s: proof key of %zu bytes, expected 32", session_id,
                     plain.len);
    if (rc == AT_OK)
        memcpy(key, plain.p, 32);
    at_buf_cleanup(&plain);
    return rc;
}
