/* agent session: the verifier protocol from the attested side. Answers
 * from the verifier are peer input (bounded by httpc, parsed strictly);
 * the session key and released secrets exist only in wiped memory. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "enc.h"
#include "hash.h"
#include "sealfile.h"
#include "seal.h"
#include "sim.h"
#include "vclient.h"
#include "x509v.h"

at_err agent_sim_pcrs(const agent_config *c, at_format f, bool set[AT_MAX_PCRS],
                      uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN], at_diag *d)
{
    at_sim_default_pcrs(f, AT_SPAN_NULL, set, pcr);
    /* What an enclave image measures: the code, its version, its
     * configuration (for nitro-tpm: the boot manager, Secure Boot, the
     * kernel command line, which stays all zero when unmodified). */
    char cfg[2400];
    /* allow_remote_upstream is measured only when set: a relying party
     * sees in PCR2 that answers may leave the instance in clear. */
    snprintf(cfg, sizeof cfg, "{\"policy\":\"%s\",\"upstream\":\"%s\",\"model_pcr\":%d%s}", c->policy,
             c->upstream, c->model_pcr, c->allow_remote_upstream ? ",\"allow_remote_upstream\":true" : "");
    unsigned code = f == AT_FORMAT_NITRO_TPM ? 4 : 0, version = f == AT_FORMAT_NITRO_TPM ? 7 : 1;
    at_err rc = at_sha384_file("/proc/self/exe", pcr[code], d);
    if (rc != AT_OK)
        return rc;
    static const char ver[] = "attest-agent " PACKAGE_VERSION;
    if ((rc = at_sha384(AT_SPAN(ver, strlen(ver)), pcr[version], d)) != AT_OK)
        return rc;
    if (f == AT_FORMAT_NITRO_TPM) {
        uint8_t h[AT_SHA384_LEN];
        if ((rc = at_sha384(AT_SPAN(cfg, strlen(cfg)), h, d)) != AT_OK)
            return rc;
        memset(pcr[8], 0, AT_SHA384_LEN);
        if ((rc = at_pcr_extend(pcr[8], AT_SPAN(h, sizeof h))) != AT_OK)
            return rc;
    } else if ((rc = at_sha384(AT_SPAN(cfg, strlen(cfg)), pcr[2], d)) != AT_OK) {
        return rc;
    }
    for (int i = 0; i < AT_MAX_PCRS; i++)
        if (c->sim_pcr_set[i]) {
            set[i] = true;
            memcpy(pcr[i], c->sim_pcr[i], AT_SHA384_LEN);
        }
    if (c->model[0]) {
        int idx = c->model_pcr >= 0 ? c->model_pcr : f == AT_FORMAT_NITRO_TPM ? 15 : 16;
        if (!set[idx]) {
            set[idx] = true;
            memset(pcr[idx], 0, AT_SHA384_LEN);
        }
        if ((rc = at_pcr_measure_file(pcr[idx], c->model, d)) != AT_OK)
            return rc;
    }
    return AT_OK;
}

static at_vclient vclient(const agent *a) { return (at_vclient){.url = a->cfg.verifier, .bearer = a->token}; }

/* The transport detail (URL, connect result) of a call that got no answer
 * goes to the log, not into /v1/status. */
static at_err no_answer(at_err rc, long status, const char *what, at_diag *td, at_diag *d)
{
    if (rc == AT_OK)
        return AT_OK;
    if (status != 0 || (rc != AT_E_UNAVAILABLE && rc != AT_E_TOO_LARGE))
        return at_fail(d, rc, "%s", td->msg);
    at_log("warn", "verifier", "%s: %s", what, td->msg);
    return at_fail(d, rc, "verifier: %s: no answer (%s)", what, at_err_str(rc));
}

static at_err verifier_call(const agent *a, const char *method, const char *path, json_t *body, json_t **out,
                            at_diag *d)
{
    at_vclient c = vclient(a);
    long status = 0;
    json_t *ans = NULL;
    at_diag td = {{0}};
    char what[300];
    snprintf(what, sizeof what, "%s %s", method, path);
    at_err rc = no_answer(at_vclient_call(&c, method, path, body, &status, &ans, &td), status, what, &td, d);
    if (rc == AT_OK)
        *out = ans;
    else
        json_decref(ans);
    return rc;
}

/* One attestation: challenge, document, POST /v1/attestations, open the
 * sealed session key (lib/vclient). */
static at_err attest_once(agent *a, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t nonce[AT_VCLIENT_NONCE_MAX];
    size_t nonce_len = 0;
    long status = 0;
    at_buf doc, bind;
    at_buf_init(&doc);
    at_buf_init(&bind);
    at_vclient_session s;
    at_vclient c = vclient(a);
    at_diag td = {{0}};
    AT_TRY(no_answer(at_vclient_challenge(&c, nonce, &nonce_len, &status, &td), status, "POST /v1/challenge",
                     &td, d));
    /* Bound to purpose "session" and the endpoint we ask the verifier to
     * record: only such a document makes or replaces our session. */
    pthread_mutex_lock(&a->lock);
    rc = at_buf_append_span(&bind, at_buf_span(&a->bind_session));
    pthread_mutex_unlock(&a->lock);
    AT_TRY(rc);
    AT_TRY(at_attester_document(a->attester, AT_SPAN(nonce, nonce_len), at_buf_span(&bind),
                                at_buf_span(&a->key_config), &doc, d));
    AT_TRY(no_answer(at_vclient_attest(&c, at_buf_span(&doc), a->cfg.policy, a->cfg.advertise,
                                       at_ohttp_keyset_key(a->keys, AGENT_KEY_ID), &s, &status, NULL, &td),
                     status, "POST /v1/attestations", &td, d));
    pthread_mutex_lock(&a->lock);
    snprintf(a->session_id, sizeof a->session_id, "%s", s.id);
    memcpy(a->session_key, s.key, sizeof a->session_key);
    a->session_expires_ms = s.expires_ms;
    a->have_session = true;
    snprintf(a->session_state, sizeof a->session_state, "active");
    a->last_error[0] = '\0';
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->lock);
    at_log("info", "attested", "session %s under policy %s until %lld", s.id, a->cfg.policy,
           (long long)s.expires_ms);
    rc = AT_OK;
out:
    at_wipe(&s, sizeof s);
    at_buf_cleanup(&doc);
    at_buf_cleanup(&bind);
    return rc;
}

static void wait_until(agent *a, int64_t until_ms)
{
    /* Called with a->lock held; returns at until_ms, on stop or when asked
     * to attest at once. */
    struct timespec until;
    until.tv_sec = (time_t)(until_ms / 1000);
    until.tv_nsec = (long)(until_ms % 1000) * 1000000;
    while (!a->stopping && !a->attest_now && pthread_cond_timedwait(&a->changed, &a->lock, &until) == 0)
        ;
}

/* Forget the session (it ended at the verifier: `why`) and have the loop
 * attest again at once. */
static void session_lost(agent *a, const char *sid, const char *why)
{
    pthread_mutex_lock(&a->lock);
    if (a->have_session && strcmp(a->session_id, sid) == 0) {
        a->have_session = false;
        at_wipe(a->session_key, sizeof a->session_key);
        snprintf(a->session_state, sizeof a->session_state, "%s", why);
        snprintf(a->last_error, sizeof a->last_error,
                 "session_expired: session %s is %s at the verifier; attesting again", sid, why);
        a->attest_now = true;
        pthread_cond_broadcast(&a->changed);
    }
    pthread_mutex_unlock(&a->lock);
    at_log("warn", "session", "session %s is %s at the verifier; attesting again", sid, why);
}

/* Ask the verifier whether our session is still active (GET
 * /v1/sessions?id=, agent token). AT_OK when it is, or when the verifier
 * cannot say (transport trouble: logged, the session kept);
 * AT_E_SESSION_EXPIRED when it ended, was replaced or is unknown: the
 * session is then forgotten and /v1/status says why. */
static at_err check_session(agent *a, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char sid[80], path[200];
    json_t *out = NULL;
    pthread_mutex_lock(&a->lock);
    bool have = a->have_session;
    snprintf(sid, sizeof sid, "%s", a->session_id);
    pthread_mutex_unlock(&a->lock);
    if (!have || !a->token[0])
        return AT_OK;
    snprintf(path, sizeof path, "/v1/sessions?id=%s&state=all", sid);
    at_diag cd = {{0}};
    if (verifier_call(a, "GET", path, NULL, &out, &cd) != AT_OK) {
        /* The verifier cannot say: keep the session (the renewal will tell). */
        at_log("warn", "session", "cannot check session %s: %s", sid, cd.msg);
        return AT_OK;
    }
    json_t *list = json_object_get(out, "sessions");
    json_t *s = json_array_size(list) == 1 ? json_array_get(list, 0) : NULL;
    const char *id = json_string_value(json_object_get(s, "id"));
    const char *state = json_string_value(json_object_get(s, "state"));
    if (id && state && strcmp(id, sid) == 0 && strcmp(state, "active") == 0) {
        rc = AT_OK;
        goto out;
    }
    char why[32];
    snprintf(why, sizeof why, "%s", id && state && strcmp(id, sid) == 0 ? state : "unknown");
    session_lost(a, sid, why);
    rc = at_fail(d, AT_E_SESSION_EXPIRED, "session %s: %s at the verifier", sid, why);
out:
    json_decref(out);
    return rc;
}

void *agent_session_loop(void *arg)
{
    agent *a = arg;
    int backoff_s = 1;
    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        a->attest_now = false;
        pthread_mutex_unlock(&a->lock);
        at_diag d = {{0}};
        at_err rc = attest_once(a, &d);
        pthread_mutex_lock(&a->lock);
        int64_t wait_ms;
        if (rc == AT_OK) {
            backoff_s = 1;
            int64_t left = a->session_expires_ms - at_now_ms();
            wait_ms = left > 3000 ? left * 2 / 3 : 1000;
        } else {
            snprintf(a->last_error, sizeof a->last_error, "%s: %s", at_err_str(rc), d.msg);
            pthread_mutex_unlock(&a->lock);
            at_log("error", "attest", "%s (retry in %d s)", a->last_error, backoff_s);
            pthread_mutex_lock(&a->lock);
            wait_ms = (int64_t)backoff_s * 1000;
            backoff_s = backoff_s >= 30 ? 30 : backoff_s * 2;
        }
        int64_t renew_at = at_now_ms() + wait_ms;
        /* Until the renewal: check the session by id each tick, so an ended
         * or replaced session is noticed at once, not at the next renewal. */
        while (!a->stopping && !a->attest_now) {
            int64_t now = at_now_ms(), next = renew_at;
            bool check = a->have_session && a->token[0] && a->cfg.session_check_s > 0;
            if (check && now + (int64_t)a->cfg.session_check_s * 1000 < renew_at)
                next = now + (int64_t)a->cfg.session_check_s * 1000;
            wait_until(a, next);
            if (a->stopping || a->attest_now || at_now_ms() >= renew_at)
                break;
            if (check) {
                pthread_mutex_unlock(&a->lock);
                at_diag cd = {{0}};
                if (check_session(a, &cd) != AT_OK)
                    at_log("info", "session", "%s", cd.msg); /* attest_now is set */
                pthread_mutex_lock(&a->lock);
            }
        }
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Release secret `name` with a session-key proof and open it (sealed to our
 * key); appends the value to out (a secret buffer). */
static at_err release_secret(agent *a, const char *name, at_buf *out, at_diag *d)
{
    uint8_t key[sizeof a->session_key];
    char sid[sizeof a->session_id];
    pthread_mutex_lock(&a->lock);
    bool have = a->have_session;
    if (have) {
        snprintf(sid, sizeof sid, "%s", a->session_id);
        memcpy(key, a->session_key, sizeof key);
    }
    pthread_mutex_unlock(&a->lock);
    if (!have)
        return at_fail(d, AT_E_SESSION_EXPIRED, "release: no session yet");
    at_vclient c = vclient(a);
    at_diag td = {{0}};
    long status = 0;
    char what[300];
    snprintf(what, sizeof what, "POST /v1/secrets/%s/release", name);
    at_err rc = no_answer(at_vclient_release(&c, sid, key, name, at_now_ms(),
                                             at_ohttp_keyset_key(a->keys, AGENT_KEY_ID), out, &status, &td),
                          status, what, &td, d);
    at_wipe(key, sizeof key);
    if (rc == AT_E_SESSION_EXPIRED)
        session_lost(a, sid, "ended");
    return rc;
}

at_err agent_unseal_model(agent *a, at_diag *d)
{
    at_buf key;
    at_buf_init_secret(&key);
    /* Checked again here: the file may have been replaced since the start. */
    at_err rc = at_sealfile_check_secret(a->cfg.model_sealed, a->cfg.model_secret, d);
    if (rc == AT_OK)
        rc = release_secret(a, a->cfg.model_secret, &key, d);
    if (rc == AT_OK && key.len != AT_SEALFILE_KEY_LEN)
        rc = at_fail(d, AT_E_BAD_FIELD, "model: secret %s is %zu bytes, expected a 32-byte data key",
                     a->cfg.model_secret, key.len);
    if (rc == AT_OK)
        rc = at_sealfile_open(a->cfg.model_sealed, a->cfg.model_out, key.p, d);
    at_buf_cleanup(&key);
    if (rc == AT_OK) {
        pthread_mutex_lock(&a->lock);
        a->model_ready = true;
        pthread_mutex_unlock(&a->lock);
        at_log("info", "model", "opened %s into %s with the released key %s", a->cfg.model_sealed,
               a->cfg.model_out, a->cfg.model_secret);
    }
    return rc;
}
