/* ohttp_echo_server: a tiny OHTTP gateway for tests only (libmicrohttpd),
 * the stand-in for the agent until it exists. It uses lib/ohttp's server
 * API the way the agent will:
 *   GET  /v1/key-config  application/ohttp-keys (every key's configuration)
 *   POST /v1/ohttp       message/ohttp-req -> message/ohttp-res: the inner
 *                        request echoed as JSON (status 200, or NNN for an
 *                        inner path /status/NNN)
 *                        message/ohttp-chunked-req -> message/ohttp-chunked-res:
 *                        a text/event-stream answer, one OHTTP chunk per
 *                        event: "data: METHOD PATH", one per line of the
 *                        request content, "data: [DONE]". Inner path
 *                        /truncate omits the final chunk; /slow waits 3 s
 *                        before it.
 * Errors before decryption answer 400 with "code: detail" in text/plain.
 * usage: ohttp_echo_server --keys KEYFILE --port-file FILE [--port N]
 * Listens on 127.0.0.1 (port 0 = any free one, written to FILE); stops on
 * SIGTERM or SIGINT. */
#include "config.h"

#include <stdlib.h>

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bhttp.h"
#include "enc.h"
#include "ohttp.h"

static at_ohttp_keyset *keys;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

typedef enum { KIND_OTHER, KIND_WHOLE, KIND_CHUNKED } req_kind;

/* Per-request state, from the first handler call to completion. */
typedef struct {
    req_kind kind;
    at_buf body;          /* whole requests */
    at_ohttp_server *srv; /* chunked requests: fed as the body arrives */
    at_buf plain;         /* decrypted Binary HTTP request */
    at_err err;
    at_diag d;
} req_state;

/* Streamed answer: events sealed one chunk each, produced on demand. */
typedef struct {
    at_ohttp_server *srv;
    at_bhttp_msg *req;
    char **events;
    size_t nevents, next;
    bool truncate, slow, head_done, tail_done;
    at_buf out; /* sealed bytes not yet handed to MHD */
    size_t out_off;
} stream_state;

static bool media_is(const char *ctype, const char *want)
{
    size_t n = strlen(want);
    return ctype && strncasecmp(ctype, want, n) == 0 && (ctype[n] == 0 || ctype[n] == ';' || ctype[n] == ' ');
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const void *p,
                             size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)p, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, at_err e, const at_diag *d)
{
    char msg[AT_DIAG_MAX + 64];
    int n = snprintf(msg, sizeof msg, "%s: %s\n", at_err_str(e), d ? d->msg : "");
    return reply(conn, status, "text/plain", msg, n > 0 ? (size_t)n : 0);
}

/* The echo of a request, as JSON. */
static char *echo_json(const at_bhttp_msg *m)
{
    json_t *o = json_object(), *h = json_object();
    json_object_set_new(o, "method", json_string(m->method));
    json_object_set_new(o, "scheme", json_string(m->scheme));
    json_object_set_new(o, "authority", json_string(m->authority));
    json_object_set_new(o, "path", json_string(m->path));
    for (size_t i = 0; i < m->headers.n; i++)
        json_object_set_new(h, m->headers.v[i].name, json_string(m->headers.v[i].value));
    json_object_set_new(o, "headers", h);
    json_t *body =
        m->content.len ? json_stringn((const char *)m->content.p, m->content.len) : json_string("");
    if (body) {
        json_object_set_new(o, "body", body);
    } else {
        char *b64 = at_b64_encode_new(at_buf_span(&m->content));
        json_object_set_new(o, "body_b64", json_string(b64 ? b64 : ""));
        free(b64);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static enum MHD_Result answer_whole(struct MHD_Connection *conn, req_state *st)
{
    at_bhttp_msg *req = NULL, *res = NULL;
    at_ohttp_server *srv = NULL;
    at_diag d = {{0}};
    at_buf bh, sealed;
    enum MHD_Result ok;
    at_buf_init_secret(&bh);
    at_buf_init(&sealed);

    at_err e = at_ohttp_server_open_bhttp(keys, at_buf_span(&st->body), &req, &srv, &d);
    if (e != AT_OK) {
        ok = reply_error(conn, 400, e, &d);
        goto out;
    }
    int status = 200;
    if (strncmp(req->path, "/status/", 8) == 0)
        status = atoi(req->path + 8);
    char *json = echo_json(req);
    e = at_bhttp_response_new(status, &res, &d);
    if (e == AT_OK)
        e = at_bhttp_add_header(res, "content-type", AT_SPAN("application/json", 16), &d);
    if (e == AT_OK && json)
        e = at_bhttp_append_content(res, AT_SPAN(json, strlen(json)), &d);
    if (e == AT_OK)
        e = at_bhttp_encode(res, &bh, &d);
    if (e == AT_OK)
        e = at_ohttp_server_seal_response(srv, at_buf_span(&bh), &sealed, &d);
    free(json);
    ok = e == AT_OK ? reply(conn, 200, AT_OHTTP_MEDIA_RES, sealed.p, sealed.len)
                    : reply_error(conn, 500, e, &d);
out:
    at_bhttp_msg_free(req);
    at_bhttp_msg_free(res);
    at_ohttp_server_free(srv);
    at_buf_cleanup(&bh);
    at_buf_cleanup(&sealed);
    return ok;
}

static void stream_free(void *cls)
{
    stream_state *ss = cls;
    for (size_t i = 0; i < ss->nevents; i++)
        free(ss->events[i]);
    free(ss->events);
    at_bhttp_msg_free(ss->req);
    at_ohttp_server_free(ss->srv);
    at_buf_cleanup(&ss->out);
    free(ss);
}

/* Appends the event "data: <a><b><c>\n\n". */
static int add_event(stream_state *ss, const char *a, const char *b, const char *c)
{
    char **ev = realloc(ss->events, (ss->nevents + 1) * sizeof *ev);
    if (!ev)
        return -1;
    ss->events = ev;
    size_t n = strlen(a) + strlen(b) + strlen(c) + 9;
    char *s = malloc(n);
    if (!s)
        return -1;
    snprintf(s, n, "data: %s%s%s\n\n", a, b, c);
    ss->events[ss->nevents++] = s;
    return 0;
}

/* Produce the next sealed piece into ss->out; false at the end. */
static bool produce(stream_state *ss)
{
    at_diag d = {{0}};
    at_buf inner;
    at_err e = AT_OK;
    at_buf_init_secret(&inner);
    if (!ss->head_done) {
        at_bhttp_msg *res = NULL;
        e = at_bhttp_response_new(200, &res, &d);
        if (e == AT_OK)
            e = at_bhttp_add_header(res, "content-type", AT_SPAN("text/event-stream", 17), &d);
        if (e == AT_OK)
            e = at_bhttp_encode_head(res, &inner, &d);
        at_bhttp_msg_free(res);
        ss->head_done = true;
    } else if (ss->next < ss->nevents) {
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
        const char *ev = ss->events[ss->next++];
        e = at_bhttp_encode_chunk(AT_SPAN(ev, strlen(ev)), &inner, &d);
    } else if (!ss->tail_done) {
        ss->tail_done = true;
        if (ss->truncate)
            return false; /* the final chunk never comes */
        if (ss->slow)
            sleep(3);
        at_bhttp_msg *res = NULL;
        e = at_bhttp_response_new(200, &res, &d);
        if (e == AT_OK)
            e = at_bhttp_encode_tail(res, &inner, &d);
        at_bhttp_msg_free(res);
        if (e == AT_OK)
            e = at_ohttp_server_seal_chunk(ss->srv, at_buf_span(&inner), true, &ss->out, &d);
        at_buf_cleanup(&inner);
        return e == AT_OK;
    } else {
        at_buf_cleanup(&inner);
        return false;
    }
    if (e == AT_OK)
        e = at_ohttp_server_seal_chunk(ss->srv, at_buf_span(&inner), false, &ss->out, &d);
    if (e != AT_OK)
        fprintf(stderr, "ohttp_echo_server: stream: %s: %s\n", at_err_str(e), d.msg);
    at_buf_cleanup(&inner);
    return e == AT_OK;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_state *ss = cls;
    (void)pos;
    if (ss->out_off == ss->out.len) {
        at_buf_reset(&ss->out);
        ss->out_off = 0;
        /* A truncated stream still ends cleanly at the HTTP layer, as a
         * relay cutting it would: only the missing final chunk tells. */
        if (!produce(ss) || ss->out.len == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = ss->out.len - ss->out_off;
    if (n > max)
        n = max;
    memcpy(buf, ss->out.p + ss->out_off, n);
    ss->out_off += n;
    return (ssize_t)n;
}

static enum MHD_Result answer_chunked(struct MHD_Connection *conn, req_state *st)
{
    at_diag d = {{0}};
    at_bhttp_msg *req = NULL;
    at_err e = st->err;
    if (e == AT_OK)
        e = at_ohttp_server_finish(st->srv, &st->plain, &d);
    else
        d = st->d;
    if (e == AT_OK)
        e = at_bhttp_decode(at_buf_span(&st->plain), AT_BHTTP_REQUEST, &req, &d);
    if (e != AT_OK)
        return reply_error(conn, 400, e, &d);

    stream_state *ss = calloc(1, sizeof *ss);
    if (!ss) {
        at_bhttp_msg_free(req);
        return MHD_NO;
    }
    ss->srv = st->srv;
    st->srv = NULL;
    ss->req = req;
    ss->truncate = strcmp(req->path, "/truncate") == 0;
    ss->slow = strcmp(req->path, "/slow") == 0;
    int bad = add_event(ss, req->method, " ", req->path);
    /* One event per line of the content. */
    char *text = req->content.len ? strndup((const char *)req->content.p, req->content.len) : NULL;
    for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line && !bad;
         line = strtok_r(NULL, "\n", &save))
        bad = add_event(ss, line, "", "");
    free(text);
    if (!bad)
        bad = add_event(ss, "[DONE]", "", "");
    struct MHD_Response *r =
        bad ? NULL : MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, ss, stream_free);
    if (!r) {
        stream_free(ss);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, AT_OHTTP_MEDIA_CHUNKED_RES);
    MHD_add_response_header(r, "Incremental", "?1");
    enum MHD_Result ok = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    req_state *st = *req_cls;
    (void)cls;
    (void)version;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        at_buf_init(&st->body);
        at_buf_set_max(&st->body, (size_t)AT_MAX_OHTTP_MESSAGE + 1024);
        at_buf_init_secret(&st->plain);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (media_is(ct, AT_OHTTP_MEDIA_REQ))
            st->kind = KIND_WHOLE;
        else if (media_is(ct, AT_OHTTP_MEDIA_CHUNKED_REQ))
            st->kind = KIND_CHUNKED;
        if (st->kind == KIND_CHUNKED)
            st->err = at_ohttp_server_new_chunked(keys, &st->srv, &st->d);
        *req_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        at_span in = AT_SPAN(upload, *upload_size);
        *upload_size = 0;
        if (st->err != AT_OK)
            return MHD_YES;
        if (st->kind == KIND_WHOLE) {
            if (at_buf_append_span(&st->body, in) != AT_OK)
                st->err = at_fail(&st->d, AT_E_TOO_LARGE, "request body too large");
        } else if (st->kind == KIND_CHUNKED) {
            /* Decrypt as the body streams in, chunk by chunk. */
            st->err = at_ohttp_server_feed(st->srv, in, &st->plain, &st->d);
            if (st->err == AT_OK && st->plain.len > AT_MAX_BHTTP_CONTENT)
                st->err = at_fail(&st->d, AT_E_TOO_LARGE, "request too large");
        }
        return MHD_YES;
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/key-config") == 0) {
        at_buf b;
        at_buf_init(&b);
        at_diag d = {{0}};
        at_err e = at_ohttp_keyset_keys(keys, &b, &d);
        enum MHD_Result ok =
            e == AT_OK ? reply(conn, 200, AT_OHTTP_MEDIA_KEYS, b.p, b.len) : reply_error(conn, 500, e, &d);
        at_buf_cleanup(&b);
        return ok;
    }
    if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/ohttp") != 0)
        return reply(conn, 404, "text/plain", "not_found\n", 10);
    if (st->kind == KIND_OTHER)
        return reply(conn, 415, "text/plain", "expected message/ohttp-req\n", 27);
    if (st->kind == KIND_WHOLE) {
        if (st->err != AT_OK)
            return reply_error(conn, 413, st->err, &st->d);
        return answer_whole(conn, st);
    }
    return answer_chunked(conn, st);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    req_state *st = *req_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (!st)
        return;
    at_buf_cleanup(&st->body);
    at_buf_cleanup(&st->plain);
    at_ohttp_server_free(st->srv);
    free(st);
    *req_cls = NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"keys", required_argument, NULL, 'k'},
                                         {"port-file", required_argument, NULL, 'f'},
                                         {"port", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    const char *keyfile = NULL, *port_file = NULL;
    int port = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k')
            keyfile = optarg;
        else if (c == 'f')
            port_file = optarg;
        else if (c == 'p')
            port = atoi(optarg);
        else
            return 2;
    }
    if (!keyfile || !port_file) {
        fprintf(stderr, "usage: ohttp_echo_server --keys KEYFILE --port-file FILE [--port N]\n");
        return 2;
    }
    at_diag d = {{0}};
    if (at_ohttp_keyset_load(keyfile, &keys, &d) != AT_OK) {
        fprintf(stderr, "ohttp_echo_server: %s\n", d.msg);
        return 2;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *dmn =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!dmn) {
        fprintf(stderr, "ohttp_echo_server: cannot listen on 127.0.0.1:%d\n", port);
        return 2;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(dmn, MHD_DAEMON_INFO_BIND_PORT);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", (unsigned)info->port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
        fprintf(stderr, "ohttp_echo_server: %s: %s\n", port_file, strerror(errno));
        MHD_stop_daemon(dmn);
        return 2;
    }
    struct sigaction sa_sig;
    memset(&sa_sig, 0, sizeof sa_sig);
    sa_sig.sa_handler = on_signal;
    sigaction(SIGTERM, &sa_sig, NULL);
    sigaction(SIGINT, &sa_sig, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!stop) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(dmn);
    at_ohttp_keyset_free(keys);
    return 0;
}
