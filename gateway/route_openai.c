/* gateway OpenAI routes: every /v1/... method and path (chat, completions,
 * embeddings, responses, models, multipart uploads) is forwarded as it came,
 * with its query and content type: no route table of OpenAI paths here.
 * Every request leaves sealed (OHTTP, HPKE) to the key of a verified
 * instance, with a Date the instance checks (RFC 9458 section 6.5); its
 * answer is opened here, whole or, for "stream": true, chunk by chunk as
 * the instance produces it. A truncated or tampered answer is never passed
 * on as complete: a cut event stream ends with an SSE error event that
 * OpenAI clients raise as an APIError. Every answer names what it talked
 * to (Attest-Instance, Attest-Policy, Attest-Expires, Attest-PCR-Digest).
 * Consumer bodies are bounded by lib/httpd. */
#include <curl/curl.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bhttp.h"
#include "ear.h"
#include "gateway.h"
#include "httpc.h"
#include "target.h"

/* The request's query, percent-encoded again from libmicrohttpd's decoded
 * arguments, appended to path. */
struct query {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void query_put(struct query *q, const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char e[4] = {(char)c, 0};
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~", c))) {
            e[0] = '%';
            e[1] = hexd[c >> 4];
            e[2] = hexd[c & 15];
        }
        size_t n = strlen(e);
        if (q->len + n + 1 > q->cap) {
            q->overflow = true;
            return;
        }
        memcpy(q->p + q->len, e, n + 1);
        q->len += n;
    }
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct query *q = cls;
    if (q->len + 2 > q->cap) {
        q->overflow = true;
        return MHD_NO;
    }
    q->p[q->len++] = strchr(q->p, '?') ? '&' : '?';
    q->p[q->len] = '\0';
    query_put(q, key);
    if (value && q->len + 2 <= q->cap) {
        q->p[q->len++] = '=';
        q->p[q->len] = '\0';
        query_put(q, value);
    }
    return q->overflow ? MHD_NO : MHD_YES;
}

static at_err build_request(at_http_req *req, at_buf *out, at_diag *d)
{
    at_bhttp_msg *m = NULL;
    char target[4096];
    struct query q = {.p = target, .cap = sizeof target};
    /* The decoded path: a '?' or a dot segment here came from %3F or %2e
     * and would reach another path of the model server. */
    at_err tc = at_target_check(req->url, false, d);
    if (tc != AT_OK)
        return tc;
    snprintf(target, sizeof target, "%s", req->url);
    q.len = strlen(target);
    if (q.len + 1 >= q.cap)
        return at_fail(d, AT_E_TOO_LARGE, "path: longer than %zu bytes", sizeof target - 2);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
    if (q.overflow)
        return at_fail(d, AT_E_TOO_LARGE, "path and query: longer than %zu bytes", sizeof target - 1);
    at_err rc = at_bhttp_request_new(req->method, "http", "", target, &m, d);
    const char *ct = at_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *accept = at_http_header(req, MHD_HTTP_HEADER_ACCEPT);
    if (rc == AT_OK && req->body.len)
        rc = at_bhttp_add_header(m, "content-type",
                                 ct ? AT_SPAN(ct, strlen(ct)) : AT_SPAN("application/json", 16), d);
    if (rc == AT_OK)
        rc = accept ? at_bhttp_add_header(m, "accept", AT_SPAN(accept, strlen(accept)), d)
                    : at_bhttp_add_header(m, "accept", AT_SPAN("application/json, text/event-stream", 35), d);
    /* RFC 9458 section 6.5: the instance refuses a request whose Date is
     * outside its window, so a replayed one does not run the model twice. */
    char date[64];
    time_t now = (time_t)(at_now_ms() / 1000);
    at_http_date((int64_t)now, date, sizeof date);
    if (rc == AT_OK)
        rc = at_bhttp_add_header(m, "date", AT_SPAN(date, strlen(date)), d);
    if (rc == AT_OK && req->body.len)
        rc = at_bhttp_append_content(m, at_buf_span(&req->body), d);
    if (rc == AT_OK)
        rc = at_bhttp_encode(m, out, d);
    at_bhttp_msg_free(m);
    return rc;
}

/* ---- whole exchanges --------------------------------------------------------- */

static at_err send_whole(gw_target *t, at_span bhttp, long idle_s, at_bhttp_msg **answer, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_client *c = NULL;
    at_buf sealed, plain;
    at_buf_init(&sealed);
    at_buf_init_secret(&plain);
    at_httpc_resp r = {0};
    at_buf_init(&r.body);
    char url[700];
    snprintf(url, sizeof url, "%s/v1/ohttp", t->endpoint);
    AT_TRY(at_ohttp_client_new(&t->key_config, NULL, false, &c, d));
    AT_TRY(at_ohttp_client_seal_request(c, bhttp, &sealed, d));
    at_httpc_req hr = {.method = "POST",
                       .url = url,
                       .content_type = AT_OHTTP_MEDIA_REQ,
                       .body = at_buf_span(&sealed),
                       .max_response = AT_MAX_OHTTP_MESSAGE + 1024,
                       .timeout_ms = 600000,
                       .idle_s = idle_s};
    AT_TRY(at_httpc_do(&hr, &r, d));
    AT_ENSURE(r.status == 200 &&
                  strncasecmp(r.content_type, AT_OHTTP_MEDIA_RES, strlen(AT_OHTTP_MEDIA_RES)) == 0,
              d, AT_E_UNAVAILABLE, "instance %s: HTTP %ld %.*s", t->instance_id, r.status,
              (int)(r.body.len < 200 ? r.body.len : 200), r.body.p ? (const char *)r.body.p : "");
    AT_TRY(at_ohttp_client_open_response(c, at_buf_span(&r.body), &plain, d));
    AT_TRY(at_bhttp_decode(at_buf_span(&plain), AT_BHTTP_RESPONSE, answer, d));
    rc = AT_OK;
out:
    at_ohttp_client_free(c);
    at_buf_cleanup(&sealed);
    at_buf_cleanup(&plain);
    at_buf_cleanup(&r.body);
    return rc;
}

/* ---- streamed exchanges ------------------------------------------------------ */

typedef struct {
    at_httpc_conn *conn; /* pooled: the connection to the agent is kept */
    CURLM *multi;
    CURL *easy;
    bool added;
    struct curl_slist *hdrs;
    at_ohttp_client *client;
    at_bhttp_decoder *dec;
    at_buf sealed_req;
    at_buf content; /* opened answer content not yet passed on */
    size_t off;
    bool finished, ended;
    bool sse; /* text/event-stream: only whole events pass, a cut one ends in an error event */
    bool error_sent;
    size_t scanned;   /* content before this was searched for an event's end */
    size_t event_end; /* end of the last whole event found (>= off when it counts) */
    CURLcode result;
    at_err err;
    at_diag d;
    char url[700];
} stream;

static void stream_free(void *cls)
{
    stream *s = cls;
    if (s->added)
        curl_multi_remove_handle(s->multi, s->easy);
    at_httpc_conn_give(s->conn);
    curl_slist_free_all(s->hdrs);
    at_ohttp_client_free(s->client);
    at_bhttp_decoder_free(s->dec);
    at_buf_cleanup(&s->sealed_req);
    at_buf_cleanup(&s->content);
    free(s);
}

static size_t on_sealed(char *p, size_t sz, size_t n, void *ud)
{
    stream *s = ud;
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (s->err != AT_OK)
        return 0;
    if (status != 200) {
        s->err = at_fail(&s->d, AT_E_UNAVAILABLE, "instance: HTTP %ld", status);
        return 0;
    }
    at_buf plain;
    at_buf_init_secret(&plain);
    s->err = at_ohttp_client_feed(s->client, AT_SPAN(p, sz * n), &plain, &s->d);
    if (s->err == AT_OK && plain.len)
        s->err = at_bhttp_decoder_feed(s->dec, at_buf_span(&plain), &s->content, &s->d);
    at_buf_cleanup(&plain);
    return s->err == AT_OK ? sz * n : 0;
}

static size_t passable(stream *s);

static void pump(stream *s)
{
    int running = 0;
    curl_multi_perform(s->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE) {
            s->finished = true;
            s->result = m->data.result;
        }
    /* Nothing to pass on yet (no byte, or half an event): wait for the
     * instance rather than spin. */
    if (!s->finished && s->err == AT_OK && passable(s) <= s->off)
        curl_multi_poll(s->multi, NULL, 0, 200, NULL);
}

/* After the transfer: the final chunk and the end of the message must both
 * be there, or the answer was cut. */
static void stream_end(stream *s)
{
    if (s->ended || s->err != AT_OK)
        return;
    s->ended = true;
    if (s->result != CURLE_OK) {
        s->err = at_fail(&s->d, AT_E_UNAVAILABLE, "instance: %s", curl_easy_strerror(s->result));
        return;
    }
    at_buf plain;
    at_buf_init_secret(&plain);
    s->err = at_ohttp_client_finish(s->client, &plain, &s->d);
    if (s->err == AT_OK && plain.len)
        s->err = at_bhttp_decoder_feed(s->dec, at_buf_span(&plain), &s->content, &s->d);
    if (s->err == AT_OK)
        s->err = at_bhttp_decoder_finish(s->dec, &s->d);
    at_buf_cleanup(&plain);
}

/* How much of the opened content may go out now: all of it, or for an
 * event stream up to the end of its last whole event (a blank line), so a
 * cut never leaves half an event for the error event to land in. */
static size_t passable(stream *s)
{
    size_t n = s->content.len;
    if (!s->sse || (s->finished && s->ended && s->err == AT_OK))
        return n;
    /* Each byte is searched once (the content only grows until it is all
     * passed on and reset): no rescans of a long event as bytes trickle in. */
    const uint8_t *p = s->content.p;
    size_t from = s->scanned > s->off + 2 ? s->scanned : s->off + 2;
    for (size_t i = from; i <= n; i++)
        if (p[i - 1] == '\n' &&
            (p[i - 2] == '\n' || (i > s->off + 2 && p[i - 2] == '\r' && p[i - 3] == '\n')))
            s->event_end = i;
    s->scanned = n + 1;
    if (s->event_end > s->off)
        return s->event_end;
    if (n - s->off > AT_GW_MAX_SSE_EVENT && s->err == AT_OK)
        s->err =
            at_fail(&s->d, AT_E_TOO_LARGE, "instance: an event longer than %d bytes", AT_GW_MAX_SSE_EVENT);
    return s->off;
}

/* The SSE error event for a cut stream, in OpenAI's error shape: OpenAI
 * clients raise it as an APIError (never a truncated answer taken as
 * complete); then the connection closes without the final chunk. */
static ssize_t stream_error_event(stream *s, char *buf, size_t max)
{
    char ev[400];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"error\":{\"message\":\"the instance's answer was cut before its end (%s)\","
                     "\"type\":\"attestation_error\",\"param\":null,\"code\":\"%s\"}}\n\n",
                     at_err_str(s->err), at_err_str(AT_E_INSTANCE_UNREACHABLE));
    s->error_sent = true;
    if (n < 0 || (size_t)n > max)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    memcpy(buf, ev, (size_t)n);
    return n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *s = cls;
    for (;;) {
        size_t upto = passable(s);
        if (s->off < upto) {
            size_t n = upto - s->off < max ? upto - s->off : max;
            memcpy(buf, s->content.p + s->off, n);
            s->off += n;
            if (s->off == s->content.len) {
                at_buf_reset(&s->content);
                s->off = s->scanned = s->event_end = 0;
            }
            return (ssize_t)n;
        }
        if (s->err != AT_OK) {
            if (!s->error_sent) {
                at_log("error", "stream", "answer cut: %s: %s", at_err_str(s->err), s->d.msg);
                if (s->sse)
                    return stream_error_event(s, buf, max);
            }
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->finished) {
            stream_end(s);
            if (s->err == AT_OK && s->content.len == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
            continue;
        }
        pump(s);
    }
}

static at_err start_stream(gw_target *t, at_span bhttp, stream **out, at_diag *d)
{
    stream *s = calloc(1, sizeof *s);
    if (!s)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_buf_init(&s->sealed_req);
    at_buf_init_secret(&s->content);
    at_err rc = at_ohttp_client_new(&t->key_config, NULL, true, &s->client, d);
    if (rc == AT_OK)
        rc = at_ohttp_client_seal_chunk(s->client, bhttp, true, &s->sealed_req, d);
    if (rc == AT_OK &&
        (!(s->dec = at_bhttp_decoder_new(AT_BHTTP_RESPONSE)) || !(s->conn = at_httpc_conn_take())))
        rc = at_fail(d, AT_E_INTERNAL, "out of memory");
    if (rc != AT_OK) {
        stream_free(s);
        return rc;
    }
    s->multi = s->conn->multi;
    s->easy = s->conn->easy;
    snprintf(s->url, sizeof s->url, "%s/v1/ohttp", t->endpoint);
    at_httpc_route(s->easy, s->url);
    s->hdrs = curl_slist_append(NULL, "Content-Type: " AT_OHTTP_MEDIA_CHUNKED_REQ);
    s->hdrs = curl_slist_append(s->hdrs, "Expect:");
    curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, (const char *)s->sealed_req.p);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->sealed_req.len);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_sealed);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    if (!(s->added = curl_multi_add_handle(s->multi, s->easy) == CURLM_OK)) {
        stream_free(s);
        return at_fail(d, AT_E_INTERNAL, "instance %s: curl cannot start the exchange", t->instance_id);
    }
    /* Wait for the answer's head: its status goes out before any body. */
    while (!at_bhttp_decoder_head(s->dec) && s->err == AT_OK && !s->finished)
        pump(s);
    if (!at_bhttp_decoder_head(s->dec)) {
        if (s->err == AT_OK)
            stream_end(s);
        rc = s->err != AT_OK
                 ? at_fail(d, s->err, "%s", s->d.msg)
                 : at_fail(d, AT_E_UNAVAILABLE, "instance %s: answer without a head", t->instance_id);
        stream_free(s);
        return rc;
    }
    *out = s;
    return AT_OK;
}

static bool wants_stream(const at_http_req *req)
{
    if (!req->body.len)
        return false;
    json_t *j = json_loadb((const char *)req->body.p, req->body.len, 0, NULL);
    bool s = json_is_true(json_object_get(j, "stream"));
    json_decref(j);
    return s;
}

/* What the answer came from: the attested instance, the policy it was
 * appraised under, until when, and its PCRs. */
static void attest_headers(const gw_target *t, at_http_resp *resp)
{
    char exp[40];
    at_time_rfc3339(t->expires_ms / 1000, exp, sizeof exp);
    snprintf(
        resp->headers, sizeof resp->headers,
        "Attest-Instance: %.160s\nAttest-Policy: %.200s\nAttest-Expires: %s\nAttest-PCR-Digest: sha-256=%s\n",
        t->instance_id, t->policy_ref, exp, t->pcr_digest);
}

void route_openai(gateway *g, at_http_req *req, at_http_resp *resp)
{
    at_buf bhttp;
    at_buf_init_secret(&bhttp);
    at_diag d = {{0}};
    at_err rc = build_request(req, &bhttp, &d);
    if (rc != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
        goto out;
    }
    bool streaming = wants_stream(req);
    char failed_instance[160] = "?", failed_session[80] = "?";
    gw_target t;
    /* One retry on another instance if the first cannot be reached. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = gw_pick_target(g, &t, &d)) != AT_OK) {
            at_http_error(resp, rc, d.msg, -1);
            goto out;
        }
        if (streaming) {
            stream *s = NULL;
            rc = start_stream(&t, at_buf_span(&bhttp), &s, &d);
            if (rc == AT_OK) {
                const at_bhttp_msg *head = at_bhttp_decoder_head(s->dec);
                const char *ct = at_bhttp_fields_get(&head->headers, "content-type");
                /* The content type, kept in this thread's buffer until httpd
                 * builds the answer on this thread; stream_read blocks on
                 * the instance: httpd runs it on a worker. */
                static __thread char sctbuf[128];
                snprintf(sctbuf, sizeof sctbuf, "%s", ct ? ct : "text/event-stream");
                s->sse = strncasecmp(sctbuf, "text/event-stream", 17) == 0;
                resp->stream = stream_read;
                resp->stream_cls = s;
                resp->stream_free = stream_free;
                resp->content_type = sctbuf;
                resp->status = head->status;
                attest_headers(&t, resp);
                at_log("info", "forward", "%s %s -> %s (streamed, session %s)", req->method, req->url,
                       t.instance_id, t.session_id);
                goto out;
            }
        } else {
            at_bhttp_msg *answer = NULL;
            rc = send_whole(&t, at_buf_span(&bhttp), g->cfg.instance_idle_s, &answer, &d);
            if (rc == AT_OK) {
                const char *ct = at_bhttp_fields_get(&answer->headers, "content-type");
                resp->status = answer->status;
                resp->len = answer->content.len;
                resp->body = answer->content.len ? malloc(answer->content.len) : NULL;
                if (resp->body)
                    memcpy(resp->body, answer->content.p, answer->content.len);
                else
                    resp->len = 0;
                /* The instance's content type, if it is a plain token/value:
                 * kept in this thread's buffer until the answer is queued. */
                static __thread char ctbuf[128];
                snprintf(ctbuf, sizeof ctbuf, "%s", "application/json");
                if (ct && strlen(ct) < sizeof ctbuf &&
                    strspn(ct, "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "!#$%&'*+-.^_`|~/;= \"") == strlen(ct))
                    snprintf(ctbuf, sizeof ctbuf, "%s", ct);
                resp->content_type = ctbuf;
                at_bhttp_msg_free(answer);
                attest_headers(&t, resp);
                at_log("info", "forward", "%s %s -> %s (session %s): %d", req->method, req->url,
                       t.instance_id, t.session_id, resp->status);
                goto out;
            }
        }
        at_log("warn", "forward", "instance %s failed: %s", t.instance_id, d.msg);
        snprintf(failed_instance, sizeof failed_instance, "%s", t.instance_id);
        snprintf(failed_session, sizeof failed_session, "%s", t.session_id);
        if (rc != AT_E_UNAVAILABLE)
            break;
        gw_drop_target(g, t.session_id);
    }
    {
        /* Which instance and which check, never the transport detail of
         * another host (its URL, the connect result): that is logged. */
        bool opening = rc == AT_E_DECRYPT_FAILED || rc == AT_E_TRUNCATED;
        char msg[400];
        snprintf(msg, sizeof msg, "instance %.128s (session %.80s): %s failed (%s)", failed_instance,
                 failed_session, opening ? "opening the sealed answer" : "forwarding the sealed request",
                 at_err_str(rc));
        at_http_error(resp, opening ? rc : AT_E_INSTANCE_UNREACHABLE, msg, -1);
        attest_headers(&t, resp);
    }
    if (resp->status < 500)
        resp->status = 502;
out:
    at_buf_cleanup(&bhttp);
}

void route_attestation(gateway *g, at_http_resp *resp)
{
    gw_target t;
    at_diag d = {{0}};
    /* Refresh if stale; an empty list is an answer too (with the reason). */
    at_err rc = gw_pick_target(g, &t, &d);
    char jwks_uri[1100];
    snprintf(jwks_uri, sizeof jwks_uri, "%s/.well-known/jwks.json", g->cfg.verifier);
    pthread_mutex_lock(&g->lock);
    json_t *atts = rc == AT_OK && g->attestations ? json_deep_copy(g->attestations) : json_array();
    /* The keys the tokens verified against, same-origin for the chat page
     * (its CSP connect-src 'self' keeps it from fetching jwks_uri). */
    json_t *jwks = g->pinned_jwks ? json_incref(g->pinned_jwks) : g->jwks ? json_deep_copy(g->jwks) : NULL;
    pthread_mutex_unlock(&g->lock);
    json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:b}", "policy", g->cfg.policy, "attestations", atts, "jwks_uri",
                          jwks_uri, "eat_profile", AT_EAR_PROFILE, "verify_locally", g->cfg.verify_locally);
    if (o && jwks)
        json_object_set(o, "jwks", jwks);
    json_decref(jwks);
    if (o && rc != AT_OK)
        json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", at_err_str(rc), "message", d.msg));
    at_http_json(resp, 200, o);
}
