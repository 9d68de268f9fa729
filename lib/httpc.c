/* httpc: libcurl easy interface, one handle per request (thread-safe). */
#include "httpc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

void at_httpc_global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

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
    CURL *c = curl_easy_init();
    AT_ENSURE(c, d, AT_E_INTERNAL, "http: curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, r->url);
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
    curl_easy_cleanup(c);
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
