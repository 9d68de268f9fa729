/* attest-verifier: entry point. Reads configuration, opens the database
 * (migrations), makes sure its keys and the bootstrap admin token exist,
 * pins roots, serves the HTTP API (router below) and handles signals:
 * SIGTERM/SIGINT drain and stop, SIGHUP reloads roots and signing keys,
 * SIGUSR1 prunes at once. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "at_limits.h"
#include "config.h"
#include "enc.h"
#include "seal.h"
#include "token.h"
#include "verifier.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: attest-verifier [--listen ADDR:PORT] [--db FILE] [--root PEM]...\n"
            "                       [--no-aws-root] [--admin-token-file F] [--config FILE.json]\n"
            "                       [--nonce-ttl S] [--clock-skew S] [--max-body BYTES]\n"
            "                       [--connection-limit N] [--per-ip-limit N] [--rate R] [--burst B]\n"
            "                       [--audit-rate N] [--audit-verify-interval S]\n"
            "                       [--request-timeout S]\n"
            "                       [--tls-cert PEM --tls-key PEM] [--port-file F]\n"
            "                       [--log-level debug|info|warn|error] [--storage-key-file F]\n"
            "       attest-verifier --db FILE --rotate-signing-key\n"
            "Defaults: --listen 127.0.0.1:8440 --db ./attest.db; the AWS Nitro root G1 is\n"
            "always trusted unless --no-aws-root. SIGHUP reloads roots and keys, SIGUSR1\n"
            "prunes used nonces/proofs and ends expired sessions now (else every 30 s).\n"
            "--test-clock-file F (tests only) adds the offset in seconds written in F to\n"
            "the clock.\n");
}

at_trust *verifier_trust(verifier *v)
{
    pthread_rwlock_rdlock(&v->trust_lock);
    at_trust *t = at_trust_ref(v->trust);
    pthread_rwlock_unlock(&v->trust_lock);
    return t;
}

at_signer *verifier_signer(verifier *v)
{
    pthread_rwlock_rdlock(&v->signer_lock);
    at_signer *s = at_signer_ref(v->signer);
    pthread_rwlock_unlock(&v->signer_lock);
    return s;
}

/* Install a new signer; the old one goes when its last user drops it, so
 * any number of reloads holds at most the signers requests still use. */
static void swap_signer(verifier *v, at_signer *fresh)
{
    pthread_rwlock_wrlock(&v->signer_lock);
    at_signer *old = v->signer;
    v->signer = fresh;
    pthread_rwlock_unlock(&v->signer_lock);
    at_signer_free(old);
}

at_err verifier_load_roots(verifier *v, at_diag *d)
{
    at_trust *t = at_trust_new(0);
    bool sim = false;
    if (!t)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_err rc = AT_OK;
    if (!v->cfg.no_aws_root)
        rc = at_trust_add_aws_root(t, d);
    for (size_t i = 0; rc == AT_OK && i < v->cfg.n_root_files; i++) {
        rc = at_trust_add_root_file(t, v->cfg.root_files[i], d);
        sim = true;
    }
    if (rc == AT_OK && at_trust_root_count(t) == 0)
        rc = at_fail(d, AT_E_UNTRUSTED_ROOT, "roots: none pinned");
    if (rc != AT_OK) {
        at_trust_unref(t);
        return rc;
    }
    pthread_rwlock_wrlock(&v->trust_lock);
    at_trust *old = v->trust;
    v->trust = t;
    v->trusts_sim_root = sim;
    pthread_rwlock_unlock(&v->trust_lock);
    at_trust_unref(old);
    if (sim)
        at_log("warn", "roots", "trusting %zu root file(s) besides%s the AWS Nitro root: documents "
             "signed by such a root (e.g. the simulator) are NOT from AWS hardware",
             v->cfg.n_root_files, v->cfg.no_aws_root ? " (instead of)" : "");
    return AT_OK;
}

/* ---- keys ---------------------------------------------------------------- */

struct key_job {
    const char *kind;
    bool rotate;
    char *material;
};

static at_err ensure_key(sqlite3 *c, void *ctx, at_diag *d)
{
    struct key_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    sqlite3_stmt *st = NULL;
    char *material = NULL;
    char kid[65];
    AT_TRY(at_db_prepare(c, "SELECT count(*) FROM verifier_keys WHERE kind = ? AND state = 'current'",
                         &st, d));
    sqlite3_bind_text(st, 1, j->kind, -1, SQLITE_STATIC);
    AT_ENSURE(sqlite3_step(st) == SQLITE_ROW, d, AT_E_INTERNAL, "keys: %s", sqlite3_errmsg(c));
    int have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
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
    AT_TRY(at_db_prepare(c, "UPDATE verifier_keys SET state = 'retired' WHERE kind = ? AND state = 'previous'", &st, d));
    sqlite3_bind_text(st, 1, j->kind, -1, SQLITE_STATIC);
    AT_ENSURE(sqlite3_step(st) == SQLITE_DONE, d, AT_E_INTERNAL, "keys: %s", sqlite3_errmsg(c));
    sqlite3_finalize(st);
    AT_TRY(at_db_prepare(c, "UPDATE verifier_keys SET state = 'previous' WHERE kind = ? AND state = 'current'", &st, d));
    sqlite3_bind_text(st, 1, j->kind, -1, SQLITE_STATIC);
    AT_ENSURE(sqlite3_step(st) == SQLITE_DONE, d, AT_E_INTERNAL, "keys: %s", sqlite3_errmsg(c));
    sqlite3_finalize(st);
    AT_TRY(at_db_prepare(c, "INSERT INTO verifier_keys (kid, kind, material, state, created_ms)"
                            " VALUES (?, ?, ?, 'current', ?)", &st, d));
    sqlite3_bind_text(st, 1, kid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, j->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, material, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, at_now_ms());
    AT_ENSURE(sqlite3_step(st) == SQLITE_DONE, d, AT_E_INTERNAL, "keys: %s", sqlite3_errmsg(c));
    at_audit_row row = {.actor = "verifier", .action = j->rotate ? "key.rotate" : "key.create",
                        .outcome = "ok", .message = j->kind};
    AT_TRY(at_audit_append(c, &row, NULL, d));
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    if (material)
        at_wipe_free(material, strlen(material));
    return rc;
}

/* Load current (first) and previous keys of a kind. Caller frees each. */
static size_t load_keys(at_db *db, const char *kind, char **out, size_t max)
{
    sqlite3 *c = at_db_read_acquire(db);
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    if (c && sqlite3_prepare_v2(c, "SELECT material FROM verifier_keys WHERE kind = ? AND state IN"
                                   " ('current', 'previous') ORDER BY state = 'current' DESC,"
                                   " created_ms DESC", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        while (n < max && sqlite3_step(st) == SQLITE_ROW)
            out[n++] = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    at_db_read_release(db, c);
    return n;
}

/* A signer over the current and previous signing keys. Caller frees. */
static at_err load_signer(verifier *v, at_signer **out, at_diag *d)
{
    char *keys[4] = {0};
    size_t n = load_keys(v->db, "signing", keys, 4);
    at_err rc = n ? at_signer_new((const char *const *)keys, n, out, d)
                  : at_fail(d, AT_E_INTERNAL, "keys: no signing key");
    for (size_t i = 0; i < n; i++)
        at_wipe_free(keys[i], strlen(keys[i]));
    return rc;
}

static at_err load_nonce_keys(verifier *v, at_diag *d)
{
    char *keys[4] = {0};
    size_t n = load_keys(v->db, "nonce_mac", keys, 2);
    v->n_nonce_keys = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *k = NULL;
        size_t klen = 0;
        if (at_b64_decode_new(keys[i], strlen(keys[i]), &k, &klen) == AT_OK && klen == AT_NONCE_KEY_LEN)
            memcpy(v->nonce_keys[v->n_nonce_keys++], k, AT_NONCE_KEY_LEN);
        if (k)
            at_wipe_free(k, klen);
        at_wipe_free(keys[i], strlen(keys[i]));
    }
    return v->n_nonce_keys ? AT_OK : at_fail(d, AT_E_INTERNAL, "keys: no nonce MAC key");
}

/* ---- bootstrap admin token ------------------------------------------------ */

static at_err bootstrap_admin(verifier *v, at_diag *d)
{
    const char *path = v->cfg.admin_token_file;
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
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
        bool ok = write(fd, tok, strlen(tok)) == (ssize_t)strlen(tok) && write(fd, "\n", 1) == 1 &&
                  fsync(fd) == 0;
        close(fd);
        if (!ok)
            return at_fail(d, AT_E_IO, "%s: write failed", path);
        at_log("info", "admin_token", "generated a bootstrap admin token in %s (mode 0600)", path);
    }
    at_token_insert_job j = {.role = "admin", .label = "bootstrap", .actor = "verifier"};
    at_token_hash(tok, j.hash);
    at_wipe(tok, sizeof tok);
    return at_db_write(v->db, at_token_insert, &j, d);
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

static at_err probe_sealed(verifier *v, struct sealed_probe *p, at_diag *d)
{
    memset(p, 0, sizeof *p);
    sqlite3 *c = at_db_read_acquire(v->db);
    sqlite3_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE(c, d, AT_E_INTERNAL, "database unavailable");
    AT_TRY(at_db_prepare(c, "SELECT (SELECT count(*) FROM secrets), (SELECT count(*) FROM sessions"
                            " WHERE ended_ms IS NULL AND length(proof_key) != 32)", &st, d));
    AT_ENSURE(sqlite3_step(st) == SQLITE_ROW, d, AT_E_INTERNAL, "database: %s", sqlite3_errmsg(c));
    p->n_secrets = sqlite3_column_int64(st, 0);
    p->n_sessions = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    AT_TRY(at_db_prepare(c, "SELECT name, policy, value FROM secrets ORDER BY updated_ms DESC LIMIT 1",
                         &st, d));
    if (sqlite3_step(st) == SQLITE_ROW) {
        p->secret = strdup((const char *)sqlite3_column_text(st, 0));
        p->secret_policy = strdup((const char *)sqlite3_column_text(st, 1));
        p->blob_len = (size_t)sqlite3_column_bytes(st, 2);
        p->blob = malloc(p->blob_len + 1);
        if (p->blob)
            memcpy(p->blob, sqlite3_column_blob(st, 2), p->blob_len);
    }
    sqlite3_finalize(st);
    AT_TRY(at_db_prepare(c, "SELECT id, proof_key FROM sessions WHERE ended_ms IS NULL AND"
                            " length(proof_key) != 32 ORDER BY created_ms DESC LIMIT 1", &st, d));
    if (sqlite3_step(st) == SQLITE_ROW) {
        p->session = strdup((const char *)sqlite3_column_text(st, 0));
        p->sblob_len = (size_t)sqlite3_column_bytes(st, 1);
        p->sblob = malloc(p->sblob_len + 1);
        if (p->sblob)
            memcpy(p->sblob, sqlite3_column_blob(st, 1), p->sblob_len);
    }
    AT_ENSURE((!p->n_secrets || (p->secret && p->secret_policy && p->blob)) &&
                  (!p->n_sessions || (p->session && p->sblob)),
              d, AT_E_INTERNAL, "out of memory");
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    at_db_read_release(v->db, c);
    return rc;
}

/* Read the key file, or create it (0600, 32 random bytes) when absent and
 * nothing in the database is sealed under a key. It lives outside the
 * database on purpose: a copy of the database alone reveals no secret.
 * Replicas sharing a database share this file too. A missing or wrong key
 * while sealed data exists stops the start: a new key would never open it. */
static at_err load_storage_key(verifier *v, at_diag *d)
{
    const char *path = v->cfg.storage_key_file;
    struct sealed_probe p;
    at_err rc = probe_sealed(v, &p, d);
    if (rc != AT_OK)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && (p.n_secrets || p.n_sessions)) {
        rc = at_fail(d, AT_E_IO, "%s: storage key file missing, but the database holds %lld "
                     "secret(s) and %lld live session key(s) sealed under it: restore the file "
                     "(a new key would never open them)", path, (long long)p.n_secrets,
                     (long long)p.n_sessions);
        goto out;
    }
    if (fd < 0 && errno == ENOENT) {
        uint8_t k[32];
        if (RAND_bytes(k, sizeof k) != 1) {
            rc = at_fail(d, AT_E_INTERNAL, "no randomness");
            goto out;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, k, sizeof k) == (ssize_t)sizeof k && fsync(fd) == 0;
        at_wipe(k, sizeof k);
        if (fd >= 0)
            close(fd);
        if (!ok) {
            rc = at_fail(d, AT_E_IO, "%s: cannot create: %s", path, strerror(errno));
            goto out;
        }
        at_log("info", "storage_key", "created %s (mode 0600): keep it with the database", path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    ssize_t n = read(fd, v->storage_key, sizeof v->storage_key);
    uint8_t extra;
    ssize_t more = read(fd, &extra, 1);
    close(fd);
    if (n != (ssize_t)sizeof v->storage_key || more != 0) {
        rc = at_fail(d, AT_E_IO, "%s: expected exactly 32 bytes", path);
        goto out;
    }
    at_buf plain;
    at_buf_init_secret(&plain);
    at_diag scratch;
    if (p.n_secrets && at_storage_open(v->storage_key, p.secret, p.secret_policy,
                                       AT_SPAN(p.blob, p.blob_len), &plain, &scratch) != AT_OK)
        rc = at_fail(d, AT_E_DECRYPT_FAILED, "%s: this storage key does not open the secrets in "
                     "the database (secret %s): wrong key file", path, p.secret);
    uint8_t pk[32];
    if (rc == AT_OK && p.n_sessions &&
        proof_key_open(v, p.session, AT_SPAN(p.sblob, p.sblob_len), pk, &scratch) != AT_OK)
        rc = at_fail(d, AT_E_DECRYPT_FAILED, "%s: this storage key does not open the proof keys "
                     "of live sessions (session %s): wrong key file", path, p.session);
    at_wipe(pk, sizeof pk);
    at_buf_cleanup(&plain);
out:
    probe_free(&p);
    if (rc != AT_OK)
        at_wipe(v->storage_key, sizeof v->storage_key);
    return rc;
}

/* Sessions written by versions before schema 3 hold their proof key in
 * clear (32 bytes): seal each under the storage key, in place. */
static at_err reseal_proof_keys(sqlite3 *c, void *ctx, at_diag *d)
{
    verifier *v = ctx;
    sqlite3_stmt *st = NULL, *up = NULL;
    at_err rc = AT_E_INTERNAL;
    int n = 0;
    AT_TRY(at_db_prepare(c, "SELECT id, proof_key FROM sessions WHERE length(proof_key) = 32", &st, d));
    AT_TRY(at_db_prepare(c, "UPDATE sessions SET proof_key = ? WHERE id = ?", &up, d));
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        at_buf sealed;
        at_buf_init(&sealed);
        rc = proof_key_seal(v, id, sqlite3_column_blob(st, 1), &sealed, d);
        if (rc == AT_OK) {
            sqlite3_reset(up);
            sqlite3_bind_blob(up, 1, sealed.p, (int)sealed.len, SQLITE_TRANSIENT);
            sqlite3_bind_text(up, 2, id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(up) != SQLITE_DONE)
                rc = at_fail(d, AT_E_INTERNAL, "reseal: %s", sqlite3_errmsg(c));
        }
        at_buf_cleanup(&sealed);
        if (rc != AT_OK)
            goto out;
        n++;
    }
    if (n)
        at_log("info", "storage_key", "sealed the proof keys of %d session(s) stored in clear", n);
    rc = AT_OK;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    return rc;
}

/* ---- maintenance ---------------------------------------------------------- */

/* Prune against the time high-water mark (schema/0003): the cutoff never
 * goes below the largest one used before, and is recorded in the same
 * transaction as the deletes, so nonce and proof checks on every replica
 * can refuse what a clock set back would otherwise let through again. */
static at_err prune(sqlite3 *c, void *ctx, at_diag *d)
{
    (void)ctx;
    int64_t now = at_now_ms();
    int64_t cutoff = now - 60 * 1000, mark = 0;
    sqlite3_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d);
    if (rc != AT_OK)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        mark = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (cutoff < mark) {
        at_log("warn", "clock", "wall clock is %lld s behind the time high-water mark: nonces and "
               "release proofs expiring before %lld ms are refused", (long long)((mark - cutoff) / 1000),
               (long long)mark);
        cutoff = mark;
    }
    static const char *sql[] = {
        "UPDATE clock_watermark SET pruned_before_ms = ?",
        "DELETE FROM nonces_used WHERE expires_ms < ?",
        "DELETE FROM proofs_used WHERE expires_ms < ?",
        "UPDATE sessions SET ended_ms = expires_ms, end_reason = 'expired'"
        " WHERE ended_ms IS NULL AND expires_ms < ?",
    };
    int ended = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        rc = at_db_prepare(c, sql[i], &st, d);
        if (rc != AT_OK)
            return rc;
        sqlite3_bind_int64(st, 1, cutoff);
        int s = sqlite3_step(st);
        sqlite3_finalize(st);
        if (s != SQLITE_DONE)
            return at_fail(d, AT_E_INTERNAL, "prune: %s", sqlite3_errmsg(c));
        if (i == 3)
            ended = sqlite3_changes(c);
    }
    at_log("debug", "prune", "pruned before %lld ms", (long long)cutoff);
    if (ended == 0)
        return AT_OK;
    /* Ending sessions is a state change: it gets its row. */
    char msg[64];
    snprintf(msg, sizeof msg, "%d expired session(s) ended", ended);
    at_audit_row row = {.actor = "verifier", .action = "session.expire", .outcome = "ok", .message = msg};
    return at_audit_append(c, &row, NULL, d);
}

/* A whole PEM file as text (at most 64 KiB). Caller frees. */
static char *read_text_file(const char *path)
{
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    char *buf = calloc(1, 65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    bool big = !feof(f);
    fclose(f);
    if (!buf || n == 0 || big) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- router --------------------------------------------------------------- */

#define REQUEST_NICE 5

static void observe(void *app, const char *route, const char *method, int status, double sec)
{
    verifier *v = app;
    char labels[128];
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%d\"", route, method,
             status);
    at_metrics_add(v->metrics, "attest_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    at_metrics_observe(v->metrics, "attest_http_request_duration_seconds", labels, sec);
    at_log(status >= 500 ? "error" : "info", "request", "%s %s -> %d in %.2f ms", method, route,
         status, sec * 1e3);
}

/* /healthz never blocks: answered on the I/O thread, not behind the
 * workers (the database may hold them). */
static int classify(void *app, const char *method, const char *path)
{
    (void)app;
    return strcmp(method, "GET") == 0 && strcmp(path, "/healthz") == 0 ? AT_HTTP_RUN_INLINE
                                                                        : AT_HTTP_RUN_POOL;
}

static void handle(void *app, at_http_req *req, at_http_resp *resp)
{
    verifier *v = app;
    /* Request threads run at a lower priority than the database writer:
     * every attestation waits for the writer's commit, so under load the
     * one serial thread must not be starved by the parallel ones. */
    static __thread bool reniced;
    if (!reniced) {
        reniced = true;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), REQUEST_NICE) != 0)
            at_log("debug", "nice", "setpriority: %s", strerror(errno));
    }
    const char *u = req->url;
    const char *m = req->method;
    if (req->body_too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", v->cfg.max_body);
        refuse(v, req, resp, NULL, "http.body", AT_E_TOO_LARGE, msg, NULL);
        return;
    }
    if (strcmp(u, "/v1/challenge") == 0 && strcmp(m, "POST") == 0) {
        req->route = "challenge";
        route_challenge(v, req, resp);
    } else if (strcmp(u, "/v1/verify") == 0 && strcmp(m, "POST") == 0) {
        req->route = "verify";
        route_verify(v, req, resp);
    } else if (strcmp(u, "/v1/attestations") == 0 && strcmp(m, "POST") == 0) {
        req->route = "attestations";
        route_attestations(v, req, resp);
    } else if (strncmp(u, "/v1/policies/", 13) == 0) {
        req->route = "policies";
        route_policies(v, req, resp, u + 13);
    } else if (strcmp(u, "/v1/sessions") == 0 && strcmp(m, "GET") == 0) {
        req->route = "sessions";
        route_sessions(v, req, resp);
    } else if (strncmp(u, "/v1/secrets/", 12) == 0) {
        req->route = "secrets";
        route_secrets(v, req, resp, u + 12);
    } else if (strcmp(u, "/v1/tokens") == 0 || strncmp(u, "/v1/tokens/", 11) == 0) {
        req->route = "tokens";
        route_tokens(v, req, resp, u + 10);
    } else if (strncmp(u, "/v1/audit", 9) == 0 && strcmp(m, "GET") == 0) {
        req->route = "audit";
        route_audit(v, req, resp, u + 9);
    } else if (strcmp(u, "/.well-known/jwks.json") == 0 && strcmp(m, "GET") == 0) {
        req->route = "jwks";
        route_jwks(v, req, resp);
    } else if (strcmp(u, "/healthz") == 0 && strcmp(m, "GET") == 0) {
        req->route = "healthz";
        at_http_text(resp, 200, "text/plain", "ok\n");
    } else if (strcmp(u, "/metrics") == 0 && strcmp(m, "GET") == 0) {
        req->route = "metrics";
        route_metrics(v, req, resp);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "route: no %s %.200s", m, u);
        at_http_error(resp, AT_E_NOT_FOUND, msg, -1);
    }
}

/* ---- configuration -------------------------------------------------------- */

static int set_root(verifier_config *c, const char *path)
{
    if (c->n_root_files == MAX_ROOT_FILES) {
        fprintf(stderr, "attest-verifier: at most %d roots\n", MAX_ROOT_FILES);
        return -1;
    }
    c->root_files[c->n_root_files++] = strdup(path);
    return 0;
}

static int load_config_file(verifier_config *c, const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        fprintf(stderr, "attest-verifier: %s: %s (line %d)\n", path, j ? "not an object" : je.text,
                je.line);
        json_decref(j);
        return -1;
    }
    static const char *const keys[] = {"listen", "db", "roots", "no_aws_root", "admin_token_file",
                                       "storage_key_file", "tls_cert_file", "tls_key_file",
                                       "nonce_ttl_s", "clock_skew_s", "max_body_bytes",
                                       "connection_limit", "rate_per_s", "rate_burst",
                                       "audit_rate_per_min", "audit_verify_interval_s", NULL};
    at_diag d = {{0}};
    if (only_keys(j, keys, &d) != AT_OK) {
        fprintf(stderr, "attest-verifier: %s: %s\n", path, d.msg);
        json_decref(j);
        return -1;
    }
    const char *s;
    if ((s = json_string_value(json_object_get(j, "listen"))))
        snprintf(c->listen, sizeof c->listen, "%s", s);
    if ((s = json_string_value(json_object_get(j, "db"))))
        snprintf(c->db_path, sizeof c->db_path, "%s", s);
    if ((s = json_string_value(json_object_get(j, "tls_cert_file"))))
        snprintf(c->tls_cert_file, sizeof c->tls_cert_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "tls_key_file"))))
        snprintf(c->tls_key_file, sizeof c->tls_key_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "storage_key_file"))))
        snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "admin_token_file"))))
        snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s", s);
    json_t *r = json_object_get(j, "roots"), *e;
    size_t i;
    json_array_foreach(r, i, e) if (json_is_string(e) && set_root(c, json_string_value(e)) != 0)
    {
        json_decref(j);
        return -1;
    }
    if (json_is_true(json_object_get(j, "no_aws_root")))
        c->no_aws_root = true;
    /* The same bounds as the flags (a negative max_body_bytes would lift the
     * body cap, a zero nonce TTL would fail every challenge). */
    static const struct {
        const char *key;
        double min, max;
    } bounds[] = {{"nonce_ttl_s", 1, 3600},         {"clock_skew_s", 0, 3600},
                  {"max_body_bytes", 1024, 16 << 20}, {"connection_limit", 1, 100000},
                  {"rate_per_s", 0, 1000000},        {"rate_burst", 1, 1000000},
                  {"audit_rate_per_min", 0, 1000000}, {"audit_verify_interval_s", 0, 86400}};
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        json_t *x = json_object_get(j, bounds[k].key);
        bool real_ok = strncmp(bounds[k].key, "rate_", 5) == 0 ||
                       strcmp(bounds[k].key, "audit_rate_per_min") == 0;
        if (x && (!(json_is_integer(x) || (real_ok && json_is_real(x))) ||
                  json_number_value(x) < bounds[k].min || json_number_value(x) > bounds[k].max)) {
            fprintf(stderr, "attest-verifier: %s: %s: expected %s %.0f..%.0f\n", path,
                    bounds[k].key, real_ok ? "a number" : "an integer", bounds[k].min,
                    bounds[k].max);
            json_decref(j);
            return -1;
        }
    }
    if (json_is_integer(json_object_get(j, "nonce_ttl_s")))
        c->nonce_ttl_s = (int)json_integer_value(json_object_get(j, "nonce_ttl_s"));
    if (json_is_integer(json_object_get(j, "clock_skew_s")))
        c->clock_skew_ms = json_integer_value(json_object_get(j, "clock_skew_s")) * 1000;
    if (json_is_integer(json_object_get(j, "max_body_bytes")))
        c->max_body = (size_t)json_integer_value(json_object_get(j, "max_body_bytes"));
    if (json_is_integer(json_object_get(j, "connection_limit")))
        c->connection_limit = (unsigned)json_integer_value(json_object_get(j, "connection_limit"));
    if (json_is_number(json_object_get(j, "rate_per_s")))
        c->rate_per_s = json_number_value(json_object_get(j, "rate_per_s"));
    if (json_is_number(json_object_get(j, "rate_burst")))
        c->rate_burst = json_number_value(json_object_get(j, "rate_burst"));
    if (json_is_number(json_object_get(j, "audit_rate_per_min")))
        c->audit_rows_per_min = json_number_value(json_object_get(j, "audit_rate_per_min"));
    if (json_is_integer(json_object_get(j, "audit_verify_interval_s")))
        c->audit_verify_interval_s = (int)json_integer_value(json_object_get(j, "audit_verify_interval_s"));
    json_decref(j);
    return 0;
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end || v < min || v > max) {
        fprintf(stderr, "attest-verifier: %s: expected %ld..%ld, got '%s'\n", opt, min, max, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static verifier v;
    verifier_config *c = &v.cfg;
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8440");
    snprintf(c->db_path, sizeof c->db_path, "./attest.db");
    c->nonce_ttl_s = AT_NONCE_TTL_S;
    c->clock_skew_ms = AT_CLOCK_SKEW_MS;
    c->max_body = AT_MAX_BODY_BYTES;
    c->connection_limit = 0; /* what the descriptor limit allows */
    c->rate_per_s = 100;
    c->rate_burst = 200;
    c->audit_rows_per_min = 60;
    c->audit_verify_interval_s = 10;
    bool rotate = false;
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},     {"db", required_argument, NULL, 'd'},
        {"root", required_argument, NULL, 'r'},       {"no-aws-root", no_argument, NULL, 'N'},
        {"admin-token-file", required_argument, NULL, 'a'}, {"config", required_argument, NULL, 'c'},
        {"nonce-ttl", required_argument, NULL, 't'},  {"clock-skew", required_argument, NULL, 's'},
        {"max-body", required_argument, NULL, 'b'},   {"connection-limit", required_argument, NULL, 'C'},
        {"rate", required_argument, NULL, 'R'},       {"burst", required_argument, NULL, 'B'},
        {"port-file", required_argument, NULL, 'p'},  {"rotate-signing-key", no_argument, NULL, 'K'},
        {"log-level", required_argument, NULL, 'L'},
        {"per-ip-limit", required_argument, NULL, 'I'},
        {"request-timeout", required_argument, NULL, 1001},
        {"tls-cert", required_argument, NULL, 'T'},   {"tls-key", required_argument, NULL, 'k'},
        {"storage-key-file", required_argument, NULL, 'S'},
        {"audit-rate", required_argument, NULL, 'A'},
        {"audit-verify-interval", required_argument, NULL, 'E'},
        {"test-clock-file", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},             {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    /* The config file first, so command-line flags override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && load_config_file(c, argv[i + 1]) != 0)
            return 2;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l': snprintf(c->listen, sizeof c->listen, "%s", optarg); break;
        case 'd': snprintf(c->db_path, sizeof c->db_path, "%s", optarg); break;
        case 'r': if (set_root(c, optarg) != 0) return 2; break;
        case 'N': c->no_aws_root = true; break;
        case 'a': snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s", optarg); break;
        case 'c': break;
        case 't': c->nonce_ttl_s = (int)parse_long("--nonce-ttl", optarg, 1, 3600); break;
        case 's': c->clock_skew_ms = parse_long("--clock-skew", optarg, 0, 3600) * 1000; break;
        case 'b': c->max_body = (size_t)parse_long("--max-body", optarg, 1024, 16 << 20); break;
        case 'C': c->connection_limit = (unsigned)parse_long("--connection-limit", optarg, 1, 100000); break;
        case 'T': snprintf(c->tls_cert_file, sizeof c->tls_cert_file, "%s", optarg); break;
        case 'k': snprintf(c->tls_key_file, sizeof c->tls_key_file, "%s", optarg); break;
        case 1001: c->request_timeout_s = (unsigned)parse_long("--request-timeout", optarg, 1, 3600); break;
        case 'I': c->per_ip_limit = (unsigned)parse_long("--per-ip-limit", optarg, 0, 100000); break;
        case 'R': c->rate_per_s = (double)parse_long("--rate", optarg, 0, 1000000); break;
        case 'B': c->rate_burst = (double)parse_long("--burst", optarg, 1, 1000000); break;
        case 'A': c->audit_rows_per_min = (double)parse_long("--audit-rate", optarg, 0, 1000000); break;
        case 'E': c->audit_verify_interval_s = (int)parse_long("--audit-verify-interval", optarg, 0, 86400); break;
        case 'p': snprintf(c->port_file, sizeof c->port_file, "%s", optarg); break;
        case 'K': rotate = true; break;
        case 'L': at_log_set_level(optarg); break;
        case 'X': at_now_set_test_clock_file(optarg); break;
        case 'S': snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s", optarg); break;
        case 'V': printf("attest-verifier %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!c->storage_key_file[0])
        snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s.storage-key", c->db_path);
    if (!c->admin_token_file[0])
        snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s.admin-token", c->db_path);
    snprintf(v.build, sizeof v.build, "attest-verifier %s", PACKAGE_VERSION);

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    at_diag d = {{0}};
    umask(077);
    if (at_db_open(c->db_path, &v.db, &d) != AT_OK) {
        at_log("fatal", "db", "%s", d.msg);
        return 1;
    }
    at_db_durability dur;
    at_db_durability_get(v.db, &dur);
    at_log("info", "db", "database %s open: journal_mode=%s synchronous=%d", c->db_path,
           dur.journal_mode, dur.synchronous);
    struct key_job sk = {.kind = "signing", .rotate = rotate}, nk = {.kind = "nonce_mac"};
    if (at_db_write(v.db, ensure_key, &sk, &d) != AT_OK ||
        at_db_write(v.db, ensure_key, &nk, &d) != AT_OK) {
        at_log("fatal", "keys", "%s", d.msg);
        at_db_close(v.db);
        return 1;
    }
    if (rotate) {
        at_log("info", "keys", "signing key rotated; running verifiers pick it up on SIGHUP");
        at_db_close(v.db);
        return 0;
    }
    pthread_rwlock_init(&v.trust_lock, NULL);
    pthread_rwlock_init(&v.signer_lock, NULL);
    v.metrics = at_metrics_new();
    v.rl = ratelimit_new(c->rate_per_s, c->rate_burst);
    /* A budget of own rows per client: N per minute, N at once. */
    v.audit_rl = ratelimit_new(c->audit_rows_per_min / 60.0,
                               c->audit_rows_per_min > 0 ? c->audit_rows_per_min : 1);
    v.agg = at_auditagg_new(AT_AUDIT_AGG_KEYS);
    pthread_mutex_init(&v.verify_lock, NULL);
    if (!v.metrics || !v.rl || !v.audit_rl || !v.agg) {
        at_log("fatal", "startup", "out of memory");
        at_db_close(v.db);
        return 1;
    }
    if (load_signer(&v, &v.signer, &d) != AT_OK || load_nonce_keys(&v, &d) != AT_OK ||
        bootstrap_admin(&v, &d) != AT_OK || load_storage_key(&v, &d) != AT_OK ||
        at_db_write(v.db, reseal_proof_keys, &v, &d) != AT_OK ||
        verifier_load_roots(&v, &d) != AT_OK) {
        at_log("fatal", "startup", "%s", d.msg);
        at_db_close(v.db);
        return 1;
    }
    at_metrics_describe(v.metrics, "attest_http_requests_total", AT_METRIC_COUNTER,
                        "HTTP requests by route, method and status");
    at_metrics_describe(v.metrics, "attest_http_request_duration_seconds", AT_METRIC_HISTOGRAM,
                        "HTTP request latency by route");
    at_metrics_describe(v.metrics, "attest_verifications_total", AT_METRIC_COUNTER,
                        "Evidence verifications by outcome and error code");
    at_metrics_describe(v.metrics, "attest_refusals_total", AT_METRIC_COUNTER,
                        "Refused requests by action and error code");
    at_metrics_describe(v.metrics, "attest_audit_aggregate_overflow_total", AT_METRIC_COUNTER,
                        "Audit events counted in the overflow entry (aggregation table full)");
    at_metrics_describe(v.metrics, "attest_sessions_live", AT_METRIC_GAUGE, "Live sessions");
    at_metrics_describe(v.metrics, "attest_cert_cache", AT_METRIC_GAUGE,
                        "Certificate cache: verifications by path and size");
    at_metrics_describe(v.metrics, "attest_db_transactions_total", AT_METRIC_COUNTER,
                        "Committed write transactions (group commit) and jobs in them");

    char *tls_cert = NULL, *tls_key = NULL;
    if (c->tls_cert_file[0] || c->tls_key_file[0]) {
        tls_cert = read_text_file(c->tls_cert_file);
        tls_key = read_text_file(c->tls_key_file);
        if (!tls_cert || !tls_key) {
            at_log("fatal", "tls", "--tls-cert and --tls-key must both name readable PEM files");
            at_db_close(v.db);
            return 1;
        }
    }
    at_httpd_opts ho = {.max_body = c->max_body, .connection_limit = c->connection_limit,
                        .per_ip_limit = c->per_ip_limit, .tls_cert_pem = tls_cert,
                        .request_timeout_s = c->request_timeout_s,
                        .tls_key_pem = tls_key,
                        .observe = observe, .classify = classify};
    at_httpd *srv = NULL;
    if (audit_flusher_start(&v) != 0) {
        at_log("fatal", "startup", "cannot start the audit flusher thread");
        at_db_close(v.db);
        return 1;
    }
    if (at_httpd_start(c->listen, &ho, handle, &v, &srv, &d) != AT_OK) {
        at_log("fatal", "listen", "%s", d.msg);
        audit_flusher_stop(&v);
        at_db_close(v.db);
        return 1;
    }
    at_log("info", "start", "%s listening on %s (port %u), database %s schema v%d, signing key %s",
         v.build, c->listen, at_httpd_port(srv), c->db_path, at_db_schema_version(v.db),
         at_signer_kid(v.signer));
    if (c->port_file[0] && at_httpd_write_port_file(srv, c->port_file) != 0)
        at_log("error", "port_file", "cannot write %s", c->port_file);

    for (;;) {
        struct timespec ts = {30, 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGHUP) {
            if (verifier_load_roots(&v, &d) != AT_OK)
                at_log("error", "reload", "roots not reloaded: %s", d.msg);
            else
                at_log("info", "reload", "roots reloaded (%zu files)", c->n_root_files);
            /* Signing keys: a rotation done with --rotate-signing-key.
             * Requests in flight keep their reference to the old signer. */
            at_signer *fresh = NULL;
            if (load_signer(&v, &fresh, &d) == AT_OK) {
                swap_signer(&v, fresh);
                at_log("info", "reload", "signing key %s", at_signer_kid(fresh));
            } else {
                at_log("error", "reload", "signing keys not reloaded: %s", d.msg);
            }
        } else if (sig == SIGTERM || sig == SIGINT) {
            at_log("info", "stop", "draining %u request(s)", at_httpd_in_flight(srv));
            break;
        } else if ((sig < 0 && errno == EAGAIN) || sig == SIGUSR1) {
            /* Every 30 s, and at once on SIGUSR1. */
            if (at_db_write(v.db, prune, NULL, &d) != AT_OK)
                at_log("error", "prune", "%s", d.msg);
            else if (sig == SIGUSR1)
                at_log("info", "prune", "pruned on SIGUSR1");
        }
    }
    at_httpd_stop(srv, 10000);
    /* After the last request: the counts of the current minute too. */
    audit_flusher_stop(&v);
    if (tls_key)
        at_wipe(tls_key, strlen(tls_key));
    free(tls_key);
    free(tls_cert);
    at_db_close(v.db);
    at_signer_free(v.signer);
    at_log("info", "stop", "stopped cleanly");
    at_trust_unref(v.trust);
    at_metrics_free(v.metrics);
    ratelimit_free(v.rl);
    ratelimit_free(v.audit_rl);
    at_auditagg_free(v.agg);
    pthread_mutex_destroy(&v.verify_lock);
    at_wipe(v.storage_key, sizeof v.storage_key);
    for (size_t i = 0; i < c->n_root_files; i++)
        free(c->root_files[i]);
    return 0;
}
