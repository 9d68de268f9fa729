/* agent OHTTP gateway: GET /v1/key-config (application/ohttp-keys) and
 * POST /v1/ohttp (message/ohttp-req -> message/ohttp-res, or the chunked
 * media types, answered chunk by chunk as the upstream streams). Request
 * bodies come from anonymous senders: only what opens under our key is
 * forwarded, and only to the configured upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "target.h"
#include "enc.h"

void route_key_config(agent *a, at_http_req *req, at_http_resp *resp)
{
    at_buf b;
    at_buf_init(&b);
    at_diag d = {{0}};
    if (at_ohttp_keyset_keys(a->keys, &b, &d) != AT_OK) {
        at_buf_cleanup(&b);
        at_http_error(resp, AT_E_INTERNAL, d.msg, -1);
        return;
    }
    resp->status = 200;
    resp->len = b.len;
    resp->body = (char *)at_buf_take(&b, NULL);
    resp->content_type = AT_OHTTP_MEDIA_KEYS;
}

static bool media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* RFC 9458 section 5.3 / RFC 9457: a request sealed to a key we do not
 * have (or a suite we do not offer) is answered with the registered problem
 * type, so a standard client refetches the key configuration. */
static bool key_problem(at_http_resp *resp, at_err rc, const char *msg)
{
    if (rc != AT_E_UNKNOWN_KEY_ID && rc != AT_E_UNSUPPORTED_SUITE)
        return false;
    json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:s}", "type",
                          "https://iana.org/assignments/http-problem-types#ohttp-key", "title",
                          "key configuration not usable: fetch /v1/key-config again", "status", 400, "detail",
                          msg, "code", at_err_str(rc));
    at_http_json(resp, 400, j);
    resp->content_type = "application/problem+json";
    return true;
}

/* An inner error answer, so the client gets it authenticated. With date,
 * it carries ours (RFC 9458 section 6.5: the client may correct its clock). */
static at_err inner_error_code(int status, const char *code, const char *msg, bool date, at_bhttp_msg **out,
                               at_diag *d)
{
    at_bhttp_msg *m = NULL;
    json_t *j = json_pack("{s:{s:s,s:s,s:s,s:n}}", "error", "code", code, "message", msg, "type",
                          status < 500 ? "invalid_request_error" : "server_error", "param");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    at_err rc = at_bhttp_response_new(status, &m, d);
    if (rc == AT_OK)
        rc = at_bhttp_add_header(m, "content-type", AT_SPAN("application/json", 16), d);
    if (rc == AT_OK && date) {
        char now[40];
        at_http_date(at_now_ms() / 1000, now, sizeof now);
        rc = at_bhttp_add_header(m, "date", AT_SPAN(now, strlen(now)), d);
    }
    if (rc == AT_OK && s)
        rc = at_bhttp_append_content(m, AT_SPAN(s, strlen(s)), d);
    free(s);
    if (rc != AT_OK) {
        at_bhttp_msg_free(m);
        return rc;
    }
    *out = m;
    return AT_OK;
}

/* The model server did not answer: upstream_unavailable (502). */
static at_err inner_error(const char *msg, at_bhttp_msg **out, at_diag *d)
{
    return inner_error_code(at_err_http_status(AT_E_UPSTREAM_UNAVAILABLE),
                            at_err_str(AT_E_UPSTREAM_UNAVAILABLE), msg, false, out, d);
}

/* The inner request's target is one the model server may be asked for
 * (target.h: /v1/... only, no dot segments), it carries a Date within our
 * window, and it is the first request with its encapsulation (header and
 * HPKE enc) that the agent accepts within that window (RFC 9458 section
 * 6.5: the Date bounds the replay memory, lib/replay); else the
 * authenticated error to answer instead of running the request. */
static at_err fresh_refusal(agent *a, const at_ohttp_server *srv, const at_bhttp_msg *in,
                            at_bhttp_msg **refusal, at_diag *d)
{
    const char *date = at_bhttp_fields_get(&in->headers, "date");
    at_diag dd = {{0}};
    at_err code = AT_OK;
    int64_t now_s = at_now_ms() / 1000, date_s = 0;
    *refusal = NULL;
    if (at_target_check(in->path, true, &dd) != AT_OK) {
        code = AT_E_BAD_REQUEST;
    } else if (!date) {
        code =
            at_fail(&dd, AT_E_CLOCK_SKEW,
                    "date: missing; the inner request must carry its Date (RFC 9458 section 6.5), the agent"
                    " refuses replays within a window of %d s around it",
                    AT_OHTTP_DATE_WINDOW_S);
    } else if ((code = at_http_date_check(date, now_s, AT_OHTTP_DATE_WINDOW_S, &dd)) == AT_OK &&
               (code = at_http_date_parse(date, &date_s, &dd)) == AT_OK &&
               (code = at_replay_check(a->replay, at_ohttp_server_encapsulation(srv), date_s, now_s, &dd)) ==
                   AT_E_REPLAYED) {
        /* answered below */
    }
    if (code == AT_OK)
        return AT_OK;
    if (code == AT_E_BAD_FIELD)
        code = AT_E_CLOCK_SKEW; /* an unreadable Date: the same remedy */
    if (code != AT_E_BAD_REQUEST && code != AT_E_CLOCK_SKEW && code != AT_E_REPLAYED)
        return at_fail(d, code, "%s", dd.msg);
    char labels[48];
    snprintf(labels, sizeof labels, "code=\"%s\"", at_err_str(code));
    at_metrics_add(a->metrics, "attest_ohttp_refused_total", labels, 1);
    at_log("info", "ohttp", "refused: %s: %s", at_err_str(code), dd.msg);
    /* The status is the code's own (lib/err.h): 400 bad_request, 422
     * clock_skew, 409 replayed. */
    return inner_error_code(at_err_http_status(code), at_err_str(code), dd.msg, code != AT_E_BAD_REQUEST,
                            refusal, d);
}

static void whole(agent *a, at_http_req *req, at_http_resp *resp)
{
    at_bhttp_msg *in = NULL, *out = NULL;
    at_ohttp_server *srv = NULL;
    at_buf plain, sealed;
    at_buf_init(&plain);
    at_buf_init(&sealed);
    at_diag d = {{0}};
    at_err rc = at_ohttp_server_open_bhttp(a->keys, at_buf_span(&req->body), &in, &srv, &d);
    if (rc != AT_OK) {
        at_log("info", "ohttp", "refused: %s: %s", at_err_str(rc), d.msg);
        if (!key_problem(resp, rc, d.msg))
            at_http_error(resp, rc, d.msg, -1);
        goto done;
    }
    if ((rc = fresh_refusal(a, srv, in, &out, &d)) != AT_OK)
        goto fail;
    at_diag ud = {{0}};
    if (out) {
        /* Refused (target, Date or replay): the model does not run. */
    } else if (upstream_forward(a, in, &out, &ud) != AT_OK) {
        at_log("error", "upstream", "%s", ud.msg);
        at_metrics_add(a->metrics, "attest_upstream_errors_total", "mode=\"whole\"", 1);
        /* The caller learns that the upstream failed, not its URL or the
         * transport error (logged above). */
        if ((rc = inner_error("upstream: the local model server did not answer (unavailable)", &out, &d)) !=
            AT_OK)
            goto fail;
    }
    if ((rc = at_bhttp_encode(out, &plain, &d)) != AT_OK ||
        (rc = at_ohttp_server_seal_response(srv, at_buf_span(&plain), &sealed, &d)) != AT_OK)
        goto fail;
    at_metrics_add(a->metrics, "attest_sealed_bytes_total", "mode=\"whole\"", (double)sealed.len);
    resp->status = 200;
    resp->len = sealed.len;
    resp->body = (char *)at_buf_take(&sealed, NULL);
    resp->content_type = AT_OHTTP_MEDIA_RES;
    goto done;
fail:
    at_http_error(resp, rc, d.msg, -1);
done:
    at_bhttp_msg_free(in);
    at_bhttp_msg_free(out);
    at_ohttp_server_free(srv);
    at_buf_cleanup(&plain);
    at_buf_cleanup(&sealed);
}

/* ---- chunked: the answer streams out as the upstream produces it ---------- */

struct chunked {
    at_metrics *metrics;
    at_ohttp_server *srv;
    upstream_stream *up;
    at_buf outbox;
    size_t off;
    bool sent_any, finished;
};

static void chunked_free(void *cls)
{
    struct chunked *c = cls;
    upstream_stream_free(c->up);
    at_ohttp_server_free(c->srv);
    at_buf_cleanup(&c->outbox);
    free(c);
}

/* Seal a whole inner error as the (only) chunked answer. */
static at_err seal_error_stream(struct chunked *c, const char *msg, at_diag *d)
{
    at_bhttp_msg *m = NULL;
    at_buf plain;
    at_buf_init(&plain);
    at_err rc = inner_error(msg, &m, d);
    if (rc == AT_OK)
        rc = at_bhttp_encode_indeterminate(m, &plain, d);
    if (rc == AT_OK)
        rc = at_ohttp_server_seal_chunk(c->srv, at_buf_span(&plain), true, &c->outbox, d);
    at_bhttp_msg_free(m);
    at_buf_cleanup(&plain);
    return rc;
}

static ssize_t chunked_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct chunked *c = cls;
    for (;;) {
        if (c->off < c->outbox.len) {
            size_t n = c->outbox.len - c->off < max ? c->outbox.len - c->off : max;
            memcpy(buf, c->outbox.p + c->off, n);
            c->off += n;
            at_metrics_add(c->metrics, "attest_sealed_bytes_total", "mode=\"chunked\"", (double)n);
            c->sent_any = true;
            return (ssize_t)n;
        }
        if (c->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        at_buf_reset(&c->outbox);
        c->off = 0;
        at_buf piece;
        at_buf_init(&piece);
        bool done = false;
        at_diag d = {{0}};
        at_err rc = upstream_stream_next(c->up, &piece, &done, &d);
        if (rc == AT_OK && (piece.len || done))
            rc = at_ohttp_server_seal_chunk(c->srv, at_buf_span(&piece), done, &c->outbox, &d);
        at_buf_cleanup(&piece);
        if (rc != AT_OK) {
            at_log("error", "upstream", "stream: %s", d.msg);
            at_metrics_add(c->metrics, "attest_upstream_errors_total", "mode=\"chunked\"", 1);
            /* Nothing out yet: answer an authenticated 502. Otherwise end
             * the body without its final chunk: the client detects it. */
            if (c->sent_any || c->outbox.len ||
                seal_error_stream(c, "upstream: the local model server did not answer (unavailable)", &d) !=
                    AT_OK)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            done = true;
        }
        c->finished = done;
    }
}

static void chunked(agent *a, at_http_req *req, at_http_resp *resp)
{
    struct chunked *c = calloc(1, sizeof *c);
    at_buf plain;
    at_buf_init(&plain);
    at_bhttp_msg *in = NULL;
    at_diag d = {{0}};
    at_err rc = c ? at_ohttp_server_new_chunked(a->keys, &c->srv, &d) : AT_E_INTERNAL;
    if (c) {
        at_buf_init(&c->outbox);
        c->metrics = a->metrics;
    }
    if (rc == AT_OK)
        rc = at_ohttp_server_feed(c->srv, at_buf_span(&req->body), &plain, &d);
    if (rc == AT_OK)
        rc = at_ohttp_server_finish(c->srv, &plain, &d);
    if (rc == AT_OK)
        rc = at_bhttp_decode(at_buf_span(&plain), AT_BHTTP_REQUEST, &in, &d);
    if (rc != AT_OK) {
        at_log("info", "ohttp", "refused (chunked): %s: %s", at_err_str(rc), d.msg);
        if (!key_problem(resp, rc, d.msg))
            at_http_error(resp, rc, d.msg, -1);
        goto fail;
    }
    at_bhttp_msg *refusal = NULL;
    at_diag ud = {{0}};
    if ((rc = fresh_refusal(a, c->srv, in, &refusal, &d)) != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
        goto fail;
    }
    if (refusal) {
        /* Refused (target, Date or replay): the model does not run. */
        at_buf rp;
        at_buf_init(&rp);
        rc = at_bhttp_encode_indeterminate(refusal, &rp, &d);
        if (rc == AT_OK)
            rc = at_ohttp_server_seal_chunk(c->srv, at_buf_span(&rp), true, &c->outbox, &d);
        at_buf_cleanup(&rp);
        at_bhttp_msg_free(refusal);
        if (rc != AT_OK) {
            at_http_error(resp, rc, d.msg, -1);
            goto fail;
        }
        c->finished = true;
    } else if (upstream_stream_start(a, in, &c->up, &ud) != AT_OK) {
        at_log("error", "upstream", "stream: %s", ud.msg);
        at_metrics_add(a->metrics, "attest_upstream_errors_total", "mode=\"chunked\"", 1);
        if (seal_error_stream(c, "upstream: the local model server did not answer (unavailable)", &d) ==
            AT_OK)
            c->finished = true;
    }
    /* chunked_read blocks on the upstream: httpd runs it on a worker. */
    resp->stream = chunked_read;
    resp->stream_cls = c;
    resp->stream_free = chunked_free;
    resp->content_type = AT_OHTTP_MEDIA_CHUNKED_RES;
    resp->status = 200;
    c = NULL;
fail:
    if (c)
        chunked_free(c);
    at_bhttp_msg_free(in);
    at_buf_cleanup(&plain);
}

void route_ohttp(agent *a, at_http_req *req, at_http_resp *resp)
{
    const char *ct = at_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (media_is(ct, AT_OHTTP_MEDIA_REQ))
        whole(a, req, resp);
    else if (media_is(ct, AT_OHTTP_MEDIA_CHUNKED_REQ))
        chunked(a, req, resp);
    else {
        char msg[200];
        snprintf(msg, sizeof msg, "content-type: expected %s or %s, got %.64s", AT_OHTTP_MEDIA_REQ,
                 AT_OHTTP_MEDIA_CHUNKED_REQ, ct ? ct : "none");
        at_http_error(resp, AT_E_BAD_REQUEST, msg, -1);
        resp->status = 415;
    }
}

/* The last error as the public status shows it: every URL (another
 * instance's endpoint, the verifier's address) replaced by "<url>"; the
 * log has the whole message. */
static void without_urls(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    while (*in && o + 1 < cap) {
        if (strncmp(in, "http://", 7) == 0 || strncmp(in, "https://", 8) == 0 ||
            strncmp(in, "unix:", 5) == 0 || strncmp(in, "vsock:", 6) == 0) {
            in += strcspn(in, " ,;'\")");
            static const char mark[] = "<url>";
            for (const char *m = mark; *m && o + 1 < cap; m++)
                out[o++] = *m;
            continue;
        }
        out[o++] = *in++;
    }
    out[o] = '\0';
}

void route_status(agent *a, at_http_req *req, at_http_resp *resp)
{
    char shown[sizeof a->last_error];
    pthread_mutex_lock(&a->lock);
    without_urls(a->last_error, shown, sizeof shown);
    /* attested only while the session is live as far as we know: expired
     * locally, or found ended/replaced at the verifier, is not attested. */
    bool live = a->have_session && a->session_expires_ms > at_now_ms();
    json_t *o = json_pack("{s:b,s:s,s:s,s:I,s:s,s:b,s:s}", "attested", live, "session",
                          a->have_session ? a->session_id : "", "session_state",
                          a->session_state[0] ? a->session_state : "none", "expires_at_ms",
                          (json_int_t)a->session_expires_ms, "policy", a->cfg.policy, "model_ready",
                          a->model_ready, "last_error", shown);
    pthread_mutex_unlock(&a->lock);
    at_http_json(resp, 200, o);
}

/* POST /v1/evidence {"nonce": "b64"} -> {"evidence": "b64"}: a fresh
 * document bound to the caller's nonce and carrying our key configuration,
 * for relying parties that verify locally (attest-gateway --verify-locally).
 * The nonce is attacker-chosen: only its length matters here. */
void route_evidence(agent *a, at_http_req *req, at_http_resp *resp)
{
    json_t *body = NULL;
    uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    at_buf doc;
    at_buf_init(&doc);
    at_diag d = {{0}};
    at_err rc = at_http_body_json(req, &body, &d);
    const char *nb = rc == AT_OK ? json_string_value(json_object_get(body, "nonce")) : NULL;
    if (rc == AT_OK &&
        (!nb || json_object_size(body) != 1 ||
         at_b64_decode_new(nb, strlen(nb), &nonce, &nonce_len) != AT_OK || nonce_len < 16 || nonce_len > 64))
        rc = at_fail(&d, AT_E_BAD_REQUEST, "nonce: expected {\"nonce\": base64 of 16..64 bytes}");
    /* The document says what it is for: evidence for a relying party, at
     * our endpoint. The verifier never makes a session from it. */
    at_buf bind;
    at_buf_init(&bind);
    if (rc == AT_OK) {
        pthread_mutex_lock(&a->lock);
        rc = at_buf_append_span(&bind, at_buf_span(&a->bind_evidence));
        pthread_mutex_unlock(&a->lock);
        if (rc == AT_OK && bind.len == 0)
            rc = at_fail(&d, AT_E_UNAVAILABLE, "evidence: the agent is still starting");
    }
    if (rc == AT_OK)
        rc = at_attester_document(a->attester, AT_SPAN(nonce, nonce_len), at_buf_span(&bind),
                                  at_buf_span(&a->key_config), &doc, &d);
    at_buf_cleanup(&bind);
    if (rc != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
    } else {
        char *ev = at_b64_encode_new(at_buf_span(&doc));
        at_http_json(resp, 200, json_pack("{s:s}", "evidence", ev ? ev : ""));
        free(ev);
    }
    json_decref(body);
    free(nonce);
    at_buf_cleanup(&doc);
}
