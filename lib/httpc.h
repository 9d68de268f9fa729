/* httpc: a small HTTP client on libcurl for attestctl, the agent and the
 * gateway. Responses are peer input: bodies are capped. HTTPS is verified
 * against the system CAs, or the PEM file named by $ATTEST_CA_FILE.
 * Connections are kept alive and reused: every exchange borrows a curl
 * multi+easy pair from a process-wide pool (last returned, first reused),
 * whose connection cache outlives the exchange; idle connections are not
 * reused after AT_HTTPC_MAX_IDLE_S. A URL origin can be routed over a UNIX or vsock
 * stream (at_httpc_target): HTTP or HTTPS then runs over that stream, so
 * TLS stays end to end. */
#ifndef AT_HTTPC_H
#define AT_HTTPC_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

typedef struct {
    const char *method; /* NULL = GET, or POST when a body is given */
    const char *url;
    const char *bearer; /* Authorization: Bearer ... */
    const char *content_type;
    at_span body;
    const char *const *headers; /* extra "K: V" lines, NULL-terminated */
    size_t max_response;        /* 0 = 16 MiB */
    long timeout_ms;            /* 0 = 30 s */
    long idle_s;                /* > 0: give up (unavailable) when no byte arrives for this long */
} at_httpc_req;

typedef struct {
    long status;
    at_buf body; /* at_buf_cleanup it */
    char content_type[128];
} at_httpc_resp;

/* Perform a request; AT_E_UNAVAILABLE when the peer cannot be reached,
 * AT_E_TOO_LARGE when the answer exceeds the cap. Any HTTP status is AT_OK. */
at_err at_httpc_do(const at_httpc_req *r, at_httpc_resp *out, at_diag *d) AT_MUST_USE;
/* JSON helper: send json (may be NULL) and parse a JSON answer into *out
 * (new reference, NULL when the body is not JSON). */
at_err at_httpc_json(const char *method, const char *url, const char *bearer, json_t *json, long *status,
                     json_t **out, at_diag *d) AT_MUST_USE;
/* A process-wide curl_global_init; call once from main. */
void at_httpc_global_init(void);

/* Idle keep-alive connections older than this are not reused (below the
 * servers' 30 s connection timeout, so a reused one is not closing). */
#define AT_HTTPC_MAX_IDLE_S 20L
/* A connect option: a URL ("https://v.example:8443"), or an address
 * "unix:PATH" or "vsock:CID:PORT" optionally followed by ",URL" (default
 * "http://localhost"). For an address, requests to that URL's origin
 * (scheme://host[:port]) go over the stream from then on (process-wide;
 * call from main before threads start). The URL to use is written to url.
 * AT_E_BAD_REQUEST naming the option for a bad address or URL. */
at_err at_httpc_target(const char *option, const char *spec, char *url, size_t url_len,
                       at_diag *d) AT_MUST_USE;
/* Apply the route of url's origin, if any, to a curl easy handle (for
 * callers driving curl themselves). */
void at_httpc_route(void *curl_easy, const char *url);
/* A pooled curl pair: multi (CURLM *) holds the kept-alive connection,
 * easy (CURL *) is reset when taken. NULL when out of memory. Give it back
 * with the easy handle out of the multi (at_httpc_conn_run does that); a
 * transfer removed half-way closes its connection rather than reuse it. */
typedef struct at_httpc_conn {
    void *multi, *easy;
    struct at_httpc_conn *next;
} at_httpc_conn;
at_httpc_conn *at_httpc_conn_take(void);
void at_httpc_conn_give(at_httpc_conn *c);
/* Run the easy handle's transfer to its end on the pair; a CURLcode. */
int at_httpc_conn_run(at_httpc_conn *c);

#endif
