/* attest-agent: entry point (flags as API.md lists them), the HTTP routes
 * and the lifecycle: make the in-memory key, attest, keep the session
 * fresh, open the sealed model, serve OHTTP, drain on SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "agent.h"
#include "binding.h"
#include "config.h"
#include "enc.h"
#include "cfgargs.h"
#include "httpc.h"
#include "sealfile.h"
#include "token.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: attest-agent --verifier URL --policy NAME --attester nsm|nitro-tpm|sim\n"
           "                    [--sim-pki DIR] [--sim-pcr N=HEX]... [--sim-format nitro-enclave|nitro-tpm]\n"
           "                    --listen ADDR:PORT [--advertise URL] --upstream URL [--token-file F]\n"
           "                    [--model FILE | --model-sealed FILE --model-secret NAME --model-out PATH]\n"
           "                    [--model-pcr N] [--print-pcrs] [--port-file F] [--max-body BYTES]\n"
           "                    [--request-timeout S] [--connection-limit N] [--per-ip-limit N]\n"
           "                    [--workers N]         (handler threads, default 64; /v1/ohttp gets N-8)\n"
           "                    [--session-check S]   (default 10; needs --token-file, role agent)\n"
           "                    [--allow-remote-upstream] (forward in clear to a non-loopback\n"
           "                                          --upstream; measured into PCR2)\n"
           "                    [--log-level debug|info|warn|error|fatal]\n"
           "                    [--config FILE.json] (keys: these flags' long names; flags win)\n"
           "Serves GET /v1/key-config, POST /v1/ohttp (whole and chunked), POST /v1/evidence\n"
           "(a fresh document for a caller's nonce), GET /v1/status, GET /metrics (Prometheus).\n"
           "ADDR: host:port, unix:PATH or vsock:PORT; --verifier/--upstream also take\n"
           "unix:PATH[,URL] or vsock:CID:PORT[,URL] (HTTP/HTTPS over that stream).\n");
}

static void handle(void *app, at_http_req *req, at_http_resp *resp)
{
    agent *a = app;
    if (req->body_too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", a->cfg.http.max_body);
        at_http_error(resp, AT_E_TOO_LARGE, msg, -1);
    } else if (strcmp(req->url, "/v1/ohttp") == 0 && strcmp(req->method, "POST") == 0) {
        req->route = "ohttp";
        route_ohttp(a, req, resp);
    } else if (strcmp(req->url, "/v1/key-config") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "key-config";
        route_key_config(a, req, resp);
    } else if (strcmp(req->url, "/v1/evidence") == 0 && strcmp(req->method, "POST") == 0) {
        req->route = "evidence";
        route_evidence(a, req, resp);
    } else if (strcmp(req->url, "/v1/status") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "status";
        route_status(a, req, resp);
    } else if (strcmp(req->url, "/healthz") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "healthz";
        at_http_text(resp, 200, "text/plain", "ok\n");
    } else if (strcmp(req->url, "/metrics") == 0 && strcmp(req->method, "GET") == 0) {
        req->route = "metrics";
        pthread_mutex_lock(&a->lock);
        bool have = a->have_session;
        pthread_mutex_unlock(&a->lock);
        at_metrics_set(a->metrics, "attest_agent_session_active", "", have ? 1 : 0);
        char *text = at_metrics_render(a->metrics);
        at_http_text(resp, text ? 200 : 500, "text/plain; version=0.0.4", text ? text : "out of memory\n");
        free(text);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "route: no %s %.200s", req->method, req->url);
        at_http_error(resp, AT_E_NOT_FOUND, msg, -1);
    }
}

/* /healthz and the key config (in memory) never block: they answer on the
 * I/O thread; /v1/ohttp waits on the model server and gets only a share of
 * the workers, so a hung upstream leaves the rest to /v1/evidence. */
static int classify(void *app, const char *method, const char *path)
{
    (void)app;
    if (strcmp(method, "GET") == 0 && (strcmp(path, "/healthz") == 0 || strcmp(path, "/v1/key-config") == 0))
        return AT_HTTP_RUN_INLINE;
    if (strcmp(path, "/v1/ohttp") == 0)
        return AT_HTTP_RUN_UPSTREAM;
    return AT_HTTP_RUN_POOL;
}

static void observe(void *app, const char *route, const char *method, int status, double sec)
{
    agent *a = app;
    at_metrics_observe_http(a->metrics, route, method, status, sec);
    /* Never the content: route, status and time only. */
    at_log(status >= 500 ? "error" : "debug", "request", "%s %s -> %d in %.2f ms", method, route, status,
           sec * 1e3);
}

static void describe_metrics(at_metrics *m)
{
    at_metrics_describe_http(m);
    at_metrics_describe(m, "attest_agent_session_active", AT_METRIC_GAUGE,
                        "1 while the agent holds a live session with the verifier");
    at_metrics_describe(m, "attest_upstream_errors_total", AT_METRIC_COUNTER,
                        "Requests the local model server did not answer, by mode");
    at_metrics_describe(m, "attest_sealed_bytes_total", AT_METRIC_COUNTER,
                        "Bytes of sealed (OHTTP) answers sent, by mode");
    at_metrics_describe(m, "attest_ohttp_refused_total", AT_METRIC_COUNTER,
                        "Sealed requests refused before the model ran, by code (clock_skew, replayed,"
                        " bad_request)");
}

bool agent_upstream_is_local(const char *url)
{
    if (strncmp(url, "unix:", 5) == 0)
        return true;
    const char *h = strstr(url, "://");
    if (!h)
        return false;
    h += 3;
    const char *at = strpbrk(h, "@/");
    if (at && *at == '@') /* userinfo: the host follows */
        h = at + 1;
    char host[256];
    size_t n;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        if (!e)
            return false;
        n = (size_t)(e - h - 1);
        h++;
    } else {
        n = strcspn(h, ":/?#");
    }
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return true;
    struct in_addr in;
    return inet_pton(AF_INET, host, &in) == 1 && (ntohl(in.s_addr) >> 24) == 127;
}

static int parse_pcr_arg(agent_config *c, const char *arg)
{
    char *end;
    long idx = strtol(arg, &end, 10);
    size_t n = 0;
    if (end == arg || *end != '=' || idx < 0 || idx > AT_MAX_PCR_INDEX ||
        at_hex_decode(end + 1, strlen(end + 1), c->sim_pcr[idx], AT_SHA384_LEN, &n) != AT_OK ||
        n != AT_SHA384_LEN) {
        fprintf(stderr, "attest-agent: --sim-pcr: expected N=<96 hex>, got '%s'\n", arg);
        return -1;
    }
    c->sim_pcr_set[idx] = true;
    return 0;
}

/* --print-pcrs: the policy an owner registers for this agent. */
static int print_pcrs(const agent *a)
{
    bool set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    at_diag d = {{0}};
    if (a->cfg.attester != AT_ATTESTER_SIM) {
        fprintf(stderr,
                "attest-agent: --print-pcrs computes the simulator's PCRs; for %s take the\n"
                "measurements your image build printed (attestctl policy import)\n",
                a->cfg.attester == AT_ATTESTER_NSM ? "nsm" : "nitro-tpm");
        return 2;
    }
    if (agent_sim_pcrs(&a->cfg, a->format, set, pcr, &d) != AT_OK) {
        fprintf(stderr, "attest-agent: %s\n", d.msg);
        return 2;
    }
    bool want[AT_MAX_PCRS] = {0};
    if (a->format == AT_FORMAT_NITRO_TPM)
        want[4] = want[7] = want[8] = want[12] = true;
    else
        want[0] = want[1] = want[2] = true;
    int mp = a->cfg.model_pcr >= 0 ? a->cfg.model_pcr : a->format == AT_FORMAT_NITRO_TPM ? 15 : 16;
    if (a->cfg.model[0])
        want[mp] = true;
    for (int i = 0; i < AT_MAX_PCRS; i++)
        want[i] = want[i] || a->cfg.sim_pcr_set[i];
    json_t *pcrs = json_object();
    for (int i = 0; i < AT_MAX_PCRS; i++) {
        if (!want[i] || !set[i])
            continue;
        char k[8], hex[2 * AT_SHA384_LEN + 1];
        snprintf(k, sizeof k, "%d", i);
        at_hex_encode(pcr[i], AT_SHA384_LEN, hex);
        json_object_set_new(pcrs, k, json_pack("[s]", hex));
    }
    json_t *o = json_pack("{s:s,s:o,s:{s:s,s:s}}", "format", at_format_name(a->format), "pcrs", pcrs,
                          "provenance", "tool", "attest-agent --print-pcrs", "version", PACKAGE_VERSION);
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

/* The routes handle() answers, for --print-routes (the contract test
 * tests/e2e/openapi_contract.py compares them with docs/openapi.yaml and
 * probes each one on a live server, so this list cannot drift silently). */
static const char *const routes[] = {
    "POST /v1/ohttp", "GET /v1/key-config", "POST /v1/evidence",
    "GET /v1/status", "GET /healthz",       "GET /metrics",
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
    static agent a;
    agent_config *c = &a.cfg;
    c->model_pcr = -1;
    c->session_check_s = 10;
    c->http.max_body = 1024 * 1024;
    c->sim_format = AT_FORMAT_NITRO_ENCLAVE;
    bool attester_given = false;
    static const struct option opts[] = {{"verifier", required_argument, NULL, 'v'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"attester", required_argument, NULL, 'a'},
                                         {"sim-pki", required_argument, NULL, 'k'},
                                         {"sim-pcr", required_argument, NULL, 'P'},
                                         {"sim-format", required_argument, NULL, 'F'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"advertise", required_argument, NULL, 'A'},
                                         {"upstream", required_argument, NULL, 'u'},
                                         {"token-file", required_argument, NULL, 't'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"model-sealed", required_argument, NULL, 's'},
                                         {"model-secret", required_argument, NULL, 'S'},
                                         {"model-out", required_argument, NULL, 'o'},
                                         {"model-pcr", required_argument, NULL, 'M'},
                                         {"print-pcrs", no_argument, NULL, 'x'},
                                         {"port-file", required_argument, NULL, 'f'},
                                         AT_HTTPD_LONG_OPTIONS,
                                         {"workers", required_argument, NULL, 1009},
                                         {"session-check", required_argument, NULL, 'C'},
                                         {"allow-remote-upstream", no_argument, NULL, 1011},
                                         {"log-level", required_argument, NULL, 1012},
                                         {"config", required_argument, NULL, 1013},
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
        fprintf(stderr, "attest-agent: %s\n", xd.msg);
        return 2;
    }
    argc = xargc;
    argv = xargv;
    int o;
#define COPY(field) snprintf(c->field, sizeof c->field, "%s", optarg)
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'v':
        case 'u': {
            at_diag td = {{0}};
            if (at_httpc_target(o == 'v' ? "--verifier" : "--upstream", optarg,
                                o == 'v' ? c->verifier : c->upstream,
                                o == 'v' ? sizeof c->verifier : sizeof c->upstream, &td) != AT_OK) {
                fprintf(stderr, "attest-agent: %s\n", td.msg);
                return 2;
            }
            /* Judged on the option as given: a vsock: or unix: address
             * becomes an http://localhost URL above. */
            if (o == 'u')
                c->upstream_remote = !agent_upstream_is_local(optarg);
            break;
        }
        case 'p':
            COPY(policy);
            break;
        case 'a':
            if (!at_attester_parse(optarg, &c->attester)) {
                fprintf(stderr, "attest-agent: --attester nsm, nitro-tpm or sim\n");
                return 2;
            }
            attester_given = true;
            break;
        case 'k':
            COPY(sim_pki);
            break;
        case 'P':
            if (parse_pcr_arg(c, optarg) != 0)
                return 2;
            break;
        case 'F':
            if (!at_format_parse(optarg, &c->sim_format) || c->sim_format == AT_FORMAT_AUTO) {
                fprintf(stderr, "attest-agent: --sim-format nitro-enclave or nitro-tpm\n");
                return 2;
            }
            break;
        case 'l':
            COPY(listen);
            break;
        case 'A':
            COPY(advertise);
            break;
        case 't':
            COPY(token_file);
            break;
        case 'm':
            COPY(model);
            break;
        case 's':
            COPY(model_sealed);
            break;
        case 'S':
            COPY(model_secret);
            break;
        case 'o':
            COPY(model_out);
            break;
        case 'M': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > AT_MAX_PCR_INDEX) {
                fprintf(stderr, "attest-agent: --model-pcr 0..31\n");
                return 2;
            }
            c->model_pcr = (int)n;
            break;
        }
        case 'x':
            c->print_pcrs = true;
            break;
        case 'C': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || end == optarg || n < 0 || n > 86400) {
                fprintf(stderr, "attest-agent: --session-check 0..86400 seconds\n");
                return 2;
            }
            c->session_check_s = (int)n;
            break;
        }
        case 'f':
            COPY(port_file);
            break;
        case 1009:
            c->http.workers = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 1011:
            c->allow_remote_upstream = true;
            break;
        case 1012:
            if (!at_log_set_level(optarg)) {
                fprintf(stderr, "attest-agent: --log-level: expected " AT_LOG_LEVELS ", got '%s'\n", optarg);
                return 2;
            }
            break;
        default: {
            int r = at_httpd_opt_default(o, optarg, &c->http, "attest-agent", usage);
            if (r >= 0)
                return r;
            break;
        }
        }
    }
#undef COPY
    a.format = c->attester == AT_ATTESTER_NITRO_TPM ? AT_FORMAT_NITRO_TPM
               : c->attester == AT_ATTESTER_NSM     ? AT_FORMAT_NITRO_ENCLAVE
                                                    : c->sim_format;
    if (!attester_given || !c->policy[0] ||
        (!c->print_pcrs && (!c->verifier[0] || !c->listen[0] || !c->upstream[0]))) {
        usage(stderr);
        return 2;
    }
    if (c->attester == AT_ATTESTER_SIM && !c->sim_pki[0]) {
        fprintf(stderr, "attest-agent: --attester sim needs --sim-pki DIR\n");
        return 2;
    }
    if (c->model[0] && c->model_sealed[0]) {
        fprintf(stderr, "attest-agent: --model and --model-sealed exclude each other\n");
        return 2;
    }
    if (c->model_sealed[0] && (!c->model_secret[0] || !c->model_out[0])) {
        fprintf(stderr, "attest-agent: --model-sealed needs --model-secret and --model-out\n");
        return 2;
    }
    if (c->model_sealed[0]) {
        at_diag md = {{0}};
        at_err mrc = at_sealfile_check_secret(c->model_sealed, c->model_secret, &md);
        if (mrc == AT_E_SECRET_NAME_MISMATCH) {
            fprintf(stderr, "attest-agent: %s: %s\n", at_err_str(mrc), md.msg);
            return 2;
        }
    }
    if (c->upstream[0] && !c->allow_remote_upstream && c->upstream_remote) {
        fprintf(stderr, "attest-agent: --upstream: not on this host (localhost, 127.0.0.0/8, ::1,\n"
                        "unix:; a vsock: address leaves the enclave): prompts and answers would\n"
                        "leave the instance in clear; add --allow-remote-upstream to accept that\n"
                        "(it is measured into PCR2)\n");
        return 2;
    }
    if (c->print_pcrs)
        return print_pcrs(&a);

    sigset_t sigs;
    at_httpd_block_signals(&sigs, false);
    at_httpc_global_init();
    pthread_mutex_init(&a.lock, NULL);
    pthread_cond_init(&a.changed, NULL);
    at_buf_init(&a.key_config);
    at_buf_init(&a.bind_session);
    at_buf_init(&a.bind_evidence);
    at_diag d = {{0}};
    int ret = 1;
    at_httpd *srv = NULL;
    pthread_t loop;
    bool loop_started = false;

    if (c->token_file[0]) {
        if (at_token_read_file(c->token_file, a.token, sizeof a.token, &d) != AT_OK) {
            at_log("fatal", "token", "%s", d.msg);
            return 1;
        }
    }
    /* The key sealed prompts and secrets open with: made here, in memory,
     * never written anywhere; its configuration goes into every document. */
    at_ohttp_key_config kc;
    if (at_ohttp_keyset_new(&a.keys, &d) != AT_OK ||
        at_ohttp_keyset_generate(a.keys, AGENT_KEY_ID, &d) != AT_OK ||
        at_ohttp_keyset_config(a.keys, AGENT_KEY_ID, &kc, &d) != AT_OK ||
        at_ohttp_key_config_encode(&kc, &a.key_config, &d) != AT_OK ||
        at_replay_new(AT_OHTTP_REPLAY_CAPACITY, AT_OHTTP_DATE_WINDOW_S, &a.replay, &d) != AT_OK) {
        at_log("fatal", "keys", "%s", d.msg);
        goto out;
    }
    bool set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    at_attester_opts ao = {.sim_pki = c->sim_pki, .sim_format = a.format};
    if (c->attester == AT_ATTESTER_SIM) {
        if (agent_sim_pcrs(c, a.format, set, pcr, &d) != AT_OK) {
            at_log("fatal", "pcrs", "%s", d.msg);
            goto out;
        }
        ao.sim_pcr_set = set;
        ao.sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])pcr;
    }
    if (at_attester_open(c->attester, &ao, &a.attester, &d) != AT_OK) {
        at_log("fatal", "attester", "%s", d.msg);
        goto out;
    }
    if (c->model[0] && c->attester != AT_ATTESTER_SIM) {
        /* Measure the model into its PCR before the first document:
         * the NSM extends with SHA-384(model), as the simulator does. */
        uint8_t digest[AT_SHA384_LEN];
        bool ok = at_sha384_file(c->model, digest, &d) == AT_OK;
        int idx = c->model_pcr >= 0 ? c->model_pcr : a.format == AT_FORMAT_NITRO_TPM ? 15 : 16;
        if (!ok ||
            at_attester_extend_pcr(a.attester, (unsigned)idx, AT_SPAN(digest, sizeof digest), &d) != AT_OK) {
            at_log("fatal", "model", "measuring %s into PCR%d: %s", c->model, idx, d.msg);
            goto out;
        }
    }
    if (!(a.metrics = at_metrics_new())) {
        at_log("fatal", "startup", "out of memory");
        goto out;
    }
    describe_metrics(a.metrics);
    at_httpd_opts ho = c->http;
    ho.classify = classify;
    ho.observe = observe;
    if (at_httpd_start(c->listen, &ho, handle, &a, &srv, &d) != AT_OK) {
        at_log("fatal", "listen", "%s", d.msg);
        goto out;
    }
    if (!c->advertise[0] && (strncmp(c->listen, "unix:", 5) == 0 || strncmp(c->listen, "vsock:", 6) == 0)) {
        /* No host to name: gateways route this origin to the stream. */
        snprintf(c->advertise, sizeof c->advertise, "http://localhost");
    } else if (!c->advertise[0]) {
        char host[128];
        snprintf(host, sizeof host, "%s", c->listen);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        snprintf(c->advertise, sizeof c->advertise, "http://%s:%u", host[0] ? host : "127.0.0.1",
                 at_httpd_port(srv));
    }
    pthread_mutex_lock(&a.lock);
    bool bound = at_binding_encode(AT_PURPOSE_SESSION, c->advertise, &a.bind_session, &d) == AT_OK &&
                 at_binding_encode(AT_PURPOSE_EVIDENCE, c->advertise, &a.bind_evidence, &d) == AT_OK;
    pthread_mutex_unlock(&a.lock);
    if (!bound) {
        at_log("fatal", "binding", "%s", d.msg);
        goto out;
    }
    if (c->port_file[0] && at_httpd_write_port_file(srv, c->port_file) != 0)
        at_log("error", "port_file", "cannot write %s", c->port_file);
    at_log("info", "start", "attest-agent %s on %s (advertised %s), policy %s, attester %s, upstream %s%s",
           PACKAGE_VERSION, c->listen, c->advertise, c->policy,
           c->attester == AT_ATTESTER_SIM   ? "sim"
           : c->attester == AT_ATTESTER_NSM ? "nsm"
                                            : "nitro-tpm",
           c->upstream,
           c->allow_remote_upstream && !agent_upstream_is_local(c->upstream)
               ? " (remote, in clear: --allow-remote-upstream)"
               : "");
    if (pthread_create(&loop, NULL, agent_session_loop, &a) != 0)
        goto out;
    loop_started = true;

    bool model_pending = c->model_sealed[0] != '\0';
    int backoff_ms = 100;
    for (;;) {
        struct timespec ts = {model_pending ? backoff_ms / 1000 : 3600,
                              model_pending ? (long)(backoff_ms % 1000) * 1000000 : 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (model_pending) {
            pthread_mutex_lock(&a.lock);
            bool have = a.have_session;
            pthread_mutex_unlock(&a.lock);
            if (have) {
                at_diag md = {{0}};
                if (agent_unseal_model(&a, &md) == AT_OK)
                    model_pending = false;
                else
                    at_log("error", "model", "%s (retrying)", md.msg);
                backoff_ms = backoff_ms >= 30000 ? 30000 : backoff_ms * 2;
            }
        }
    }
    at_log("info", "stop", "draining %u request(s)", at_httpd_in_flight(srv));
    ret = 0;
out:
    if (loop_started) {
        pthread_mutex_lock(&a.lock);
        a.stopping = true;
        pthread_cond_broadcast(&a.changed);
        pthread_mutex_unlock(&a.lock);
        pthread_join(loop, NULL);
    }
    at_httpd_stop(srv, 10000);
    at_attester_close(a.attester);
    at_ohttp_keyset_free(a.keys);
    at_replay_free(a.replay);
    at_metrics_free(a.metrics);
    at_buf_cleanup(&a.key_config);
    at_buf_cleanup(&a.bind_session);
    at_buf_cleanup(&a.bind_evidence);
    at_wipe(a.session_key, sizeof a.session_key);
    at_wipe(a.token, sizeof a.token);
    return ret;
}
