/* attest-verifier: entry point. Reads its configuration (config.c), opens
 * the database (migrations), opens its keys and the bootstrap admin token
 * (keys.c), pins roots (roots.c), serves the HTTP API (router below) and
 * handles signals: SIGTERM/SIGINT drain and stop, SIGHUP reloads roots and
 * signing keys, SIGUSR1 prunes at once (prune.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "clock.h"
#include "config.h"
#include "verifier.h"

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

/* --tls-cert and --tls-key: PEM that parses, a key that matches the
 * certificate; checked before any state is created. */
static bool tls_pair_ok(const char *cert_pem, const char *key_pem, at_diag *d)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    bool ok = false;
    if (!x)
        at_fail(d, AT_E_BAD_REQUEST, "--tls-cert: expected a PEM certificate");
    else if (!k)
        at_fail(d, AT_E_BAD_REQUEST, "--tls-key: expected a PEM private key (unencrypted)");
    else if (X509_check_private_key(x, k) != 1)
        at_fail(d, AT_E_BAD_REQUEST, "--tls-key: does not match the --tls-cert certificate");
    else
        ok = true;
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return ok;
}

/* Request threads run at a lower priority than the database writer: every
 * attestation waits for the writer's commit, so under load the one serial
 * thread must not be starved by the parallel ones (lib/httpd applies it to
 * its workers only, never to the I/O threads). */
#define REQUEST_NICE 5
/* Seconds a client is asked to wait while the database is unavailable. */
#define DB_RETRY_AFTER_S 2

/* Without --issuer: the URL this process serves, http(s)://host:port with
 * the bound port; a wildcard, unix: or vsock: listener names localhost. */
static void default_issuer(const char *listen, bool tls, unsigned port, char *out, size_t cap)
{
    const char *scheme = tls ? "https" : "http";
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    bool local = strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "vsock:", 6) == 0 || hl == 0 ||
                 (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
                 (hl == 4 && strncmp(listen, "[::]", 4) == 0);
    if (local && (strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "vsock:", 6) == 0))
        snprintf(out, cap, "%s://localhost", scheme);
    else if (local)
        snprintf(out, cap, "%s://localhost:%u", scheme, port);
    else
        snprintf(out, cap, "%s://%.*s:%u", scheme, (int)hl, listen, port);
}

static void observe(void *app, const char *route, const char *method, int status, double sec)
{
    verifier *v = app;
    at_metrics_observe_http(v->metrics, route, method, status, sec);
    at_log(status >= 500 ? "error" : "info", "request", "%s %s -> %d in %.2f ms", method, route, status,
           sec * 1e3);
}

/* /healthz and POST /v1/challenge never block (a challenge is a MAC over
 * a counter and the clock; its refusals are counted, not written): they are
 * answered on the I/O thread, not behind the workers (the database may hold
 * them), and skip two thread hand-offs per attestation cycle. */
static int classify(void *app, const char *method, const char *path)
{
    (void)app;
    if (strcmp(method, "GET") == 0 && strcmp(path, "/healthz") == 0)
        return AT_HTTP_RUN_INLINE;
    if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/challenge") == 0)
        return AT_HTTP_RUN_INLINE;
    return AT_HTTP_RUN_POOL;
}

static void route(verifier *v, at_http_req *req, at_http_resp *resp);

/* A request during which the database failed at the connection level
 * (down, restarting, a connection lost, a commit in doubt) is answered 503
 * `unavailable` with Retry-After, whatever the route made of the failure:
 * never a 500, and never a refusal that only reflects a missing read. A
 * success stands: it was committed or read whole. */
static void handle(void *app, at_http_req *req, at_http_resp *resp)
{
    (void)at_db_thread_unavailable(); /* clear a mark an earlier request on this thread left */
    route(app, req, resp);
    bool down = at_db_thread_unavailable();
    if ((down && resp->status >= 400) || (resp->status == 503 && !strstr(resp->headers, "Retry-After:"))) {
        if (down) {
            at_http_error(resp, AT_E_UNAVAILABLE, "database: unavailable; nothing was written, retry later",
                          -1);
        }
        size_t n = strlen(resp->headers);
        snprintf(resp->headers + n, sizeof resp->headers - n, "Retry-After: %d\n", DB_RETRY_AFTER_S);
    }
}

static void route(verifier *v, at_http_req *req, at_http_resp *resp)
{
    const char *u = req->url;
    const char *m = req->method;
    if (req->body_too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", v->cfg.http.max_body);
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
    } else if (strcmp(u, "/v1/policies") == 0 && strcmp(m, "GET") == 0) {
        req->route = "policies";
        route_policies(v, req, resp, "");
    } else if (strncmp(u, "/v1/policies/", 13) == 0) {
        req->route = "policies";
        route_policies(v, req, resp, u + 13);
    } else if (strcmp(u, "/v1/sessions") == 0 && strcmp(m, "GET") == 0) {
        req->route = "sessions";
        route_sessions(v, req, resp);
    } else if (strncmp(u, "/v1/sessions/", 13) == 0) {
        req->route = "sessions";
        route_session_revoke(v, req, resp, u + 13);
    } else if (strncmp(u, "/v1/secrets/", 12) == 0) {
        req->route = "secrets";
        route_secrets(v, req, resp, u + 12);
    } else if (strcmp(u, "/v1/tokens") == 0 || strncmp(u, "/v1/tokens/", 11) == 0) {
        req->route = "tokens";
        route_tokens(v, req, resp, u + 10);
    } else if (strncmp(u, "/v1/peer/", 9) == 0) {
        req->route = "peer";
        route_peer(v, req, resp, u + 8);
    } else if (strncmp(u, "/v1/audit", 9) == 0 && strcmp(m, "GET") == 0) {
        req->route = "audit";
        route_audit(v, req, resp, u + 9);
    } else if (strcmp(u, "/.well-known/jwks.json") == 0 && strcmp(m, "GET") == 0) {
        req->route = "jwks";
        route_jwks(v, req, resp);
    } else if (strncmp(u, "/console", 8) == 0 && (u[8] == '\0' || u[8] == '/')) {
        /* The web console: static files only; every action it takes goes
         * through the API above with the signed-in user's token. */
        req->route = "console";
        if (u[8] == '\0' && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)) {
            snprintf(resp->location, sizeof resp->location, "/console/");
            at_http_text(resp, 308, "text/plain", "/console/\n");
        } else if (!at_webstatic_serve(v->web, m, u, at_http_header(req, "If-None-Match"), resp)) {
            char msg[300];
            snprintf(msg, sizeof msg,
                     v->web ? "console: no %s %.200s" : "console: not installed (see --web-root)", m, u);
            at_http_error(resp, AT_E_NOT_FOUND, msg, -1);
        }
    } else if (strcmp(u, "/healthz") == 0 && strcmp(m, "GET") == 0) {
        req->route = "healthz";
        at_http_text(resp, 200, "text/plain", "ok\n");
    } else if (strcmp(u, "/readyz") == 0 && strcmp(m, "GET") == 0) {
        /* Ready: the database answers now (a load balancer's check). */
        req->route = "readyz";
        if (at_db_ping(v->db))
            at_http_text(resp, 200, "text/plain", "ready\n");
        else
            at_http_error(resp, AT_E_UNAVAILABLE, "database: not answering", -1);
    } else if (strcmp(u, "/metrics") == 0 && strcmp(m, "GET") == 0) {
        req->route = "metrics";
        route_metrics(v, req, resp);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "route: no %s %.200s", m, u);
        at_http_error(resp, AT_E_NOT_FOUND, msg, -1);
    }
}

static void describe_metrics(at_metrics *m)
{
    at_metrics_describe_http(m);
    at_metrics_describe(m, "attest_verifications_total", AT_METRIC_COUNTER,
                        "Evidence verifications by outcome and error code");
    at_metrics_describe(m, "attest_refusals_total", AT_METRIC_COUNTER,
                        "Refused requests by action and error code");
    at_metrics_describe(m, "attest_audit_aggregate_overflow_total", AT_METRIC_COUNTER,
                        "Audit events counted in the overflow entry (aggregation table full)");
    at_metrics_describe(m, "attest_sessions_live", AT_METRIC_GAUGE, "Live sessions");
    at_metrics_describe(m, "attest_cert_cache", AT_METRIC_GAUGE,
                        "Certificate cache: verifications by path and size");
    at_metrics_describe(m, "attest_db_transactions_total", AT_METRIC_COUNTER,
                        "Committed write transactions (group commit) and jobs in them");
}

/* Database, keys, roots and the in-memory state; 0, or logs why and 1. */
static int open_state(verifier *v, at_diag *d)
{
    const verifier_config *c = &v->cfg;
    pthread_rwlock_init(&v->trust_lock, NULL);
    /* The console: a --web-root given must load; the installed copy may be
     * absent (a build run from its tree), then /console/ says so. */
    static const char *const web_files[] = {"index.html", "app.js", "style.css"};
    const char *root = c->web_root[0] ? c->web_root : AT_VERIFIER_WEB_ROOT;
    at_diag wd = {{0}};
    if (at_webstatic_new(root, "/console/", web_files, sizeof web_files / sizeof web_files[0], &v->web,
                         &wd) != AT_OK) {
        if (c->web_root[0]) {
            at_log("fatal", "startup", "--web-root: %s", wd.msg);
            return 1;
        }
        at_log("warn", "web", "console not served: %s", wd.msg);
    }
    /* Inputs first: a missing --root leaves no database, token or key
     * behind (the database is created below). */
    if (verifier_load_roots(v, d) != AT_OK) {
        at_log("fatal", "startup", "%s", d->msg);
        return 1;
    }
    /* ... and an address already served by another process (a second
     * verifier on the same port) creates nothing either. */
    if (at_httpd_check_listen(c->listen, d) != AT_OK) {
        at_log("fatal", "listen", "%s", d->msg);
        return 1;
    }
    if (at_db_open(c->db_path, &v->db, d) != AT_OK) {
        at_log("fatal", "db", "%s", d->msg);
        return 1;
    }
    at_db_durability dur;
    at_db_durability_get(v->db, &dur);
    char shown[sizeof c->db_path];
    at_db_redact(c->db_path, shown, sizeof shown);
    at_log("info", "db", "database %s (%s) open: journal_mode=%s synchronous=%d", shown, at_db_backend(v->db),
           dur.journal_mode, dur.synchronous);
    v->metrics = at_metrics_new();
    v->rl = ratelimit_new(c->rate_per_s, c->rate_burst);
    /* A budget of own rows per client: N per minute, N at once. */
    v->audit_rl =
        ratelimit_new(c->audit_rows_per_min / 60.0, c->audit_rows_per_min > 0 ? c->audit_rows_per_min : 1);
    v->agg = at_auditagg_new(AT_AUDIT_AGG_KEYS);
    pthread_mutex_init(&v->verify_lock, NULL);
    if (!v->metrics || !v->rl || !v->audit_rl || !v->agg) {
        at_log("fatal", "startup", "out of memory");
        return 1;
    }
    if (keys_ensure(v->db, false, d) != AT_OK ||
        keys_open(v->db, c->admin_token_file, c->storage_key_file, &v->keys, d) != AT_OK) {
        at_log("fatal", "startup", "%s", d->msg);
        return 1;
    }
    describe_metrics(v->metrics);
    return 0;
}

static void close_state(verifier *v)
{
    at_db_close(v->db);
    keys_close(v->keys);
    at_trust_unref(v->trust);
    at_metrics_free(v->metrics);
    ratelimit_free(v->rl);
    ratelimit_free(v->audit_rl);
    at_auditagg_free(v->agg);
    at_webstatic_free(v->web);
    pthread_mutex_destroy(&v->verify_lock);
    for (size_t i = 0; i < v->cfg.n_root_files; i++)
        free(v->cfg.root_files[i]);
}

/* Until SIGTERM/SIGINT: SIGHUP reloads, SIGUSR1 and every 30 s prune,
 * every KEYS_REFRESH_S s a signing-key rotation made elsewhere (another
 * replica on the same database) is picked up. */
static void serve_signals(verifier *v, const sigset_t *sigs, at_httpd *srv)
{
    at_diag d = {{0}};
    int64_t next_prune = at_monotonic_ns() + INT64_C(30000000000);
    for (;;) {
        struct timespec ts = {KEYS_REFRESH_S, 0};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig < 0 && errno == EAGAIN) {
            bool changed = false;
            if (keys_refresh_signer(v->keys, &changed, &d) != AT_OK) {
                at_log("warn", "keys", "signing key not checked: %s", d.msg);
            } else if (changed) {
                at_signer *s = keys_signer(v->keys);
                at_log("info", "keys", "signing key %s (rotated in the database)", at_signer_kid(s));
                at_signer_free(s);
            }
            if (at_monotonic_ns() < next_prune)
                continue;
        }
        if (sig == SIGHUP) {
            if (verifier_load_roots(v, &d) != AT_OK)
                at_log("error", "reload", "roots not reloaded: %s", d.msg);
            else
                at_log("info", "reload", "roots reloaded (%zu files)", v->cfg.n_root_files);
            /* Signing keys: a rotation done with --rotate-signing-key.
             * Requests in flight keep their reference to the old signer. */
            if (keys_reload_signer(v->keys, &d) == AT_OK) {
                at_signer *s = keys_signer(v->keys);
                at_log("info", "reload", "signing key %s", at_signer_kid(s));
                at_signer_free(s);
            } else {
                at_log("error", "reload", "signing keys not reloaded: %s", d.msg);
            }
        } else if (sig == SIGTERM || sig == SIGINT) {
            at_log("info", "stop", "draining %u request(s)", at_httpd_in_flight(srv));
            return;
        } else if ((sig < 0 && errno == EAGAIN) || sig == SIGUSR1) {
            /* Every 30 s, and at once on SIGUSR1. */
            next_prune = at_monotonic_ns() + INT64_C(30000000000);
            if (at_db_write(v->db, verifier_prune, NULL, &d) != AT_OK)
                at_log("error", "prune", "%s", d.msg);
            else if (sig == SIGUSR1)
                at_log("info", "prune", "pruned on SIGUSR1");
        }
    }
}

/* --rotate-signing-key: a new current signing key, then exit. */
static int rotate_signing_key(const verifier_config *c)
{
    at_db *db = NULL;
    at_diag d = {{0}};
    /* A typo in --db must not make a fresh database with a key nobody uses. */
    if (!at_db_is_url(c->db_path) && access(c->db_path, F_OK) != 0) {
        at_log("fatal", "keys", "--db %s: %s (start the verifier once to create the database)", c->db_path,
               strerror(errno));
        return 1;
    }
    if (at_db_open(c->db_path, &db, &d) != AT_OK || keys_ensure(db, true, &d) != AT_OK) {
        at_log("fatal", "keys", "%s", d.msg);
        at_db_close(db);
        return 1;
    }
    at_log("info", "keys",
           "signing key rotated; running verifiers pick it up within seconds (or at once on SIGHUP)");
    at_db_close(db);
    return 0;
}

/* The routes handle() answers, for --print-routes (the contract test
 * tests/e2e/openapi_contract.py compares them with docs/openapi.yaml and
 * probes each one on a live server, so this list cannot drift silently). */
static const char *const routes[] = {
    "POST /v1/challenge",
    "POST /v1/verify",
    "POST /v1/attestations",
    "GET /v1/policies",
    "PUT /v1/policies/{name}",
    "GET /v1/policies/{name}",
    "POST /v1/policies/{name}/import",
    "DELETE /v1/policies/{name}/versions/{version}",
    "GET /v1/sessions",
    "DELETE /v1/sessions/{id}",
    "PUT /v1/secrets/{name}",
    "POST /v1/secrets/{name}/release",
    "GET /v1/tokens",
    "GET /v1/tokens/self",
    "DELETE /v1/tokens/{id}",
    "POST /v1/peer/bindings",
    "GET /v1/audit",
    "GET /v1/audit/verify",
    "GET /.well-known/jwks.json",
    "GET /console",
    "GET /console/{file}",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
};

static int print_routes(void)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        puts(routes[i]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-routes") == 0)
        return print_routes();
    static verifier v;
    verifier_config *c = &v.cfg;
    bool rotate = false;
    int ret = verifier_config_parse(c, &rotate, argc, argv);
    if (ret >= 0)
        return ret;
    snprintf(v.build, sizeof v.build, "attest-verifier %s", PACKAGE_VERSION);

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    at_httpd_block_signals(&sigs, true);
    umask(077);
    if (rotate)
        return rotate_signing_key(c);

    at_diag d = {{0}};
    char *tls_cert = NULL, *tls_key = NULL;
    at_httpd *srv = NULL;
    bool flusher = false;
    ret = 1;
    /* Every input before any state (open_state creates the database, the
     * admin token and the storage key): TLS files, then roots. */
    if (c->tls_cert_file[0] || c->tls_key_file[0]) {
        tls_cert = read_text_file(c->tls_cert_file);
        tls_key = read_text_file(c->tls_key_file);
        if (!tls_cert || !tls_key) {
            at_log("fatal", "tls", "--tls-cert and --tls-key must both name readable PEM files");
            goto out;
        }
        if (!tls_pair_ok(tls_cert, tls_key, &d)) {
            at_log("fatal", "tls", "%s", d.msg);
            goto out;
        }
    }
    if (open_state(&v, &d) != 0)
        goto out;
    if (audit_flusher_start(&v) != 0) {
        at_log("fatal", "startup", "cannot start the audit flusher thread");
        goto out;
    }
    flusher = true;
    at_httpd_opts ho = c->http;
    ho.tls_cert_pem = tls_cert;
    ho.tls_key_pem = tls_key;
    ho.observe = observe;
    ho.classify = classify;
    ho.worker_nice = REQUEST_NICE;
    if (at_httpd_start(c->listen, &ho, handle, &v, &srv, &d) != AT_OK) {
        at_log("fatal", "listen", "%s", d.msg);
        goto out;
    }
    if (c->issuer[0])
        snprintf(v.issuer_buf, sizeof v.issuer_buf, "%s", c->issuer);
    else
        default_issuer(c->listen, tls_cert != NULL, at_httpd_port(srv), v.issuer_buf, sizeof v.issuer_buf);
    __atomic_store_n(&v.issuer, v.issuer_buf, __ATOMIC_RELEASE);
    at_signer *s = keys_signer(v.keys);
    char shown[sizeof c->db_path];
    at_db_redact(c->db_path, shown, sizeof shown);
    at_log("info", "start", "%s listening on %s (port %u, %s), database %s schema v%d, signing key %s",
           v.build, c->listen, at_httpd_port(srv), tls_cert ? "TLS on" : "plain HTTP, no TLS", shown,
           at_db_schema_version(v.db), at_signer_kid(s));
    at_signer_free(s);
    if (c->port_file[0] && at_httpd_write_port_file(srv, c->port_file) != 0)
        at_log("error", "port_file", "cannot write %s", c->port_file);
    serve_signals(&v, &sigs, srv);
    at_httpd_stop(srv, 10000);
    ret = 0;
out:
    /* After the last request: the counts of the current minute too. */
    if (flusher)
        audit_flusher_stop(&v);
    if (tls_key)
        at_wipe(tls_key, strlen(tls_key));
    free(tls_key);
    free(tls_cert);
    close_state(&v);
    if (ret == 0)
        at_log("info", "stop", "stopped cleanly");
    return ret;
}
