/* httpc: libcurl easy interface, one handle per thread kept between
 * requests (its connection cache is what keeps connections alive), and a
 * small table of URL origins routed over UNIX or vsock streams. */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static void handle_free(void *h) { curl_easy_cleanup(h); }
static void handle_key_make(void)
{
    if (pthread_key_create(&handle_key, handle_free) != 0)
        abort(); /* only at the first request: nothing works without it */
}

void *at_httpc_thread_handle(void)
{
    pthread_once(&handle_once, handle_key_make);
    CURL *c = pthread_getspecific(handle_key);
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    if (!(c = curl_easy_init()))
        return NULL;
    if (pthread_setspecific(handle_key, c) != 0) {
        curl_easy_cleanup(c);
        return NULL;
    }
    return c;
}

/* The main thread's handle (thread-exit destructors do not run for it). */
static void main_handle_free(void)
{
    pthread_once(&handle_once, handle_key_make);
    CURL *c = pthread_getspecific(handle_key);
    if (c && pthread_setspecific(handle_key, NULL) == 0)
        curl_easy_cleanup(c);
}

void at_httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(main_handle_free);
}

/* ---- routes: URL origin -> UNIX or vsock stream ------------------------------ */

#define MAX_ROUTES 8
struct route {
    char origin[300];             /* "scheme://host[:port]" */
    struct sockaddr_storage ss;
    socklen_t len;
    struct curl_slist *resolve;   /* host:port:127.0.0.1, so no DNS is asked */
};
static struct route routes[MAX_ROUTES];
static size_t n_routes;

static const struct route *route_for(const char *url)
{
    for (size_t i = 0; i < n_routes; i++) {
        size_t n = strlen(routes[i].origin);
        if (strncmp(url, routes[i].origin, n) == 0 &&
            (url[n] == '\0' || url[n] == '/' || url[n] == '?'))
            return &routes[i];
    }
    return NULL;
}

/* Both families take the same path: the socket is opened and connected
 * here and curl is told it is connected (so the UNIX tests run the vsock
 * code). */
static curl_socket_t open_stream(void *cls, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    (void)addr;
    const struct route *r = cls;
    int fd = socket(r->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if (connect(fd, (const struct sockaddr *)&r->ss, r->len) != 0) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    return fd;
}

static int stream_connected(void *cls, curl_socket_t fd, curlsocktype purpose)
{
    (void)cls;
    (void)fd;
    (void)purpose;
    return CURL_SOCKOPT_ALREADY_CONNECTED;
}

void at_httpc_route(void *curl_easy, const char *url)
{
    CURL *c = curl_easy;
    curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, AT_HTTPC_MAX_IDLE_S);
    const struct route *r = route_for(url);
    if (!r)
        return;
    curl_easy_setopt(c, CURLOPT_RESOLVE, r->resolve);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_stream);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, (void *)r);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, stream_connected);
}

at_err at_httpc_target(const char *option, const char *spec, char *url, size_t url_len, at_diag *d)
{
    bool unix_ = strncmp(spec, "unix:", 5) == 0, vsock = strncmp(spec, "vsock:", 6) == 0;
    const char *u = spec;
    char addr[200];
    if (unix_ || vsock) {
        const char *comma = strstr(spec, ",http://");
        if (!comma)
            comma = strstr(spec, ",https://");
        size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
        if (n >= sizeof addr)
            return at_fail(d, AT_E_BAD_REQUEST, "%s: address longer than %zu characters", option,
                           sizeof addr - 1);
        memcpy(addr, spec, n);
        addr[n] = '\0';
        u = comma ? comma + 1 : "http://localhost";
    }
    bool https = strncmp(u, "https://", 8) == 0;
    if (!https && strncmp(u, "http://", 7) != 0)
        return at_fail(d, AT_E_BAD_REQUEST,
                       "%s: expected an http:// or https:// URL, unix:PATH[,URL] or vsock:CID:PORT[,URL],"
                       " got '%.200s'", option, spec);
    if (strlen(u) >= url_len)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: URL longer than %zu characters", option, url_len - 1);
    if (!unix_ && !vsock) {
        snprintf(url, url_len, "%s", u);
        return AT_OK;
    }
    struct route r;
    memset(&r, 0, sizeof r);
    at_err rc = at_parse_listen(addr, &r.ss, &r.len, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "%s: ", option);
        return rc;
    }
    if (r.ss.ss_family != AF_UNIX && r.ss.ss_family != AF_VSOCK)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: expected unix:PATH or vsock:CID:PORT, got '%s'", option,
                       addr);
    if (vsock && strchr(addr + 6, ':') == NULL)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: a vsock peer needs its CID: vsock:CID:PORT, got '%s'",
                       option, addr);
    /* The origin: scheme://authority, without path or query. */
    const char *auth = u + (https ? 8 : 7);
    size_t an = strcspn(auth, "/?#");
    if (an == 0 || (size_t)(auth - u) + an >= sizeof r.origin)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: URL '%.200s' has no usable host", option, u);
    memcpy(r.origin, u, (size_t)(auth - u) + an);
    r.origin[(size_t)(auth - u) + an] = '\0';
    char host[260], res[300];
    memcpy(host, auth, an);
    host[an] = '\0';
    char *colon = host[0] == '[' ? strchr(host, ']') : host;
    colon = colon ? strchr(colon, ':') : NULL;
    long port = https ? 443 : 80;
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535)
            return at_fail(d, AT_E_BAD_REQUEST, "%s: bad port in URL '%.200s'", option, u);
        *colon = '\0';
    }
    snprintf(res, sizeof res, "%s:%ld:127.0.0.1", host, port);
    if (route_for(r.origin))
        return at_fail(d, AT_E_BAD_REQUEST, "%s: %s is already routed elsewhere", option, r.origin);
    if (n_routes == MAX_ROUTES)
        return at_fail(d, AT_E_BAD_REQUEST, "%s: at most %d routed origins", option, MAX_ROUTES);
    if (!(r.resolve = curl_slist_append(NULL, res)))
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    routes[n_routes++] = r;
    snprintf(url, url_len, "%s", u);
    return AT_OK;
}

struct sink {
    at_buf *b;
    bool too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    if (at_buf_append(s->b, p, len) != AT_OK) {
        s->too_large = true;
        return 0;
    }
    return len;
}

at_err at_httpc_do(const at_httpc_req *r, at_httpc_resp *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    struct curl_slist *h = NULL;
    char *auth = NULL;
    memset(out, 0, sizeof *out);
    at_buf_init(&out->body);
    at_buf_set_max(&out->body, r->max_response ? r->max_response : 16u << 20);
    struct sink s = {&out->body, false};
    CURL *c = at_httpc_thread_handle();
    AT_ENSURE(c, d, AT_E_INTERNAL, "http: curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    at_httpc_route(c, r->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms ? r->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (r->idle_s > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->idle_s);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A private CA for the verifier's TLS certificate (tests, internal PKI). */
    const char *ca = getenv("ATTEST_CA_FILE");
    if (ca && *ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (r->bearer) {
        size_t n = strlen(r->bearer) + 32;
        AT_ENSURE((auth = malloc(n)), d, AT_E_INTERNAL, "out of memory");
        snprintf(auth, n, "Authorization: Bearer %s", r->bearer);
        h = curl_slist_append(h, auth);
    }
    if (r->content_type) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s", r->content_type);
        h = curl_slist_append(h, ct);
    }
    for (const char *const *x = r->headers; x && *x; x++)
        h = curl_slist_append(h, *x);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    const char *method = r->method ? r->method : (r->body.p ? "POST" : "GET");
    if (r->body.p || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body.p ? (const char *)r->body.p : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = s.too_large ? at_fail(d, AT_E_TOO_LARGE, "http: answer from %s larger than %zu bytes",
                                   r->url, out->body.max)
                         : at_fail(d, AT_E_UNAVAILABLE, "http: %s: %s", r->url, curl_easy_strerror(cc));
        at_buf_cleanup(&out->body);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    char *ct = NULL;
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(out->content_type, sizeof out->content_type, "%s", ct);
    rc = AT_OK;
out:
    curl_slist_free_all(h);
    if (auth)
        at_wipe_free(auth, strlen(auth));
    if (c) /* the handle stays with the thread; the bearer does not */
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    return rc;
}

at_err at_httpc_json(const char *method, const char *url, const char *bearer, json_t *json,
                     long *status, json_t **out, at_diag *d)
{
    char *body = json ? json_dumps(json, JSON_COMPACT) : NULL;
    at_httpc_req r = {.method = method, .url = url, .bearer = bearer,
                      .content_type = body ? "application/json" : NULL,
                      .body = body ? AT_SPAN(body, strlen(body)) : AT_SPAN_NULL};
    at_httpc_resp resp;
    at_err rc = at_httpc_do(&r, &resp, d);
    free(body);
    if (rc != AT_OK)
        return rc;
    *status = resp.status;
    *out = resp.body.len ? json_loadb((const char *)resp.body.p, resp.body.len, 0, NULL) : NULL;
    at_buf_cleanup(&resp.body);
    return AT_OK;
}
