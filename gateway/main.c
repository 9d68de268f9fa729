/* attest-gateway: entry point (flags as API.md lists them) and routes. The
 * consumer's side of attest: an OpenAI-compatible endpoint that only ever
 * talks to verified instances, sealed. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "config.h"
#include "gateway.h"
#include "cfgargs.h"
#include "httpc.h"
#include "token.h"
#include "webstatic.h"
#include "x509v.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: attest-gateway --verifier URL --policy NAME --listen ADDR:PORT --token-file F\n"
            "                      [--verifier-jwks FILE] [--verify-locally [--root PEM]...] [--refresh S]\n"
            "                      [--port-file F] [--max-body BYTES] [--web-root DIR]\n"
            "                      [--request-timeout S] [--connection-limit N] [--per-ip-limit N]\n"
            "                      [--workers N]   (handler threads, default 64; completions get N-8)\n"
            "                      [--instance-idle S] (default 60: no byte from an instance for S s:\n"
            "                                          give up on it, try another once)\n"
            "                      [--log-level debug|info|warn|error|fatal]\n"
            "                      [--config FILE.json] (keys: these flags' long names; flags win)\n"
            "Forwards every /v1/... request (the OpenAI API: chat, completions, embeddings, responses,\n"
            "models, ...; \"stream\": true supported), each sealed to an instance whose session and\n"
            "attestation result verify; GET /v1/gateway/instances lists them, GET /v1/attestation gives\n"
            "their attestation result tokens, GET /metrics counts (Prometheus). --verifier-jwks pins the "
            "verifier's keys;\n"
            "--verify-locally also checks each instance's own fresh document against --root (default:\n"
            "the AWS Nitro root) before using it. GET / serves the chat page from --web-root (default\n"
            "\"" AT_GATEWAY_WEB_ROOT "\").\n"
            "ADDR: host:port, unix:PATH or vsock:PORT; --verifier also takes unix:PATH[,URL] or\n"
            "vsock:CID:PORT[,URL]; --route ADDRESS,URL (repeatable) reaches agents whose endpoint\n"
            "has URL's origin over that UNIX/vsock stream.\n");
}

static void instances(gateway *g, at_http_resp *resp)
{
    gw_target t;
    at_diag d = {{0}};
    /* Refresh if stale, then list what would be used. */
    at_err rc = gw_pick_target(g, &t, &d);
    json_t *arr = json_array();
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->n_targets; i++)
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:s,s:I}", "session", g->targets[i].session_id, "instance",
                                        g->targets[i].instance_id, "endpoint", g->targets[i].endpoint,
                                        "expires_at_ms", (json_int_t)g->targets[i].expires_ms));
    pthread_mutex_unlock(&g->lock);
    json_t *o = json_pack("{s:s,s:o,s:s}", "policy", g->cfg.policy, "instances", arr, "error",
                          rc == AT_OK ? "" : d.msg);
    at_http_json(resp, 200, o);
}

/* Every /v1/... path but the gateway's own goes to the instance. */
static bool forwarded(const char *path)
{
    return strncmp(path, "/v1/", 4) == 0 && strcmp(path, "/v1/gateway/instances") != 0 &&
           strcmp(path, "/v1/attestation") != 0;
}

/* /healthz never blocks: answered on the I/O thread. Completions and
 * models wait on an instance and get only a share of the workers. */
static int classify(void *app, const char *method, const char *path)
{
    (void)app;
    if (strcmp(method, "GET") == 0 && strcmp(path, "/healthz") == 0)
        return AT_HTTP_RUN_INLINE;
    if (forwarded(path))
        return AT_HTTP_RUN_UPSTREAM;
    return AT_HTTP_RUN_POOL;
}

static void handle(void *app, at_http_req *req, at_http_resp *resp)
{
    gateway *g = app;
    const char *u = req->url;
    if (req->body_too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", g->cfg.http.max_body);
        at_http_error(resp, AT_E_TOO_LARGE, msg, -1);
    } else if (forwarded(u)) {
        /* A bounded metrics label, never the consumer's path. */
        req->route = strcmp(u, "/v1/chat/completions") == 0 || strcmp(u, "/v1/completions") == 0
                         ? "completions"
                     : strncmp(u, "/v1/models", 10) == 0 ? "models"
                                                         : "forward";
        route_openai(g, req, resp);
    } else if (at_webstatic_serve(g->web, req->method, u, at_http_header(req, "If-None-Match"), resp)) {
        req->route = "web";
    } else if (strcmp(u, "/") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "web";
        at_http_error(resp, AT_E_NOT_FOUND, "chat page: not installed (see --web-root)", -1);
    } else if (strcmp(u, "/v1/attestation") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "attestation";
        route_attestation(g, resp);
    } else if (strcmp(u, "/v1/gateway/instances") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "instances";
        instances(g, resp);
    } else if (strcmp(u, "/healthz") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "healthz";
        at_http_text(resp, 200, "text/plain", "ok\n");
    } else if (strcmp(u, "/metrics") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "metrics";
        pthread_mutex_lock(&g->lock);
        size_t n = g->n_targets;
        pthread_mutex_unlock(&g->lock);
        at_metrics_set(g->metrics, "attest_gateway_instances", "", (double)n);
        char *text = at_metrics_render(g->metrics);
        at_http_text(resp, text ? 200 : 500, "text/plain; version=0.0.4", text ? text : "out of memory\n");
        free(text);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "route: no %s %.200s", req->method, u);
        at_http_error(resp, AT_E_NOT_FOUND, msg, -1);
    }
}

static void observe(void *app, const char *route, const char *method, int status, double sec)
{
    gateway *g = app;
    at_metrics_observe_http(g->metrics, route, method, status, sec);
    /* An instance that did not answer (or none usable): 502, 503, 504 on
     * the routes that go to one. */
    if (route && (strcmp(route, "completions") == 0 || strcmp(route, "models") == 0) &&
        (status == 502 || status == 503 || status == 504)) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
        at_metrics_add(g->metrics, "attest_upstream_errors_total", labels, 1);
    }
    /* Never the prompt or the answer: route, status and time only. */
    at_log(status >= 500 ? "error" : "debug", "request", "%s %s -> %d in %.2f ms", method, route, status,
           sec * 1e3);
}

/* The routes handle() answers, for --print-routes (the contract test
 * tests/e2e/openapi_contract.py compares them with docs/openapi.yaml and
 * probes each one on a live server, so this list cannot drift silently). */
static const char *const routes[] = {
    "GET /v1/attestation",   "GET /v1/gateway/instances", "GET /",        "GET /{file}",
    "GET /v1/{openai_path}", "POST /v1/{openai_path}",    "GET /healthz", "GET /metrics",
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
    static gateway g;
    gateway_config *c = &g.cfg;
    c->refresh_s = 5;
    c->instance_idle_s = AT_GW_INSTANCE_IDLE_S;
    c->http.max_body = 1024 * 1024;
    static const struct option opts[] = {{"verifier", required_argument, NULL, 'v'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"token-file", required_argument, NULL, 't'},
                                         {"verifier-jwks", required_argument, NULL, 'j'},
                                         {"refresh", required_argument, NULL, 'r'},
                                         {"port-file", required_argument, NULL, 'f'},
                                         AT_HTTPD_LONG_OPTIONS,
                                         {"workers", required_argument, NULL, 1009},
                                         {"instance-idle", required_argument, NULL, 1010},
                                         {"log-level", required_argument, NULL, 1011},
                                         {"route", required_argument, NULL, 1014},
                                         {"verify-locally", no_argument, NULL, 'L'},
                                         {"root", required_argument, NULL, 'R'},
                                         {"config", required_argument, NULL, 1012},
                                         {"web-root", required_argument, NULL, 1015},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    /* --config FILE.json: its keys are these flags' long names; the
     * command line's flags come after and win. Kept until exit (optarg
     * pointers into it are stored). */
    static int xargc;
    static char **xargv;
    at_diag xd = {{0}};
    if (at_cfgargs_expand(argc, argv, opts, &xargc, &xargv, &xd) != AT_OK) {
        fprintf(stderr, "attest-gateway: %s\n", xd.msg);
        return 2;
    }
    argc = xargc;
    argv = xargv;
    int o;
    bool web_root_given = false;
#define COPY(field) snprintf(c->field, sizeof c->field, "%s", optarg)
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'v':
        case 1014: {
            /* --route ADDRESS,URL: the agents' endpoint URL whose origin is
             * reached over a UNIX or vsock stream. */
            char url[1024], *dst = o == 'v' ? c->verifier : url;
            size_t n = o == 'v' ? sizeof c->verifier : sizeof url;
            at_diag td = {{0}};
            if (at_httpc_target(o == 'v' ? "--verifier" : "--route", optarg, dst, n, &td) != AT_OK) {
                fprintf(stderr, "attest-gateway: %s\n", td.msg);
                return 2;
            }
            break;
        }
        case 'p':
            COPY(policy);
            break;
        case 'l':
            COPY(listen);
            break;
        case 't':
            COPY(token_file);
            break;
        case 'j':
            COPY(jwks_file);
            break;
        case 'r':
            c->refresh_s = atoi(optarg) > 0 ? atoi(optarg) : 1;
            break;
        case 1010:
            c->instance_idle_s = atoi(optarg) > 0 ? atoi(optarg) : 1;
            break;
        case 'f':
            COPY(port_file);
            break;
        case 1009:
            c->http.workers = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'L':
            c->verify_locally = true;
            break;
        case 1015:
            COPY(web_root);
            web_root_given = true;
            break;
        case 1011:
            if (!at_log_set_level(optarg)) {
                fprintf(stderr, "attest-gateway: --log-level: expected " AT_LOG_LEVELS ", got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'R':
            if (c->n_roots == 8) {
                fprintf(stderr, "attest-gateway: at most 8 --root\n");
                return 2;
            }
            c->roots[c->n_roots++] = optarg;
            break;
        default: {
            int r = at_httpd_opt_default(o, optarg, &c->http, "attest-gateway", usage);
            if (r >= 0)
                return r;
            break;
        }
        }
    }
#undef COPY
    if (!c->verifier[0] || !c->policy[0] || !c->listen[0] || !c->token_file[0]) {
        usage(stderr);
        return 2;
    }
    at_diag td = {{0}};
    if (at_token_read_file(c->token_file, g.token, sizeof g.token, &td) != AT_OK) {
        fprintf(stderr, "attest-gateway: %s\n", td.msg);
        return 2;
    }
    if (c->jwks_file[0]) {
        json_error_t je;
        if (!(g.pinned_jwks = json_load_file(c->jwks_file, 0, &je)) ||
            !json_is_array(json_object_get(g.pinned_jwks, "keys"))) {
            fprintf(stderr, "attest-gateway: %s: not a JWKS (%s)\n", c->jwks_file, je.text);
            return 2;
        }
    }
    if (c->n_roots && !c->verify_locally) {
        fprintf(stderr, "attest-gateway: --root only makes sense with --verify-locally\n");
        return 2;
    }
    if (c->verify_locally) {
        at_diag rd = {{0}};
        g.trust = at_trust_new(0);
        at_err rrc = !g.trust ? AT_E_INTERNAL : c->n_roots ? AT_OK : at_trust_add_aws_root(g.trust, &rd);
        for (size_t i = 0; rrc == AT_OK && i < c->n_roots; i++)
            rrc = at_trust_add_root_file(g.trust, c->roots[i], &rd);
        if (rrc != AT_OK) {
            fprintf(stderr, "attest-gateway: --root: %s\n", rd.msg);
            return 2;
        }
    }
    /* The chat page: a --web-root given must load; the default may be
     * absent (a build run from its tree), then GET / says so. */
    if (!web_root_given)
        snprintf(c->web_root, sizeof c->web_root, "%s", AT_GATEWAY_WEB_ROOT);
    static const char *const web_files[] = {"index.html", "app.js", "style.css"};
    at_diag wd = {{0}};
    if (at_webstatic_new(c->web_root, "/", web_files, sizeof web_files / sizeof web_files[0], &g.web, &wd) !=
        AT_OK) {
        if (web_root_given) {
            fprintf(stderr, "attest-gateway: --web-root: %s\n", wd.msg);
            return 2;
        }
        at_log("warn", "web", "chat page not served: %s", wd.msg);
    }
    sigset_t sigs;
    at_httpd_block_signals(&sigs, false);
    at_httpc_global_init();
    pthread_mutex_init(&g.lock, NULL);
    if (!(g.metrics = at_metrics_new())) {
        fprintf(stderr, "attest-gateway: out of memory\n");
        return 1;
    }
    at_metrics_describe_http(g.metrics);
    at_metrics_describe(g.metrics, "attest_gateway_instances", AT_METRIC_GAUGE,
                        "Verified instances (sessions) the gateway may seal to");
    at_metrics_describe(g.metrics, "attest_upstream_errors_total", AT_METRIC_COUNTER,
                        "Requests no verified instance answered, by route and status");
    at_httpd_opts ho = c->http;
    ho.classify = classify;
    ho.observe = observe;
    at_httpd *srv = NULL;
    at_diag d = {{0}};
    if (at_httpd_start(c->listen, &ho, handle, &g, &srv, &d) != AT_OK) {
        at_log("fatal", "listen", "%s", d.msg);
        return 1;
    }
    if (c->port_file[0] && at_httpd_write_port_file(srv, c->port_file) != 0)
        at_log("error", "port_file", "cannot write %s", c->port_file);
    at_log("info", "start", "attest-gateway %s on %s (port %u) for policy %s via %s%s", PACKAGE_VERSION,
           c->listen, at_httpd_port(srv), c->policy, c->verifier, g.pinned_jwks ? " (pinned JWKS)" : "");
    int sig;
    while ((sig = sigwaitinfo(&sigs, NULL)) < 0 && errno == EINTR)
        ;
    at_log("info", "stop", "draining %u request(s)", at_httpd_in_flight(srv));
    at_httpd_stop(srv, 10000);
    json_decref(g.pinned_jwks);
    at_metrics_free(g.metrics);
    json_decref(g.attestations);
    json_decref(g.jwks);
    at_webstatic_free(g.web);
    at_trust_unref(g.trust);
    at_wipe(g.token, sizeof g.token);
    return 0;
}
