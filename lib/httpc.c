/* httpc: libcurl, a pool of multi+easy pairs kept between requests (their
 * connection caches are what keeps connections alive), and a small table
 * of URL origins routed over UNIX or vsock streams. */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

/* ---- the connection pool ------------------------------------------------------ */

#define POOL_MAX 64 /* idle pairs kept; more at once are made and dropped */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static at_httpc_conn *pool;
static unsigned pool_n;

static void conn_free(at_httpc_conn *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->easy);
    curl_multi_cleanup(c->multi);
    free(c);
}

at_httpc_conn *at_httpc_conn_take(void)
{
    pthread_mutex_lock(&pool_lock);
    at_httpc_conn *c = pool;
    if (c) {
        pool = c->next;
        pool_n--;
    }
    pthread_mutex_unlock(&pool_lock);
    if (c) {
        curl_easy_reset(c->easy);
        return c;
    }
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    if (!(c->multi = curl_multi_init()) || !(c->easy = curl_easy_init())) {
        conn_free(c);
        return NULL;
    }
    /* One transfer at a time, but to a few peers (a gateway's agents and
     * verifier): a call to one does not evict the connection to another. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 4L);
    return c;
}

void at_httpc_conn_give(at_httpc_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&pool_lock);
    bool keep = pool_n < POOL_MAX;
    if (keep) {
        c->next = pool;
        pool = c;
        pool_n++;
    }
    pthread_mutex_unlock(&pool_lock);
    if (!keep)
        conn_free(c);
}

static void pool_free(void)
{
    pthread_mutex_lock(&pool_lock);
    at_httpc_conn *c = pool;
    pool = NULL;
    pool_n = 0;
    pthread_mutex_unlock(&pool_lock);
    while (c) {
        at_httpc_conn *next = c->next;
        conn_free(c);
        c = next;
    }
}

int at_httpc_conn_run(at_httpc_conn *c)
{
    CURLcode result = CURLE_FAILED_INIT;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
        return result;
    for (bool done = false; !done;) {
        int running = 0;
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            break;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE) {
                result = m->data.result;
                done = true;
            }
        if (!done && curl_multi_poll(c->multi, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    curl_multi_remove_handle(c->multi, c->easy);
    return (int)result;
}

void at_httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(pool_free);
}

/* ---- routes: URL origin -> UNIX or vsock stream ------------------------------ */

#define MAX_ROUTES 8
struct route {
    char origin[300]; /* "scheme://host[:port]" */
    struct sockaddr_storage ss;
    socklen_t len;
    struct curl_slist *resolve; /* host:port:127.0.0.1, so no DNS is asked */
};
static struct route routes[MAX_ROUTES];
static size_t n_routes;

static const struct route *route_for(const char *url)
{
    for (size_t i = 0; i < n_routes; i++) {
        size_t n = strlen(routes[i].origin);
        if (strncmp(url, routes[i].origin, n) == 0 && (url[n] == '\0' || url[n] == '/' || url[n] == '?'))
            return &routes[i];
    }
    return NULL;
}

/* Both families take the same path: curl connects the socket opened here
 * to the address put here in place of the one it resolved (so the UNIX
 * tests run the vsock code). curl's address storage is a
 * sockaddr_storage. */
static curl_socket_t open_stream(void *cls, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    const struct route *r = cls;
    int fd = socket(r->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    addr->family = r->ss.ss_family;
    addr->socktype = SOCK_STREAM;
    addr->protocol = 0;
    addr->addrlen = (unsigned)r->len;
    memcpy(&addr->addr, &r->ss, r->len);
    return fd;
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
                       " got '%.200s'",
                       option, spec);
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
    at_httpc_conn *pc = at_httpc_conn_take();
    AT_ENSURE(pc, d, AT_E_INTERNAL, "http: curl_easy_init failed");
    CURL *c = pc->easy;
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
    CURLcode cc = (CURLcode)at_httpc_conn_run(pc);
    if (cc != CURLE_OK) {
        rc = s.too_large ? at_fail(d, AT_E_TOO_LARGE, "http: answer from %s larger than %zu bytes", r->url,
                                   out->body.max)
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
    at_httpc_conn_give(pc); /* reset when next taken */
    return rc;
}

at_err at_httpc_json(const char *method, const char *url, const char *bearer, json_t *json, long *status,
                     json_t **out, at_diag *d)
{
    char *body = json ? json_dumps(json, JSON_COMPACT) : NULL;
    at_httpc_req r = {.method = method,
                      .url = url,
                      .bearer = bearer,
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
