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
#include "httpc.h"
#include "sealfile.h"
#include "seal.h"
#include "sim.h"
#include "x509v.h"

at_err agent_sim_pcrs(const agent_config *c, at_format f, bool set[AT_MAX_PCRS],
                      uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN], at_diag *d)
{
    at_sim_default_pcrs(f, AT_SPAN_NULL, set, pcr);
    /* What an enclave image measures: the code, its version, its
     * configuration (for nitro-tpm: the boot manager, Secure Boot, the
     * kernel command line, which stays all zero when unmodified). */
    char cfg[2400];
    snprintf(cfg, sizeof cfg, "{\"policy\":\"%s\",\"upstream\":\"%s\",\"model_pcr\":%d}", c->policy,
             c->upstream, c->model_pcr);
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

static at_err verifier_call(const agent *a, const char *method, const char *path, json_t *body,
                            json_t **out, at_diag *d)
{
    char url[1300];
    snprintf(url, sizeof url, "%s%s", a->cfg.verifier, path);
    long status = 0;
    json_t *resp = NULL;
    at_diag td = {{0}};
    at_err rc = at_httpc_json(method, url, a->token[0] ? a->token : NULL, body, &status, &resp, &td);
    if (rc != AT_OK) {
        /* The transport detail (URL, connect result) goes to the log, not
         * into /v1/status. */
        at_log("warn", "verifier", "%s %s: %s", method, path, td.msg);
        return at_fail(d, rc, "verifier: %s %s: no answer (%s)", method, path, at_err_str(rc));
    }
    if (status < 200 || status >= 300) {
        json_t *e = json_object_get(resp, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        rc = at_fail(d, code ? at_err_from_str(code) : AT_E_UNAVAILABLE, "verifier: %s %s: HTTP %ld %s: %s",
                     method, path, status, code ? code : "",
                     json_string_value(json_object_get(e, "message")) ?: "");
        json_decref(resp);
        return rc;
    }
    *out = resp;
    return AT_OK;
}

at_err agent_attest_once(agent *a, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    json_t *out = NULL, *body = NULL;
    uint8_t *nonce = NULL, *sealed = NULL;
    size_t nonce_len = 0, sealed_len = 0;
    at_buf doc, key, bind;
    at_buf_init(&doc);
    at_buf_init(&bind);
    at_buf_init_secret(&key);
    char *ev = NULL;
    AT_TRY(verifier_call(a, "POST", "/v1/challenge", NULL, &out, d));
    const char *nb = json_string_value(json_object_get(out, "nonce"));
    AT_ENSURE(nb && at_b64_decode_new(nb, strlen(nb), &nonce, &nonce_len) == AT_OK && nonce_len <= 64,
              d, AT_E_BAD_FIELD, "verifier: challenge without a usable nonce");
    json_decref(out);
    out = NULL;
    /* Bound to purpose "session" and the endpoint we ask the verifier to
     * record: only such a document makes or replaces our session. */
    pthread_mutex_lock(&a->lock);
    rc = at_buf_append_span(&bind, at_buf_span(&a->bind_session));
    pthread_mutex_unlock(&a->lock);
    AT_TRY(rc);
    AT_TRY(at_attester_document(a->attester, AT_SPAN(nonce, nonce_len), at_buf_span(&bind),
                                at_buf_span(&a->key_config), &doc, d));
    AT_ENSURE((ev = at_b64_encode_new(at_buf_span(&doc))), d, AT_E_INTERNAL, "out of memory");
    body = json_pack("{s:s,s:s,s:s}", "evidence", ev, "policy", a->cfg.policy, "endpoint",
                     a->cfg.advertise);
    AT_ENSURE(body, d, AT_E_INTERNAL, "out of memory");
    AT_TRY(verifier_call(a, "POST", "/v1/attestations", body, &out, d));
    json_t *sess = json_object_get(out, "session");
    const char *sid = json_string_value(json_object_get(sess, "id"));
    const char *ks = json_string_value(json_object_get(sess, "key_sealed"));
    json_t *exp = json_object_get(sess, "expires_at_ms");
    AT_ENSURE(sid && strlen(sid) < sizeof a->session_id && ks && json_is_integer(exp), d,
              AT_E_BAD_FIELD, "verifier: attestation answer without session id, sealed key or expiry");
    AT_ENSURE(at_b64_decode_new(ks, strlen(ks), &sealed, &sealed_len) == AT_OK, d, AT_E_BAD_FIELD,
              "verifier: key_sealed is not base64");
    AT_TRY(at_seal_open(at_ohttp_keyset_key(a->keys, AGENT_KEY_ID), AT_SEAL_INFO_SESSION,
                        AT_SPAN(sealed, sealed_len), &key, d));
    AT_ENSURE(key.len == 32, d, AT_E_BAD_FIELD, "verifier: session key of %zu bytes", key.len);
    pthread_mutex_lock(&a->lock);
    snprintf(a->session_id, sizeof a->session_id, "%s", sid);
    memcpy(a->session_key, key.p, 32);
    a->session_expires_ms = json_integer_value(exp);
    a->have_session = true;
    snprintf(a->session_state, sizeof a->session_state, "active");
    a->last_error[0] = '\0';
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->lock);
    at_log("info", "attested", "session %s under policy %s until %lld", sid, a->cfg.policy,
         (long long)json_integer_value(exp));
    rc = AT_OK;
out:
    json_decref(out);
    json_decref(body);
    free(ev);
    free(nonce);
    free(sealed);
    at_buf_cleanup(&doc);
    at_buf_cleanup(&bind);
    at_buf_cleanup(&key);
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

void agent_session_lost(agent *a, const char *sid, const char *why)
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

at_err agent_check_session(agent *a, at_diag *d)
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
    agent_session_lost(a, sid, why);
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
        at_err rc = agent_attest_once(a, &d);
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
                if (agent_check_session(a, &cd) != AT_OK)
                    at_log("info", "session", "%s", cd.msg); /* attest_now is set */
                pthread_mutex_lock(&a->lock);
            }
        }
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

at_err agent_release_secret(agent *a, const char *name, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t proof_key[32], *sealed = NULL;
    size_t sealed_len = 0;
    char sid[80], proof[128], path[300], info[300];
    json_t *body = NULL, *resp = NULL;
    pthread_mutex_lock(&a->lock);
    bool have = a->have_session;
    if (have) {
        snprintf(sid, sizeof sid, "%s", a->session_id);
        at_session_proof_key(AT_SPAN(a->session_key, 32), proof_key);
    }
    pthread_mutex_unlock(&a->lock);
    AT_ENSURE(have, d, AT_E_SESSION_EXPIRED, "release: no session yet");
    AT_TRY(at_release_proof_make(AT_SPAN(proof_key, 32), name, sid, at_now_ms(), proof, sizeof proof));
    body = json_pack("{s:s,s:s}", "session", sid, "proof", proof);
    snprintf(path, sizeof path, "/v1/secrets/%s/release", name);
    rc = verifier_call(a, "POST", path, body, &resp, d);
    if (rc == AT_E_SESSION_EXPIRED)
        agent_session_lost(a, sid, "ended");
    AT_TRY(rc);
    const char *s64 = json_string_value(json_object_get(resp, "sealed"));
    AT_ENSURE(s64 && at_b64_decode_new(s64, strlen(s64), &sealed, &sealed_len) == AT_OK, d,
              AT_E_BAD_FIELD, "verifier: release answer without a sealed value");
    snprintf(info, sizeof info, "%s%s", AT_SEAL_INFO_SECRET_PREFIX, name);
    AT_TRY(at_seal_open(at_ohttp_keyset_key(a->keys, AGENT_KEY_ID), info, AT_SPAN(sealed, sealed_len),
                        out, d));
    rc = AT_OK;
out:
    at_wipe(proof_key, sizeof proof_key);
    json_decref(body);
    json_decref(resp);
    free(sealed);
    return rc;
}

at_err agent_unseal_model(agent *a, at_diag *d)
{
    at_buf key;
    at_buf_init_secret(&key);
    at_err rc = agent_release_secret(a, a->cfg.model_secret, &key, d);
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
