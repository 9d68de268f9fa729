/* verifier: the attest-verifier service. Shared state of the process and
 * the helpers every route uses (authentication, refusals with audit rows,
 * metrics). One file per HTTP resource: route_*.c. */
#ifndef AT_VERIFIER_H
#define AT_VERIFIER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "auditagg.h"
#include "clock.h"
#include "db.h"
#include "ear.h"
#include "evidence.h"
#include "hash.h"
#include "httpd.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "nonce.h"
#include "policy.h"
#include "token.h"
#include "ratelimit.h"
#include "webstatic.h"
#include "x509v.h"

#define VERIFIER_ID_DEVELOPER "attest"
#define MAX_ROOT_FILES 16

typedef struct {
    char listen[128];
    char db_path[1024];
    char admin_token_file[1100];
    char *root_files[MAX_ROOT_FILES];
    size_t n_root_files;
    bool no_aws_root;            /* trust only --root files */
    int nonce_ttl_s;             /* default 60 */
    int64_t clock_skew_ms;       /* default 60 s */
    at_httpd_opts http;          /* --max-body (default 64 KiB), --request-timeout,
                                 * --connection-limit, --per-ip-limit (0 = httpd defaults) */
    double rate_per_s;           /* challenge+attestation per client, default 100 */
    double rate_burst;           /* default 200 */
    double audit_rows_per_min;   /* own rows for anonymous evidence refusals per client, default 60 */
    int audit_verify_interval_s; /* at most one full chain check per interval, default 10 */
    char port_file[1024];        /* write the bound port here (tests) */
    char storage_key_file[1100]; /* key for secrets at rest (default DB.storage-key) */
    char tls_cert_file[1024];    /* serve HTTPS (both or neither) */
    char tls_key_file[1024];
    char log_level[16];
    char issuer[520];    /* EAR "iss": --issuer URL, else http(s)://host:port served */
    char web_root[1024]; /* --web-root: the console's files ("" = the installed copy) */
} verifier_config;

/* Roles by privilege; admin implies every other role. */
typedef enum { ROLE_NONE = 0, ROLE_AGENT, ROLE_GATEWAY, ROLE_AUDITOR, ROLE_OWNER, ROLE_ADMIN } role;

typedef at_ratelimit ratelimit;

typedef struct {
    verifier_config cfg;
    at_db *db;
    pthread_rwlock_t trust_lock;
    at_trust *trust;      /* swap under trust_lock (SIGHUP) */
    bool trusts_sim_root; /* a non-AWS root is pinned: say so */
    verifier_keys *keys;  /* every key and secret file (keys.h) */
    at_metrics *metrics;
    ratelimit *rl;
    char build[64];
    const char *issuer; /* EAR "iss", published once the port is bound (atomic) */
    char issuer_buf[600];
    /* Audit aggregation (audit_agg.c): counts of refusals without a row
     * of their own, written per minute by the flusher thread. */
    at_auditagg *agg;
    ratelimit *audit_rl;
    pthread_t agg_thread;
    pthread_mutex_t agg_lock;
    pthread_cond_t agg_cond;
    bool agg_stop, agg_running;
    /* GET /v1/audit/verify: one at a time, full checks rate-limited. */
    pthread_mutex_t verify_lock;
    int64_t last_full_verify_ns;
    at_webstatic *web; /* the console under /console/ (NULL: not installed) */
} verifier;

/* The request's caller, after authentication. */
typedef struct {
    role role;
    int64_t token_id;
    char actor[64];                     /* "token:3/owner", "anonymous" */
    bool expired;                       /* a known token past its expiry */
    char scope[AT_TOKEN_SCOPE_MAX + 1]; /* policies it is limited to; "" = all */
} caller;

/* May the caller act on this policy (its token's scope)? When not, the
 * response (403 forbidden naming the policy) and audit row are written and
 * false is returned. */
bool require_policy(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who, const char *action,
                    const char *policy);

/* Configuration (config.c): flags and --config FILE.json into c. -1: go
 * on; otherwise the exit status (0 after --help/--version, 2 on a usage
 * error, printed). */
int verifier_config_parse(verifier_config *c, bool *rotate, int argc, char **argv);

/* Maintenance (prune.c), a write job: forget used nonces and proofs past
 * their expiry (never below the time high-water mark), end expired
 * sessions with an audit row. */
at_err verifier_prune(at_db_conn *c, void *ctx, at_diag *d) AT_MUST_USE;

/* Current trust set (a reference: at_trust_unref it); roots.c. */
at_trust *verifier_trust(verifier *v);
at_err verifier_load_roots(verifier *v, at_diag *d) AT_MUST_USE;

/* Authenticate the bearer token and require one of the roles in `need`
 * (a mask of ROLE_BIT()s; admin passes every check). On refusal the
 * response and an audit row are written and false is returned. */
#define ROLE_BIT(r) (1u << (r))
bool require_role(verifier *v, at_http_req *req, at_http_resp *resp, unsigned need, const char *action,
                  caller *who);
/* "agent", "gateway", "auditor", "owner", "admin" or "none". */
const char *caller_role_name(const caller *who);
/* Authenticate without requiring anything (anonymous allowed). */
void identify(verifier *v, at_http_req *req, caller *who);

/* Refuse a request: audit row (outcome "refused", or "error" for 5xx) in
 * its own transaction, then the error response naming the audit id; or,
 * when refusal_gets_row() says no, counted into the per-minute aggregate
 * and answered with "audit_id": null. */
void refuse(verifier *v, at_http_req *req, at_http_resp *resp, const caller *who, const char *action,
            at_err code, const char *message, const at_audit_row *extra);

/* Append one audit row in its own (group-committed) transaction. */
at_err audit_write(verifier *v, const at_audit_row *row, int64_t *id, at_diag *d) AT_MUST_USE;

/* A session's proof of possession (proof.c): what the session's row says
 * of itself, filled as soon as the row is read (for the audit row of a
 * refusal too). */
typedef struct {
    char policy[128];    /* policy name */
    char ref[200];       /* "name@version" */
    char instance[160];  /* module id */
    int64_t expires_ms;  /* ms since epoch */
    uint8_t *key_config; /* RFC 9458 key configuration (owned), with want_key_config */
    size_t key_config_len;
} session_proof;

/* sid known and live, ts_ms (ms since epoch) within --clock-skew of now,
 * mac (32 bytes, README "release proof") made with the session's proof
 * key over name, sid and ts_ms; with want_key_config, the session's
 * attested key configuration copied out. Errors: AT_E_SESSION_EXPIRED
 * (unknown, ended, expired), AT_E_UNAUTHORIZED (stale or wrong MAC),
 * AT_E_KEY_REQUIRED (no attested key), AT_E_INTERNAL; d names the field.
 * Release out with session_proof_cleanup (done already on failure). */
at_err session_proof_check(verifier *v, const char *sid, int64_t ts_ms, const uint8_t mac[32],
                           const char *name, bool want_key_config, session_proof *out,
                           at_diag *d) AT_MUST_USE;
void session_proof_cleanup(session_proof *p);
/* The request's "proof" member: "<ms>.<base64url MAC>" into ts_ms and mac.
 * AT_E_BAD_REQUEST naming the field. */
at_err session_proof_parse(const json_t *proof, int64_t *ts_ms, uint8_t mac[32], at_diag *d) AT_MUST_USE;

/* Audit aggregation (audit_agg.c). A refusal gets its own row when the
 * caller is authenticated, or when it refuses evidence or a release proof
 * (attestation.create, secret.release) or is a 5xx, within the client's
 * row budget; rate-limited requests and every other unauthenticated
 * refusal are only counted. Consumes the budget when it says yes. */
bool refusal_gets_row(verifier *v, bool authenticated, const char *action, at_err code, const char *client);
/* Count one event into the per-minute aggregate (no row now). */
void audit_count(verifier *v, const char *client, const char *actor, const char *action, const char *outcome,
                 const char *code);
/* The action under which anonymous POST /v1/verify results are counted. */
#define AUDIT_VERIFY_RESULT "verify.result"
/* Inside a write job: the refusal's row (*id set), or its count (*id = 0);
 * counted in attest_refusals_total either way. */
at_err audit_refusal_in_job(verifier *v, at_db_conn *conn, bool authenticated, at_err code,
                            const at_audit_row *row, int64_t *id, at_diag *d) AT_MUST_USE;
/* Start the thread writing finished minutes; stop writes everything left. */
int audit_flusher_start(verifier *v);
void audit_flusher_stop(verifier *v);

/* Per-client token bucket for unauthenticated, expensive routes. */
ratelimit *ratelimit_new(double per_s, double burst);
void ratelimit_free(ratelimit *r);
bool ratelimit_allow(ratelimit *r, const char *client, int64_t now_ns);

/* Routes. */
void route_challenge(verifier *v, at_http_req *req, at_http_resp *resp);
void route_verify(verifier *v, at_http_req *req, at_http_resp *resp);
void route_attestations(verifier *v, at_http_req *req, at_http_resp *resp);
void route_policies(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest);
void route_sessions(verifier *v, at_http_req *req, at_http_resp *resp);
void route_session_revoke(verifier *v, at_http_req *req, at_http_resp *resp, const char *id);
void route_secrets(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest);
void route_audit(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest);
void route_jwks(verifier *v, at_http_req *req, at_http_resp *resp);
void route_metrics(verifier *v, at_http_req *req, at_http_resp *resp);
void route_tokens(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest);
void route_peer(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest);

/* Shared pieces. */
/* Look up the current (non-revoked, highest) version of a policy, or a
 * given version. *out: parsed policy (at_policy_free), *version. */
at_err policy_load(at_db_conn *conn, const char *name, int64_t version, at_policy **out, int64_t *version_out,
                   char sha256_hex[65], at_diag *d) AT_MUST_USE;
/* Validate a name used in a URL path: [A-Za-z0-9._-]{1,128}. */
bool valid_name(const char *s);
/* The "evidence" member of a request body: base64 of at most a maximal
 * document (route_verify.c); caller frees *doc. */
at_err decode_evidence(json_t *body, uint8_t **doc, size_t *len, at_diag *d) AT_MUST_USE;
/* A JSON object has only these keys; AT_E_BAD_REQUEST naming the first other. */
at_err only_keys(json_t *o, const char *const *keys, at_diag *d) AT_MUST_USE;
/* The "evidence" member of a request body: base64 of at most a maximal
 * document, decoded into *doc (caller frees). In route_verify.c. */
at_err decode_evidence(json_t *body, uint8_t **doc, size_t *len, at_diag *d) AT_MUST_USE;

#endif
