/* gateway sessions: the verifier says which instances are attested; the
 * gateway believes a session only when its attestation result token (EAR,
 * JWS ES256) verifies against the verifier's keys and binds the very key
 * configuration and endpoint it will seal to. The verifier's answers are
 * peer input, parsed strictly. */
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "ear.h"
#include "evidence.h"
#include "enc.h"
#include "gateway.h"
#include "hash.h"
#include "httpc.h"
#include "x509v.h"

static at_err check_locally(gateway *g, gw_target *t, json_t *token_pcrs, at_diag *d);

/* Check one session from GET /v1/sessions and turn it into a target.
 * *check names the check that failed, for API callers (d's detail, which
 * may name URLs and transport errors of other hosts, is only logged). */
static at_err verify_session(gateway *g, json_t *s, json_t *jwks, gw_target *t, const char **check,
                             at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    json_t *claims = NULL;
    uint8_t *kc = NULL;
    size_t kclen = 0;
    const char *id = json_string_value(json_object_get(s, "id"));
    const char *token = json_string_value(json_object_get(s, "token"));
    const char *endpoint = json_string_value(json_object_get(s, "endpoint"));
    const char *kc64 = json_string_value(json_object_get(s, "key_config"));
    memset(t, 0, sizeof *t);
    *check = "session fields";
    AT_ENSURE(id && token && strlen(id) < sizeof t->session_id, d, AT_E_BAD_FIELD,
              "session: id or token missing");
    AT_ENSURE(endpoint && strlen(endpoint) < sizeof t->endpoint &&
                  (strncmp(endpoint, "http://", 7) == 0 || strncmp(endpoint, "https://", 8) == 0),
              d, AT_E_BAD_FIELD, "session %s: no usable endpoint", id);
    AT_ENSURE(kc64 && at_b64_decode_new(kc64, strlen(kc64), &kc, &kclen) == AT_OK, d, AT_E_KEY_REQUIRED,
              "session %s: no attested key configuration", id);
    *check = "token signature";
    AT_TRY(at_ear_verify(token, jwks, at_now_ms() / 1000, &claims, d));
    *check = "token claims";
    /* The token must bind this session, this key, this endpoint, and an
     * affirming appraisal under our policy. */
    json_t *submods = json_object_get(claims, "submods");
    AT_ENSURE(json_is_object(submods) && json_object_size(submods) == 1, d, AT_E_BAD_FIELD,
              "session %s: token has %zu submods, expected 1", id, json_object_size(submods));
    const char *instance;
    json_t *sub = NULL;
    json_object_foreach(submods, instance, sub)
    {
        const char *status = json_string_value(json_object_get(sub, "ear.status"));
        const char *pid = json_string_value(json_object_get(sub, "ear.appraisal-policy-id"));
        json_t *ae = json_object_get(sub, "ear.veraison.annotated-evidence");
        char want[200];
        snprintf(want, sizeof want, "policy:%s@", g->cfg.policy);
        AT_ENSURE(status && strcmp(status, "affirming") == 0, d, AT_E_FORBIDDEN,
                  "session %s: ear.status %s, expected affirming", id, status ? status : "(none)");
        AT_ENSURE(pid && strncmp(pid, want, strlen(want)) == 0, d, AT_E_FORBIDDEN,
                  "session %s: appraised under %s, expected %s<version>", id, pid ? pid : "(none)", want);
        const char *tsid = json_string_value(json_object_get(ae, "session_id"));
        const char *tkc = json_string_value(json_object_get(ae, "key_config"));
        const char *tep = json_string_value(json_object_get(ae, "endpoint"));
        AT_ENSURE(tsid && strcmp(tsid, id) == 0, d, AT_E_FORBIDDEN, "session %s: the token is for session %s",
                  id, tsid ? tsid : "(none)");
        AT_ENSURE(tkc && strcmp(tkc, kc64) == 0, d, AT_E_FORBIDDEN,
                  "session %s: the token attests another key configuration", id);
        /* The same key in the EAR profile's own claim (draft-ietf-rats-ear,
         * Veraison's key-attestation): a token whose akpub names another
         * key than the one prompts are sealed to is refused. */
        const char *takpub =
            json_string_value(json_object_get(json_object_get(sub, "ear.veraison.key-attestation"), "akpub"));
        char *akpub = NULL;
        AT_TRY(at_ear_akpub(AT_SPAN(kc, kclen), &akpub, d));
        bool same_akpub = takpub && strcmp(takpub, akpub) == 0;
        free(akpub);
        AT_ENSURE(same_akpub, d, AT_E_FORBIDDEN,
                  "session %s: ear.veraison.key-attestation akpub %s, expected the key of the session's key"
                  " configuration",
                  id, takpub ? "names another key" : "is missing");
        *check = "endpoint binding";
        AT_ENSURE(tep && strcmp(tep, endpoint) == 0, d, AT_E_FORBIDDEN,
                  "session %s: the token names endpoint %s, the session %s", id, tep ? tep : "(none)",
                  endpoint);
        /* Only a token whose endpoint the document itself bound (binding
         * version >= 1) says where the attested instance is. */
        json_t *bv = json_object_get(ae, "binding_version");
        AT_ENSURE(json_is_integer(bv) && json_integer_value(bv) >= AT_BINDING_VERSION, d,
                  AT_E_ENDPOINT_MISMATCH,
                  "session %s: the token's endpoint is not bound by the document (binding_version %s,"
                  " expected >= %d)",
                  id, json_is_integer(bv) ? "too old" : "absent", AT_BINDING_VERSION);
        snprintf(t->instance_id, sizeof t->instance_id, "%s", instance);
        snprintf(t->policy_ref, sizeof t->policy_ref, "%s", pid + strlen("policy:"));
        /* What the instance runs, in one header: the appraised PCRs. */
        char *pj = json_dumps(json_object_get(ae, "pcrs"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        at_err hrc = pj ? at_sha256_hex(AT_SPAN(pj, strlen(pj)), t->pcr_digest, d)
                        : at_fail(d, AT_E_INTERNAL, "session %s: out of memory", id);
        free(pj);
        AT_TRY(hrc);
    }
    *check = "key configuration";
    AT_TRY(at_ohttp_key_config_parse(AT_SPAN(kc, kclen), &t->key_config, d));
    snprintf(t->session_id, sizeof t->session_id, "%s", id);
    snprintf(t->endpoint, sizeof t->endpoint, "%s", endpoint);
    t->expires_ms = json_integer_value(json_object_get(claims, "exp")) * 1000;
    if (g->cfg.verify_locally) {
        /* Once per session: a session's key and PCRs do not change. */
        bool known = false;
        pthread_mutex_lock(&g->lock);
        for (size_t i = 0; i < g->n_targets; i++)
            known = known || (g->targets[i].checked_locally && strcmp(g->targets[i].session_id, id) == 0);
        pthread_mutex_unlock(&g->lock);
        t->checked_locally = known;
        if (!known) {
            /* submods has exactly one entry, sub (checked above). */
            json_t *token_pcrs =
                json_object_get(json_object_get(sub, "ear.veraison.annotated-evidence"), "pcrs");
            *check = "local evidence";
            AT_TRY(check_locally(g, t, token_pcrs, d));
        }
    }
    rc = AT_OK;
out:
    json_decref(claims);
    free(kc);
    return rc;
}

/* --verify-locally: ask the instance for a document bound to our own nonce
 * and check it here (signature, chain to our roots, nonce), then require
 * that it attests the key we will seal to and the PCRs the verifier's token
 * reports. The verifier's word is corroborated by the hardware's. */
static at_err check_locally(gateway *g, gw_target *t, json_t *token_pcrs, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t nonce[32], *doc = NULL;
    size_t doc_len = 0;
    json_t *resp = NULL, *pcrs = NULL;
    char url[700];
    long status = 0;
    at_evidence ev;
    bool have_ev = false;
    AT_ENSURE(RAND_bytes(nonce, sizeof nonce) == 1, d, AT_E_INTERNAL, "no randomness");
    char *nb = at_b64_encode_new(AT_SPAN(nonce, sizeof nonce));
    json_t *body = json_pack("{s:s}", "nonce", nb ? nb : "");
    free(nb);
    snprintf(url, sizeof url, "%s/v1/evidence", t->endpoint);
    rc = at_httpc_json("POST", url, NULL, body, &status, &resp, d);
    json_decref(body);
    if (rc != AT_OK)
        goto out;
    const char *e64 = json_string_value(json_object_get(resp, "evidence"));
    AT_ENSURE(status == 200 && e64 && at_b64_decode_new(e64, strlen(e64), &doc, &doc_len) == AT_OK, d,
              AT_E_UNAVAILABLE, "instance %s: no fresh evidence (HTTP %ld)", t->instance_id, status);
    at_verify_opts o = {.check_nonce = true, .nonce = AT_SPAN(nonce, sizeof nonce)};
    rc = at_evidence_verify(g->trust, AT_SPAN(doc, doc_len), &o, &ev);
    have_ev = true;
    if (rc != AT_OK) {
        rc = at_fail(d, rc, "instance %s: its own document does not verify here: %s", t->instance_id,
                     ev.diag.msg);
        goto out;
    }
    /* The instance's document must be evidence for a relying party at the
     * endpoint the verifier's token names (lib/binding). */
    rc = at_binding_check(ev.payload.has_user_data ? ev.payload.user_data : AT_SPAN_NULL, AT_PURPOSE_EVIDENCE,
                          t->endpoint, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "instance %s: ", t->instance_id);
        goto out;
    }
    at_buf kc;
    at_buf_init(&kc);
    bool same_key = at_ohttp_key_config_encode(&t->key_config, &kc, d) == AT_OK &&
                    at_span_eq(at_buf_span(&kc), ev.payload.public_key);
    at_buf_cleanup(&kc);
    AT_ENSURE(same_key, d, AT_E_FORBIDDEN, "instance %s: its document attests another key than its session",
              t->instance_id);
    pcrs = at_nitro_pcrs_json(&ev.payload);
    AT_ENSURE(json_is_object(token_pcrs) && json_equal(pcrs, token_pcrs), d, AT_E_PCR_MISMATCH,
              "instance %s: its PCRs differ from those the verifier appraised", t->instance_id);
    t->checked_locally = true;
    rc = AT_OK;
out:
    if (have_ev)
        at_evidence_cleanup(&ev);
    json_decref(resp);
    json_decref(pcrs);
    free(doc);
    return rc;
}

/* No live session for our policy: why, from the newest session the
 * verifier knows for it (ended because its policy version was revoked, or
 * expired); no_verified_instance when there is none or it cannot be read. */
static at_err why_none_active(gateway *g)
{
    char url[1400];
    long status = 0;
    json_t *list = NULL;
    at_diag d = {{0}};
    at_err code = AT_E_NO_VERIFIED_INSTANCE;
    snprintf(url, sizeof url, "%s/v1/sessions?policy=%s&state=all", g->cfg.verifier, g->cfg.policy);
    if (at_httpc_json("GET", url, g->token[0] ? g->token : NULL, NULL, &status, &list, &d) == AT_OK &&
        status == 200) {
        /* Newest first (the verifier's order). */
        const char *state =
            json_string_value(json_object_get(json_array_get(json_object_get(list, "sessions"), 0), "state"));
        if (state && strcmp(state, "policy revoked") == 0)
            code = AT_E_POLICY_REVOKED;
        else if (state && strcmp(state, "expired") == 0)
            code = AT_E_ATTESTATION_EXPIRED;
    }
    json_decref(list);
    return code;
}

static at_err refresh(gateway *g, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    json_t *jwks = NULL, *list = NULL, *atts = NULL;
    char url[1400];
    long status = 0;
    if (g->pinned_jwks) {
        jwks = json_incref(g->pinned_jwks);
    } else {
        snprintf(url, sizeof url, "%s/.well-known/jwks.json", g->cfg.verifier);
        AT_TRY(at_httpc_json("GET", url, NULL, NULL, &status, &jwks, d));
        AT_ENSURE(status == 200 && json_is_array(json_object_get(jwks, "keys")), d, AT_E_UNAVAILABLE,
                  "verifier: JWKS answered HTTP %ld", status);
    }
    snprintf(url, sizeof url, "%s/v1/sessions?policy=%s&state=active", g->cfg.verifier, g->cfg.policy);
    AT_TRY(at_httpc_json("GET", url, g->token[0] ? g->token : NULL, NULL, &status, &list, d));
    AT_ENSURE(status == 200, d, AT_E_UNAVAILABLE, "verifier: sessions answered HTTP %ld (%s)", status,
              json_string_value(json_object_get(json_object_get(list, "error"), "code")) ?: "?");
    gw_target fresh[GW_MAX_TARGETS];
    size_t n = 0, i, refused = 0;
    at_err why_code = AT_E_NO_VERIFIED_INSTANCE;
    atts = json_array();
    char why[700] = "", why_public[300] = "";
    json_t *s;
    json_array_foreach(json_object_get(list, "sessions"), i, s)
    {
        if (n == GW_MAX_TARGETS) {
            /* Loud, never silent: the rest of the sessions are not used. */
            at_log("warn", "sessions",
                   "%zu active sessions, only the first %d verified ones are "
                   "used",
                   json_array_size(json_object_get(list, "sessions")), GW_MAX_TARGETS);
            break;
        }
        at_diag sd = {{0}};
        const char *check = "session";
        at_err src = verify_session(g, s, jwks, &fresh[n], &check, &sd);
        if (src == AT_OK) {
            char exp[40];
            at_time_rfc3339(fresh[n].expires_ms / 1000, exp, sizeof exp);
            json_array_append_new(
                atts, json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:b}", "instance", fresh[n].instance_id, "session",
                                fresh[n].session_id, "policy", fresh[n].policy_ref, "expires_at", exp,
                                "pcr_digest", fresh[n].pcr_digest, "token", json_object_get(s, "token"),
                                "checked_locally", fresh[n].checked_locally));
            n++;
        } else {
            at_log("warn", "session", "not used: %s", sd.msg);
            if (!refused++) {
                snprintf(why, sizeof why, "%.600s", sd.msg);
                const char *sid = json_string_value(json_object_get(s, "id"));
                const char *inst = json_string_value(json_object_get(s, "instance_id"));
                snprintf(why_public, sizeof why_public,
                         "session %.80s of instance %.128s: %s check failed (%s)", sid ? sid : "?",
                         inst ? inst : "?", check, at_err_str(src));
                why_code = src == AT_E_SESSION_EXPIRED        ? AT_E_ATTESTATION_EXPIRED
                           : strncmp(check, "token ", 6) == 0 ? AT_E_TOKEN_INVALID
                                                              : AT_E_NO_VERIFIED_INSTANCE;
            }
        }
    }
    if (n == 0 && refused == 0)
        why_code = why_none_active(g);
    pthread_mutex_lock(&g->lock);
    json_decref(g->attestations);
    g->attestations = atts;
    json_decref(g->jwks);
    g->jwks = json_incref(jwks);
    atts = NULL;
    g->last_code = n ? AT_OK : why_code;
    memcpy(g->targets, fresh, n * sizeof fresh[0]);
    g->n_targets = n;
    g->refreshed_ms = at_now_ms();
    if (refused) {
        snprintf(g->last_error, sizeof g->last_error, "%zu session(s) refused, e.g. %s", refused, why);
        snprintf(g->last_error_public, sizeof g->last_error_public, "%zu session(s) refused, e.g. %s",
                 refused, why_public);
    } else {
        g->last_error[0] = g->last_error_public[0] = '\0';
    }
    pthread_mutex_unlock(&g->lock);
    rc = AT_OK;
out:
    json_decref(atts);
    json_decref(jwks);
    json_decref(list);
    return rc;
}

at_err gw_pick_target(gateway *g, gw_target *out, at_diag *d)
{
    int64_t now = at_now_ms();
    pthread_mutex_lock(&g->lock);
    bool stale = now - g->refreshed_ms > (int64_t)g->cfg.refresh_s * 1000 || g->n_targets == 0;
    pthread_mutex_unlock(&g->lock);
    if (stale) {
        at_diag rd = {{0}};
        at_err rrc = refresh(g, &rd);
        if (rrc != AT_OK) {
            at_log("error", "refresh", "%s", rd.msg);
            pthread_mutex_lock(&g->lock);
            /* Fail closed: without a fresh, verified list nothing is used. */
            g->n_targets = 0;
            g->last_code = AT_E_NO_VERIFIED_INSTANCE;
            snprintf(g->last_error, sizeof g->last_error, "%s", rd.msg);
            snprintf(g->last_error_public, sizeof g->last_error_public,
                     "the verifier's session list could not be fetched (%s)", at_err_str(rrc));
            pthread_mutex_unlock(&g->lock);
        }
    }
    at_err rc = AT_OK;
    pthread_mutex_lock(&g->lock);
    size_t live = 0, known = g->n_targets;
    for (size_t i = 0; i < g->n_targets; i++)
        if (g->targets[i].expires_ms > now)
            g->targets[live++] = g->targets[i];
    g->n_targets = live;
    if (live == 0) {
        /* The public reason only: the detail (URLs, transport errors of
         * other hosts) is in the log. */
        at_err why = known                   ? AT_E_ATTESTATION_EXPIRED
                     : g->last_code != AT_OK ? g->last_code
                                             : AT_E_NO_VERIFIED_INSTANCE;
        rc = at_fail(d, why, "no attested instance for policy %s (%s)%s%s", g->cfg.policy,
                     why == AT_E_POLICY_REVOKED        ? "its policy version was revoked"
                     : why == AT_E_ATTESTATION_EXPIRED ? "the attestation expired"
                     : why == AT_E_TOKEN_INVALID       ? "the attestation result token does not verify"
                                                       : "no session verifies",
                     g->last_error_public[0] ? ": " : "", g->last_error_public);
    } else {
        *out = g->targets[g->next++ % live];
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

void gw_drop_target(gateway *g, const char *session_id)
{
    pthread_mutex_lock(&g->lock);
    size_t k = 0;
    for (size_t i = 0; i < g->n_targets; i++)
        if (strcmp(g->targets[i].session_id, session_id) != 0)
            g->targets[k++] = g->targets[i];
    g->n_targets = k;
    pthread_mutex_unlock(&g->lock);
}
