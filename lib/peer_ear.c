/* peer_ear: the verifier variant's prover (docs/mutual-attestation.md
 * "Through the verifier"). Proof = u16 BE len ‖ EAR token ‖ u16 BE len ‖
 * peer binding, both compact JWS by the verifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "ear.h"
#include "enc.h"
#include "peer_ear.h"
#include "seal.h"

#define BINDING_CLAIM "attest.peer-binding"

struct at_peer_ear {
    char *url, *sid, *token, *policy;
    uint8_t key[AT_VCLIENT_SESSION_KEY_LEN];
    int64_t at_ms;
    json_t *jwks; /* cache */
};

at_err at_peer_ear_new(const at_peer_ear_opts *o, at_peer_ear **out, at_diag *d)
{
    if (!o || !o->verifier_url || !o->session_id || !o->session_key || !o->token || !o->peer_policy_name)
        return at_fail(d, AT_E_BAD_REQUEST,
                       "peer: the verifier variant needs a verifier URL, a session "
                       "(id, key, token) and the peer's policy name");
    at_peer_ear *e = calloc(1, sizeof *e);
    if (!e)
        return at_fail(d, AT_E_INTERNAL, "peer: out of memory");
    e->url = strdup(o->verifier_url);
    e->sid = strdup(o->session_id);
    e->token = strdup(o->token);
    e->policy = strdup(o->peer_policy_name);
    memcpy(e->key, o->session_key, sizeof e->key);
    e->at_ms = o->at_ms;
    if (!e->url || !e->sid || !e->token || !e->policy) {
        at_peer_ear_free(e);
        return at_fail(d, AT_E_INTERNAL, "peer: out of memory");
    }
    *out = e;
    return AT_OK;
}

void at_peer_ear_free(at_peer_ear *e)
{
    if (!e)
        return;
    free(e->url);
    free(e->sid);
    free(e->token);
    free(e->policy);
    json_decref(e->jwks);
    at_wipe(e, sizeof *e);
    free(e);
}

void at_peer_ear_set_jwks(at_peer_ear *e, json_t *jwks)
{
    json_decref(e->jwks);
    e->jwks = json_incref(jwks);
}

static at_err fetch_jwks(at_peer_ear *e, at_diag *d)
{
    at_vclient vc = {.url = e->url};
    json_t *ans = NULL;
    at_err rc = at_vclient_call(&vc, "GET", "/.well-known/jwks.json", NULL, NULL, &ans, d);
    if (rc == AT_OK && !json_is_array(json_object_get(ans, "keys")))
        rc = at_fail(d, AT_E_BAD_FIELD, "verifier: JWKS without a \"keys\" array");
    if (rc == AT_OK) {
        json_decref(e->jwks);
        e->jwks = ans;
        ans = NULL;
    }
    json_decref(ans);
    return rc;
}

/* A JWS by the verifier, checked against the cached JWKS; fetched when
 * there is none yet, and once more when the signature does not verify
 * with the cached set (a rotated key). */
static at_err verify_jws(at_peer_ear *e, const char *what, const char *jws, json_t **claims, at_diag *d)
{
    int64_t now_s = (e->at_ms > 0 ? e->at_ms : at_now_ms()) / 1000;
    bool fetched = false;
    at_err rc;
    if (!e->jwks) {
        if ((rc = fetch_jwks(e, d)) != AT_OK)
            return rc;
        fetched = true;
    }
    rc = at_ear_verify(jws, e->jwks, now_s, claims, d);
    if (rc == AT_E_BAD_SIGNATURE && !fetched) {
        if ((rc = fetch_jwks(e, d)) != AT_OK)
            return rc;
        rc = at_ear_verify(jws, e->jwks, now_s, claims, d);
    }
    if (rc != AT_OK)
        at_diag_prefix(d, "%s", what);
    return rc;
}

/* POST /v1/peer/bindings; *binding (malloc) when wanted. */
static at_err bind_call(at_peer_ear *e, const uint8_t th[32], const char *peer_sid, char **binding,
                        at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char th_hex[65], name[200], proof[128];
    uint8_t pk[32];
    json_t *body = NULL, *ans = NULL;
    at_vclient vc = {.url = e->url};
    at_hex_encode(th, 32, th_hex);
    snprintf(name, sizeof name, "%s%s:%s", AT_PEER_PROOF_PREFIX, th_hex, peer_sid ? peer_sid : "");
    at_session_proof_key(AT_SPAN(e->key, sizeof e->key), pk);
    AT_TRY(at_release_proof_make(AT_SPAN(pk, 32), name, e->sid, at_wall_ms(), proof, sizeof proof));
    body = peer_sid
               ? json_pack("{s:s,s:s,s:s,s:s}", "session", e->sid, "proof", proof, "transcript_sha256",
                           th_hex, "peer_session", peer_sid)
               : json_pack("{s:s,s:s,s:s}", "session", e->sid, "proof", proof, "transcript_sha256", th_hex);
    AT_ENSURE(body, d, AT_E_INTERNAL, "peer: out of memory");
    AT_TRY(at_vclient_call(&vc, "POST", "/v1/peer/bindings", body, NULL, &ans, d));
    const char *b = json_string_value(json_object_get(ans, "binding"));
    AT_ENSURE(b && strlen(b) <= AT_PEER_EAR_MAX_JWS, d, AT_E_BAD_FIELD,
              "verifier: peer binding missing or over %d bytes", AT_PEER_EAR_MAX_JWS);
    if (binding)
        AT_ENSURE((*binding = strdup(b)), d, AT_E_INTERNAL, "peer: out of memory");
    rc = AT_OK;
out:
    at_wipe(pk, sizeof pk);
    at_wipe(proof, sizeof proof);
    json_decref(body);
    json_decref(ans);
    return rc;
}

static at_err put16(at_buf *out, const char *s)
{
    size_t n = strlen(s);
    if (n > AT_PEER_EAR_MAX_JWS)
        return AT_E_TOO_LARGE;
    at_err rc = at_buf_u8(out, (uint8_t)(n >> 8));
    if (rc == AT_OK)
        rc = at_buf_u8(out, (uint8_t)n);
    return rc == AT_OK ? at_buf_append(out, s, n) : rc;
}

static at_err prove(void *ctx, const uint8_t th[32], const json_t *peer, at_buf *out, at_diag *d)
{
    at_peer_ear *e = ctx;
    char *binding = NULL;
    const char *psid = peer ? json_string_value(json_object_get(peer, "session_id")) : NULL;
    at_err rc = bind_call(e, th, psid, &binding, d);
    if (rc == AT_OK && ((rc = put16(out, e->token)) != AT_OK || (rc = put16(out, binding)) != AT_OK))
        at_fail(d, rc, "peer: this side's token or binding is over %d bytes", AT_PEER_EAR_MAX_JWS);
    free(binding);
    return rc;
}

static at_err accepted(void *ctx, const uint8_t th[32], const json_t *peer, at_diag *d)
{
    at_peer_ear *e = ctx;
    const char *psid = json_string_value(json_object_get(peer, "session_id"));
    if (!psid)
        return at_fail(d, AT_E_INTERNAL, "peer: no peer session to record");
    return bind_call(e, th, psid, NULL, d);
}

/* One u16-prefixed JWS from r into a NUL-terminated copy. */
static bool take_jws(at_reader *r, char **out)
{
    uint8_t hi, lo;
    at_span s;
    if (!at_reader_u8(r, &hi) || !at_reader_u8(r, &lo))
        return false;
    size_t n = (size_t)hi << 8 | lo;
    if (n == 0 || n > AT_PEER_EAR_MAX_JWS || !at_reader_take(r, n, &s) || memchr(s.p, 0, n))
        return false;
    if (!(*out = malloc(n + 1)))
        return false;
    memcpy(*out, s.p, n);
    (*out)[n] = '\0';
    return true;
}

static at_err check(void *ctx, at_span proof, const uint8_t th[32], json_t **info, at_diag *d)
{
    at_peer_ear *e = ctx;
    at_err rc = AT_E_INTERNAL;
    at_reader r;
    char *token = NULL, *binding = NULL, th_hex[65];
    json_t *tc = NULL, *bc = NULL, *sub = NULL;
    const char *instance = NULL;
    at_reader_init(&r, proof.p, proof.len);
    AT_ENSURE(take_jws(&r, &token) && take_jws(&r, &binding) && at_reader_at_end(&r), d, AT_E_BAD_FIELD,
              "proof: expected u16 length, EAR token, u16 length, peer binding (each 1..%d bytes), "
              "got %zu bytes",
              AT_PEER_EAR_MAX_JWS, proof.len);
    /* The token: the verifier's, unexpired, affirming, the expected policy. */
    AT_TRY(verify_jws(e, "token: ", token, &tc, d));
    json_t *submods = json_object_get(tc, "submods");
    AT_ENSURE(json_is_object(submods) && json_object_size(submods) == 1 &&
                  !json_object_get(tc, BINDING_CLAIM),
              d, AT_E_BAD_FIELD, "token: expected an EAR with exactly one submod");
    json_object_foreach(submods, instance, sub) break;
    json_t *ae = json_object_get(sub, "ear.veraison.annotated-evidence");
    const char *status = json_string_value(json_object_get(sub, "ear.status"));
    const char *pid = json_string_value(json_object_get(sub, "ear.appraisal-policy-id"));
    const char *tsid = json_string_value(json_object_get(ae, "session_id"));
    AT_ENSURE(status && pid && tsid, d, AT_E_BAD_FIELD,
              "token: ear.status, ear.appraisal-policy-id and the session id are required");
    AT_ENSURE(strcmp(status, "affirming") == 0, d, AT_E_POLICY_MISMATCH,
              "token: ear.status %s, expected affirming", status);
    size_t pl = strlen(e->policy);
    AT_ENSURE(strncmp(pid, "policy:", 7) == 0 && strncmp(pid + 7, e->policy, pl) == 0 && pid[7 + pl] == '@',
              d, AT_E_POLICY_MISMATCH, "token: ear.appraisal-policy-id %.200s, expected policy:%s@<version>",
              pid, e->policy);
    AT_ENSURE(strcmp(tsid, e->sid) != 0, d, AT_E_REFLECTION, "token: names this side's own session %s", tsid);
    /* The binding: the verifier's, unexpired, for that session and this
     * handshake's transcript. */
    AT_TRY(verify_jws(e, "binding: ", binding, &bc, d));
    json_t *b = json_object_get(bc, BINDING_CLAIM);
    const char *bsid = json_string_value(json_object_get(b, "session_id"));
    const char *binst = json_string_value(json_object_get(b, "instance_id"));
    const char *bth = json_string_value(json_object_get(b, "transcript_sha256"));
    AT_ENSURE(json_is_object(b) && !json_object_get(bc, "submods") && bsid && binst && bth, d, AT_E_BAD_FIELD,
              "binding: expected a peer binding (%s with session_id, instance_id, transcript_sha256)",
              BINDING_CLAIM);
    AT_ENSURE(strcmp(bsid, tsid) == 0 && strcmp(binst, instance) == 0, d, AT_E_BINDING_MISMATCH,
              "binding: names session %.80s of instance %.80s, the token session %.80s of instance %.80s",
              bsid, binst, tsid, instance);
    at_hex_encode(th, 32, th_hex);
    AT_ENSURE(strlen(bth) == 64 && at_span_eq_ct(AT_SPAN(bth, 64), AT_SPAN(th_hex, 64)), d,
              AT_E_TRANSCRIPT_MISMATCH, "binding: transcript %.64s, this handshake's is %s", bth, th_hex);
    json_t *o = json_object();
    AT_ENSURE(o, d, AT_E_INTERNAL, "peer: out of memory");
    json_object_set_new(o, "via", json_string("verifier"));
    json_object_set_new(o, "instance_id", json_string(instance));
    json_object_set_new(o, "session_id", json_string(tsid));
    json_object_set_new(o, "policy", json_string(pid + 7));
    json_object_set(o, "format", json_object_get(ae, "format"));
    json_object_set(o, "module_id", json_object_get(ae, "module_id"));
    json_object_set(o, "pcrs", json_object_get(ae, "pcrs"));
    json_object_set(o, "token_exp", json_object_get(tc, "exp"));
    *info = o;
    rc = AT_OK;
out:
    json_decref(tc);
    json_decref(bc);
    free(token);
    free(binding);
    return rc;
}

void at_peer_ear_prover(at_peer_ear *e, at_peer_prover *out)
{
    out->ctx = e;
    out->prove = prove;
    out->check = check;
    out->accepted = accepted;
}
