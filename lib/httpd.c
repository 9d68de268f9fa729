/* httpd: libmicrohttpd glue. Every byte of a request is attacker input;
 * this file bounds it (whole-request deadline, body cap, connection limits
 * per address, framing ambiguities refused) and hands complete requests to
 * the binary's router on a bounded worker pool. MHD's own threads only do
 * I/O: nothing here blocks them. */
#include "config.h"
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <time.h>
#include <unistd.h>

#include "at_limits.h"
#include "clock.h"
#include "enc.h"
#include "log.h"

/* One per connection (MHD's socket context): the deadline its current
 * request must be complete by. The reaper thread shuts down sockets past
 * it; MHD then sees EOF and closes them. MHD reports a close before it
 * closes the descriptor, and both sides hold conn_lock, so a reused
 * descriptor is never shut down. */
struct conn_ctx {
    struct conn_ctx *prev, *next;
    int fd;
    int64_t deadline_ns; /* 0: a request is being handled or answered */
};

/* One per request (MHD's con_cls). */
struct call {
    at_http_req req;
    struct call *next;      /* work queue */
    int state;              /* NEW, QUEUED, DONE, SENT */
    char *raw_url;          /* as on the request line (query included) */
    const char *uri_in_buf; /* MHD's copy, in its read buffer (decoded in place later) */
    size_t raw_len;
    const char *version;        /* MHD's, in its read buffer */
    char *path;                 /* req.url */
    struct MHD_Response *ready; /* built by the worker */
    unsigned status;
    bool upstream; /* counted in upstream_in_flight */
};
enum { CALL_NEW, CALL_QUEUED, CALL_DONE, CALL_SENT };

/* A streamed body: a worker fills buf with one call of the handler's
 * (blocking) reader at a time; MHD's thread drains it, suspending the
 * connection while it is empty. */
#define PIPE_CAP (16 * 1024)
struct pipe_ {
    pthread_mutex_t lock;
    int refs;
    at_httpd *srv;
    struct MHD_Connection *conn;
    ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max);
    void *cls;
    void (*free_cls)(void *cls);
    char buf[PIPE_CAP];
    size_t len, off;
    uint64_t pos;
    bool eof, error, aborted, suspended, producing;
    struct pipe_ *next; /* work queue */
};

struct at_httpd {
    struct MHD_Daemon *mhd;
    at_http_handler handler;
    void *app;
    at_httpd_opts o;
    atomic_uint in_flight;
    uint16_t port;
    /* worker pool */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct call *qhead, *qtail;
    struct pipe_ *phead, *ptail;
    atomic_bool stopping; /* set under qlock */
    atomic_bool draining; /* at_httpd_stop: new connections are refused */
    pthread_t *workers;
    unsigned n_workers;
    atomic_uint upstream_in_flight;
    unsigned upstream_cap; /* workers less AT_HTTP_RESERVED_WORKERS */
    /* deadlines */
    pthread_mutex_t conn_lock;
    pthread_cond_t reaper_cond;
    struct conn_ctx *conns;
    pthread_t reaper;
    bool reaper_started;
    atomic_uint_fast64_t deadline_closed;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unlinked at stop ... */
    dev_t unix_dev;                                              /* ... if still the socket */
    ino_t unix_ino;                                              /*     bound here */
};

/* "vsock:PORT" (any CID) or "vsock:CID:PORT", both decimal. */
static at_err parse_vsock(const char *listen, struct sockaddr_storage *ss, socklen_t *len, at_diag *d)
{
    const char *p = listen + 6, *colon = strchr(p, ':');
    unsigned long cid = VMADDR_CID_ANY, port;
    char *end;
    if (colon) {
        if (colon == p || *p == '-' || *p == '+')
            return at_fail(d, AT_E_BAD_REQUEST, "listen: expected vsock:CID:PORT, got '%s'", listen);
        cid = strtoul(p, &end, 10);
        if (end != colon || cid > 0xffffffffUL)
            return at_fail(d, AT_E_BAD_REQUEST, "listen: bad CID in '%s' (expected 0..4294967295)", listen);
        p = colon + 1;
    }
    if (!*p || *p == '-' || *p == '+' || (port = strtoul(p, &end, 10), *end) || port > 0xffffffffUL)
        return at_fail(d, AT_E_BAD_REQUEST, "listen: bad vsock port in '%s' (expected 0..4294967295)",
                       listen);
    struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;
    vm->svm_family = AF_VSOCK;
    vm->svm_cid = (unsigned)cid;
    vm->svm_port = (unsigned)port;
    *len = sizeof *vm;
    return AT_OK;
}

at_err at_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, at_diag *d)
{
    char host[128];
    const char *colon;
    memset(ss, 0, sizeof *ss);
    if (strncmp(listen, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t n = strlen(listen + 5);
        if (n == 0 || n >= sizeof un->sun_path)
            return at_fail(d, AT_E_BAD_REQUEST, "listen: expected unix:PATH of 1..%zu characters, got %zu",
                           sizeof un->sun_path - 1, n);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, listen + 5, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return AT_OK;
    }
    if (strncmp(listen, "vsock:", 6) == 0)
        return parse_vsock(listen, ss, len, d);
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host)
            return at_fail(d, AT_E_BAD_REQUEST, "listen: expected [ipv6]:port, got '%s'", listen);
        memcpy(host, listen + 1, (size_t)(end - listen - 1));
        host[end - listen - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host)
            return at_fail(d, AT_E_BAD_REQUEST, "listen: expected host:port, got '%s'", listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return at_fail(d, AT_E_BAD_REQUEST, "listen: bad port in '%s'", listen);
    if (!host[0] || strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "%s", host[0] ? "127.0.0.1" : "0.0.0.0");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        return at_fail(d, AT_E_BAD_REQUEST, "listen: '%s' is not an IP address", host);
    }
    return AT_OK;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Bytes that stay percent-encoded when a path is decoded: '/' (it would
 * move a segment boundary: "a%2Fversions%2F1" must stay one name), '%'
 * (it would make a second decoding possible) and control bytes (NUL would
 * cut C strings). None of them is valid in any name, so a segment holding
 * one fails its name check. */
static bool stays_escaped(int b) { return b == '/' || b == '%' || b < 0x20 || b == 0x7f; }

/* Query keys and values, in place (MHD calls this for them; the path is
 * taken raw from the request line, see on_uri). %00 stays encoded, so it
 * fails every name check instead of silently truncating. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi << 4 | lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* The routed path of a raw request target: the path before '?', escapes
 * decoded except those stays_escaped() keeps. Caller frees. */
static char *route_path(const char *raw)
{
    size_t n = strcspn(raw, "?#");
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        int hi, lo;
        if (raw[r] == '%' && r + 2 < n && (hi = hexval(raw[r + 1])) >= 0 && (lo = hexval(raw[r + 2])) >= 0 &&
            !stays_escaped(hi << 4 | lo)) {
            out[w++] = (char)(hi << 4 | lo);
            r += 3;
        } else if (raw[r] == '%' && r + 2 < n && hexval(raw[r + 1]) >= 0 && hexval(raw[r + 2]) >= 0) {
            /* kept escaped, upper-case hex so there is one spelling */
            out[w++] = '%';
            out[w++] = (char)(raw[r + 1] >= 'a' ? raw[r + 1] - 32 : raw[r + 1]);
            out[w++] = (char)(raw[r + 2] >= 'a' ? raw[r + 2] - 32 : raw[r + 2]);
            r += 3;
        } else {
            out[w++] = raw[r++];
        }
    }
    out[w] = '\0';
    return out;
}

static void client_addr(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* ---- deadlines ------------------------------------------------------------ */

static int64_t request_timeout_ns(const at_httpd *s)
{
    return (int64_t)(s->o.request_timeout_s ? s->o.request_timeout_s : AT_HTTP_REQUEST_TIMEOUT_S) *
           1000000000;
}

static struct conn_ctx *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* deadline_ns: 0 = none, otherwise absolute. */
static void set_deadline(at_httpd *s, struct MHD_Connection *c, int64_t deadline_ns)
{
    struct conn_ctx *x = conn_of(c);
    if (!x)
        return;
    pthread_mutex_lock(&s->conn_lock);
    x->deadline_ns = deadline_ns;
    pthread_mutex_unlock(&s->conn_lock);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    at_httpd *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_ctx *x = calloc(1, sizeof *x);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!x || !ci) {
            free(x);
            return; /* no deadline for this one: the idle timeout still applies */
        }
        x->fd = ci->connect_fd;
        /* Keep-alive: a later answer's pieces must not wait for the
         * client's delayed ACK (Nagle). Fails harmlessly off TCP. */
        int one = 1;
        if (setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            /* UNIX or vsock: no Nagle there */
        }
        x->deadline_ns = at_monotonic_ns() + request_timeout_ns(s);
        pthread_mutex_lock(&s->conn_lock);
        x->next = s->conns;
        if (s->conns)
            s->conns->prev = x;
        s->conns = x;
        pthread_mutex_unlock(&s->conn_lock);
        *socket_context = x;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct conn_ctx *x = *socket_context;
        pthread_mutex_lock(&s->conn_lock);
        if (x->prev)
            x->prev->next = x->next;
        else
            s->conns = x->next;
        if (x->next)
            x->next->prev = x->prev;
        pthread_mutex_unlock(&s->conn_lock);
        free(x);
        *socket_context = NULL;
    }
}

static void *reaper_main(void *arg)
{
    at_httpd *s = arg;
    pthread_mutex_lock(&s->conn_lock);
    while (!atomic_load(&s->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->reaper_cond, &s->conn_lock, &ts);
        int64_t now = at_monotonic_ns();
        unsigned closed = 0;
        for (struct conn_ctx *x = s->conns; x; x = x->next)
            if (x->deadline_ns && now > x->deadline_ns) {
                shutdown(x->fd, SHUT_RDWR);
                x->deadline_ns = 0;
                closed++;
            }
        if (closed) {
            atomic_fetch_add(&s->deadline_closed, closed);
            at_log("info", "request_deadline",
                   "closed %u connection(s) whose request did not arrive within %u s", closed,
                   (unsigned)(request_timeout_ns(s) / 1000000000));
        }
    }
    pthread_mutex_unlock(&s->conn_lock);
    return NULL;
}

/* ---- responses ------------------------------------------------------------ */

static void pipe_unref(struct pipe_ *p)
{
    pthread_mutex_lock(&p->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (!last)
        return;
    if (p->free_cls)
        p->free_cls(p->cls);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Under p->lock. False when the pool is stopping (workers drain the queue
 * before they exit, so what is queued here always runs). */
static bool pipe_schedule(struct pipe_ *p)
{
    at_httpd *s = p->srv;
    pthread_mutex_lock(&s->qlock);
    if (atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&s->qlock);
        return false;
    }
    p->producing = true;
    p->refs++;
    p->next = NULL;
    if (s->ptail)
        s->ptail->next = p;
    else
        s->phead = p;
    s->ptail = p;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    return true;
}

/* MHD's content reader, on MHD's thread: never blocks. */
static ssize_t pipe_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct pipe_ *p = cls;
    ssize_t rc;
    pthread_mutex_lock(&p->lock);
    if (p->off < p->len) {
        size_t n = p->len - p->off < max ? p->len - p->off : max;
        memcpy(buf, p->buf + p->off, n);
        p->off += n;
        if (p->off == p->len) {
            p->off = p->len = 0;
            if (!p->eof && !p->error && !p->producing && !pipe_schedule(p))
                p->error = true; /* read ahead while this goes out */
        }
        rc = (ssize_t)n;
    } else if (p->error) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (p->eof) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (!p->producing && !pipe_schedule(p)) {
        p->error = true;
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        /* Nothing yet: park the connection until the worker has some. */
        p->suspended = true;
        MHD_suspend_connection(p->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* MHD dropped the response (sent, or the client went away). */
static void pipe_done(void *cls)
{
    struct pipe_ *p = cls;
    pthread_mutex_lock(&p->lock);
    p->aborted = true;
    pthread_mutex_unlock(&p->lock);
    pipe_unref(p);
}

/* On a worker: one call of the handler's reader. */
static void pipe_produce(at_httpd *s, struct pipe_ *p)
{
    char *tmp = malloc(PIPE_CAP);
    pthread_mutex_lock(&p->lock);
    bool skip = p->aborted;
    pthread_mutex_unlock(&p->lock);
    ssize_t n = !tmp                                ? MHD_CONTENT_READER_END_WITH_ERROR
                : skip || atomic_load(&s->stopping) ? MHD_CONTENT_READER_END_WITH_ERROR
                                                    : p->read(p->cls, p->pos, tmp, PIPE_CAP);
    pthread_mutex_lock(&p->lock);
    if (n == MHD_CONTENT_READER_END_OF_STREAM)
        p->eof = true;
    else if (n < 0 || (size_t)n > PIPE_CAP - p->len)
        p->error = true;
    else if (n > 0) {
        memcpy(p->buf + p->len, tmp, (size_t)n);
        p->len += (size_t)n;
        p->pos += (uint64_t)n;
    }
    p->producing = false;
    if (n == 0 && !p->aborted && !p->eof && !p->error && !pipe_schedule(p))
        p->error = true; /* the reader had nothing yet: ask again */
    if (p->suspended && !p->aborted && (p->len || p->eof || p->error)) {
        p->suspended = false;
        MHD_resume_connection(p->conn);
    }
    pthread_mutex_unlock(&p->lock);
    free(tmp);
    pipe_unref(p);
}

/* On the worker: the handler's answer as an MHD response. Headers are
 * copied, so nothing of the handler's thread is referenced afterwards. */
static struct MHD_Response *build_resp(at_httpd *s, struct call *k, at_http_resp *r)
{
    struct MHD_Response *m = r->mhd;
    if (!m && r->stream) {
        struct pipe_ *p = calloc(1, sizeof *p);
        if (p) {
            pthread_mutex_init(&p->lock, NULL);
            p->refs = 1; /* the MHD response's */
            p->srv = s;
            p->conn = k->req.conn;
            p->read = r->stream;
            p->cls = r->stream_cls;
            p->free_cls = r->stream_free;
            m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PIPE_CAP, pipe_read, p, pipe_done);
            if (!m) {
                p->free_cls = NULL;
                pipe_unref(p);
            } else {
                pthread_mutex_lock(&p->lock);
                if (!pipe_schedule(p)) /* the first piece, before MHD asks */
                    p->error = true;
                pthread_mutex_unlock(&p->lock);
            }
        }
        if (!m) {
            if (r->stream_free)
                r->stream_free(r->stream_cls);
            r->stream = NULL;
            at_http_error(r, AT_E_INTERNAL, "out of memory", -1);
        } else if (r->content_type) {
            MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
        }
    }
    if (!m) {
        m = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
                                            r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!m) {
            free(r->body);
            r->body = NULL;
            return NULL;
        }
        r->body = NULL;
        if (r->content_type)
            MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    /* no-store unless the handler chose (lib/webstatic: no-cache + ETag). */
    if (strncasecmp(r->headers, "Cache-Control:", 14) != 0 && !strcasestr(r->headers, "\nCache-Control:"))
        MHD_add_response_header(m, "Cache-Control", "no-store");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    if (r->location[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->extra_header_name && r->extra_header_value)
        MHD_add_response_header(m, r->extra_header_name, r->extra_header_value);
    for (char *line = r->headers, *nl; *line && (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        char *colon = memchr(line, ':', (size_t)(nl - line));
        if (!colon)
            continue;
        *colon = *nl = '\0';
        MHD_add_response_header(m, line, colon[1] == ' ' ? colon + 2 : colon + 1);
        *colon = ':';
        *nl = '\n';
    }
    r->mhd = NULL;
    return m;
}

/* On a worker: run the handler, build the answer, hand the connection back. */
static void run_call(at_httpd *s, struct call *k)
{
    size_t cap = s->o.max_body ? s->o.max_body : AT_MAX_BODY_BYTES;
    at_http_resp r = {0};
    s->handler(s->app, &k->req, &r);
    if (!r.mhd && !r.stream && r.status == 0) {
        char msg[96];
        if (k->req.body_too_large)
            snprintf(msg, sizeof msg, "body: larger than %zu bytes", cap);
        at_http_error(&r, k->req.body_too_large ? AT_E_TOO_LARGE : AT_E_INTERNAL,
                      k->req.body_too_large ? msg : "no response", -1);
    }
    k->status = (unsigned)r.status;
    k->ready = build_resp(s, k, &r);
    if (!k->ready)
        k->status = 0;
    k->state = CALL_DONE;
    MHD_resume_connection(k->req.conn);
}

static void *worker_main(void *arg)
{
    at_httpd *s = arg;
    if (s->o.worker_nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), s->o.worker_nice) != 0)
        at_log("debug", "nice", "setpriority: %s", strerror(errno));
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        if (s->qhead) {
            struct call *k = s->qhead;
            s->qhead = k->next;
            if (!s->qhead)
                s->qtail = NULL;
            pthread_mutex_unlock(&s->qlock);
            run_call(s, k);
            pthread_mutex_lock(&s->qlock);
        } else if (s->phead) {
            struct pipe_ *p = s->phead;
            s->phead = p->next;
            if (!s->phead)
                s->ptail = NULL;
            pthread_mutex_unlock(&s->qlock);
            pipe_produce(s, p);
            pthread_mutex_lock(&s->qlock);
        } else if (atomic_load(&s->stopping)) {
            break;
        } else {
            pthread_cond_wait(&s->qcond, &s->qlock);
        }
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}

static enum MHD_Result refuse_now(struct call *k, at_err code, const char *msg, const char *retry_after);

/* A handler that never blocks, on MHD's thread: it does not wait behind
 * the workers (which an upstream may hold). */
static enum MHD_Result run_inline(at_httpd *s, struct call *k)
{
    at_http_resp r = {0};
    s->handler(s->app, &k->req, &r);
    if (!r.mhd && !r.stream && r.status == 0)
        at_http_error(&r, AT_E_INTERNAL, "no response", -1);
    struct MHD_Response *m = build_resp(s, k, &r);
    k->state = CALL_SENT;
    if (!m)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(k->req.conn, (unsigned)r.status, m);
    MHD_destroy_response(m);
    return ok;
}

/* Park the connection and queue its request for a worker (or answer it
 * here: an inline route, or an upstream route beyond its share). */
static enum MHD_Result dispatch(at_httpd *s, struct call *k)
{
    set_deadline(s, k->req.conn, 0); /* arrived: the deadline no longer applies */
    int kind = s->o.classify ? s->o.classify(s->app, k->req.method, k->req.url) : AT_HTTP_RUN_POOL;
    if (kind == AT_HTTP_RUN_INLINE)
        return run_inline(s, k);
    if (kind == AT_HTTP_RUN_UPSTREAM) {
        if (atomic_fetch_add(&s->upstream_in_flight, 1) >= s->upstream_cap) {
            atomic_fetch_sub(&s->upstream_in_flight, 1);
            char msg[128];
            snprintf(msg, sizeof msg, "server: %u requests already wait on the upstream (the most allowed)",
                     s->upstream_cap);
            return refuse_now(k, AT_E_UNAVAILABLE, msg, "5");
        }
        k->upstream = true;
    }
    pthread_mutex_lock(&s->qlock);
    if (atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&s->qlock);
        return refuse_now(k, AT_E_UNAVAILABLE, "server: stopping", NULL);
    }
    k->state = CALL_QUEUED;
    MHD_suspend_connection(k->req.conn);
    k->next = NULL;
    if (s->qtail)
        s->qtail->next = k;
    else
        s->qhead = k;
    s->qtail = k;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    return MHD_YES;
}

/* A refusal of the request's framing, on MHD's thread (no handler, no
 * blocking); the connection closes after it. */
static enum MHD_Result refuse_now(struct call *k, at_err code, const char *msg, const char *retry_after)
{
    at_http_resp r = {0};
    at_http_error(&r, code, msg, -1);
    struct MHD_Response *m = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
    if (!m) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_add_response_header(m, "Cache-Control", "no-store");
    if (retry_after)
        MHD_add_response_header(m, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    enum MHD_Result ok = MHD_queue_response(k->req.conn, (unsigned)r.status, m);
    MHD_destroy_response(m);
    k->state = CALL_SENT;
    k->req.route = "refused";
    return ok;
}

#define HDR_SCAN_MAX 128 /* headers a request may have: each is scanned for NUL bytes */

/* RFC 9110 §5.6.2 tchar */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}
struct hdr_scan {
    unsigned content_length, transfer_encoding, authorization, host;
    size_t n, total;
    const char *bad_name; /* the first field name with a non-token byte */
    const char *key[HDR_SCAN_MAX], *value[HDR_SCAN_MAX];
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct hdr_scan *h = cls;
    if (!key)
        return MHD_YES;
    h->total++;
    if (h->n < HDR_SCAN_MAX && value) {
        h->key[h->n] = key;
        h->value[h->n++] = value;
    }
    /* RFC 9110 §5.1: a field name is a token. libmicrohttpd keeps
     * "Content-Length " (whitespace before the colon) as another name,
     * which would hide a duplicate from the counts below: such names are
     * refused (RFC 9112 §5.1), and counted under their trimmed name. */
    size_t n = strcspn(key, " \t");
    if (!h->bad_name && (key[n] || !is_token(key)))
        h->bad_name = key;
    if (n == strlen(MHD_HTTP_HEADER_CONTENT_LENGTH) &&
        strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, n) == 0)
        h->content_length++;
    else if (n == strlen(MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
             strncasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING, n) == 0)
        h->transfer_encoding++;
    else if (n == strlen(MHD_HTTP_HEADER_AUTHORIZATION) &&
             strncasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION, n) == 0)
        h->authorization++;
    else if (n == strlen(MHD_HTTP_HEADER_HOST) && strncasecmp(key, MHD_HTTP_HEADER_HOST, n) == 0)
        h->host++;
    return MHD_YES;
}

/* libmicrohttpd 0.9.75 reads a header line up to its line end, writes NUL
 * over the CR and LF, and keeps pointers into its read buffer in the order
 * of the lines: a value holding a NUL byte of its own shows as non-NUL
 * bytes between the value's end and the next line's name (or right after
 * the last value). It reports no length of its own. */
static const char *header_with_nul(const struct hdr_scan *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const char *v = h->value[i];
        const char *end = v + strlen(v);
        const char *next = i + 1 < h->n ? h->key[i + 1] : end + 2;
        if (next <= end || next - end > 4096)
            continue; /* not laid out as expected: no claim */
        for (const char *p = end + 1; p < next; p++)
            if (*p != '\0' && !(i + 1 == h->n && (*p == '\r' || *p == '\n')))
                return h->key[i];
    }
    return NULL;
}

/* The method, target and version point into libmicrohttpd's read buffer,
 * in that order, separated by spaces (the first one written over with NUL);
 * a NUL byte of the request's own ends a string early and leaves other
 * bytes before the next part ("GET /v1/x\0junk HTTP/1.1"). */
static bool gap_is_clean(const char *end, const char *next)
{
    if (next <= end || next - end > 4096)
        return true; /* not laid out as expected: no claim */
    for (const char *p = end; p < next; p++)
        if (*p != ' ' && *p != '\0')
            return false;
    return true;
}

static bool request_line_has_nul(const struct call *k)
{
    const char *m = k->req.method, *u = k->uri_in_buf;
    if (!u || !k->version)
        return false;
    return !gap_is_clean(m + strlen(m), u) || !gap_is_clean(u + k->raw_len, k->version);
}

/* RFC 9112 §6.3, RFC 9110 §5.3: framing a peer could read differently, and
 * credentials given twice, are refused rather than guessed at. NUL bytes
 * would cut the C strings handlers see ("Bearer <token>\0junk"). */
static const char *ambiguity(struct call *k, char *msg, size_t len)
{
    struct MHD_Connection *c = k->req.conn;
    struct hdr_scan h = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &h);
    const char *nul_in = header_with_nul(&h);
    if (h.total > HDR_SCAN_MAX)
        snprintf(msg, len, "headers: %zu given, at most %u allowed", h.total, HDR_SCAN_MAX);
    else if (nul_in)
        snprintf(msg, len, "header %.64s: contains a NUL byte", nul_in);
    else if (h.bad_name)
        snprintf(msg, len, "header '%.64s': not a field name (whitespace before ':'?)", h.bad_name);
    else if (strlen(k->req.method) == 0 || strlen(k->raw_url) == 0)
        snprintf(msg, len, "request line: empty method or target");
    else if (request_line_has_nul(k))
        snprintf(msg, len, "request line: contains a NUL byte");
    else if (k->version && strcmp(k->version, "HTTP/1.1") == 0 && h.host == 0)
        snprintf(msg, len, "header Host: missing, expected once in an HTTP/1.1 request");
    else if (h.content_length > 1)
        snprintf(msg, len, "header Content-Length: given %u times, expected once", h.content_length);
    else if (h.transfer_encoding > 1)
        snprintf(msg, len, "header Transfer-Encoding: given %u times, expected once", h.transfer_encoding);
    else if (h.transfer_encoding && h.content_length)
        snprintf(msg, len, "header Transfer-Encoding: not allowed with Content-Length");
    else if (h.authorization > 1)
        snprintf(msg, len, "header Authorization: given %u times, expected once", h.authorization);
    else if (h.host > 1)
        snprintf(msg, len, "header Host: given %u times, expected once", h.host);
    else {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && (!*cl || strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 19))
            snprintf(msg, len, "header Content-Length: expected digits, got '%.32s'", cl);
        else
            return NULL;
    }
    return msg;
}

/* MHD's URI log callback: called with the request target as sent, before
 * any decoding; what it returns becomes the request's con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    struct call *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->raw_url = strdup(uri ? uri : "");
    k->uri_in_buf = uri;
    k->raw_len = uri ? strlen(uri) : 0;
    k->path = k->raw_url ? route_path(k->raw_url) : NULL;
    return k;
}

static void call_free(struct call *k)
{
    if (!k)
        return;
    at_buf_cleanup(&k->req.body);
    if (k->ready)
        MHD_destroy_response(k->ready);
    free(k->raw_url);
    free(k->path);
    free(k);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
    (void)url;
    at_httpd *s = cls;
    struct call *k = *con_cls;
    size_t cap = s->o.max_body ? s->o.max_body : AT_MAX_BODY_BYTES;
    if (!k || !k->path)
        return MHD_NO; /* out of memory in on_uri: close */
    at_http_req *req = &k->req;
    if (!req->conn) {
        req->conn = c;
        req->method = method;
        req->url = k->path;
        req->start_ns = at_monotonic_ns();
        req->route = "other";
        k->version = version;
        /* Bodies can carry secrets (PUT /v1/secrets): wiped when freed. */
        at_buf_init_secret(&req->body);
        at_buf_set_max(&req->body, cap);
        client_addr(c, req->client, sizeof req->client);
        atomic_fetch_add(&s->in_flight, 1);
        char msg[160];
        if (ambiguity(k, msg, sizeof msg))
            return refuse_now(k, AT_E_BAD_REQUEST, msg, NULL);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            unsigned long long n = strtoull(cl, NULL, 10);
            req->declared_len = (size_t)n;
            if (n > cap)
                req->body_too_large = true;
        }
        /* Refuse an announced oversized body before reading it. */
        if (req->body_too_large)
            return dispatch(s, k);
        return MHD_YES;
    }
    switch (k->state) {
    case CALL_NEW:
        if (*upload_size) {
            if (!req->body_too_large && at_buf_append(&req->body, upload, *upload_size) != AT_OK) {
                req->body_too_large = true;
                at_buf_cleanup(&req->body);
            }
            *upload_size = 0;
            return MHD_YES;
        }
        return dispatch(s, k);
    case CALL_QUEUED:
        return MHD_YES; /* not reached: suspended until the worker is done */
    case CALL_DONE: {
        *upload_size = 0;
        k->state = CALL_SENT;
        if (!k->ready)
            return MHD_NO;
        enum MHD_Result ok = MHD_queue_response(c, k->status, k->ready);
        MHD_destroy_response(k->ready);
        k->ready = NULL;
        return ok;
    }
    default:
        *upload_size = 0; /* the rest of a refused body */
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    at_httpd *s = cls;
    struct call *k = *con_cls;
    if (!k)
        return;
    *con_cls = NULL;
    if (k->upstream) /* the answer is out (a streamed one too): its share is free */
        atomic_fetch_sub(&s->upstream_in_flight, 1);
    /* The next request on this connection has its own deadline. */
    set_deadline(s, c, at_monotonic_ns() + request_timeout_ns(s));
    if (!k->req.conn) { /* the request line came, the head never completed */
        call_free(k);
        return;
    }
    if (s->o.observe) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        int status = ci ? (int)ci->http_status : 0;
        s->o.observe(s->app, k->req.route, k->req.method, status,
                     (double)(at_monotonic_ns() - k->req.start_ns) / 1e9);
    }
    call_free(k);
    atomic_fetch_sub(&s->in_flight, 1);
}

/* libmicrohttpd's own diagnostics (MHD_OPTION_EXTERNAL_LOGGER): one JSON
 * line through lib/log like every other line on stderr, never raw text. */
__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(line, sizeof line, fmt, cp);
    va_end(cp);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    line[len] = '\0';
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    at_log("warn", "httpd", "libmicrohttpd: %s", line);
}

/* Why MHD_start_daemon failed on ss, told apart by binding it once. */
static const char *bind_problem(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "cannot open a socket";
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        /* best effort, as libmicrohttpd does */
    }
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    int e = errno;
    close(fd);
    return rc == 0 ? NULL : e == EADDRINUSE ? "address in use" : strerror(e);
}

/* Raise the soft descriptor limit to the hard one; the connection limit
 * that it allows. */
static unsigned fd_connection_budget(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = old;
    }
    rlim_t n = rl.rlim_cur;
    if (n == RLIM_INFINITY || n > AT_HTTP_MAX_CONNECTIONS + AT_HTTP_FD_RESERVE)
        n = AT_HTTP_MAX_CONNECTIONS + AT_HTTP_FD_RESERVE;
    return n > 2 * AT_HTTP_FD_RESERVE ? (unsigned)(n - AT_HTTP_FD_RESERVE) : (unsigned)(n / 2);
}

/* The UNIX socket path, removed only while it is still the socket bound
 * here: another server may have replaced it since (a stale path is
 * replaced at start), and its live socket must stay. */
static void unlink_own_socket(const at_httpd *s)
{
    struct stat sb;
    if (s->unix_path[0] && lstat(s->unix_path, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
        sb.st_dev == s->unix_dev && sb.st_ino == s->unix_ino)
        unlink(s->unix_path);
}

static void stop_threads(at_httpd *s)
{
    pthread_mutex_lock(&s->qlock);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    for (unsigned i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    s->n_workers = 0;
    pthread_mutex_lock(&s->conn_lock);
    pthread_cond_signal(&s->reaper_cond);
    pthread_mutex_unlock(&s->conn_lock);
    if (s->reaper_started)
        pthread_join(s->reaper, NULL);
    s->reaper_started = false;
}

/* A listening UNIX or vsock socket for MHD (it binds TCP itself). A UNIX
 * path in use by a live server is refused; a stale one (nobody accepting)
 * is replaced. */
static at_err listen_stream(const struct sockaddr_storage *ss, socklen_t sl, const char *spec, int *out,
                            at_diag *d)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return at_fail(d, AT_E_IO, "listen: %s: cannot open a socket: %s", spec, strerror(errno));
    if (ss->ss_family == AF_UNIX) {
        const char *path = ((const struct sockaddr_un *)ss)->sun_path;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            bool live = probe >= 0 && connect(probe, (const struct sockaddr *)ss, sl) == 0;
            if (probe >= 0)
                close(probe);
            if (live) {
                close(fd);
                return at_fail(d, AT_E_IO, "listen: cannot serve on %s (address in use)", spec);
            }
            unlink(path);
        }
    }
    if (bind(fd, (const struct sockaddr *)ss, sl) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return at_fail(d, AT_E_IO, "listen: cannot serve on %s: %s", spec, strerror(e));
    }
    *out = fd;
    return AT_OK;
}

at_err at_httpd_check_listen(const char *listen, at_diag *d)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    at_err rc = at_parse_listen(listen, &ss, &sl, d);
    if (rc != AT_OK)
        return rc;
    if (ss.ss_family == AF_UNIX) {
        struct stat st;
        if (lstat(((const struct sockaddr_un *)&ss)->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
            return AT_OK; /* absent (or not a socket: at_httpd_start says why) */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (const struct sockaddr *)&ss, sl) == 0;
        if (probe >= 0)
            close(probe);
        return live ? at_fail(d, AT_E_IO, "listen: cannot serve on %s (address in use)", listen) : AT_OK;
    }
    if (ss.ss_family == AF_VSOCK)
        return AT_OK; /* bound for real at start; nothing to probe without taking it */
    const char *why = bind_problem(&ss, sl);
    return why ? at_fail(d, AT_E_IO, "listen: cannot serve on %s: %s", listen, why) : AT_OK;
}

static void httpd_free(at_httpd *s)
{
    free(s->workers);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_cond_destroy(&s->reaper_cond);
    free(s);
}

/* MHD's accept policy: while draining, a new connection is closed at once.
 * This is how the server stops accepting: MHD_quiesce_daemon() races with
 * MHD's own epoll loop (both remove the listen socket from the epoll set;
 * the loser panics), so it is never called. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    at_httpd *s = cls;
    return atomic_load(&s->draining) ? MHD_NO : MHD_YES;
}

/* libmicrohttpd's internal invariant failures: one JSON log line saying
 * where and why (its default handler writes raw text), then abort as it
 * would. */
static void on_mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    const char *r = reason ? reason : "(no reason given)";
    size_t n = strcspn(r, "\n");
    at_log("fatal", "httpd", "libmicrohttpd panic at %s:%u: %.*s", file ? file : "?", line, (int)n, r);
    abort();
}

at_err at_httpd_start(const char *listen, const at_httpd_opts *o, at_http_handler h, void *app,
                      at_httpd **out, at_diag *d)
{
    MHD_set_panic_func(on_mhd_panic, NULL);
    struct sockaddr_storage ss;
    socklen_t sl;
    at_err rc = at_parse_listen(listen, &ss, &sl, d);
    if (rc != AT_OK)
        return rc;
    at_httpd *s = calloc(1, sizeof *s);
    if (!s)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    s->handler = h;
    s->app = app;
    if (o)
        s->o = *o;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_cond_init(&s->reaper_cond, NULL);
    if ((s->o.tls_cert_pem != NULL) != (s->o.tls_key_pem != NULL)) {
        httpd_free(s);
        return at_fail(d, AT_E_BAD_REQUEST, "tls: a certificate and a key are both needed");
    }
    unsigned budget = fd_connection_budget();
    unsigned limit = s->o.connection_limit ? s->o.connection_limit : budget;
    if (limit > budget) {
        httpd_free(s);
        return at_fail(d, AT_E_BAD_REQUEST,
                       "connection limit: %u is more than the file descriptor limit allows (%u)", limit,
                       budget);
    }
    unsigned per_ip = s->o.per_ip_limit ? s->o.per_ip_limit : (limit + 1) / 2;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* UNIX and vsock: the socket is bound here and handed to MHD. */
    struct MHD_OptionItem where[2] = {{MHD_OPTION_SOCK_ADDR, 0, &ss}, {MHD_OPTION_END, 0, NULL}};
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->o.tls_cert_pem) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            httpd_free(s);
            return at_fail(d, AT_E_UNAVAILABLE, "tls: this libmicrohttpd has no TLS support");
        }
        flags |= MHD_USE_TLS;
    }
    s->n_workers = s->o.workers ? s->o.workers : AT_HTTP_WORKERS;
    s->upstream_cap = s->n_workers > 2 * AT_HTTP_RESERVED_WORKERS ? s->n_workers - AT_HTTP_RESERVED_WORKERS
                      : s->n_workers > 1                          ? s->n_workers / 2
                                                                  : 1;
    s->workers = calloc(s->n_workers, sizeof *s->workers);
    if (!s->workers) {
        httpd_free(s);
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) {
            s->n_workers = i;
            stop_threads(s);
            httpd_free(s);
            return at_fail(d, AT_E_INTERNAL, "httpd: cannot start worker threads");
        }
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        stop_threads(s);
        httpd_free(s);
        return at_fail(d, AT_E_INTERNAL, "httpd: cannot start the deadline thread");
    }
    s->reaper_started = true;
    if (ss.ss_family == AF_UNIX || ss.ss_family == AF_VSOCK) {
        int lfd = -1;
        if ((rc = listen_stream(&ss, sl, listen, &lfd, d)) != AT_OK) {
            stop_threads(s);
            httpd_free(s);
            return rc;
        }
        where[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, lfd, NULL};
        if (ss.ss_family == AF_UNIX) {
            memcpy(s->unix_path, ((struct sockaddr_un *)&ss)->sun_path, sizeof s->unix_path);
            struct stat sb;
            if (lstat(s->unix_path, &sb) == 0) {
                s->unix_dev = sb.st_dev;
                s->unix_ino = sb.st_ino;
            }
        }
    }
    s->mhd = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s, MHD_OPTION_ARRAY,
        where, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)AT_HTTP_IO_THREADS, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(s->o.timeout_s ? s->o.timeout_s : 30), MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        /* Without TLS the rest is not read: MHD_OPTION_END ends the list. */
        s->o.tls_cert_pem ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->o.tls_cert_pem,
        MHD_OPTION_HTTPS_MEM_KEY, s->o.tls_key_pem, MHD_OPTION_END);
    if (!s->mhd) {
        stop_threads(s);
        unlink_own_socket(s);
        httpd_free(s);
        /* No address reuse: a second server on a port in use is refused,
         * never sharing the port with the first. */
        const char *why = bind_problem(&ss, sl);
        return at_fail(d, AT_E_IO, "listen: cannot serve on %s: %s", listen,
                       why ? why : "libmicrohttpd refused to start (see the log)");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    at_log("debug", "httpd", "up to %u connections (%u per address), %u workers, request deadline %u s",
           limit, per_ip, s->n_workers, (unsigned)(request_timeout_ns(s) / 1000000000));
    *out = s;
    return AT_OK;
}

uint16_t at_httpd_port(const at_httpd *s) { return s->port; }
int at_httpd_write_port_file(const at_httpd *s, const char *path)
{
    char tmp[1200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    bool ok = fprintf(f, "%u\n", s->port) > 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

unsigned at_httpd_in_flight(const at_httpd *s) { return atomic_load(&s->in_flight); }
uint64_t at_httpd_deadline_closed(const at_httpd *s) { return atomic_load(&s->deadline_closed); }

void at_httpd_stop(at_httpd *s, int drain_ms)
{
    if (!s)
        return;
    atomic_store(&s->draining, true);
    for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < drain_ms; waited += 10)
        usleep(10000);
    /* Workers finish what is queued (streams end with an error) and resume
     * every connection they parked: MHD must not stop with one suspended. */
    stop_threads(s);
    MHD_stop_daemon(s->mhd);
    unlink_own_socket(s);
    httpd_free(s);
}

void at_http_json(at_http_resp *r, int status, json_t *body)
{
    r->status = status;
    r->body = json_dumps(body, JSON_COMPACT);
    r->len = r->body ? strlen(r->body) : 0;
    r->content_type = "application/json";
    json_decref(body);
}

void at_http_text(at_http_resp *r, int status, const char *ct, const char *text)
{
    r->status = status;
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
    r->content_type = ct;
}

void at_http_error(at_http_resp *r, at_err code, const char *message, int64_t audit_id)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(at_err_str(code)));
    json_t *m = json_string(message ? message : at_err_str(code));
    if (!m) { /* not UTF-8 (request bytes, a cut character): still say it */
        char *clean = at_utf8_sanitize_new(message);
        m = json_string(clean ? clean : at_err_str(code));
        free(clean);
    }
    json_object_set_new(e, "message", m);
    json_object_set_new(e, "audit_id", audit_id > 0 ? json_integer(audit_id) : json_null());
    int status = at_err_http_status(code);
    const char *type = status == 401   ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status == 404 ? "not_found_error"
                       : status == 429 ? "rate_limit_error"
                       : status < 500  ? "invalid_request_error"
                                       : "server_error";
    if (code == AT_E_NO_VERIFIED_INSTANCE || code == AT_E_ATTESTATION_EXPIRED ||
        code == AT_E_POLICY_REVOKED || code == AT_E_TOKEN_INVALID || code == AT_E_INSTANCE_UNREACHABLE)
        type = "attestation_error";
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    free(r->body);
    at_http_json(r, at_err_http_status(code), o);
}

const char *at_http_header(const at_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *at_http_query(const at_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *at_http_bearer(const at_http_req *r)
{
    const char *h = at_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

at_err at_http_body_json(const at_http_req *r, json_t **out, at_diag *d)
{
    if (r->body.len == 0)
        return at_fail(d, AT_E_BAD_REQUEST, "body: expected a JSON object, got nothing");
    json_error_t je;
    json_t *j = json_loadb((const char *)r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return at_fail(d, AT_E_BAD_REQUEST, "body: invalid JSON at line %d column %d: %s", je.line, je.column,
                       je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return at_fail(d, AT_E_BAD_REQUEST, "body: expected a JSON object");
    }
    *out = j;
    return AT_OK;
}

at_err at_httpd_opt_parse(int code, const char *arg, at_httpd_opts *o, at_diag *d)
{
    static const struct {
        int code;
        const char *flag;
        long min, max;
    } flags[] = {
        {AT_HTTPD_OPT_MAX_BODY, "--max-body", AT_HTTPD_MAX_BODY_MIN, AT_HTTPD_MAX_BODY_MAX},
        {AT_HTTPD_OPT_REQUEST_TIMEOUT, "--request-timeout", 1, AT_HTTPD_REQUEST_TIMEOUT_MAX},
        {AT_HTTPD_OPT_CONNECTION_LIMIT, "--connection-limit", 1, AT_HTTPD_CONNECTION_LIMIT_MAX},
        {AT_HTTPD_OPT_PER_IP_LIMIT, "--per-ip-limit", 0, AT_HTTPD_CONNECTION_LIMIT_MAX},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (flags[i].code != code)
            continue;
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno || *arg == '\0' || *end || v < flags[i].min || v > flags[i].max)
            return at_fail(d, AT_E_BAD_REQUEST, "%s: expected %ld..%ld, got '%.40s'", flags[i].flag,
                           flags[i].min, flags[i].max, arg);
        if (code == AT_HTTPD_OPT_MAX_BODY)
            o->max_body = (size_t)v;
        else if (code == AT_HTTPD_OPT_REQUEST_TIMEOUT)
            o->request_timeout_s = (unsigned)v;
        else if (code == AT_HTTPD_OPT_CONNECTION_LIMIT)
            o->connection_limit = (unsigned)v;
        else
            o->per_ip_limit = (unsigned)v;
        return AT_OK;
    }
    return at_fail(d, AT_E_NOT_FOUND, "option %d: not a server flag", code);
}

bool at_httpd_opt_take(int code, const char *arg, at_httpd_opts *o, const char *prog)
{
    at_diag d = {{0}};
    at_err rc = at_httpd_opt_parse(code, arg, o, &d);
    if (rc != AT_OK && rc != AT_E_NOT_FOUND)
        fprintf(stderr, "%s: %s\n", prog, d.msg);
    return rc == AT_OK;
}

int at_httpd_opt_default(int code, const char *arg, at_httpd_opts *o, const char *prog, void (*usage)(FILE *))
{
    if (code == 'V') {
        printf("%s %s\n", prog, PACKAGE_VERSION);
        return 0;
    }
    if (code == 'h') {
        usage(stdout);
        return 0;
    }
    if (at_httpd_opt_take(code, arg, o, prog))
        return -1;
    usage(stderr);
    return 2;
}

void at_httpd_block_signals(sigset_t *sigs, bool reload)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    if (reload) {
        sigaddset(sigs, SIGHUP);
        sigaddset(sigs, SIGUSR1);
    }
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}
