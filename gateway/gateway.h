/* gateway: attest-gateway, on the consumer's side. An OpenAI-compatible
 * endpoint that seals every request end to end (Oblivious HTTP, HPKE) to an
 * instance the verifier currently vouches for, and opens the answers; it
 * fails closed when no instance is verified. One file per concern: main.c
 * (flags, routes), sessions.c (which instances may be used: the verifier's
 * sessions, each with its attestation result token checked against the
 * verifier's JWKS), route_openai.c (sealing and forwarding). */
#ifndef AT_GATEWAY_H
#define AT_GATEWAY_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "evidence.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "ohttp.h"

#define GW_MAX_TARGETS 64

typedef struct {
    char verifier[1024];
    char policy[160];
    char listen[128];
    char token_file[1024];
    char jwks_file[1024]; /* pin the verifier's keys instead of fetching them */
    char port_file[1024];
    char web_root[1024]; /* the chat page's files (--web-root, default AT_GATEWAY_WEB_ROOT) */
    int refresh_s;       /* how long a verified session list is used */
    int instance_idle_s; /* no byte from an instance for this long: try another (once) */
    bool verify_locally; /* also check each instance's own fresh document */
    char *roots[8];      /* --root PEM (default: the AWS Nitro root) */
    size_t n_roots;
    at_httpd_opts http; /* --max-body, --request-timeout, --connection-limit,
                                * --per-ip-limit, --workers (0 = httpd defaults) */
} gateway_config;

/* An instance the gateway may send to: verified from its session. */
typedef struct {
    char session_id[80];
    char instance_id[160];
    char endpoint[600];
    at_ohttp_key_config key_config;
    int64_t expires_ms;
    bool checked_locally;
    char policy_ref[200]; /* name@version the token's appraisal used */
    char pcr_digest[65];  /* hex SHA-256 of the token's PCRs as compact, key-sorted JSON */
} gw_target;

typedef struct at_trust at_trust;
typedef struct at_webstatic at_webstatic;

typedef struct {
    gateway_config cfg;
    at_trust *trust; /* --verify-locally */
    char token[512];
    json_t *pinned_jwks; /* from --verifier-jwks, else NULL */
    at_metrics *metrics; /* GET /metrics */
    at_webstatic *web;   /* GET /: the chat page (NULL: not installed) */

    pthread_mutex_t lock; /* guards the fields below */
    gw_target targets[GW_MAX_TARGETS];
    size_t n_targets;
    int64_t refreshed_ms;
    unsigned next;               /* round robin */
    char last_error[1100];       /* detail, for the log */
    char last_error_public[400]; /* what API callers are told: instance, check, code */
    at_err last_code;            /* the reason a consumer can act on when nothing verifies */
    json_t *attestations;        /* [{instance, session, policy, expires_at, token}] of the targets */
    json_t *jwks;                /* the verifier keys the targets' tokens verified against */
} gateway;

/* A target to send the next request to (copied out), refreshing the list
 * from the verifier when it is stale. Fails closed when no session
 * verifies, with the reason: AT_E_NO_VERIFIED_INSTANCE,
 * AT_E_ATTESTATION_EXPIRED, AT_E_POLICY_REVOKED or AT_E_TOKEN_INVALID. */
at_err gw_pick_target(gateway *g, gw_target *out, at_diag *d) AT_MUST_USE;
/* Forget a target that failed, so the next pick takes another. */
void gw_drop_target(gateway *g, const char *session_id);

void route_openai(gateway *g, at_http_req *req, at_http_resp *resp);
/* GET /v1/attestation: the EAR tokens of the instances in use and where the
 * verifier's keys are, for consumers who check them themselves. */
void route_attestation(gateway *g, at_http_resp *resp);

#endif
