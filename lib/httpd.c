/* httpd: libmicrohttpd glue. Every byte of a request is attacker input;
 * this file bounds it (body cap, connection limits, timeouts) and hands
 * complete requests to the binary's router. */
#include "httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "at_limits.h"
#include "enc.h"

struct at_httpd {
    struct MHD_Daemon *mhd;
    at_http_handler handler;
    void *app;
    at_httpd_opts o;
    atomic_uint in_flight;
    uint16_t port;
};

int64_t at_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

at_err at_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, at_diag *d)
{
    char host[128];
    const char *colon;
    memset(ss, 0, sizeof *ss);
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
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decoding of the path and of query keys and values, in place.
 * MHD's own decodes %00 too, and handlers see C strings: "/v1/policies/
 * a%00b" would name policy "a". %00 stays encoded here, so it fails every
 * name check instead of silently truncating. */
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

static enum MHD_Result send_resp(struct MHD_Connection *c, at_http_resp *r)
{
    struct MHD_Response *m = r->mhd;
    if (!m) {
        m = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
                                            r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        r->body = NULL;
        if (!m)
            return MHD_NO;
        if (r->content_type)
            MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    MHD_add_response_header(m, "Cache-Control", "no-store");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    if (r->location[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->extra_header_name && r->extra_header_value)
        MHD_add_response_header(m, r->extra_header_name, r->extra_header_value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, m);
    MHD_destroy_response(m);
    r->mhd = NULL;
    return ok;
}

/* The handler sees body_too_large and answers (and audits) the refusal;
 * without an answer from it, a generic one goes out. */
static enum MHD_Result respond(at_httpd *s, at_http_req *req, size_t cap)
{
    at_http_resp r = {0};
    s->handler(s->app, req, &r);
    if (!r.mhd && r.status == 0) {
        char msg[96];
        if (req->body_too_large)
            snprintf(msg, sizeof msg, "body: larger than %zu bytes", cap);
        at_http_error(&r, req->body_too_large ? AT_E_TOO_LARGE : AT_E_INTERNAL,
                      req->body_too_large ? msg : "no response", -1);
    }
    return send_resp(req->conn, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    at_httpd *s = cls;
    at_http_req *req = *con_cls;
    size_t cap = s->o.max_body ? s->o.max_body : AT_MAX_BODY_BYTES;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->conn = c;
        req->method = method;
        req->url = url;
        req->start_ns = at_monotonic_ns();
        req->route = "other";
        /* Bodies can carry secrets (PUT /v1/secrets): wiped when freed. */
        at_buf_init_secret(&req->body);
        at_buf_set_max(&req->body, cap);
        client_addr(c, req->client, sizeof req->client);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            req->declared_len = (size_t)n;
            if (*end || n > cap)
                req->body_too_large = true;
        }
        atomic_fetch_add(&s->in_flight, 1);
        *con_cls = req;
        /* Refuse an announced oversized body before reading it. */
        if (req->body_too_large)
            return respond(s, req, cap);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->body_too_large && at_buf_append(&req->body, upload, *upload_size) != AT_OK) {
            req->body_too_large = true;
            at_buf_cleanup(&req->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->declared_len && req->body_too_large)
        return MHD_YES; /* response already queued */
    return respond(s, req, cap);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    at_httpd *s = cls;
    at_http_req *req = *con_cls;
    if (!req)
        return;
    if (s->o.observe) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        int status = ci ? (int)ci->http_status : 0;
        s->o.observe(s->app, req->route, req->method, status,
                     (double)(at_monotonic_ns() - req->start_ns) / 1e9);
    }
    at_buf_cleanup(&req->body);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

at_err at_httpd_start(const char *listen, const at_httpd_opts *o, at_http_handler h, void *app,
                      at_httpd **out, at_diag *d)
{
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
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if ((s->o.tls_cert_pem != NULL) != (s->o.tls_key_pem != NULL)) {
        free(s);
        return at_fail(d, AT_E_BAD_REQUEST, "tls: a certificate and a key are both needed");
    }
    if (s->o.tls_cert_pem) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            free(s);
            return at_fail(d, AT_E_UNAVAILABLE, "tls: this libmicrohttpd has no TLS support");
        }
        flags |= MHD_USE_TLS;
    }
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(s->o.connection_limit ? s->o.connection_limit : 512),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->o.per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(s->o.timeout_s ? s->o.timeout_s : 30),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        /* Without TLS the rest is not read: MHD_OPTION_END ends the list. */
        s->o.tls_cert_pem ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->o.tls_cert_pem,
        MHD_OPTION_HTTPS_MEM_KEY, s->o.tls_key_pem, MHD_OPTION_END);
    if (!s->mhd) {
        free(s);
        return at_fail(d, AT_E_IO, "listen: cannot serve on %s (address in use?)", listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
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

void at_httpd_stop(at_httpd *s, int drain_ms)
{
    if (!s)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < drain_ms; waited += 10)
        usleep(10000);
    MHD_stop_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free(s);
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
        return at_fail(d, AT_E_BAD_REQUEST, "body: invalid JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return at_fail(d, AT_E_BAD_REQUEST, "body: expected a JSON object");
    }
    *out = j;
    return AT_OK;
}
