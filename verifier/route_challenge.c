/* POST /v1/challenge: a fresh nonce (API.md). Stateless: the nonce carries
 * its own expiry and MAC; nothing is stored until it is consumed. Runs on
 * libmicrohttpd's I/O thread (main.c classify), so nothing here may wait on
 * the database (every refusal of this route is aggregated, audit_agg.c) or
 * cost more than a small fixed amount of work (a body is parsed only when
 * it is at most CHALLENGE_BODY_MAX bytes). */
#include <stdio.h>
#include <string.h>

#include "enc.h"
#include "verifier.h"

/* "{}" with some white space; anything longer is refused unparsed. */
#define CHALLENGE_BODY_MAX 64

void route_challenge(verifier *v, at_http_req *req, at_http_resp *resp)
{
    if (!ratelimit_allow(v->rl, req->client, at_monotonic_ns())) {
        refuse(v, req, resp, NULL, "challenge", AT_E_RATE_LIMITED,
               "rate: too many challenges from this client, retry later", NULL);
        return;
    }
    /* The body is "{}" (or empty): anything else is a client bug worth naming. */
    if (req->body.len > CHALLENGE_BODY_MAX) {
        char msg[128];
        snprintf(msg, sizeof msg, "body: expected {} or nothing, got %zu bytes (at most %d read)",
                 req->body.len, CHALLENGE_BODY_MAX);
        refuse(v, req, resp, NULL, "challenge", AT_E_BAD_REQUEST, msg, NULL);
        return;
    }
    if (req->body.len) {
        json_t *b = NULL;
        at_diag d = {{0}};
        static const char *const none[] = {NULL};
        at_err rc = at_http_body_json(req, &b, &d);
        if (rc == AT_OK)
            rc = only_keys(b, none, &d);
        json_decref(b);
        if (rc != AT_OK) {
            refuse(v, req, resp, NULL, "challenge", rc, d.msg, NULL);
            return;
        }
    }
    uint8_t nonce[AT_NONCE_LEN];
    int64_t exp_ms;
    if (keys_nonce_issue(v->keys, at_now_ms(), v->cfg.nonce_ttl_s, nonce, &exp_ms) != AT_OK) {
        /* Counted, not written: this route runs on the I/O thread, which
         * must never wait on the database (main.c classify). */
        at_log("error", "challenge", "nonce: cannot mint");
        audit_count(v, req->client, "anonymous", "challenge", "error", at_err_str(AT_E_INTERNAL));
        at_metrics_add(v->metrics, "attest_refusals_total", "action=\"challenge\",code=\"internal\"", 1);
        at_http_error(resp, AT_E_INTERNAL, "nonce: cannot mint", 0);
        return;
    }
    char *b64 = at_b64_encode_new(AT_SPAN(nonce, sizeof nonce));
    char exp[40];
    at_time_rfc3339(exp_ms / 1000, exp, sizeof exp);
    json_t *o = json_object();
    json_object_set_new(o, "nonce", json_string(b64));
    json_object_set_new(o, "expires_at", json_string(exp));
    json_object_set_new(o, "expires_at_ms", json_integer(exp_ms));
    free(b64);
    at_http_json(resp, 201, o);
}
