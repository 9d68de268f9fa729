/* attestctl peer: mutual attestation between two services over a TCP or
 * UNIX stream socket (lib/peer), then one protected message each way, or
 * HTTP over the channel (lib/peer_http): connect --request sends one
 * request, serve --upstream forwards each request to a local API.
 * Everything read from the socket is attacker-supplied; framing is
 * bounded before any allocation. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attester.h"
#include "at_limits.h"
#include "bhttp.h"
#include "ctl.h"
#include "enc.h"
#include "peer.h"
#include "peer_fd.h"
#include "peer_ear.h"
#include "peer_http.h"
#include "target.h"
#include "vclient.h"

/* A handshake that stalls is refused rather than waited on forever. */
#define PEER_IO_TIMEOUT_S 60
/* The upstream's answer, capped so that it fits one message with its
 * status and content-type. */
#define PEER_HTTP_MAX_UPSTREAM_ANSWER (AT_PEER_HTTP_MAX_MESSAGE - 4096)
#define PEER_MAX_HEADERS 64
#define PEER_MAX_REQUESTS 16

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl peer listen|serve --listen unix:PATH|HOST:PORT OPTIONS\n"
               "       attestctl peer connect --connect unix:PATH|HOST:PORT OPTIONS\n"
               "OPTIONS: --peer-policy FILE.json   what the peer must run (required), or through\n"
               "         the verifier: --verifier URL --peer-policy-name NAME --state-file STATE\n"
               "                                    (STATE from `attestctl attest`: session, key, token)\n"
               "         --root PEM ...             roots the peer's chain must reach\n"
               "                                    (default: the AWS Nitro root G1)\n"
               "         --attester sim|nsm|nitro-tpm   where this side's documents come from\n"
               "         --pki DIR (--sim-pki DIR) --sim-pcr N=HEX ... --sim-format F   simulator\n"
               "         --message TEXT             sent to the peer over the channel\n"
               "         --at UNIX_SECONDS          check the peer's document at this time\n"
               "HTTP over the channel (Binary HTTP, docs/mutual-attestation.md):\n"
               "  serve --upstream URL|unix:PATH[,URL]   forward each request of the peer (any\n"
               "         /path, no dot segments) to this local API; serves connections one after\n"
               "         another until SIGTERM, each until the peer closes; a JSON line each\n"
               "  connect --request 'METHOD /path'... [--header 'N: v']... [--data @FILE|TEXT]\n"
               "         the requests in turn on one channel (headers and data go with each):\n"
               "         each answer's body on stdout, its status on stderr; exit 0 when all\n"
               "         are 2xx, 1 otherwise or refused\n"
               "listen serves one connection. Both print JSON: {\"ok\":true, \"peer\":{...},\n"
               "\"channel_binding\":HEX, \"received\":TEXT} or {\"ok\":false, \"error\":CODE,\n"
               "\"refused_by\":\"self\"|\"peer\", \"message\":...}. Exit 0, 1 refused, 2 usage/IO.\n");
}

typedef struct {
    const char *addr;
    const char *policy_path;
    const char *roots[AT_MAX_ROOTS];
    size_t n_roots;
    at_attester_kind kind;
    at_attester_opts ao;
    bool pcr_set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    const char *message;
    int64_t at_ms;
    const char *verifier, *peer_policy_name, *state_file;
    const char *upstream, *data;
    const char *requests[PEER_MAX_REQUESTS];
    size_t nrequests;
    const char *headers[PEER_MAX_HEADERS];
    size_t nheaders;
} peer_args;

/* The socket for --listen/--connect (peer_fd.h), its failure said. */
static int open_socket(const char *addr, bool listening)
{
    at_diag d = {{0}};
    int fd = at_peer_fd_open(addr, listening, &d);
    if (fd < 0)
        fprintf(stderr, "attestctl peer: %s\n", d.msg);
    return fd;
}

/* A handshake that failed at rc: tell the peer with an alert unless the
 * peer's own alert ended it (best effort: the refusal stands either way).
 * True when the peer refused. */
static bool refuse_peer(at_peer *p, int fd, at_err rc)
{
    if (at_peer_refused_by_peer(p))
        return true;
    at_buf al;
    at_buf_init(&al);
    at_diag ignore;
    if (at_peer_alert(rc, &al) == AT_OK && at_peer_fd_send(fd, at_buf_span(&al), &ignore) != AT_OK) {
        /* the peer may be gone already */
    }
    at_buf_cleanup(&al);
    return false;
}

/* The refusal as JSON on stdout (one line when compact: serve prints one
 * per connection). */
static int report_failure(at_err rc, bool by_peer, const at_diag *d, bool compact)
{
    json_t *o = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", at_err_str(rc), "refused_by",
                          by_peer ? "peer" : "self", "message", d->msg);
    if (compact) {
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (s)
            printf("%s\n", s);
        fflush(stdout);
        free(s);
    } else {
        ctl_print_json(o);
    }
    json_decref(o);
    return CTL_FAILED;
}

/* ---- HTTP over the channel (lib/peer_http) ---------------------------------- */

static volatile sig_atomic_t stopping;
static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

/* attest's error JSON (API.md) as a Binary HTTP response. */
static at_err error_response(int status, at_err code, const char *msg, at_bhttp_msg **out, at_diag *d)
{
    at_bhttp_msg *m = NULL;
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", at_err_str(code), "message", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    at_err rc = s ? at_bhttp_response_new(status, &m, d) : at_fail(d, AT_E_INTERNAL, "out of memory");
    if (rc == AT_OK)
        rc = at_bhttp_add_header(m, "content-type", AT_SPAN("application/json", 16), d);
    if (rc == AT_OK)
        rc = at_bhttp_append_content(m, AT_SPAN(s, strlen(s)), d);
    free(s);
    if (rc != AT_OK) {
        at_bhttp_msg_free(m);
        return rc;
    }
    *out = m;
    return AT_OK;
}

/* The upstream's answer to one request from the peer, or the error to
 * answer instead: 400 for a request that is not one (bad Binary HTTP, a
 * target other than /... or with a dot segment), 502 when the upstream
 * fails (its URL is never in the answer, only in this side's log). */
static at_err forward(const char *upstream, at_span bhttp, at_bhttp_msg **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_bhttp_msg *req = NULL, *resp = NULL;
    char **lines = NULL, *url = NULL;
    size_t nl = 0;
    at_httpc_resp hr = {0};
    at_buf_init(&hr.body);
    at_diag why = {{0}};
    at_err bad = at_bhttp_decode(bhttp, AT_BHTTP_REQUEST, &req, &why);
    if (bad == AT_OK)
        bad = at_target_check_any(req->path, &why);
    if (bad != AT_OK) {
        fprintf(stderr, "attestctl peer: request refused: %s: %s\n", at_err_str(bad), why.msg);
        rc = error_response(400, bad, why.msg, out, d);
        goto out;
    }
    size_t ul = strlen(upstream) + strlen(req->path) + 1;
    AT_ENSURE((url = malloc(ul)) && (lines = calloc(req->headers.n + 1, sizeof *lines)), d, AT_E_INTERNAL,
              "out of memory");
    snprintf(url, ul, "%s%s", upstream, req->path);
    for (size_t i = 0; i < req->headers.n; i++) {
        const at_bhttp_field *f = &req->headers.v[i];
        if (at_target_hop_by_hop(f->name))
            continue;
        size_t n = f->name_len + f->value_len + 3;
        AT_ENSURE((lines[nl] = malloc(n)), d, AT_E_INTERNAL, "out of memory");
        snprintf(lines[nl++], n, "%s: %s", f->name, f->value);
    }
    at_httpc_req r = {.method = req->method,
                      .url = url,
                      .body = req->content.len ? at_buf_span(&req->content) : AT_SPAN_NULL,
                      .headers = (const char *const *)lines,
                      .max_response = PEER_HTTP_MAX_UPSTREAM_ANSWER,
                      .timeout_ms = 300000L,
                      .idle_s = 120L};
    at_err up = at_httpc_do(&r, &hr, &why);
    if (up != AT_OK) {
        fprintf(stderr, "attestctl peer: upstream: %s: %s\n", at_err_str(up), why.msg);
        char msg[128];
        if (up == AT_E_TOO_LARGE)
            snprintf(msg, sizeof msg, "upstream: its answer is larger than %d bytes",
                     PEER_HTTP_MAX_UPSTREAM_ANSWER);
        else
            snprintf(msg, sizeof msg, "upstream: the local API did not answer");
        rc = error_response(502, up == AT_E_TOO_LARGE ? up : AT_E_UNAVAILABLE, msg, out, d);
        goto out;
    }
    if (hr.status < 200 || hr.status > 599) {
        rc = error_response(502, AT_E_UNAVAILABLE, "upstream: no final status", out, d);
        goto out;
    }
    AT_TRY(at_bhttp_response_new((int)hr.status, &resp, d));
    if (hr.content_type[0])
        AT_TRY(
            at_bhttp_add_header(resp, "content-type", AT_SPAN(hr.content_type, strlen(hr.content_type)), d));
    AT_TRY(at_bhttp_append_content(resp, at_buf_span(&hr.body), d));
    *out = resp;
    resp = NULL;
    rc = AT_OK;
out:
    for (size_t i = 0; lines && i < nl; i++)
        free(lines[i]);
    free(lines);
    free(url);
    at_buf_cleanup(&hr.body);
    at_bhttp_msg_free(req);
    at_bhttp_msg_free(resp);
    return rc;
}

/* Serve: each request the peer sends is answered, until it closes the
 * channel with its CLOSE (then the connection ends; a channel is closed
 * by one side). *served counts the answers. */
static at_err serve_http(at_peer *p, int fd, const char *upstream, int *served, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    at_buf out;
    at_buf_init_secret(&out);
    at_bhttp_msg *resp = NULL;
    for (;;) {
        bool closed = false;
        AT_TRY(at_peer_http_recv(fd, p, &rx, &closed, d));
        if (closed)
            break;
        AT_TRY(forward(upstream, at_buf_span(&rx.msg), &resp, d));
        at_buf_reset(&out);
        AT_TRY(at_bhttp_encode(resp, &out, d));
        at_bhttp_msg_free(resp);
        resp = NULL;
        AT_TRY(at_peer_http_send(fd, p, at_buf_span(&out), d));
        (*served)++;
    }
    rc = AT_OK;
out:
    at_bhttp_msg_free(resp);
    at_buf_cleanup(&out);
    at_peer_http_rx_cleanup(&rx);
    return rc;
}

/* --request METHOD /path [--header]... [--data]: the Binary HTTP request. */
static at_err build_request(const peer_args *a, const char *request, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_bhttp_msg *m = NULL;
    uint8_t *data = NULL;
    size_t dlen = 0;
    char method[32];
    const char *sp = strchr(request, ' ');
    AT_ENSURE(sp && sp != request && (size_t)(sp - request) < sizeof method && sp[1] == '/', d,
              AT_E_BAD_REQUEST, "--request: expected 'METHOD /path', got '%.64s'", request);
    memcpy(method, request, (size_t)(sp - request));
    method[sp - request] = '\0';
    /* The path is the serving side's to check (target.h): it answers 400. */
    AT_TRY(at_bhttp_request_new(method, "http", "", sp + 1, &m, d));
    bool have_ctype = false;
    AT_TRY(ctl_bhttp_add_headers(m, a->headers, a->nheaders, &have_ctype, NULL, d));
    if (a->data) {
        if (a->data[0] == '@') {
            /* One byte over the bound: refused below as too_large. */
            AT_ENSURE(ctl_read_file(a->data + 1, AT_PEER_HTTP_MAX_MESSAGE + 1, &data, &dlen) == 0, d, AT_E_IO,
                      "--data %s: cannot read it", a->data);
        } else {
            AT_ENSURE((data = (uint8_t *)strdup(a->data)), d, AT_E_INTERNAL, "out of memory");
            dlen = strlen(a->data);
        }
        AT_ENSURE(dlen <= AT_PEER_HTTP_MAX_MESSAGE, d, AT_E_TOO_LARGE,
                  "--data: %zu bytes, a message carries at most %d", dlen, AT_PEER_HTTP_MAX_MESSAGE);
        if (!have_ctype)
            AT_TRY(at_bhttp_add_header(m, "content-type", AT_SPAN("application/json", 16), d));
        AT_TRY(at_bhttp_append_content(m, AT_SPAN(data, dlen), d));
    }
    AT_TRY(at_bhttp_encode(m, out, d));
    AT_ENSURE(out->len <= AT_PEER_HTTP_MAX_MESSAGE, d, AT_E_TOO_LARGE,
              "request: %zu bytes encoded, a message carries at most %d", out->len, AT_PEER_HTTP_MAX_MESSAGE);
    rc = AT_OK;
out:
    if (data)
        at_wipe_free(data, dlen);
    at_bhttp_msg_free(m);
    return rc;
}

/* Connect --request...: send each in turn on the channel, print each
 * answer (body on stdout, status on stderr), then close the channel with
 * a CLOSE (the serving side then ends the connection).
 * *all_2xx: every answer's status was 2xx. */
static at_err call_http(at_peer *p, int fd, const at_buf *reqs, size_t nreq, bool *all_2xx, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    at_buf out;
    at_buf_init(&out);
    at_bhttp_msg *m = NULL;
    bool closed = false, ok = true;
    for (size_t i = 0; i < nreq; i++) {
        AT_TRY(at_peer_http_send(fd, p, at_buf_span(&reqs[i]), d));
        AT_TRY(at_peer_http_recv(fd, p, &rx, &closed, d));
        AT_ENSURE(!closed, d, AT_E_TRUNCATED, "channel: the peer closed it before answering");
        at_bhttp_msg_free(m);
        m = NULL;
        AT_TRY(at_bhttp_decode(at_buf_span(&rx.msg), AT_BHTTP_RESPONSE, &m, d));
        fprintf(stderr, "HTTP %d\n", m->status);
        AT_ENSURE(fwrite(m->content.p ? (const void *)m->content.p : "", 1, m->content.len, stdout) ==
                          m->content.len &&
                      fflush(stdout) == 0,
                  d, AT_E_IO, "stdout: write failed");
        ok &= m->status >= 200 && m->status <= 299;
    }
    /* Every answer arrived whole (its length came first): the CLOSE ends
     * the channel, nothing is expected after it. */
    AT_TRY(at_peer_seal(p, true, AT_SPAN_NULL, &out, d));
    AT_TRY(at_peer_fd_send(fd, at_buf_span(&out), d));
    *all_2xx = ok;
    rc = AT_OK;
out:
    at_bhttp_msg_free(m);
    at_buf_cleanup(&out);
    at_peer_http_rx_cleanup(&rx);
    return rc;
}

/* One connection: handshake, then the HTTP exchanges (--request,
 * --upstream) or one message each way. Returns the exit code. */
static int session(at_peer_role role, const peer_args *a, const at_peer_opts *po, int fd, const at_buf *reqs,
                   const char *upstream)
{
    int ret = CTL_USAGE;
    at_diag d = {{0}};
    at_peer *p = NULL;
    at_buf in, out, pt;
    at_buf_init(&in);
    at_buf_init(&out);
    at_buf_init_secret(&pt);
    at_err rc = AT_OK;
    bool by_peer = false;
    if (at_peer_new(po, &p, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: %s\n", d.msg);
        goto done;
    }
    struct timeval tv = {.tv_sec = PEER_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    /* Handshake: the initiator speaks first; each received message may
     * produce a reply; a local refusal is told to the peer as an alert. */
    if (role == AT_PEER_INITIATOR) {
        if ((rc = at_peer_start(p, &out, &d)) != AT_OK ||
            (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK) {
            goto refused;
        }
    }
    while (!at_peer_established(p)) {
        if ((rc = at_peer_fd_recv(fd, AT_PEER_MAX_MESSAGE, &in, &d)) != AT_OK) {
            goto refused;
        }
        at_buf_reset(&out);
        if ((rc = at_peer_handle(p, at_buf_span(&in), &out, &d)) != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
        if (out.len && (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK) {
            goto refused;
        }
    }
    uint8_t cb[AT_PEER_KEY_LEN];
    char cbhex[2 * AT_PEER_KEY_LEN + 1];
    if ((rc = at_peer_channel_binding(p, cb)) != AT_OK)
        goto refused;
    at_hex_encode(cb, sizeof cb, cbhex);
    at_wipe(cb, sizeof cb);

    if (a->nrequests) {
        bool ok = false;
        if ((rc = call_http(p, fd, reqs, a->nrequests, &ok, &d)) != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
        ret = ok ? CTL_OK : CTL_FAILED;
        goto done;
    }
    if (upstream) {
        int served = 0;
        if ((rc = serve_http(p, fd, upstream, &served, &d)) != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
        json_t *o = json_pack("{s:b, s:s, s:o, s:s, s:i}", "ok", 1, "role", "responder", "peer",
                              at_peer_info_json(p), "channel_binding", cbhex, "requests", served);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (s)
            printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(o);
        ret = CTL_OK;
        goto done;
    }

    /* One protected message each way, as a request and its response, then
     * close: initiator: send data, receive data, send close, receive close;
     * responder: receive data, send data, send close, receive close. A
     * record this side refuses is told to the peer as an alert. */
    char dflt[64];
    snprintf(dflt, sizeof dflt, "hello from the %s", role == AT_PEER_INITIATOR ? "initiator" : "responder");
    const char *msg = a->message ? a->message : dflt;
    bool closed = false;
    enum { SEND_DATA, RECV_DATA, SEND_CLOSE, RECV_CLOSE };
    static const int initiator_steps[4] = {SEND_DATA, RECV_DATA, SEND_CLOSE, RECV_CLOSE};
    static const int responder_steps[4] = {RECV_DATA, SEND_DATA, SEND_CLOSE, RECV_CLOSE};
    const int *steps = role == AT_PEER_INITIATOR ? initiator_steps : responder_steps;
    for (int i = 0; i < 4; i++) {
        if (steps[i] == SEND_DATA || steps[i] == SEND_CLOSE) {
            bool close_now = steps[i] == SEND_CLOSE;
            at_buf_reset(&out);
            if ((rc = at_peer_seal(p, close_now, close_now ? AT_SPAN_NULL : AT_SPAN(msg, strlen(msg)), &out,
                                   &d)) != AT_OK ||
                (rc = at_peer_fd_send(fd, at_buf_span(&out), &d)) != AT_OK)
                goto refused;
            continue;
        }
        if ((rc = at_peer_fd_recv(fd, AT_PEER_MAX_RECORD, &in, &d)) != AT_OK)
            goto refused;
        bool want_close = steps[i] == RECV_CLOSE;
        rc = at_peer_open(p, at_buf_span(&in), &pt, &closed, &d);
        if (rc == AT_OK && closed != want_close)
            rc = at_fail(&d, closed ? AT_E_TRUNCATED : AT_E_UNEXPECTED_MESSAGE,
                         closed ? "record: the peer closed before its message"
                                : "record: data where close was expected");
        if (rc != AT_OK) {
            by_peer = refuse_peer(p, fd, rc);
            goto refused;
        }
    }
    if (at_buf_u8(&pt, 0) != AT_OK) /* NUL for printing */
        goto done;
    pt.len--;
    json_t *o = json_pack("{s:b, s:s, s:o, s:s, s:s%}", "ok", 1, "role",
                          role == AT_PEER_INITIATOR ? "initiator" : "responder", "peer", at_peer_info_json(p),
                          "channel_binding", cbhex, "received", pt.p ? (const char *)pt.p : "", pt.len);
    if (!o) {
        fprintf(stderr, "attestctl peer: the peer's message is not UTF-8 text\n");
        goto done;
    }
    ctl_print_json(o);
    json_decref(o);
    ret = CTL_OK;
    goto done;
refused:
    if (a->nrequests || upstream)
        fprintf(stderr, "attestctl peer: refused by %s: %s: %s\n", by_peer ? "the peer" : "this side",
                at_err_str(rc), d.msg);
    if (a->nrequests)
        ret = CTL_FAILED;
    else
        ret = report_failure(rc, by_peer, &d, upstream != NULL);
done:
    at_peer_free(p);
    at_buf_cleanup(&in);
    at_buf_cleanup(&out);
    at_buf_cleanup(&pt);
    return ret;
}

static int run(at_peer_role role, const peer_args *a)
{
    int ret = CTL_USAGE, lfd = -1, fd = -1;
    at_diag d = {{0}};
    at_trust *trust = NULL;
    at_policy *policy = NULL;
    at_attester *att = NULL;
    at_buf reqs[PEER_MAX_REQUESTS];
    for (size_t i = 0; i < PEER_MAX_REQUESTS; i++)
        at_buf_init_secret(&reqs[i]);
    char upstream[1024];
    at_err rc = AT_OK;

    at_peer_ear *ear = NULL;
    at_peer_prover prover;
    json_t *state = NULL;
    at_peer_opts po = {.role = role, .at_ms = a->at_ms};
    if (a->upstream && at_httpc_target("--upstream", a->upstream, upstream, sizeof upstream, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: %s\n", d.msg);
        goto done;
    }
    for (size_t i = 0; i < a->nrequests; i++) {
        /* Built before connecting: a request that cannot be sent is
         * refused before the peer hears of it. */
        rc = build_request(a, a->requests[i], &reqs[i], &d);
        if (rc != AT_OK) {
            fprintf(stderr, "attestctl peer: %s: %s\n", at_err_str(rc), d.msg);
            ret = rc == AT_E_TOO_LARGE ? CTL_FAILED : CTL_USAGE;
            goto done;
        }
    }
    if (a->peer_policy_name) {
        /* Through the verifier: this side's session and token. */
        json_error_t je;
        uint8_t skey[AT_VCLIENT_SESSION_KEY_LEN];
        size_t n = 0;
        const char *skhex;
        state = json_load_file(a->state_file, JSON_REJECT_DUPLICATES, &je);
        skhex = json_string_value(json_object_get(state, "session_key"));
        at_peer_ear_opts eo = {
            .verifier_url = a->verifier ? a->verifier : json_string_value(json_object_get(state, "verifier")),
            .session_id = json_string_value(json_object_get(state, "session")),
            .token = json_string_value(json_object_get(state, "token")),
            .session_key = skey,
            .peer_policy_name = a->peer_policy_name,
            .at_ms = a->at_ms};
        if (!state || !skhex || !eo.session_id || !eo.token || !eo.verifier_url ||
            at_hex_decode(skhex, strlen(skhex), skey, sizeof skey, &n) != AT_OK || n != sizeof skey) {
            fprintf(stderr,
                    "attestctl peer: --state-file %s: expected the state `attestctl attest` writes "
                    "(session, session_key, token, verifier)\n",
                    a->state_file);
            at_wipe(skey, sizeof skey);
            goto done;
        }
        rc = at_peer_ear_new(&eo, &ear, &d);
        at_wipe(skey, sizeof skey);
        if (rc != AT_OK) {
            fprintf(stderr, "attestctl peer: %s\n", d.msg);
            goto done;
        }
        at_peer_ear_prover(ear, &prover);
        po.prover = &prover;
        goto opened;
    }
    uint8_t *txt = NULL;
    size_t len = 0;
    if (ctl_read_file(a->policy_path, AT_POLICY_MAX_JSON_BYTES, &txt, &len) != 0)
        goto done;
    rc = at_policy_parse((const char *)txt, len, &policy, &d);
    free(txt);
    if (rc != AT_OK) {
        fprintf(stderr, "attestctl peer: --peer-policy %s: %s: %s\n", a->policy_path, at_err_str(rc), d.msg);
        goto done;
    }
    if (!(trust = at_trust_new(0)))
        goto done;
    if (a->n_roots == 0 && at_trust_add_aws_root(trust, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: built-in root: %s\n", d.msg);
        goto done;
    }
    for (size_t i = 0; i < a->n_roots; i++)
        if (at_trust_add_root_file(trust, a->roots[i], &d) != AT_OK) {
            fprintf(stderr, "attestctl peer: --root: %s\n", d.msg);
            goto done;
        }
    if (at_attester_open(a->kind, &a->ao, &att, &d) != AT_OK) {
        fprintf(stderr, "attestctl peer: attester: %s\n", d.msg);
        goto done;
    }
    po.attester = att;
    po.trust = trust;
    po.peer_policy = policy;
opened:
    if (role == AT_PEER_RESPONDER) {
        if ((lfd = open_socket(a->addr, true)) < 0)
            goto done;
        /* The port actually bound (HOST:0 picks a free one), for whoever
         * starts the listener. */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
        if (strncmp(a->addr, "unix:", 5) != 0 && getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof hbuf, pbuf, sizeof pbuf,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            fprintf(stderr, "attestctl peer: listening on %s%s%s:%s\n", strchr(hbuf, ':') ? "[" : "", hbuf,
                    strchr(hbuf, ':') ? "]" : "", pbuf);
        else
            fprintf(stderr, "attestctl peer: listening on %s\n", a->addr);
        if (a->upstream) {
            /* Serving until SIGTERM/SIGINT: accept is interrupted (no
             * SA_RESTART) and the loop ends cleanly. */
            struct sigaction sa = {.sa_handler = on_term};
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
        }
    }
    /* One connection, or with --upstream one after the other until
     * stopped (a connection's failure is reported and the next one
     * served). */
    do {
        if (role == AT_PEER_RESPONDER) {
            if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
                if (errno == EINTR && stopping) {
                    ret = CTL_OK;
                    break;
                }
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                fprintf(stderr, "attestctl peer: accept: %s\n", strerror(errno));
                goto done;
            }
        } else if ((fd = open_socket(a->addr, false)) < 0) {
            goto done;
        }
        ret = session(role, a, &po, fd, reqs, a->upstream ? upstream : NULL);
        close(fd);
        fd = -1;
    } while (a->upstream && !stopping);
    if (stopping)
        ret = CTL_OK;
done:
    at_peer_ear_free(ear);
    if (state) {
        /* the session key's hex is a secret */
        json_t *sk = json_object_get(state, "session_key");
        if (json_is_string(sk))
            at_wipe((char *)json_string_value(sk), json_string_length(sk));
    }
    json_decref(state);
    at_attester_close(att);
    at_policy_free(policy);
    at_trust_unref(trust);
    for (size_t i = 0; i < PEER_MAX_REQUESTS; i++)
        at_buf_cleanup(&reqs[i]);
    if (fd >= 0)
        close(fd);
    if (lfd >= 0) {
        close(lfd);
        if (strncmp(a->addr, "unix:", 5) == 0)
            unlink(a->addr + 5);
    }
    return ret;
}

int cmd_peer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},      {"connect", required_argument, NULL, 'c'},
        {"peer-policy", required_argument, NULL, 'P'}, {"root", required_argument, NULL, 'r'},
        {"attester", required_argument, NULL, 'A'},    {"pki", required_argument, NULL, 'k'},
        {"sim-pki", required_argument, NULL, 'k'},     {"sim-pcr", required_argument, NULL, 'p'},
        {"sim-format", required_argument, NULL, 'f'},  {"message", required_argument, NULL, 'm'},
        {"at", required_argument, NULL, 'a'},          {"help", no_argument, NULL, 'h'},
        {"verifier", required_argument, NULL, 'V'},    {"peer-policy-name", required_argument, NULL, 'N'},
        {"state-file", required_argument, NULL, 'S'},  {"upstream", required_argument, NULL, 'U'},
        {"request", required_argument, NULL, 'R'},     {"header", required_argument, NULL, 'H'},
        {"data", required_argument, NULL, 'D'},        {NULL, 0, NULL, 0}};
    static peer_args a;
    memset(&a, 0, sizeof a);
    a.kind = AT_ATTESTER_SIM;
    int c;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const char *sub = argv[1];
    at_peer_role role;
    if (strcmp(sub, "listen") == 0 || strcmp(sub, "serve") == 0)
        role = AT_PEER_RESPONDER;
    else if (strcmp(sub, "connect") == 0)
        role = AT_PEER_INITIATOR;
    else {
        fprintf(stderr, "attestctl peer: unknown subcommand '%s'\n", sub);
        usage(stderr);
        return CTL_USAGE;
    }
    optind = 1;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
        case 'c':
            if ((c == 'l') != (role == AT_PEER_RESPONDER)) {
                fprintf(stderr, "attestctl peer %s: use --%s\n", sub,
                        role == AT_PEER_RESPONDER ? "listen" : "connect");
                return CTL_USAGE;
            }
            a.addr = optarg;
            break;
        case 'P':
            a.policy_path = optarg;
            break;
        case 'r':
            if (a.n_roots == AT_MAX_ROOTS) {
                fprintf(stderr, "attestctl peer: at most %d roots\n", AT_MAX_ROOTS);
                return CTL_USAGE;
            }
            a.roots[a.n_roots++] = optarg;
            break;
        case 'A':
            if (!at_attester_parse(optarg, &a.kind)) {
                fprintf(stderr, "attestctl peer: --attester sim, nsm or nitro-tpm\n");
                return CTL_USAGE;
            }
            break;
        case 'k':
            a.ao.sim_pki = optarg;
            break;
        case 'f':
            if (!at_format_parse(optarg, &a.ao.sim_format)) {
                fprintf(stderr, "attestctl peer: --sim-format nitro-enclave or nitro-tpm\n");
                return CTL_USAGE;
            }
            break;
        case 'p': {
            char *end;
            long idx = strtol(optarg, &end, 10);
            size_t n;
            if (*end != '=' || end == optarg || idx < 0 || idx >= AT_MAX_PCRS ||
                at_hex_decode(end + 1, strlen(end + 1), a.pcr[idx], AT_SHA384_LEN, &n) != AT_OK ||
                n != AT_SHA384_LEN) {
                fprintf(stderr, "attestctl peer: --sim-pcr N=<96 hex>\n");
                return CTL_USAGE;
            }
            a.pcr_set[idx] = true;
            break;
        }
        case 'm':
            a.message = optarg;
            break;
        case 'V':
            a.verifier = optarg;
            break;
        case 'N':
            a.peer_policy_name = optarg;
            break;
        case 'S':
            a.state_file = optarg;
            break;
        case 'U':
            a.upstream = optarg;
            break;
        case 'R':
            if (a.nrequests == PEER_MAX_REQUESTS) {
                fprintf(stderr, "attestctl peer: at most %d --request\n", PEER_MAX_REQUESTS);
                return CTL_USAGE;
            }
            a.requests[a.nrequests++] = optarg;
            break;
        case 'H':
            if (a.nheaders == PEER_MAX_HEADERS) {
                fprintf(stderr, "attestctl peer: at most %d --header\n", PEER_MAX_HEADERS);
                return CTL_USAGE;
            }
            a.headers[a.nheaders++] = optarg;
            break;
        case 'D':
            a.data = optarg;
            break;
        case 'a': {
            char *end;
            long long t = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || t < 0 || t > 253402300799LL) {
                fprintf(stderr, "attestctl peer: --at: expected UNIX seconds, got '%s'\n", optarg);
                return CTL_USAGE;
            }
            a.at_ms = t * 1000;
            break;
        }
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    bool via_verifier = a.peer_policy_name || a.state_file || a.verifier;
    if (optind != argc || !a.addr ||
        (via_verifier ? !a.peer_policy_name || !a.state_file || a.policy_path
                      : !a.policy_path || (a.kind == AT_ATTESTER_SIM && !a.ao.sim_pki))) {
        usage(stderr);
        return CTL_USAGE;
    }
    if ((a.upstream && role != AT_PEER_RESPONDER) || (a.nrequests && role != AT_PEER_INITIATOR) ||
        ((a.nheaders || a.data) && !a.nrequests) || (a.message && (a.nrequests || a.upstream))) {
        fprintf(stderr, "attestctl peer: --upstream goes with serve; --request (with --header, --data) with "
                        "connect; --message with neither\n");
        return CTL_USAGE;
    }
    if (a.message && strlen(a.message) > AT_PEER_MAX_RECORD_PLAINTEXT) {
        fprintf(stderr, "attestctl peer: --message: at most %d bytes\n", AT_PEER_MAX_RECORD_PLAINTEXT);
        return CTL_USAGE;
    }
    a.ao.sim_pcr_set = a.pcr_set;
    a.ao.sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])a.pcr;
    return run(role, &a);
}
