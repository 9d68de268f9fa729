/* agent upstream: the local LLM server, reached in clear over loopback
 * (or a UNIX/vsock stream, lib/httpc's routes). Connections are kept alive:
 * every exchange borrows a pooled curl pair (lib/httpc).
 * Requests come out of decrypted OHTTP messages (their sender is
 * anonymous: only RFC 9292-valid fields pass, hop-by-hop ones are dropped);
 * answers are bounded and go back sealed. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "httpc.h"
#include "target.h"

/* The request's end-to-end headers for curl. A request is never forwarded
 * without a header its sender put in it: AT_E_INTERNAL when one cannot be
 * built. The caller frees *out with curl_slist_free_all. */
static at_err request_headers(const at_bhttp_msg *req, struct curl_slist **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    struct curl_slist *h = NULL, *t;
    char *line = NULL;
    for (size_t i = 0; i < req->headers.n; i++) {
        const at_bhttp_field *f = &req->headers.v[i];
        if (at_target_hop_by_hop(f->name))
            continue;
        size_t n;
        AT_ENSURE(at_size_add(f->name_len, f->value_len, &n) && at_size_add(n, 3, &n) &&
                      (line = malloc(n)) != NULL,
                  d, AT_E_INTERNAL, "upstream: header %s: out of memory", f->name);
        snprintf(line, n, "%s: %s", f->name, f->value);
        t = curl_slist_append(h, line);
        free(line);
        line = NULL;
        AT_ENSURE(t, d, AT_E_INTERNAL, "upstream: header %s: out of memory", f->name);
        h = t;
    }
    AT_ENSURE((t = curl_slist_append(h, "Expect:")), d, AT_E_INTERNAL, "upstream: out of memory");
    *out = t;
    h = NULL;
    rc = AT_OK;
out:
    curl_slist_free_all(h);
    return rc;
}

/* Only /v1/... targets reach the model server (target.h), whole (a cut
 * URL would be another request) and as given (curl does not merge dot
 * segments). AT_E_BAD_REQUEST or AT_E_TOO_LARGE before anything is sent. */
static at_err easy_for(CURL *c, const agent *a, const at_bhttp_msg *req, struct curl_slist *h, char *url,
                       size_t url_len, at_diag *d)
{
    at_err rc = at_target_check(req->path, true, d);
    if (rc != AT_OK)
        return rc;
    int n = snprintf(url, url_len, "%s%s", a->cfg.upstream, req->path);
    if (n < 0 || (size_t)n >= url_len)
        return at_fail(d, AT_E_TOO_LARGE, "path: longer than the %zu bytes an upstream URL may have",
                       url_len - 1 - strlen(a->cfg.upstream));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    at_httpc_route(c, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* Generation can take minutes; a stalled upstream cannot. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->content.len || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        /* Copied: a streamed exchange outlives the decoded request. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->content.len);
        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, req->content.p ? (const char *)req->content.p : "");
    }
    return AT_OK;
}

/* Response header lines ("Name: value\r\n") into a Binary HTTP response. */
static void add_response_header(at_bhttp_msg *m, const char *line, size_t len)
{
    if (len >= 5 && strncasecmp(line, "HTTP/", 5) == 0)
        return;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return;
    char name[128], value[4096];
    size_t nl = (size_t)(colon - line);
    if (nl >= sizeof name)
        return;
    memcpy(name, line, nl);
    name[nl] = '\0';
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if ((size_t)(end - v) >= sizeof value || at_target_hop_by_hop(name))
        return;
    memcpy(value, v, (size_t)(end - v));
    value[end - v] = '\0';
    at_diag d;
    /* A header RFC 9292 cannot carry is dropped, not the answer. */
    if (at_bhttp_add_header(m, name, AT_SPAN(value, strlen(value)), &d) != AT_OK)
        return;
}

/* ---- whole exchanges ------------------------------------------------------- */

struct whole {
    at_bhttp_msg *resp;
    at_buf body;
    bool too_large;
};

static size_t whole_header(char *p, size_t s, size_t n, void *ud)
{
    add_response_header(((struct whole *)ud)->resp, p, s * n);
    return s * n;
}

static size_t whole_body(char *p, size_t s, size_t n, void *ud)
{
    struct whole *w = ud;
    if (at_buf_append(&w->body, p, s * n) != AT_OK) {
        w->too_large = true;
        return 0;
    }
    return s * n;
}

at_err upstream_forward(const agent *a, const at_bhttp_msg *req, at_bhttp_msg **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char url[8192]; /* upstream + a target of up to 4 KiB (the gateway's limit) */
    struct whole w = {0};
    at_buf_init(&w.body);
    at_buf_set_max(&w.body, AT_MAX_BHTTP_CONTENT);
    struct curl_slist *h = NULL;
    at_httpc_conn *pc = NULL;
    AT_TRY(request_headers(req, &h, d));
    /* The final status is set once known; 502 stands in until then. */
    AT_TRY(at_bhttp_response_new(502, &w.resp, d));
    AT_ENSURE((pc = at_httpc_conn_take()), d, AT_E_INTERNAL, "upstream: curl init");
    CURL *c = pc->easy;
    AT_TRY(easy_for(c, a, req, h, url, sizeof url, d));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, whole_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &w);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, whole_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
    CURLcode cc = (CURLcode)at_httpc_conn_run(pc);
    AT_ENSURE(!w.too_large, d, AT_E_TOO_LARGE, "upstream: answer larger than %d bytes", AT_MAX_BHTTP_CONTENT);
    AT_ENSURE(cc == CURLE_OK, d, AT_E_UNAVAILABLE, "upstream: %s: %s", url, curl_easy_strerror(cc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    AT_ENSURE(status >= 200 && status <= 599, d, AT_E_UNAVAILABLE, "upstream: status %ld", status);
    w.resp->status = (int)status;
    AT_TRY(at_bhttp_append_content(w.resp, at_buf_span(&w.body), d));
    *out = w.resp;
    w.resp = NULL;
    rc = AT_OK;
out:
    at_bhttp_msg_free(w.resp);
    at_buf_cleanup(&w.body);
    curl_slist_free_all(h);
    at_httpc_conn_give(pc);
    return rc;
}

/* ---- streamed exchanges -------------------------------------------------------
 * curl's multi interface driven from the caller's thread: each _next call
 * pumps the transfer until it has something to hand out. */

struct upstream_stream {
    at_httpc_conn *conn;
    CURLM *multi; /* conn's */
    CURL *easy;
    bool added;
    struct curl_slist *hdrs;
    char url[8192];     /* upstream + a target of up to 4 KiB (the gateway's limit) */
    at_bhttp_msg *head; /* status + headers, for the indeterminate head */
    bool head_complete, head_sent, finished, done;
    CURLcode result;
    at_buf pending; /* upstream content not yet handed out */
    bool too_large;
};

static size_t stream_header(char *p, size_t s, size_t n, void *ud)
{
    upstream_stream *st = ud;
    size_t len = s * n;
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200) { /* an interim 1xx block is not the head */
            st->head->status = (int)status;
            st->head_complete = true;
        }
    } else {
        add_response_header(st->head, p, len);
    }
    return len;
}

static size_t stream_body(char *p, size_t s, size_t n, void *ud)
{
    upstream_stream *st = ud;
    if (at_buf_append(&st->pending, p, s * n) != AT_OK) {
        st->too_large = true;
        return 0;
    }
    return s * n;
}

at_err upstream_stream_start(const agent *a, const at_bhttp_msg *req, upstream_stream **out, at_diag *d)
{
    upstream_stream *st = calloc(1, sizeof *st);
    if (!st)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_buf_init(&st->pending);
    /* Backpressure: one burst of upstream bytes is handed out before more
     * are read, so this only bounds a single burst. */
    at_buf_set_max(&st->pending, AT_MAX_OHTTP_MESSAGE);
    at_err rc = request_headers(req, &st->hdrs, d);
    if (rc == AT_OK)
        rc = at_bhttp_response_new(502, &st->head, d);
    if (rc == AT_OK && !(st->conn = at_httpc_conn_take()))
        rc = at_fail(d, AT_E_INTERNAL, "upstream: curl init");
    if (rc != AT_OK) {
        upstream_stream_free(st);
        return rc;
    }
    st->multi = st->conn->multi;
    st->easy = st->conn->easy;
    if ((rc = easy_for(st->easy, a, req, st->hdrs, st->url, sizeof st->url, d)) != AT_OK) {
        upstream_stream_free(st);
        return rc;
    }
    curl_easy_setopt(st->easy, CURLOPT_HEADERFUNCTION, stream_header);
    curl_easy_setopt(st->easy, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(st->easy, CURLOPT_WRITEFUNCTION, stream_body);
    curl_easy_setopt(st->easy, CURLOPT_WRITEDATA, st);
    if (curl_multi_add_handle(st->multi, st->easy) != CURLM_OK) {
        upstream_stream_free(st);
        return at_fail(d, AT_E_INTERNAL, "upstream: curl init");
    }
    st->added = true;
    *out = st;
    return AT_OK;
}

static void pump(upstream_stream *st)
{
    int running = 0;
    curl_multi_perform(st->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(st->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE) {
            st->finished = true;
            st->result = m->data.result;
        }
    if (!st->finished && st->pending.len == 0 && !(st->head_complete && !st->head_sent))
        curl_multi_poll(st->multi, NULL, 0, 200, NULL);
}

at_err upstream_stream_next(upstream_stream *st, at_buf *piece, bool *done, at_diag *d)
{
    *done = false;
    for (;;) {
        if (st->done)
            return at_fail(d, AT_E_INTERNAL, "upstream: stream already ended");
        if (st->too_large)
            return at_fail(d, AT_E_TOO_LARGE, "upstream: burst larger than %d bytes", AT_MAX_OHTTP_MESSAGE);
        bool failed = st->finished && st->result != CURLE_OK;
        if (!st->head_sent && (st->head_complete || st->finished)) {
            if (!st->head_complete) {
                if (failed)
                    return at_fail(d, AT_E_UNAVAILABLE, "upstream: %s: %s", st->url,
                                   curl_easy_strerror(st->result));
                long status = 0;
                curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status < 200 || status > 599)
                    return at_fail(d, AT_E_UNAVAILABLE, "upstream: status %ld", status);
                st->head->status = (int)status;
            }
            st->head_sent = true;
            return at_bhttp_encode_head(st->head, piece, d);
        }
        /* What arrived before a cut goes out first: the caller decides
         * what a partial answer is worth (the gateway passes whole events). */
        if (st->head_sent && st->pending.len) {
            at_err rc = at_bhttp_encode_chunk(at_buf_span(&st->pending), piece, d);
            at_buf_reset(&st->pending);
            return rc;
        }
        if (failed)
            return at_fail(d, AT_E_UNAVAILABLE, "upstream: %s: %s", st->url, curl_easy_strerror(st->result));
        if (st->head_sent && st->finished) {
            st->done = true;
            *done = true;
            return at_bhttp_encode_tail(st->head, piece, d);
        }
        pump(st);
    }
}

void upstream_stream_free(upstream_stream *st)
{
    if (!st)
        return;
    if (st->added)
        curl_multi_remove_handle(st->multi, st->easy);
    /* A transfer cut short leaves its connection closed, not half-read. */
    at_httpc_conn_give(st->conn);
    curl_slist_free_all(st->hdrs);
    at_bhttp_msg_free(st->head);
    at_buf_cleanup(&st->pending);
    free(st);
}
