/* agent: attest-agent, inside every attested instance or enclave. It holds
 * the only private key that sealed prompts and released secrets open with
 * (generated in memory at start, never written out), keeps its session with
 * the verifier fresh, opens Oblivious HTTP requests and forwards them in
 * clear only to the local LLM server (--upstream), sealing the answers, and
 * can unseal model weights whose key the verifier releases to it. One file
 * per concern: main.c (flags, HTTP routes), session.c (attestation loop,
 * secret release, model), route_ohttp.c (OHTTP gateway), upstream.c. */
#ifndef AT_AGENT_H
#define AT_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "attester.h"
#include "bhttp.h"
#include "clock.h"
#include "evidence.h"
#include "log.h"
#include "httpd.h"
#include "metrics.h"
#include "ohttp.h"
#include "replay.h"

#define AGENT_KEY_ID 1
#define AGENT_MAX_SIM_PCRS 32

typedef struct {
    char verifier[1024];
    char policy[160];
    at_attester_kind attester;
    char sim_pki[1024];
    bool sim_pcr_set[AT_MAX_PCRS];
    uint8_t sim_pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    at_format sim_format; /* --sim-format, default nitro-enclave */
    char listen[128];
    char advertise[1024];
    char upstream[1024];
    char token_file[1024];
    char model[1024];
    char model_sealed[1024];
    char model_secret[160];
    char model_out[1024];
    int model_pcr;       /* -1 = the format's default (16 enclave, 15 tpm) */
    int session_check_s; /* how often the session is checked by id (token needed) */
    bool print_pcrs;
    bool allow_remote_upstream; /* --allow-remote-upstream: measured into PCR2 */
    bool upstream_remote;       /* --upstream as given names another host (vsock included) */
    char port_file[1024];
    at_httpd_opts http; /* --max-body, --request-timeout, --connection-limit,
                                * --per-ip-limit, --workers (0 = httpd defaults) */
} agent_config;

typedef struct {
    agent_config cfg;
    at_format format; /* what the attester produces */
    at_ohttp_keyset *keys;
    at_replay *replay; /* OHTTP requests accepted within the Date window */
    at_buf key_config; /* RFC 9458 single config of AGENT_KEY_ID */
    at_attester *attester;
    at_metrics *metrics; /* GET /metrics */
    char token[512];     /* agent bearer token (optional) */
    /* user_data of our documents (lib/binding): purpose and advertised
     * endpoint; set once the endpoint is known, read under lock. */
    at_buf bind_session, bind_evidence;

    pthread_mutex_t lock; /* guards the session below */
    pthread_cond_t changed;
    char session_id[80];
    uint8_t session_key[32];
    int64_t session_expires_ms;
    bool have_session;
    char last_error[1200];
    char session_state[32]; /* active, or why it ended (replaced, revoked, ...) */
    bool stopping;
    bool attest_now; /* the session ended: the loop attests at once */
    bool model_ready;
} agent;

/* The sim attester's PCRs: PCR0 from the agent binary, PCR1 from its
 * version, PCR2 from its configuration (policy, upstream), plus the model
 * measured into cfg.model_pcr; never all zero. */
at_err agent_sim_pcrs(const agent_config *c, at_format f, bool set[AT_MAX_PCRS],
                      uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN], at_diag *d) AT_MUST_USE;

/* The renewal loop (thread): attest, sleep until two thirds of the session
 * lifetime, again; back off on failures. In between, every
 * --session-check seconds (with an agent token), ask the verifier for the
 * session by id, and attest again at once when it ended or was replaced. */
void *agent_session_loop(void *arg);
/* --model-sealed: release the data key, open the sealed model to --model-out. */
at_err agent_unseal_model(agent *a, at_diag *d) AT_MUST_USE;

/* Whether an --upstream URL names this host (localhost, 127.0.0.0/8, ::1,
 * or a unix: socket): the agent forwards in clear only there unless
 * --allow-remote-upstream. */
bool agent_upstream_is_local(const char *url);

/* HTTP routes. */
void route_ohttp(agent *a, at_http_req *req, at_http_resp *resp);
void route_key_config(agent *a, at_http_req *req, at_http_resp *resp);
void route_status(agent *a, at_http_req *req, at_http_resp *resp);
void route_evidence(agent *a, at_http_req *req, at_http_resp *resp);

/* Upstream (the local LLM server). */
typedef struct upstream_stream upstream_stream;
/* Whole exchange: the decoded inner request in, a Binary HTTP response out. */
at_err upstream_forward(const agent *a, const at_bhttp_msg *req, at_bhttp_msg **resp, at_diag *d) AT_MUST_USE;
/* Streamed exchange: start; then upstream_stream_next() hands out pieces of
 * the answer's indeterminate-length Binary HTTP encoding as they arrive
 * (head first, content chunks, tail last, *done set with the last piece). */
at_err upstream_stream_start(const agent *a, const at_bhttp_msg *req, upstream_stream **out,
                             at_diag *d) AT_MUST_USE;
at_err upstream_stream_next(upstream_stream *s, at_buf *piece, bool *done, at_diag *d) AT_MUST_USE;
void upstream_stream_free(upstream_stream *s);

#endif
