/* httpd: the HTTP server shared by the verifier, agent and gateway, on
 * libmicrohttpd's internal epoll with a small pool of I/O threads: an idle
 * or trickling connection costs a socket and a few KiB, never a thread.
 * Complete requests run on a bounded pool of worker threads (handlers may
 * block: the database's group commit, an upstream), their connections
 * suspended meanwhile; streamed answers are pumped by the same workers.
 * Owns the network trust boundary for requests: a whole request must
 * arrive within a deadline, bodies are capped before they are buffered,
 * connections are limited per client address before any work, ambiguous
 * requests (duplicate or conflicting framing headers, NUL bytes) are
 * refused, shutdown drains in-flight requests. Handlers get a complete,
 * bounded request and fill a response. */
#ifndef AT_HTTPD_H
#define AT_HTTPD_H

#include <jansson.h>
#include <signal.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "err.h"

typedef struct {
    struct MHD_Connection *conn;
    const char *method;
    /* The path (no query) as routed: the raw path with each percent-escape
     * decoded except those of '/', '%' and control bytes (NUL included),
     * which stay escaped. Splitting it on '/' gives exactly the raw
     * segments, and an escaped byte fails every name check. */
    const char *url;
    at_buf body;
    char client[64];   /* remote address, "ip" */
    const char *route; /* metrics label, set by the handler */
    int64_t start_ns;
    bool body_too_large;
    size_t declared_len;
} at_http_req;

typedef struct {
    int status;
    char *body; /* owned (free()) */
    size_t len;
    const char *content_type;
    struct MHD_Response *mhd; /* alternatively a ready response (no blocking callbacks) */
    /* Or a streamed body of unknown length: stream() is called on a worker
     * thread (it may block on an upstream) with MHD's content-reader
     * contract; stream_free(stream_cls) once when done. status and
     * content_type apply. */
    ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
    void *stream_cls;
    void (*stream_free)(void *cls);
    char location[256];
    const char *extra_header_name, *extra_header_value;
    /* More headers: "Name: value" lines, each ended by '\n' (attest-gateway's
     * Attest-* headers). */
    char headers[1024];
} at_http_resp;

typedef void (*at_http_handler)(void *app, at_http_req *req, at_http_resp *resp);

/* How a request runs (at_httpd_opts.classify). */
enum {
    AT_HTTP_RUN_POOL = 0, /* on a worker (it may block: the database) */
    AT_HTTP_RUN_INLINE,   /* on libmicrohttpd's I/O thread: the handler MUST never block
                           * (health, a key config in memory); never waits behind workers */
    AT_HTTP_RUN_UPSTREAM, /* on a worker, waiting on an upstream: at most workers less
                           * AT_HTTP_RESERVED_WORKERS at once, beyond that 503 unavailable
                           * with Retry-After (until the answer is sent, streams included) */
};

typedef struct {
    size_t max_body;            /* 0 = AT_MAX_BODY_BYTES */
    unsigned connection_limit;  /* 0 = what RLIMIT_NOFILE allows (raised to its hard limit), <= 65536 */
    unsigned per_ip_limit;      /* connections per client address, 0 = half the connection limit */
    unsigned timeout_s;         /* idle connection timeout, 0 = 30 */
    unsigned request_timeout_s; /* a whole request (head and body) must arrive within this, 0 = 30 */
    unsigned workers;           /* handler threads, 0 = 64 */
    int worker_nice;            /* each worker's nice value (setpriority), 0 = unchanged; never
                                 * applied to libmicrohttpd's I/O threads */
    /* NULL: every request on the pool. Else one of AT_HTTP_RUN_* for a
     * request's method and routed path; called on the I/O thread. */
    int (*classify)(void *app, const char *method, const char *path);
    const char *tls_cert_pem; /* serve HTTPS with this certificate chain (PEM text) */
    const char *tls_key_pem;  /* ... and this private key; both or neither */
    /* Called after every request with its route label, status and duration. */
    void (*observe)(void *app, const char *route, const char *method, int status, double seconds);
} at_httpd_opts;

typedef struct at_httpd at_httpd;

/* The flags every server binary takes, with one meaning and one range each
 * (README "Limits"): --max-body BYTES, --request-timeout S,
 * --connection-limit N, --per-ip-limit N. Put AT_HTTPD_LONG_OPTIONS into a
 * getopt_long option table (needs <getopt.h>) and hand each code it
 * returns to at_httpd_opt_parse. */
enum {
    AT_HTTPD_OPT_MAX_BODY = 0x4801,
    AT_HTTPD_OPT_REQUEST_TIMEOUT,
    AT_HTTPD_OPT_CONNECTION_LIMIT,
    AT_HTTPD_OPT_PER_IP_LIMIT,
};
#define AT_HTTPD_LONG_OPTIONS                                                         \
    {"max-body", required_argument, NULL, AT_HTTPD_OPT_MAX_BODY},                     \
        {"request-timeout", required_argument, NULL, AT_HTTPD_OPT_REQUEST_TIMEOUT},   \
        {"connection-limit", required_argument, NULL, AT_HTTPD_OPT_CONNECTION_LIMIT}, \
    {                                                                                 \
        "per-ip-limit", required_argument, NULL, AT_HTTPD_OPT_PER_IP_LIMIT            \
    }
#define AT_HTTPD_MAX_BODY_MIN 1024L /* below it no evidence document fits */
#define AT_HTTPD_MAX_BODY_MAX (16L << 20)
#define AT_HTTPD_CONNECTION_LIMIT_MAX 100000L
#define AT_HTTPD_REQUEST_TIMEOUT_MAX 3600L
/* Set the field of o that code names from arg (decimal). AT_E_NOT_FOUND
 * when code is none of AT_HTTPD_OPT_*; AT_E_BAD_REQUEST naming the flag,
 * its range and the value given (o unchanged). */
at_err at_httpd_opt_parse(int code, const char *arg, at_httpd_opts *o, at_diag *d) AT_MUST_USE;
/* The same for a getopt loop's default branch: true when code was a server
 * flag with a good value; false otherwise, having printed "prog: why" to
 * stderr for a bad value (the caller then prints its usage and exits 2). */
/* Before any thread starts: block SIGTERM and SIGINT (and SIGHUP and
 * SIGUSR1 with reload) in every thread, so the main thread alone takes them
 * with sigwait on *sigs; ignore SIGPIPE (a peer gone mid-answer). */
void at_httpd_block_signals(sigset_t *sigs, bool reload);
bool at_httpd_opt_take(int code, const char *arg, at_httpd_opts *o, const char *prog);
/* The rest of a server's getopt loop, after its own options: 'V'
 * (--version: prints "prog VERSION"), 'h' (--help: usage on stdout), the
 * server flags (at_httpd_opt_take), anything else (usage on stderr).
 * Returns -1 to go on parsing, else the status to exit with (0 or 2). */
int at_httpd_opt_default(int code, const char *arg, at_httpd_opts *o, const char *prog,
                         void (*usage)(FILE *));

/* Listen on "host:port" ("127.0.0.1:8440", "[::1]:0", ":8080"; port 0 picks
 * a free one), "unix:PATH" (removed at stop) or "vsock:PORT" and serve. Caller stops with at_httpd_stop. */
at_err at_httpd_start(const char *listen, const at_httpd_opts *o, at_http_handler h, void *app,
                      at_httpd **out, at_diag *d) AT_MUST_USE;
uint16_t at_httpd_port(const at_httpd *s);
/* Before a server creates any state: whether at_httpd_start could serve on
 * listen now (a TCP address bound and released at once, a UNIX path not a
 * live socket). AT_E_IO "listen: cannot serve on ADDR (address in use)" or
 * the bind error; AT_E_BAD_REQUEST for an address that does not parse. A
 * check, not a reservation: at_httpd_start still reports a later loss. */
at_err at_httpd_check_listen(const char *listen, at_diag *d) AT_MUST_USE;
/* Write the bound port to path atomically (tests and scripts pick free
 * ports with port 0 and read it back). 0 or -1. */
int at_httpd_write_port_file(const at_httpd *s, const char *path);
/* Stop accepting, wait up to drain_ms for in-flight requests, stop. */
void at_httpd_stop(at_httpd *s, int drain_ms);
unsigned at_httpd_in_flight(const at_httpd *s);
/* Connections closed because their request did not arrive in full within
 * request_timeout_s, since start. */
uint64_t at_httpd_deadline_closed(const at_httpd *s);

/* Parse "host:port", "unix:PATH", "vsock:PORT" (any CID) or
 * "vsock:CID:PORT" into a socket address (for servers and clients). */
at_err at_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                       at_diag *d) AT_MUST_USE;

/* Response helpers: JSON body (steals the reference), plain text, errors in
 * API.md's shape {"error":{"code","message","audit_id","type","param"}}: also
 * OpenAI's error shape, so OpenAI clients of attest-gateway read it ("type"
 * from the status: invalid_request_error, authentication_error,
 * permission_error, not_found_error, rate_limit_error, attestation_error for
 * the gateway's attestation codes, server_error; "param" null). */
void at_http_json(at_http_resp *r, int status, json_t *body);
void at_http_text(at_http_resp *r, int status, const char *content_type, const char *text);
void at_http_error(at_http_resp *r, at_err code, const char *message, int64_t audit_id);

/* Request helpers. */
const char *at_http_header(const at_http_req *r, const char *name);
const char *at_http_query(const at_http_req *r, const char *name);
/* The bearer token of an Authorization header, or NULL. */
const char *at_http_bearer(const at_http_req *r);
/* Parse the body as a JSON object (duplicates rejected); AT_E_BAD_REQUEST
 * naming the position otherwise. New reference in *out. */
at_err at_http_body_json(const at_http_req *r, json_t **out, at_diag *d) AT_MUST_USE;

#endif
